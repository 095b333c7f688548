"""Expiry lots: every credit to a member opens a lot; every debit draws on lots, soonest-expiring first.

Callers hold the member account's lock (``ledger.lock_account``) for the whole operation, so two
spends of one member never read the same lots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from datong.core.ids import new_id
from datong.ledger import service as ledger
from datong.ledger.models import Transfer
from datong.ledger.service import LimitExceeded, Refs
from datong.loyalty.models import PointsLot, Program
from datong.loyalty.programs import party_account
from datong.loyalty.rules import expires_at


def credit_lot(
    session: Session,
    *,
    program: Program,
    account_id: str,
    member_id: str,
    issuer: str,
    from_kind: str,
    points: int,
    code: str,
    operation_id: str,
    actor: str,
    refs: Refs,
    at: datetime,
) -> Transfer:
    """Credit the member from ``issuer``'s ``from_kind`` account and open a lot for the points."""
    transfer = ledger.create_transfer(
        session,
        tenant_id=program.tenant_id,
        ledger_id=program.ledger_id,
        debit_account_id=party_account(session, program, from_kind, issuer),
        credit_account_id=account_id,
        amount=points,
        code=code,
        operation_id=operation_id,
        actor=actor,
        refs=refs,
        at=at,
    )
    session.add(
        PointsLot(
            id=transfer.id,
            tenant_id=program.tenant_id,
            program_id=program.id,
            account_id=account_id,
            member_id=member_id,
            issuer=issuer,
            code=code,
            points=points,
            remaining=points,
            earned_at=at,
            expires_at=expires_at(at, policy=program.expiry_policy, months=program.expiry_months),
            order_id=refs.order_id,
        )
    )
    return transfer


def spendable_lots(
    session: Session, *, account_id: str, at: datetime, prefer_order_id: str | None = None
) -> list[PointsLot]:
    """Lots with points left that have not expired, in the order they are spent: the given order's own
    lots first (a clawback takes back what that order earned), then soonest expiry, never-expiring last."""
    order: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = []
    if prefer_order_id:
        order.append(case((PointsLot.order_id == prefer_order_id, 0), else_=1))
    order += [PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.earned_at, PointsLot.id]
    return list(
        session.scalars(
            select(PointsLot)
            .where(
                PointsLot.account_id == account_id,
                PointsLot.remaining > 0,
                (PointsLot.expires_at.is_(None)) | (PointsLot.expires_at > at),
            )
            .order_by(*order)
        )
    )


def spendable_points(session: Session, *, account_id: str, at: datetime) -> int:
    return sum(lot.remaining for lot in spendable_lots(session, account_id=account_id, at=at))


@dataclass(frozen=True)
class Draw:
    lot: PointsLot
    points: int


def plan_draw(lots: Sequence[PointsLot], points: int) -> list[Draw]:
    """Take ``points`` from the lots in order; refuse when they hold too few."""
    plan: list[Draw] = []
    left = points
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        plan.append(Draw(lot, take))
        left -= take
    if left:
        raise LimitExceeded(
            f"not enough points: {points - left} can be spent, {points} asked",
            field="points",
            available=points - left,
        )
    return plan


def debit_lots(
    session: Session,
    *,
    program: Program,
    account_id: str,
    plan: Sequence[Draw],
    to_account: Callable[[PointsLot], str],
    code: str,
    operation_id: str,
    actor: str,
    refs: Refs,
    at: datetime,
    pending: bool = False,
) -> list[Transfer]:
    """One transfer per lot drawn on, so every spent point keeps the name of its issuer."""
    timeout_at = at + timedelta(seconds=program.hold_seconds) if pending else None
    transfers = []
    for draw in plan:
        transfers.append(
            ledger.create_transfer(
                session,
                tenant_id=program.tenant_id,
                ledger_id=program.ledger_id,
                debit_account_id=account_id,
                credit_account_id=to_account(draw.lot),
                amount=draw.points,
                code=code,
                operation_id=operation_id,
                actor=actor,
                refs=refs,
                lot_id=draw.lot.id,
                pending=pending,
                timeout_at=timeout_at,
                at=at,
            )
        )
        draw.lot.remaining -= draw.points
    return transfers


def restore_lot(session: Session, lot_id: str, points: int) -> None:
    lot = session.get(PointsLot, lot_id)
    assert lot is not None, lot_id
    lot.remaining += points


def operation_id() -> str:
    return new_id("op")
