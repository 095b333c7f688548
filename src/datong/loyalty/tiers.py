"""Tiers: qualification on what a member earned (or spent) over the last 12 months, never on the
balance. A member moves up the moment they qualify; they move down only at the yearly review.
Birthday bonuses are paid from the member's tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, extract, func, select
from sqlalchemy.orm import Session

from datong.core.clock import CHINA_TZ, utcnow
from datong.ledger.models import POST_PENDING, POSTED, Transfer
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.models import MemberTier, Program, TierChange
from datong.loyalty.programs import ISSUANCE, member_account, program_rules
from datong.loyalty.rules import HQ, TierSpec, qualifying_tier
from datong.members.models import ACTIVE, Member
from datong.orders.models import Order, OrderRefund

WINDOW = timedelta(days=365)


def qualifying_value(
    session: Session, *, program: Program, member_id: str, at: datetime, account_id: str | None = None
) -> int:
    """Points earned in the 12 months to ``at`` less what refunds took back; or, on a spend basis, the
    fen of completed orders in those months less their refunds."""
    since = at - WINDOW
    if program.tier_basis == "spend":
        spent = session.scalar(
            select(func.coalesce(func.sum(Order.total_fen), 0)).where(
                Order.tenant_id == program.tenant_id,
                Order.member_id == member_id,
                Order.status.in_(("completed", "refunded")),
                Order.ordered_at > since,
                Order.ordered_at <= at,
            )
        )
        refunded = session.scalar(
            select(func.coalesce(func.sum(OrderRefund.amount_fen), 0))
            .join(Order, Order.id == OrderRefund.order_id)
            .where(
                Order.tenant_id == program.tenant_id,
                Order.member_id == member_id,
                Order.ordered_at > since,
                Order.ordered_at <= at,
            )
        )
        return int(spent or 0) - int(refunded or 0)
    account_id = account_id or member_account(session, program, member_id)
    signed = case(
        (Transfer.credit_account_id == account_id, Transfer.amount),  # earnings
        else_=-Transfer.amount,  # clawbacks
    )
    value = session.scalar(
        select(func.coalesce(func.sum(signed), 0)).where(
            ((Transfer.credit_account_id == account_id) & Transfer.code.in_(("earn_purchase", "earn_bonus")))
            | ((Transfer.debit_account_id == account_id) & (Transfer.code == "clawback")),
            Transfer.kind.in_((POSTED, POST_PENDING)),
            Transfer.created_at > since,
            Transfer.created_at <= at,
        )
    )
    return int(value or 0)


def current_tier(session: Session, *, program: Program, member_id: str) -> MemberTier | None:
    return session.scalar(
        select(MemberTier).where(MemberTier.program_id == program.id, MemberTier.member_id == member_id)
    )


def _rank(tiers: list[TierSpec], code: str | None) -> int:
    return next((t.rank for t in tiers if t.code == code), -1)


def _set_tier(
    session: Session,
    program: Program,
    member_id: str,
    row: MemberTier | None,
    to: TierSpec,
    reason: str,
    value: int,
    at: datetime,
) -> None:
    session.add(
        TierChange(
            tenant_id=program.tenant_id,
            program_id=program.id,
            member_id=member_id,
            from_code=row.tier_code if row else None,
            to_code=to.code,
            reason=reason,
            qualifying_value=value,
            at=at,
        )
    )
    if row is None:
        session.add(
            MemberTier(
                tenant_id=program.tenant_id,
                program_id=program.id,
                member_id=member_id,
                tier_code=to.code,
                since=at,
            )
        )
    else:
        row.tier_code, row.since = to.code, at


def upgrade_if_qualified(
    session: Session,
    *,
    program: Program,
    member_id: str,
    at: datetime | None = None,
    tiers: list[TierSpec] | None = None,
    account_id: str | None = None,
    row: MemberTier | None = None,
    row_known: bool = False,
) -> str | None:
    """Move the member up at once if the last 12 months reach a higher tier. Returns the new tier code.
    (``tiers``, ``account_id`` and the member's tier ``row`` with ``row_known`` save the queries when the
    caller has them already.)"""
    at = at or utcnow()
    tiers = program_rules(session, program).tiers if tiers is None else tiers
    if not tiers:
        return None
    if not row_known:
        row = current_tier(session, program=program, member_id=member_id)
    rank = _rank(tiers, row.tier_code if row else None)
    if rank >= max(t.rank for t in tiers):
        return None  # already at the top: nothing to qualify for
    value = qualifying_value(session, program=program, member_id=member_id, at=at, account_id=account_id)
    target = qualifying_tier(tiers, value)
    if target is None or target.rank <= rank:
        return None
    _set_tier(session, program, member_id, row, target, "upgrade", value, at)
    session.flush()
    return target.code


@dataclass(frozen=True)
class ReviewResult:
    reviewed: int
    upgraded: int
    downgraded: int


def review_tiers(session: Session, *, program: Program, at: datetime | None = None) -> ReviewResult:
    """The yearly review: every member holding a tier is set to the tier the last 12 months earn,
    down as well as up."""
    at = at or utcnow()
    tiers = program_rules(session, program).tiers
    reviewed = up = down = 0
    if not tiers:
        return ReviewResult(0, 0, 0)
    entry = min(tiers, key=lambda t: t.rank)
    for row in list(
        session.scalars(
            select(MemberTier).where(MemberTier.program_id == program.id).order_by(MemberTier.member_id)
        )
    ):
        value = qualifying_value(session, program=program, member_id=row.member_id, at=at)
        target = qualifying_tier(tiers, value) or entry
        reviewed += 1
        old = _rank(tiers, row.tier_code)
        if target.rank != old:
            up, down = up + (target.rank > old), down + (target.rank < old)
            _set_tier(session, program, row.member_id, row, target, "review", value, at)
    session.flush()
    return ReviewResult(reviewed, up, down)


def grant_birthday_bonus(
    session: Session, *, program: Program, on: date, actor: str = "system:birthday"
) -> int:
    """Pay each active member whose birthday is ``on`` their tier's birthday bonus, once a year.
    Returns how many were paid."""
    rules = program_rules(session, program)
    if not rules.tiers:
        return 0
    by_code = {t.code: t for t in rules.tiers}
    entry = min(rules.tiers, key=lambda t: t.rank)
    at = datetime(on.year, on.month, on.day, 9, tzinfo=CHINA_TZ)
    marker = f"birthday:{on.year}"
    paid = 0
    members = session.scalars(
        select(Member.id).where(
            Member.tenant_id == program.tenant_id,
            Member.status == ACTIVE,
            extract("month", Member.birthday) == on.month,
            extract("day", Member.birthday) == on.day,
        )
    ).all()
    for member_id in members:
        row = current_tier(session, program=program, member_id=member_id)
        tier = by_code.get(row.tier_code) if row else entry
        if tier is None or tier.birthday_bonus_points <= 0:
            continue
        account_id = member_account(session, program, member_id, lock=True)
        if session.scalar(
            select(Transfer.id).where(
                Transfer.credit_account_id == account_id,
                Transfer.code == "earn_bonus",
                Transfer.external_ref == marker,
            )
        ):
            continue
        lot_ops.credit_lot(
            session,
            program=program,
            account_id=account_id,
            member_id=member_id,
            issuer=HQ,
            from_kind=ISSUANCE,
            points=tier.birthday_bonus_points,
            code="earn_bonus",
            operation_id=lot_ops.operation_id(),
            actor=actor,
            refs=Refs(external_ref=marker, detail={"tier": tier.code}),
            at=at,
        )
        paid += 1
    session.flush()
    return paid


def tier_history(session: Session, *, program: Program, member_id: str) -> list[TierChange]:
    return list(
        session.scalars(
            select(TierChange)
            .where(TierChange.program_id == program.id, TierChange.member_id == member_id)
            .order_by(TierChange.at, TierChange.id)
        )
    )
