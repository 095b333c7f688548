"""Refunds: the share of an order's earned points the refunds cover is taken back (never below zero),
and the same share of the points spent on it is given back, each to the lot it came from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import Conflict
from datong.coupons.orders import reverse_order_coupons
from datong.ledger import service as ledger
from datong.ledger.models import Transfer
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.lots import spendable_points
from datong.loyalty.merges import current_lot
from datong.loyalty.models import Program
from datong.loyalty.programs import (
    ISSUANCE,
    member_account,
    party_account,
)
from datong.loyalty.redemptions import order_ref
from datong.loyalty.rules import proportional_target
from datong.loyalty.service import EARN_CODES, SPENT
from datong.orders.models import Order, OrderRefund
from datong.orders.service import record_refund, refunded_fen


@dataclass(frozen=True)
class RefundPoints:
    refund_id: str
    clawed_back: int
    given_back: int
    shortfall: int  # earned points the member had already spent: not taken below zero
    transfer_ids: list[str]
    balance: int = 0  # the member's spendable points afterwards


def refund_points(
    session: Session,
    *,
    program: Program,
    order: Order,
    refund: OrderRefund,
    actor: str,
    at: datetime | None = None,
) -> RefundPoints:
    """Take back the share of the order's earned points that the refunds so far cover, and give back the
    same share of the points spent on it. Each lot spent on returns to that lot."""
    at = at or utcnow()
    if order.member_id is None:
        return RefundPoints(refund.id, 0, 0, 0, [])  # an order of no one: no points either way
    account_id = member_account(session, program, order.member_id, lock=True)
    refunded = refunded_fen(session, order_id=order.id)
    operation = lot_ops.operation_id()
    refs = Refs(order_id=order.id, store_id=order.store_id, external_ref=refund.id)

    # Summed over the program's ledger, not the member's account: a merge may have moved the order, and
    # its earnings were credited to the member who held it then.
    def total(code_filter: tuple[str, ...]) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    Transfer.tenant_id == program.tenant_id,
                    Transfer.order_id == order.id,
                    Transfer.code.in_(code_filter),
                    Transfer.kind.in_(SPENT),
                    Transfer.ledger_id == program.ledger_id,
                )
            )
            or 0
        )

    earned, clawed = total(EARN_CODES), total(("clawback",))
    want = proportional_target(earned, refunded, order.total_fen) - clawed
    transfers: list[Transfer] = []
    shortfall = 0
    if want > 0:
        lots = lot_ops.spendable_lots(session, account_id=account_id, at=at, prefer_order_id=order.id)
        take = min(want, sum(lot.remaining for lot in lots))
        shortfall = want - take
        if take:
            transfers += lot_ops.debit_lots(
                session,
                program=program,
                account_id=account_id,
                plan=lot_ops.plan_draw(lots, take),
                to_account=lambda lot: party_account(session, program, ISSUANCE, lot.issuer),
                code="clawback",
                operation_id=operation,
                actor=actor,
                refs=replace(refs, detail={"shortfall": shortfall}),
                at=at,
            )
    transfers += _give_back(session, program, order, account_id, refunded, operation, actor, refs, at)
    session.flush()
    given = sum(t.amount for t in transfers if t.code == "give_back")
    return RefundPoints(
        refund.id,
        sum(t.amount for t in transfers if t.code == "clawback"),
        given,
        shortfall,
        [t.id for t in transfers],
        spendable_points(session, account_id=account_id, at=at),
    )


def _give_back(
    session: Session,
    program: Program,
    order: Order,
    account_id: str,
    refunded: int,
    operation: str,
    actor: str,
    refs: Refs,
    at: datetime,
) -> list[Transfer]:
    spent = list(
        session.scalars(
            select(Transfer)
            .where(
                Transfer.tenant_id == program.tenant_id,
                (Transfer.order_id == order.id)
                | (Transfer.external_ref == order_ref(order.channel, order.order_no)),
                Transfer.code == "redeem",
                Transfer.kind.in_(SPENT),
                Transfer.ledger_id == program.ledger_id,
            )
            .order_by(Transfer.created_at, Transfer.id)
        )
    )
    returned: dict[str | None, int] = {}
    for t in session.scalars(
        select(Transfer).where(
            Transfer.order_id == order.id,
            Transfer.code == "give_back",
            Transfer.ledger_id == program.ledger_id,
        )
    ):
        spent_from = t.detail.get("for_lot", t.lot_id)  # the lot the points were spent from
        returned[spent_from] = returned.get(spent_from, 0) + t.amount
    want = proportional_target(sum(t.amount for t in spent), refunded, order.total_fen) - sum(
        returned.values()
    )
    out: list[Transfer] = []
    for t in spent:
        if want <= 0:
            break
        already = min(returned.get(t.lot_id, 0), t.amount)
        returned[t.lot_id] = returned.get(t.lot_id, 0) - already
        amount = min(want, t.amount - already)
        if amount <= 0:
            continue
        # Back to the lot they came from, or to where a merge moved that lot's points.
        lot = current_lot(session, t.lot_id, account_id) if t.lot_id else None
        if lot is None:
            raise Conflict(
                f"the lot {t.lot_id} of this order's points is no longer this member's", field="order_no"
            )
        out.append(
            ledger.create_transfer(
                session,
                tenant_id=program.tenant_id,
                ledger_id=program.ledger_id,
                debit_account_id=t.credit_account_id,
                credit_account_id=account_id,
                amount=amount,
                code="give_back",
                operation_id=operation,
                actor=actor,
                refs=replace(refs, detail={"for_lot": t.lot_id}),
                lot_id=lot.id,
                at=at,
            )
        )
        lot.remaining += amount
        want -= amount
    return out


def refund_closed_orders(
    session: Session,
    *,
    program: Program,
    actor: str,
    after_id: str = "",
    limit: int = 500,
    at: datetime | None = None,
) -> tuple[str | None, int, int]:
    """Imported orders that earned and that a later export shows closed or refunded (Tmall's 交易关闭
    after 交易成功: the buyer got the money back) are refunded in what is left of their total, which
    takes their points back and reverses the coupons redeemed on them (``coupons/orders.py``). In id
    order after ``after_id``, up to ``limit`` orders; returns (last order id, orders refunded, points
    clawed back). Call again from the last id until it is None."""
    earned = select(Transfer.id).where(
        Transfer.tenant_id == program.tenant_id,
        Transfer.order_id == Order.id,
        Transfer.code.in_(EARN_CODES),
        Transfer.ledger_id == program.ledger_id,
    )
    orders = list(
        session.scalars(
            select(Order)
            .where(
                Order.tenant_id == program.tenant_id,
                Order.id > after_id,
                Order.status.in_(("closed", "refunded")),
                Order.member_id.is_not(None),
                earned.exists(),
            )
            .order_by(Order.id)
            .limit(limit)
        )
    )
    count = clawed = 0
    for order in orders:
        left = order.total_fen - refunded_fen(session, order_id=order.id)
        if left <= 0:
            continue
        refund, _created = record_refund(
            session,
            tenant_id=program.tenant_id,
            order=order,
            refund_no=f"import:{order.status}",
            amount_fen=left,
            reason=f"the channel's export says {order.status_raw}",
            at=at,
        )
        clawed += refund_points(
            session, program=program, order=order, refund=refund, actor=actor, at=at
        ).clawed_back
        reverse_order_coupons(session, tenant_id=program.tenant_id, order=order, actor=actor, at=at)
        count += 1
    return (orders[-1].id if orders else None), count, clawed
