"""Commission disputes: a guide (or someone who sees the guide) says a month's commission is wrong — an
order missing, a figure too low — and HQ settles it, by a manual adjustment (a ledger transfer, audited,
on the statement of the month it is made in) or by rejecting it, always with the reason.

A dispute is resolved once: the move out of ``open`` is one guarded ``UPDATE``, so two people resolving
it at the same moment adjust the commission once, and the second is told it is settled already.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datong.core.clock import CHINA_TZ, month_bounds, utcnow
from datong.core.db import rowcount
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.guides.commissions import adjust_commission
from datong.guides.models import CommissionDispute
from datong.guides.queries import get_guide
from datong.orders.models import Order
from datong.tenancy.service import audit

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
OPEN, ADJUSTED, REJECTED = "open", "adjusted", "rejected"
STATUSES = (OPEN, ADJUSTED, REJECTED)
OUTCOMES = {"adjust": ADJUSTED, "reject": REJECTED}
CLAIM_MAX = RESOLUTION_MAX = 500


def _check_period(period: str, at: datetime) -> None:
    if not _PERIOD.match(period) or month_bounds(period)[0] > at.astimezone(CHINA_TZ):
        raise ValidationFailed("a month written YYYY-MM, this month or before", field="period")


def raise_dispute(
    session: Session,
    *,
    tenant_id: str,
    guide_id: str,
    period: str,
    claim: str,
    actor: str,
    order_id: str | None = None,
    at: datetime | None = None,
) -> CommissionDispute:
    """Note a dispute of ``guide_id``'s commission for ``period`` (YYYY-MM), about one order or not."""
    at = at or utcnow()
    _check_period(period, at)
    claim = claim.strip()
    if not claim or len(claim) > CLAIM_MAX:
        raise ValidationFailed(f"say what is wrong, in at most {CLAIM_MAX} characters", field="claim")
    guide = get_guide(session, tenant_id=tenant_id, guide_id=guide_id)
    if order_id is not None:
        order = session.get(Order, order_id)
        if order is None or order.tenant_id != tenant_id:
            raise NotFound(f"no order {order_id}", field="order_id")
    dispute = CommissionDispute(
        tenant_id=tenant_id,
        guide_id=guide.id,
        period=period,
        order_id=order_id,
        claim=claim,
        status=OPEN,
        raised_by=actor,
        created_at=at,
    )
    session.add(dispute)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.dispute_raise",
        object_type="guide_commission_dispute",
        object_id=dispute.id,
        detail={"guide_id": guide.id, "period": period, "order_id": order_id},
        note=claim,
    )
    return dispute


def get_dispute(session: Session, *, tenant_id: str, dispute_id: str) -> CommissionDispute:
    dispute = session.get(CommissionDispute, dispute_id)
    if dispute is None or dispute.tenant_id != tenant_id:
        raise NotFound(f"no dispute {dispute_id}", field="dispute_id")
    return dispute


def resolve_dispute(
    session: Session,
    *,
    tenant_id: str,
    dispute_id: str,
    outcome: str,
    reason: str,
    actor: str,
    amount_fen: int | None = None,
    at: datetime | None = None,
) -> CommissionDispute:
    """Settle an open dispute: ``adjust`` moves ``amount_fen`` (positive: owed to the guide) with the
    reason, through ``adjust_commission``; ``reject`` moves nothing."""
    at = at or utcnow()
    if outcome not in OUTCOMES:
        raise ValidationFailed("outcome is adjust or reject", field="outcome")
    reason = reason.strip()
    if not reason or len(reason) > RESOLUTION_MAX:
        raise ValidationFailed(f"say why, in at most {RESOLUTION_MAX} characters", field="reason")
    if outcome == "adjust" and not amount_fen:
        raise ValidationFailed("an adjustment moves some fen", field="amount_fen")
    if outcome == "reject" and amount_fen is not None:
        raise ValidationFailed("a rejection moves no money: leave amount_fen out", field="amount_fen")
    dispute = get_dispute(session, tenant_id=tenant_id, dispute_id=dispute_id)
    settled = session.execute(
        update(CommissionDispute)
        .where(CommissionDispute.id == dispute.id, CommissionDispute.status == OPEN)
        .values(status=OUTCOMES[outcome], resolution=reason, resolved_by=actor, resolved_at=at)
    )
    if rowcount(settled) == 0:
        session.refresh(dispute)
        raise Conflict(f"this dispute is {dispute.status} already", field="dispute_id", status=dispute.status)
    transfer_id = None
    if outcome == "adjust":
        assert amount_fen is not None
        transfer_id = adjust_commission(
            session,
            tenant_id=tenant_id,
            guide_id=dispute.guide_id,
            amount_fen=amount_fen,
            reason=reason,
            actor=actor,
            at=at,
            order_id=dispute.order_id,
        ).id
        session.execute(
            update(CommissionDispute)
            .where(CommissionDispute.id == dispute.id)
            .values(transfer_id=transfer_id)
        )
    session.refresh(dispute)
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.dispute_resolve",
        object_type="guide_commission_dispute",
        object_id=dispute.id,
        detail={"outcome": outcome, "amount_fen": amount_fen, "transfer_id": transfer_id},
        note=reason,
    )
    return dispute


def list_disputes(
    session: Session,
    *,
    tenant_id: str,
    guide_ids: Collection[str] | None = None,
    period: str | None = None,
    status: str | None = None,
) -> Sequence[CommissionDispute]:
    """Disputes oldest first, of ``guide_ids`` (None: every guide), of a month, in a status."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(STATUSES)}", field="status")
    query = select(CommissionDispute).where(CommissionDispute.tenant_id == tenant_id)
    if guide_ids is not None:
        query = query.where(CommissionDispute.guide_id.in_(sorted(guide_ids)))
    if period is not None:
        query = query.where(CommissionDispute.period == period)
    if status is not None:
        query = query.where(CommissionDispute.status == status)
    return session.scalars(query.order_by(CommissionDispute.created_at, CommissionDispute.id)).all()
