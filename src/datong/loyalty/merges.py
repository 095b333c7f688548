"""Points follow the person. When two members are merged, every lot of the absorbed member that still
holds points moves to the survivor (one ``merge`` transfer per lot, keeping its issuer, its expiry and
its order), so the person has one balance. Undoing the merge moves back what is left of those lots
(``unmerge``); what the survivor spent in between stays spent.

A moved lot remembers where it went (``detail.moved_to``), so a refund of an order whose points were
spent before the merge gives them back to the lot as it is now.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.ledger import service as ledger
from datong.ledger.models import Transfer
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.models import PointsLot, Program
from datong.loyalty.programs import member_account, member_account_id
from datong.loyalty.redemptions import void_open_holds


def move_points_on_merge(
    session: Session,
    *,
    tenant_id: str,
    survivor_id: str,
    absorbed_id: str,
    merge_id: str,
    actor: str,
    at: datetime | None = None,
) -> int:
    """Move the absorbed member's points to the survivor, in every program. Returns the points moved."""
    at = at or utcnow()
    moved = 0
    for program in session.scalars(select(Program).where(Program.tenant_id == tenant_id)):
        source = member_account_id(session, program, absorbed_id)
        if source is None:
            continue
        target = member_account(session, program, survivor_id)
        for account_id in sorted((source, target)):  # one order, so two merges never deadlock
            ledger.lock_account(session, account_id)
        # A hold of the absorbed member goes back to its lots before they move (the till that made it
        # gets a 409 when it confirms).
        void_open_holds(session, program=program, account_id=source, actor=actor, at=at)
        session.flush()
        lots = session.scalars(
            select(PointsLot)
            .where(PointsLot.account_id == source, PointsLot.remaining > 0)
            .order_by(PointsLot.id)
        )
        moved += _move_lots(session, program, list(lots), target, survivor_id, "merge", merge_id, actor, at)
    session.flush()
    return moved


def move_points_back_on_unmerge(
    session: Session,
    *,
    tenant_id: str,
    merge_id: str,
    absorbed_id: str,
    actor: str,
    at: datetime | None = None,
) -> int:
    """Move back to the restored member what is left of the lots the merge moved. Returns the points."""
    at = at or utcnow()
    moved = 0
    for program in session.scalars(select(Program).where(Program.tenant_id == tenant_id)):
        arrived = list(
            session.scalars(
                select(Transfer.id).where(
                    Transfer.tenant_id == tenant_id,
                    Transfer.ledger_id == program.ledger_id,
                    Transfer.code == "merge",
                    Transfer.external_ref == merge_id,
                )
            )
        )
        if not arrived:
            continue
        target = member_account(session, program, absorbed_id)
        lots = [lot for lot in (session.get(PointsLot, lot_id) for lot_id in arrived) if lot is not None]
        for account_id in sorted({target, *(lot.account_id for lot in lots)}):
            ledger.lock_account(session, account_id)
        session.expire_all()  # read the lots again now that their accounts are held
        lots = [
            lot for lot in (session.get(PointsLot, lot_id) for lot_id in arrived) if lot and lot.remaining > 0
        ]
        moved += _move_lots(session, program, lots, target, absorbed_id, "unmerge", merge_id, actor, at)
    session.flush()
    return moved


def _move_lots(
    session: Session,
    program: Program,
    lots: list[PointsLot],
    target_account: str,
    target_member: str,
    code: str,
    merge_id: str,
    actor: str,
    at: datetime,
) -> int:
    operation = lot_ops.operation_id()
    total = 0
    for lot in lots:
        amount = lot.remaining
        transfer = ledger.create_transfer(
            session,
            tenant_id=program.tenant_id,
            ledger_id=program.ledger_id,
            debit_account_id=lot.account_id,
            credit_account_id=target_account,
            amount=amount,
            code=code,
            operation_id=operation,
            actor=actor,
            refs=Refs(order_id=lot.order_id, external_ref=merge_id),
            lot_id=lot.id,
            at=at,
        )
        lot.remaining = 0
        lot.detail = {**lot.detail, "moved_to": transfer.id}
        session.add(
            PointsLot(
                id=transfer.id,
                tenant_id=program.tenant_id,
                program_id=program.id,
                account_id=target_account,
                member_id=target_member,
                issuer=lot.issuer,
                code=code,
                points=amount,
                remaining=amount,
                earned_at=lot.earned_at,
                expires_at=lot.expires_at,
                order_id=lot.order_id,
                detail={"from_lot": lot.id, "merge_id": merge_id},
            )
        )
        total += amount
    return total


def current_lot(session: Session, lot_id: str, account_id: str) -> PointsLot | None:
    """The lot as it is now on ``account_id``: the lot itself, or where merges moved its points."""
    lot = session.get(PointsLot, lot_id)
    for _ in range(100):  # a chain of merges is short; the bound only guards against a cycle
        if lot is None or lot.account_id == account_id:
            return lot
        moved_to = lot.detail.get("moved_to") if lot.detail else None
        lot = session.get(PointsLot, moved_to) if moved_to else None
    return None
