"""Earn and adjust points (spending is in ``redemptions``, refunds in ``refunds``). Each function locks
the member's points account first, writes its transfers and lot changes, and leaves the commit to the
caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import Conflict, ValidationFailed
from datong.ledger.models import POST_PENDING, POSTED, Transfer
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import Program
from datong.loyalty.programs import (
    ADJUSTMENT,
    ISSUANCE,
    member_account,
    member_account_id,
    party_account,
    program_rules,
    store_party,
)
from datong.loyalty.rules import HQ, Sale, SaleLine, compute_earning, proportional_target
from datong.loyalty.tiers import current_tier, upgrade_if_qualified
from datong.members.service import get_active_member
from datong.orders.models import Order, OrderLine
from datong.orders.service import refunded_fen
from datong.tenancy.service import audit

EARN_CODES = ("earn_purchase", "earn_bonus")
SPENT = (POSTED, POST_PENDING)


@dataclass(frozen=True)
class EarnResult:
    order_id: str
    points: int
    earned_now: bool
    transfer_ids: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    note: str | None = None
    balance: int = 0  # the member's spendable points afterwards


def earn_for_order(
    session: Session, *, program: Program, order: Order, actor: str, at: datetime | None = None
) -> EarnResult:
    """Credit what a completed order earns. Once per order: asking again returns the first earning."""
    at = at or utcnow()
    if order.member_id is None:
        return EarnResult(order.id, 0, False, note="the order has no member")
    if order.status != "completed":
        note = f"the order is {order.status}; it earns once completed"
        account = member_account_id(session, program, order.member_id)
        balance = spendable_points(session, account_id=account, at=at) if account else 0
        return EarnResult(order.id, 0, False, note=note, balance=balance)
    account_id = member_account(session, program, order.member_id, lock=True)
    earlier = list(
        session.scalars(
            select(Transfer).where(
                Transfer.tenant_id == program.tenant_id,
                Transfer.order_id == order.id,
                Transfer.code.in_(EARN_CODES),
                Transfer.credit_account_id == account_id,
            )
        )
    )
    if earlier:
        balance = spendable_points(session, account_id=account_id, at=at)
        applied = sorted({code for t in earlier for code in t.detail.get("rules", [])})
        return EarnResult(
            order.id, sum(t.amount for t in earlier), False, [t.id for t in earlier], applied, balance=balance
        )
    get_active_member(session, tenant_id=program.tenant_id, member_id=order.member_id)
    rules = program_rules(session, program)
    tier = current_tier(session, program=program, member_id=order.member_id)
    multiplier = next((t.earn_multiplier_pct for t in rules.tiers if tier and t.code == tier.tier_code), None)
    if multiplier is None:  # no tier yet: the entry tier's benefits
        multiplier = rules.tiers[0].earn_multiplier_pct if rules.tiers else 100
    lines = [
        SaleLine(category, (price or 0) * quantity)
        for category, price, quantity in session.execute(
            select(OrderLine.category, OrderLine.unit_price_fen, OrderLine.quantity).where(
                OrderLine.order_id == order.id
            )
        )
    ]
    # Money already refunded before the order earned earns nothing.
    paid_fen = order.paid_fen - proportional_target(
        order.paid_fen, refunded_fen(session, order_id=order.id), order.total_fen
    )
    earning = compute_earning(
        Sale(order.channel, order.store_id, order.ordered_at or at, paid_fen, lines),
        points_per_yuan=program.points_per_yuan,
        rules=rules.earn_rules,
        tier_multiplier_pct=multiplier,
    )
    issuer = store_party(session, tenant_id=program.tenant_id, store_id=order.store_id)
    operation = lot_ops.operation_id()
    refs = Refs(order_id=order.id, store_id=order.store_id, detail={"rules": list(earning.rules)})
    transfers = []
    for code, points in (("earn_purchase", earning.purchase_points), ("earn_bonus", earning.bonus_points)):
        if points > 0:
            transfers.append(
                lot_ops.credit_lot(
                    session,
                    program=program,
                    account_id=account_id,
                    member_id=order.member_id,
                    issuer=issuer,
                    from_kind=ISSUANCE,
                    points=points,
                    code=code,
                    operation_id=operation,
                    actor=actor,
                    refs=refs,
                    at=at,
                )
            )
    session.flush()
    upgrade_if_qualified(
        session,
        program=program,
        member_id=order.member_id,
        at=at,
        tiers=rules.tiers,
        account_id=account_id,
        row=tier,
        row_known=True,
    )
    total = earning.purchase_points + earning.bonus_points
    balance = spendable_points(session, account_id=account_id, at=at)
    return EarnResult(order.id, total, True, [t.id for t in transfers], list(earning.rules), balance=balance)


def adjust_points(
    session: Session,
    *,
    program: Program,
    member_id: str,
    points: int,
    reason: str,
    actor: str,
    at: datetime | None = None,
) -> list[Transfer]:
    """A manual correction: a new transfer, with its reason, in the audit log. Never an edit."""
    at = at or utcnow()
    if not reason or not reason.strip():
        raise ValidationFailed("say why the points are adjusted", field="reason")
    if points == 0:
        raise ValidationFailed("an adjustment moves at least one point", field="points")
    get_active_member(session, tenant_id=program.tenant_id, member_id=member_id)
    account_id = member_account(session, program, member_id, lock=True)
    operation = lot_ops.operation_id()
    refs = Refs(reason=reason.strip()[:300])
    if points > 0:
        transfers = [
            lot_ops.credit_lot(
                session,
                program=program,
                account_id=account_id,
                member_id=member_id,
                issuer=HQ,
                from_kind=ADJUSTMENT,
                points=points,
                code="adjust",
                operation_id=operation,
                actor=actor,
                refs=refs,
                at=at,
            )
        ]
    else:
        adjustment = party_account(session, program, ADJUSTMENT, HQ)
        transfers = lot_ops.debit_lots(
            session,
            program=program,
            account_id=account_id,
            plan=lot_ops.plan_draw(lot_ops.spendable_lots(session, account_id=account_id, at=at), -points),
            to_account=lambda _lot: adjustment,
            code="adjust",
            operation_id=operation,
            actor=actor,
            refs=refs,
            at=at,
        )
    session.flush()
    audit(
        session,
        tenant_id=program.tenant_id,
        actor=actor,
        action="points.adjust",
        object_type="member",
        object_id=member_id,
        detail={"points": points, "operation_id": operation, "program": program.code},
        note=reason.strip(),
    )
    return transfers


def earn_completed_orders(
    session: Session,
    *,
    program: Program,
    actor: str,
    after_id: str = "",
    limit: int = 500,
    at: datetime | None = None,
) -> tuple[str | None, int, int]:
    """Earn for completed orders of known members (imported Tmall and JD orders, mostly) that have not
    earned yet, in id order after ``after_id``, up to ``limit`` orders. Returns (last order id, orders
    that earned, points); call again from the last id until it is None. An order of a member who has
    been erased earns nothing and is passed over."""
    earned = select(Transfer.id).where(
        Transfer.tenant_id == program.tenant_id, Transfer.order_id == Order.id, Transfer.code.in_(EARN_CODES)
    )
    orders = list(
        session.scalars(
            select(Order)
            .where(
                Order.tenant_id == program.tenant_id,
                Order.id > after_id,
                Order.status == "completed",
                Order.member_id.is_not(None),
                ~earned.exists(),
            )
            .order_by(Order.id)
            .limit(limit)
        )
    )
    count = points = 0
    for order in orders:
        try:
            result = earn_for_order(session, program=program, order=order, actor=actor, at=at)
        except Conflict:
            continue  # the member is no longer active
        count += result.points > 0
        points += result.points
    return (orders[-1].id if orders else None), count, points
