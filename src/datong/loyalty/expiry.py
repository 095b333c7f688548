"""The sweeper: what is left of a lot at its expiry moves to the issuer's breakage account, and holds
past their time are voided. ``datong points expire`` runs it in batches, one transaction each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.ledger import service as ledger
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.models import PointsLot, Program
from datong.loyalty.programs import BREAKAGE, party_account


@dataclass(frozen=True)
class SweepResult:
    lots: int
    points: int
    accounts: int


def expire_points(
    session: Session, *, program: Program, at: datetime | None = None, max_accounts: int = 500
) -> SweepResult:
    """Expire every lot due by ``at`` on up to ``max_accounts`` member accounts (call again until it
    returns zero accounts). Accounts are taken in id order, so two sweepers never lock in opposite orders."""
    at = at or utcnow()
    due = (
        PointsLot.program_id == program.id,
        PointsLot.remaining > 0,
        PointsLot.expires_at.is_not(None),
        PointsLot.expires_at <= at,
    )
    accounts = list(
        session.scalars(
            select(PointsLot.account_id)
            .where(*due)
            .distinct()
            .order_by(PointsLot.account_id)
            .limit(max_accounts)
        )
    )
    lots_done = points = 0
    for account_id in accounts:
        ledger.lock_account(session, account_id)
        operation = lot_ops.operation_id()
        for lot in session.scalars(
            select(PointsLot)
            .where(PointsLot.account_id == account_id, *due)
            .order_by(PointsLot.expires_at, PointsLot.id)
        ):
            amount = lot.remaining
            ledger.create_transfer(
                session,
                tenant_id=program.tenant_id,
                ledger_id=program.ledger_id,
                debit_account_id=account_id,
                credit_account_id=party_account(session, program, BREAKAGE, lot.issuer),
                amount=amount,
                code="expire",
                operation_id=operation,
                actor="system:expiry",
                refs=Refs(
                    order_id=lot.order_id,
                    detail={"expired_at": lot.expires_at.isoformat() if lot.expires_at else None},
                ),
                lot_id=lot.id,
                at=at,
            )
            lot.remaining = 0
            lots_done += 1
            points += amount
    session.flush()
    return SweepResult(lots_done, points, len(accounts))


@dataclass(frozen=True)
class Expiring:
    expires_at: datetime
    points: int


def upcoming_expiries(
    session: Session, *, account_id: str, at: datetime | None = None, limit: int = 12
) -> list[Expiring]:
    """What the member will lose, and when, if they do not spend it: grouped by expiry moment."""
    at = at or utcnow()
    rows = session.execute(
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(
            PointsLot.account_id == account_id,
            PointsLot.remaining > 0,
            PointsLot.expires_at.is_not(None),
            PointsLot.expires_at > at,
        )
        .group_by(PointsLot.expires_at)
        .order_by(PointsLot.expires_at)
        .limit(limit)
    ).all()
    return [Expiring(when, int(total)) for when, total in rows if when is not None]
