"""Reads for members and auditors: a member's points (balance, holds, what expires when, tier), their
history, and the check that every lot's remaining points agree with the transfers that name it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.ledger.models import PENDING, POST_PENDING, POSTED, VOID_PENDING, Transfer
from datong.ledger.queries import history, open_pending
from datong.loyalty.expiry import upcoming_expiries
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import PointsLot, Program
from datong.loyalty.programs import member_account_id
from datong.loyalty.tiers import current_tier, qualifying_value, tier_history


def points_summary(
    session: Session, *, program: Program, member_id: str, at: datetime | None = None
) -> dict[str, Any]:
    at = at or utcnow()
    account_id = member_account_id(session, program, member_id)
    tier = current_tier(session, program=program, member_id=member_id)
    summary: dict[str, Any] = {
        "member_id": member_id,
        "program": program.code,
        "balance": 0,
        "value_fen": 0,
        "held": 0,
        "expiring": [],
        "tier": tier.tier_code if tier else None,
        "tier_since": tier.since.isoformat() if tier else None,
        "qualifying_value": 0,
        "tier_basis": program.tier_basis,
    }
    if account_id is None:
        return summary
    balance = spendable_points(session, account_id=account_id, at=at)
    held = session.scalar(
        open_pending(tenant_id=program.tenant_id)
        .where(Transfer.debit_account_id == account_id)
        .with_only_columns(func.coalesce(func.sum(Transfer.amount), 0))
    )
    summary.update(
        balance=balance,
        value_fen=balance * program.fen_per_point,
        held=int(held or 0),
        expiring=[
            {"expires_at": e.expires_at.isoformat(), "points": e.points}
            for e in upcoming_expiries(session, account_id=account_id, at=at)
        ],
        qualifying_value=qualifying_value(session, program=program, member_id=member_id, at=at),
    )
    return summary


def points_history(
    session: Session, *, program: Program, member_id: str, limit: int = 50, before: datetime | None = None
) -> list[dict[str, Any]]:
    """The member's movements, newest first, signed from the member's side (+ in, - out)."""
    account_id = member_account_id(session, program, member_id)
    if account_id is None:
        return []
    out = []
    for t in history(session, account_id=account_id, limit=limit, before=before):
        sign = 1 if t.credit_account_id == account_id else -1
        out.append(
            {
                "transfer_id": t.id,
                "at": t.created_at.isoformat(),
                "code": t.code,
                "kind": t.kind,
                "points": sign * t.amount,
                "operation_id": t.operation_id,
                "order_id": t.order_id,
                "store_id": t.store_id,
                "lot_id": t.lot_id,
                "reason": t.reason,
            }
        )
    return out


def tier_changes(session: Session, *, program: Program, member_id: str) -> list[dict[str, Any]]:
    return [
        {
            "at": c.at.isoformat(),
            "from": c.from_code,
            "to": c.to_code,
            "reason": c.reason,
            "qualifying_value": c.qualifying_value,
        }
        for c in tier_history(session, program=program, member_id=member_id)
    ]


def verify_lots(session: Session, *, program: Program) -> list[str]:
    """Lots whose ``remaining`` disagrees with the transfers naming them; an empty list means all agree.
    A lot's remaining is its points, less what was drawn on it (posted, or still pending), plus what
    voids and give-backs returned to it."""
    drawn: dict[str | None, int] = {}
    for lot_id, kind, code, total in session.execute(  # lot_id is never NULL here (see WHERE)
        select(Transfer.lot_id, Transfer.kind, Transfer.code, func.sum(Transfer.amount))
        .where(
            Transfer.tenant_id == program.tenant_id,
            Transfer.ledger_id == program.ledger_id,
            Transfer.lot_id.is_not(None),
        )
        .group_by(Transfer.lot_id, Transfer.kind, Transfer.code)
    ):
        if code == "give_back" or kind == VOID_PENDING:
            drawn[lot_id] = drawn.get(lot_id, 0) - int(total)
        elif kind in (POSTED, PENDING):  # a post_pending moves what its pending already drew
            drawn[lot_id] = drawn.get(lot_id, 0) + int(total)
        else:
            assert kind == POST_PENDING
    wrong = []
    for lot in session.scalars(select(PointsLot).where(PointsLot.program_id == program.id)):
        if lot.remaining != lot.points - drawn.get(lot.id, 0) or lot.remaining < 0:
            wrong.append(lot.id)
    return wrong
