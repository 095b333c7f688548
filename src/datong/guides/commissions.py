"""Guides' commission, in the ``commission`` ledger (fen): posted when an attributed order completes,
taken back in proportion when it is refunded (in the period of the refund, even long after), and
adjusted by hand with a reason. How much is earned is ``commission_rules.py``.

Accounts: each guide has a ``guide_commission`` account (``guide:<id>``); whoever pays it has a
``commission_payable`` account — the agent for a franchisee's store, the store itself for a franchise
store without an agent, HQ otherwise. Nothing here keeps a balance: statements sum the transfers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.guides.commission_rules import (
    LineCommission,
    SaleLine,
    commission_for,
    kept_after_refunds,
    parse_plan,
)
from datong.guides.models import Attribution
from datong.guides.queries import get_guide
from datong.ledger.models import Ledger, Transfer
from datong.ledger.service import Refs, create_transfer, ensure_account, ensure_ledger
from datong.loyalty.rules import owner_party
from datong.orders.models import Order, OrderLine
from datong.orders.service import refunded_fen
from datong.org.models import Store
from datong.tenancy.models import Tenant
from datong.tenancy.service import audit

LEDGER_CODE = "commission"
EARN, CLAWBACK, ADJUST = "commission", "commission_clawback", "commission_adjust"
PAYOUT = "commission_payout"
FULLY_REFUNDED = ("closed", "refunded")


def commission_ledger(session: Session, *, tenant_id: str) -> Ledger:
    return ensure_ledger(session, tenant_id=tenant_id, code=LEDGER_CODE, unit="fen", name="导购佣金")


def _guide_account(session: Session, ledger: Ledger, guide_id: str) -> str:
    # Locked: a guide's postings take turns, so one order is never posted twice at once.
    return ensure_account(
        session,
        tenant_id=ledger.tenant_id,
        ledger_id=ledger.id,
        kind="guide_commission",
        holder=f"guide:{guide_id}",
        lock=True,
    )


def _payer_account(session: Session, ledger: Ledger, store_id: str | None) -> str:
    store = session.get(Store, store_id) if store_id else None
    party = owner_party(
        store_id=store.id if store else None,
        store_kind=store.kind if store else None,
        agent_id=store.agent_id if store else None,
    )
    return ensure_account(
        session, tenant_id=ledger.tenant_id, ledger_id=ledger.id, kind="commission_payable", holder=party
    )


def _order_sums(session: Session, ledger: Ledger, order_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Transfer.code, func.sum(Transfer.amount))
        .where(
            Transfer.tenant_id == ledger.tenant_id,
            Transfer.ledger_id == ledger.id,
            Transfer.order_id == order_id,
        )
        .group_by(Transfer.code)
    ).all()
    return {code: int(total) for code, total in rows}


@dataclass(frozen=True)
class Posted:
    transfer: Transfer | None  # None: the order earned nothing under the plan
    lines: list[LineCommission]
    created: bool


def post_commission(
    session: Session, *, tenant_id: str, order_id: str, actor: str, at: datetime | None = None
) -> Posted | None:
    """The guide's commission on a completed order credited to them, once (asking again returns the
    first posting). None when the order is not completed or not credited to a guide."""
    at = at or utcnow()
    attribution = session.scalar(
        select(Attribution).where(Attribution.tenant_id == tenant_id, Attribution.order_id == order_id)
    )
    order = session.get(Order, order_id)
    if order is None or order.tenant_id != tenant_id:
        raise NotFound(f"no order {order_id}", field="order_id")
    if attribution is None or attribution.guide_id is None or order.status != "completed":
        return None
    ledger = commission_ledger(session, tenant_id=tenant_id)
    guide_account = _guide_account(session, ledger, attribution.guide_id)
    earlier = session.scalar(
        select(Transfer).where(
            Transfer.tenant_id == tenant_id,
            Transfer.ledger_id == ledger.id,
            Transfer.order_id == order_id,
            Transfer.code == EARN,
        )
    )
    if earlier is not None:
        return Posted(earlier, [LineCommission(**line) for line in earlier.detail.get("lines", [])], False)
    lines = _commission_lines(session, order, attribution)
    total = sum(line.commission_fen for line in lines)
    if total <= 0:
        return Posted(None, lines, False)
    transfer = create_transfer(
        session,
        tenant_id=tenant_id,
        ledger_id=ledger.id,
        debit_account_id=_payer_account(session, ledger, attribution.store_id),
        credit_account_id=guide_account,
        amount=total,
        code=EARN,
        operation_id=new_id("op"),
        actor=actor,
        refs=Refs(
            order_id=order.id,
            store_id=attribution.store_id,
            guide_id=attribution.guide_id,
            detail={"lines": [line.__dict__ for line in lines], "rule": attribution.rule},
        ),
        at=at,
    )
    session.flush()
    return Posted(transfer, lines, True)


def _commission_lines(session: Session, order: Order, attribution: Attribution) -> list[LineCommission]:
    tenant = session.get(Tenant, order.tenant_id)
    assert tenant is not None and attribution.guide_id is not None
    plan = parse_plan((tenant.settings or {}).get("commission"))
    guide = get_guide(session, tenant_id=order.tenant_id, guide_id=attribution.guide_id)
    store = session.get(Store, attribution.store_id) if attribution.store_id else None
    rows = session.scalars(
        select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)
    )
    lines = [
        SaleLine(row.line_no, row.sku, row.category, row.quantity, row.quantity * (row.unit_price_fen or 0))
        for row in rows
    ]
    if not any(line.amount_fen for line in lines):  # no priced lines: the order as one line
        lines = [SaleLine(0, None, None, sum(line.quantity for line in lines) or 1, order.paid_fen)]
    return commission_for(
        plan,
        lines,
        paid_fen=order.paid_fen,
        store_kind=store.kind if store else None,
        guide_level=guide.level,
    )


def claw_back_commission(
    session: Session, *, tenant_id: str, order_id: str, actor: str, at: datetime | None = None
) -> int:
    """Take back what the refunds of an order call for (cumulatively, so asking twice takes nothing more).
    A closed or refunded order gives everything back. Returns the fen taken back now."""
    at = at or utcnow()
    order = session.get(Order, order_id)
    if order is None or order.tenant_id != tenant_id:
        raise NotFound(f"no order {order_id}", field="order_id")
    ledger = commission_ledger(session, tenant_id=tenant_id)
    posting = session.scalar(
        select(Transfer).where(
            Transfer.tenant_id == tenant_id,
            Transfer.ledger_id == ledger.id,
            Transfer.order_id == order_id,
            Transfer.code == EARN,
        )
    )
    if posting is None:
        return 0
    assert posting.guide_id is not None
    _guide_account(session, ledger, posting.guide_id)  # take the guide's turn before reading
    sums = _order_sums(session, ledger, order_id)
    refunded = order.paid_fen if order.status in FULLY_REFUNDED else refunded_fen(session, order_id=order_id)
    keep = kept_after_refunds(sums[EARN], paid_fen=order.paid_fen, refunded_fen=refunded)
    due = sums[EARN] - keep - sums.get(CLAWBACK, 0)
    if due <= 0:
        return 0
    create_transfer(
        session,
        tenant_id=tenant_id,
        ledger_id=ledger.id,
        debit_account_id=posting.credit_account_id,
        credit_account_id=posting.debit_account_id,
        amount=due,
        code=CLAWBACK,
        operation_id=new_id("op"),
        actor=actor,
        refs=Refs(order_id=order_id, store_id=posting.store_id, guide_id=posting.guide_id),
        at=at,
    )
    session.flush()
    return due


def adjust_commission(
    session: Session,
    *,
    tenant_id: str,
    guide_id: str,
    amount_fen: int,
    reason: str,
    actor: str,
    at: datetime | None = None,
    order_id: str | None = None,
) -> Transfer:
    """A manual correction, positive (owed to the guide) or negative, with its reason; audited. Paid by
    (or returned to) whoever pays the guide's store."""
    if amount_fen == 0:
        raise ValidationFailed("an adjustment moves some fen", field="amount_fen")
    if not reason.strip():
        raise ValidationFailed("say why", field="reason")
    guide = get_guide(session, tenant_id=tenant_id, guide_id=guide_id)
    if order_id is not None:
        order = session.get(Order, order_id)
        if order is None or order.tenant_id != tenant_id:
            raise NotFound(f"no order {order_id}", field="order_id")
    ledger = commission_ledger(session, tenant_id=tenant_id)
    guide_account = _guide_account(session, ledger, guide.id)
    payer = _payer_account(session, ledger, guide.store_id)
    debit, credit = (payer, guide_account) if amount_fen > 0 else (guide_account, payer)
    transfer = create_transfer(
        session,
        tenant_id=tenant_id,
        ledger_id=ledger.id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=abs(amount_fen),
        code=ADJUST,
        operation_id=new_id("op"),
        actor=actor,
        refs=Refs(order_id=order_id, store_id=guide.store_id, guide_id=guide.id, reason=reason.strip()),
        at=at or utcnow(),
    )
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.commission_adjust",
        object_type="guide",
        object_id=guide.id,
        detail={"amount_fen": amount_fen, "transfer_id": transfer.id, "order_id": order_id},
        note=reason.strip(),
    )
    return transfer


def owed_on_order(session: Session, *, tenant_id: str, order_id: str) -> int:
    """The commission an order still carries: posted, less what refunds took back."""
    sums = _order_sums(session, commission_ledger(session, tenant_id=tenant_id), order_id)
    return sums.get(EARN, 0) - sums.get(CLAWBACK, 0)


def record_payout(
    session: Session,
    *,
    tenant_id: str,
    guide_id: str,
    order_id: str,
    amount_fen: int,
    reference: str,
    actor: str,
    at: datetime | None = None,
) -> Transfer:
    """Commission paid to the guide outside the statement (WeChat Pay profit sharing): it is no longer
    due. Once per ``reference`` (e.g. the split's id and the guide's line)."""
    ledger = commission_ledger(session, tenant_id=tenant_id)
    guide_account = _guide_account(session, ledger, guide_id)
    earlier = session.scalar(
        select(Transfer).where(
            Transfer.tenant_id == tenant_id,
            Transfer.ledger_id == ledger.id,
            Transfer.code == PAYOUT,
            Transfer.external_ref == reference,
        )
    )
    if earlier is not None:
        return earlier
    paid = ensure_account(
        session, tenant_id=tenant_id, ledger_id=ledger.id, kind="commission_paid", holder="wechatpay"
    )
    transfer = create_transfer(
        session,
        tenant_id=tenant_id,
        ledger_id=ledger.id,
        debit_account_id=guide_account,
        credit_account_id=paid,
        amount=amount_fen,
        code=PAYOUT,
        operation_id=new_id("op"),
        actor=actor,
        refs=Refs(order_id=order_id, guide_id=guide_id, external_ref=reference),
        at=at or utcnow(),
    )
    session.flush()
    return transfer
