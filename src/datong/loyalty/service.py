"""Earn, spend, hold, refund and adjust points. Each function locks the member's points account first,
writes its transfers and lot changes, and leaves the commit to the caller."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.ledger import service as ledger
from datong.ledger.models import PENDING, POST_PENDING, POSTED, VOID_PENDING, Transfer
from datong.ledger.queries import open_pending
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import MemberTier, PointsLot, Program, Reward
from datong.loyalty.programs import (
    ADJUSTMENT,
    ISSUANCE,
    REDEMPTION,
    member_account,
    member_account_id,
    party_account,
    program_rules,
    store_party,
)
from datong.loyalty.rules import HQ, Sale, SaleLine, compute_earning, proportional_target
from datong.loyalty.tiers import upgrade_if_qualified
from datong.members.service import get_active_member
from datong.orders.models import Order, OrderLine, OrderRefund
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
    tier = session.scalar(
        select(MemberTier.tier_code).where(
            MemberTier.program_id == program.id, MemberTier.member_id == order.member_id
        )
    )
    multiplier = next((t.earn_multiplier_pct for t in rules.tiers if t.code == tier), None)
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
        session, program=program, member_id=order.member_id, at=at, tiers=rules.tiers, account_id=account_id
    )
    total = earning.purchase_points + earning.bonus_points
    balance = spendable_points(session, account_id=account_id, at=at)
    return EarnResult(order.id, total, True, [t.id for t in transfers], list(earning.rules), balance=balance)


def order_ref(channel: str, order_no: str) -> str:
    """How a spend names a sale the POS has not sent yet."""
    return f"order:{channel}:{order_no}"[:64]


@dataclass(frozen=True)
class Redemption:
    id: str  # the operation: every transfer of this redemption carries it
    status: str  # held | posted | voided
    points: int
    value_fen: int
    hold_expires_at: datetime | None
    transfer_ids: list[str]
    issuers: dict[str, int]  # owner party → points of theirs spent
    balance: int  # the member's spendable points afterwards


def redeem_points(
    session: Session,
    *,
    program: Program,
    member_id: str,
    points: int | None,
    reward_code: str | None = None,
    channel: str,
    store_id: str | None,
    order_id: str | None = None,
    order_ref: str | None = None,
    hold: bool = False,
    actor: str,
    at: datetime | None = None,
) -> Redemption:
    """Spend points (as payment, or for a reward) in one step, or hold them for a later confirm.

    Points paid towards a sale name the order: ``order_id`` when it is already recorded, else
    ``order_ref`` (see :func:`order_ref`), so a later refund of that order gives them back."""
    if reward_code is not None and order_ref is not None:
        raise ValidationFailed("a reward is not paid towards an order", field="order_no")
    at = at or utcnow()
    get_active_member(session, tenant_id=program.tenant_id, member_id=member_id)
    reward = None
    if reward_code is not None:
        reward = session.scalar(
            select(Reward).where(
                Reward.program_id == program.id, Reward.code == reward_code, Reward.active.is_(True)
            )
        )
        if reward is None:
            raise ValidationFailed(f"no reward {reward_code!r} in this program", field="reward_code")
        points = reward.points_cost
    if points is None or points <= 0:
        raise ValidationFailed("spend a positive number of points", field="points")
    account_id = member_account(session, program, member_id, lock=True)
    _void_timed_out(session, program=program, account_id=account_id, actor="system:hold-timeout", at=at)
    lots = lot_ops.spendable_lots(session, account_id=account_id, at=at)
    available = sum(lot.remaining for lot in lots)
    plan = lot_ops.plan_draw(lots, points)
    issuers: dict[str, int] = {}
    for draw in plan:
        issuers[draw.lot.issuer] = issuers.get(draw.lot.issuer, 0) + draw.points
    honourer = (
        HQ if store_id is None else store_party(session, tenant_id=program.tenant_id, store_id=store_id)
    )
    redemption_account = party_account(session, program, REDEMPTION, honourer)
    operation = lot_ops.operation_id()
    refs = Refs(
        order_id=order_id,
        store_id=store_id,
        external_ref=f"reward:{reward.code}" if reward else order_ref,
        detail={"channel": channel},
    )
    transfers = lot_ops.debit_lots(
        session,
        program=program,
        account_id=account_id,
        plan=plan,
        to_account=lambda _lot: redemption_account,
        code="redeem",
        operation_id=operation,
        actor=actor,
        refs=refs,
        at=at,
        pending=hold,
    )
    session.flush()
    return _redemption(
        session, program, transfers, "held" if hold else "posted", at, issuers, available - points
    )


def _redemption(
    session: Session,
    program: Program,
    transfers: list[Transfer],
    status: str,
    at: datetime,
    issuers: dict[str, int] | None = None,
    balance: int | None = None,
) -> Redemption:
    """The answer about a redemption; ``issuers`` and ``balance`` when the caller knows them already."""
    if issuers is None:
        issuer_of = dict(
            session.execute(
                select(PointsLot.id, PointsLot.issuer).where(
                    PointsLot.id.in_({t.lot_id for t in transfers if t.lot_id})
                )
            ).all()
        )
        issuers = {}
        for transfer in transfers:
            issuer = issuer_of.get(transfer.lot_id or "", "")
            issuers[issuer] = issuers.get(issuer, 0) + transfer.amount
    if balance is None:
        balance = spendable_points(session, account_id=transfers[0].debit_account_id, at=at)
    points = sum(t.amount for t in transfers)
    return Redemption(
        id=transfers[0].operation_id,
        status=status,
        points=points,
        value_fen=points * program.fen_per_point,
        hold_expires_at=transfers[0].timeout_at if status == "held" else None,
        transfer_ids=[t.id for t in transfers],
        issuers=issuers,
        balance=balance,
    )


def resolve_hold(
    session: Session, *, program: Program, hold_id: str, post: bool, actor: str, at: datetime | None = None
) -> Redemption:
    """Confirm (post) or cancel (void) a hold. Asking twice for the same outcome answers the same."""
    at = at or utcnow()
    held = list(
        session.scalars(
            select(Transfer)
            .where(
                Transfer.tenant_id == program.tenant_id,
                Transfer.operation_id == hold_id,
                Transfer.code == "redeem",
            )
            .order_by(Transfer.id)
        )
    )
    pending = [t for t in held if t.kind == PENDING]
    if not pending:
        raise NotFound(f"no hold {hold_id}", field="hold_id")
    ledger.lock_account(session, pending[0].debit_account_id)
    session.expire_all()  # another request may have resolved it while we waited for the lock
    outcome = {
        t.kind
        for t in session.scalars(
            select(Transfer).where(Transfer.operation_id == hold_id, Transfer.kind != PENDING)
        )
    }
    if outcome:
        done = POST_PENDING if POST_PENDING in outcome else VOID_PENDING
        if (done == POST_PENDING) != post:
            raise Conflict(
                f"hold {hold_id} was already {'confirmed' if done == POST_PENDING else 'voided'}",
                field="hold_id",
            )
        return _redemption(session, program, pending, "posted" if post else "voided", at)
    timeout_at = pending[0].timeout_at
    if post and timeout_at is not None and timeout_at <= at:
        raise Conflict(f"hold {hold_id} timed out at {timeout_at.isoformat()}", field="hold_id")
    for transfer in pending:
        ledger.resolve_pending(session, pending=transfer, post=post, operation_id=hold_id, actor=actor, at=at)
        if not post and transfer.lot_id:
            lot_ops.restore_lot(session, transfer.lot_id, transfer.amount)
    session.flush()
    return _redemption(session, program, pending, "posted" if post else "voided", at)


def _void_timed_out(session: Session, *, program: Program, account_id: str, actor: str, at: datetime) -> int:
    """Void this account's holds whose time is up, giving their points back to their lots."""
    expired = list(
        session.scalars(
            open_pending(tenant_id=program.tenant_id).where(
                Transfer.debit_account_id == account_id, Transfer.timeout_at <= at
            )
        )
    )
    for transfer in expired:
        ledger.resolve_pending(
            session, pending=transfer, post=False, operation_id=transfer.operation_id, actor=actor, at=at
        )
        if transfer.lot_id:
            lot_ops.restore_lot(session, transfer.lot_id, transfer.amount)
    return len(expired)


def void_timed_out_holds(
    session: Session, *, program: Program, at: datetime | None = None, limit: int = 1000
) -> int:
    """The sweeper's half for holds: every account with a hold past its time."""
    at = at or utcnow()
    accounts = list(
        session.scalars(
            open_pending(tenant_id=program.tenant_id)
            .where(Transfer.ledger_id == program.ledger_id, Transfer.timeout_at <= at)
            .with_only_columns(Transfer.debit_account_id)
            .distinct()
            .limit(limit)
        )
    )
    voided = 0
    for account_id in sorted(accounts):
        ledger.lock_account(session, account_id)
        voided += _void_timed_out(
            session, program=program, account_id=account_id, actor="system:hold-timeout", at=at
        )
    session.flush()
    return voided


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

    def total(code_filter: tuple[str, ...], column: str) -> int:
        side = Transfer.credit_account_id if column == "credit" else Transfer.debit_account_id
        return int(
            session.scalar(
                select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    Transfer.tenant_id == program.tenant_id,
                    Transfer.order_id == order.id,
                    Transfer.code.in_(code_filter),
                    Transfer.kind.in_(SPENT),
                    side == account_id,
                )
            )
            or 0
        )

    earned, clawed = total(EARN_CODES, "credit"), total(("clawback",), "debit")
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
                Transfer.debit_account_id == account_id,
            )
            .order_by(Transfer.created_at, Transfer.id)
        )
    )
    returned: dict[str | None, int] = {}
    for t in session.scalars(
        select(Transfer).where(
            Transfer.order_id == order.id,
            Transfer.code == "give_back",
            Transfer.credit_account_id == account_id,
        )
    ):
        returned[t.lot_id] = returned.get(t.lot_id, 0) + t.amount
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
                refs=refs,
                lot_id=t.lot_id,
                at=at,
            )
        )
        if t.lot_id:
            lot_ops.restore_lot(session, t.lot_id, amount)
        want -= amount
    return out


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
