"""Spending points: in one step, or held then confirmed or voided; holds past their time are voided.
Each spend draws on lots soonest-expiring first, one transfer per lot, under the member account's lock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons.service import issue_coupon
from datong.ledger import service as ledger
from datong.ledger.models import PENDING, POST_PENDING, VOID_PENDING, Transfer
from datong.ledger.queries import open_pending
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import PointsLot, Program, Reward
from datong.loyalty.programs import (
    REDEMPTION,
    member_account,
    party_account,
    store_party,
)
from datong.loyalty.rules import HQ
from datong.members.service import get_active_member


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
    coupon_code: str | None = None  # the coupon a coupon reward gave


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
        if reward.kind == "coupon" and hold:
            raise ValidationFailed("a coupon reward is taken in one step, not held", field="hold")
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
    answer = _redemption(
        session, program, transfers, "held" if hold else "posted", at, issuers, available - points
    )
    if reward is not None and reward.coupon_template:
        # The points pay for the coupon in the same transaction: both happen, or neither.
        coupon, _created = issue_coupon(
            session,
            tenant_id=program.tenant_id,
            template_code=reward.coupon_template,
            member_id=member_id,
            issue_key=f"points:{operation}",
            source="points",
            at=at,
        )
        answer = replace(answer, coupon_code=coupon.code)
    return answer


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
    return void_open_holds(session, program=program, account_id=account_id, actor=actor, at=at, due_by=at)


def void_open_holds(
    session: Session,
    *,
    program: Program,
    account_id: str,
    actor: str,
    at: datetime,
    due_by: datetime | None = None,
) -> int:
    """Void the account's open holds (only those timed out by ``due_by``, when given), giving their
    points back to their lots. The caller holds the account's lock. Returns how many were voided."""
    query = open_pending(tenant_id=program.tenant_id).where(Transfer.debit_account_id == account_id)
    if due_by is not None:
        query = query.where(Transfer.timeout_at <= due_by)
    expired = list(session.scalars(query))
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
