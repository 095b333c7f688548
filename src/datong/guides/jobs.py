"""Batch work for guides, one transaction a batch (``run_batches``): attribute recent online orders,
post commission for completed credited orders, take it back for refunded or closed ones.

Each step works in order id after the last batch's, and skips what is already done (an attributed order,
a posted order, an order whose refunds are taken back), so a run that stops keeps the batches it finished
and the next run picks up the rest; running twice changes nothing the second time.

Postings and take-backs are dated when the job makes them, so a month's statement, once the month is
over, never changes: a refund seen in November is taken back on November's statement, even for an
October order (``commissions.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from datong.core.clock import utcnow
from datong.core.db import Database
from datong.guides import rules
from datong.guides.commissions import CLAWBACK, EARN, FULLY_REFUNDED, LEDGER_CODE
from datong.guides.commissions import claw_back_commission as claw_back
from datong.guides.commissions import post_commission as post
from datong.guides.models import Attribution
from datong.guides.service import attribute_order
from datong.ledger.models import Ledger, Transfer
from datong.orders.models import Order, OrderRefund

BATCH = 500
# Orders placed this many days back are looked at by default: an order is attributed when it (or its
# import) arrives, and one not credited then is looked at again until it is this old.
RECENT_DAYS = 60
# An order is credited once it is paid; one closed or refunded before it was ever credited earns nothing.
ATTRIBUTABLE = ("paid", "shipped", "completed")

# A step: (session, after this order id) → (last order id, or None when done; orders looked at;
# orders changed; fen moved).
Step = Callable[[Session, str], tuple[str | None, int, int, int]]


def run_batches(
    db: Database, *, step: Step, on_batch: Callable[[int, int, int], None] | None = None
) -> tuple[int, int, int]:
    """Run ``step`` batch after batch, each in its own transaction, until it says it is done. Returns
    (orders looked at, orders changed, fen) in all; ``on_batch`` hears the running totals."""
    after: str | None = ""
    seen = changed = fen = 0
    while after is not None:
        with db.unit_of_work() as s:
            after, n_seen, n_changed, n_fen = step(s, after)
        seen, changed, fen = seen + n_seen, changed + n_changed, fen + n_fen
        if on_batch is not None:
            on_batch(seen, changed, fen)
    return seen, changed, fen


# --- attribution ------------------------------------------------------------------------------------


def recent_since(at: datetime | None = None, days: int = RECENT_DAYS) -> datetime:
    return (at or utcnow()) - timedelta(days=days)


def _to_attribute(tenant_id: str, since: datetime) -> list[ColumnElement[bool]]:
    placed = func.coalesce(Order.paid_at, Order.ordered_at)
    done = select(Attribution.id).where(Attribution.tenant_id == tenant_id, Attribution.order_id == Order.id)
    return [
        Order.tenant_id == tenant_id,
        Order.channel.in_(sorted(rules.ONLINE_CHANNELS)),
        Order.status.in_(ATTRIBUTABLE),
        Order.member_id.is_not(None),
        placed >= since,
        ~done.exists(),
    ]


def count_to_attribute(session: Session, *, tenant_id: str, since: datetime) -> int:
    return (
        session.scalar(select(func.count()).select_from(Order).where(*_to_attribute(tenant_id, since))) or 0
    )


def attribute_orders(
    session: Session, *, tenant_id: str, since: datetime, after_id: str = "", limit: int = BATCH
) -> tuple[str | None, int, int, int]:
    """Credit online orders (mini-program, e-shop, imported Tmall and JD) of known members placed since
    ``since`` and not credited yet, to the touch the written rules pick. Returns (last order id, orders
    looked at, orders credited, their paid fen)."""
    orders = list(
        session.scalars(
            select(Order)
            .where(Order.id > after_id, *_to_attribute(tenant_id, since))
            .order_by(Order.id)
            .limit(limit)
        )
    )
    credited = fen = 0
    for order in orders:
        found = attribute_order(session, tenant_id=tenant_id, order_id=order.id)
        if found is not None:
            credited, fen = credited + 1, fen + found.amount_fen
    return (orders[-1].id if orders else None), len(orders), credited, fen


# --- commission -------------------------------------------------------------------------------------


def _to_post(tenant_id: str, *columns: Any) -> Select[Any]:
    """Completed orders credited to a guide with no commission posting yet."""
    posted = (
        select(Transfer.id)
        .join(Ledger, Ledger.id == Transfer.ledger_id)
        .where(
            Transfer.tenant_id == tenant_id,
            Transfer.order_id == Order.id,
            Transfer.code == EARN,
            Ledger.code == LEDGER_CODE,
        )
    )
    return (
        select(*columns)
        .select_from(Order)
        .join(Attribution, and_(Attribution.tenant_id == tenant_id, Attribution.order_id == Order.id))
        .where(
            Order.tenant_id == tenant_id,
            Order.status == "completed",
            Attribution.guide_id.is_not(None),
            ~posted.exists(),
        )
    )


def count_to_post(session: Session, *, tenant_id: str) -> int:
    return session.scalar(_to_post(tenant_id, func.count())) or 0


def post_commissions(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    after_id: str = "",
    limit: int = BATCH,
    at: datetime | None = None,
) -> tuple[str | None, int, int, int]:
    """Post the guide's commission on completed orders credited to a guide and not posted yet. Returns
    (last order id, orders looked at, orders that earned, fen). An order the plan gives nothing for is
    looked at again on the next run (the plan may have changed since)."""
    query = _to_post(tenant_id, Order.id).where(Order.id > after_id).order_by(Order.id).limit(limit)
    ids = list(session.scalars(query))
    earned = fen = 0
    for order_id in ids:
        posted = post(session, tenant_id=tenant_id, order_id=order_id, actor=actor, at=at)
        if posted is not None and posted.created and posted.transfer is not None:
            earned, fen = earned + 1, fen + posted.transfer.amount
    return (ids[-1] if ids else None), len(ids), earned, fen


def _to_claw_back(tenant_id: str, *columns: Any) -> Select[Any]:
    """Orders refunded (in part or in full) or closed whose commission posting has had less taken back
    than was posted."""
    earn = aliased(Transfer)
    taken = (
        select(func.coalesce(func.sum(Transfer.amount), 0))
        .where(
            Transfer.tenant_id == tenant_id,
            Transfer.ledger_id == earn.ledger_id,
            Transfer.order_id == earn.order_id,
            Transfer.code == CLAWBACK,
        )
        .scalar_subquery()
    )
    refunded = exists().where(OrderRefund.tenant_id == tenant_id, OrderRefund.order_id == Order.id)
    return (
        select(*columns)
        .select_from(Order)
        .join(earn, and_(earn.tenant_id == tenant_id, earn.order_id == Order.id, earn.code == EARN))
        .join(Ledger, Ledger.id == earn.ledger_id)
        .where(
            Order.tenant_id == tenant_id,
            Ledger.code == LEDGER_CODE,
            or_(Order.status.in_(FULLY_REFUNDED), refunded),
            taken < earn.amount,
        )
    )


def count_to_claw_back(session: Session, *, tenant_id: str) -> int:
    return session.scalar(_to_claw_back(tenant_id, func.count())) or 0


def claw_back_commissions(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    after_id: str = "",
    limit: int = BATCH,
    at: datetime | None = None,
) -> tuple[str | None, int, int, int]:
    """Take back what refunds and closings call for (cumulatively: what was taken back before counts).
    Returns (last order id, orders looked at, orders with something taken back, fen)."""
    query = _to_claw_back(tenant_id, Order.id).where(Order.id > after_id).order_by(Order.id).limit(limit)
    ids = list(session.scalars(query))
    orders = fen = 0
    for order_id in ids:
        taken = claw_back(session, tenant_id=tenant_id, order_id=order_id, actor=actor, at=at)
        if taken:
            orders, fen = orders + 1, fen + taken
    return (ids[-1] if ids else None), len(ids), orders, fen
