"""Opening balances: the 积分余额 column of every POS export becomes points in the one ledger.

One ``migrate`` transfer per source card (the source record is its ``external_ref``, and a unique index
makes a second transfer for the same card impossible), credited to whichever member the card belongs
to now. A person with cards at three stores gets three transfers on one account: nothing is lost or
doubled. Each card's points are issued by the owner of the store that opened it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.ledger.models import Transfer
from datong.ledger.service import Refs
from datong.loyalty import lots as lot_ops
from datong.loyalty.models import Program
from datong.loyalty.programs import ISSUANCE, member_account
from datong.loyalty.rules import owner_party
from datong.members.models import ACTIVE, Member, SourceRecord
from datong.org.models import Store


@dataclass
class MigrationResult:
    cards: int = 0
    points: int = 0
    already: int = 0
    unresolved: int = 0  # cards with a balance whose record has no member yet (run `datong unify`)
    unresolved_points: int = 0


def migrate_balances(
    session: Session, *, program: Program, actor: str, at: datetime | None = None, batch: int = 2000
) -> MigrationResult:
    at = at or utcnow()
    result = MigrationResult()
    stores = {
        s.code: owner_party(store_id=s.id, store_kind=s.kind, agent_id=s.agent_id)
        for s in session.scalars(select(Store).where(Store.tenant_id == program.tenant_id))
    }
    done = set(
        session.scalars(
            select(Transfer.external_ref).where(
                Transfer.tenant_id == program.tenant_id,
                Transfer.ledger_id == program.ledger_id,
                Transfer.code == "migrate",
            )
        )
    )
    last_id = ""
    while True:
        records = session.execute(
            select(SourceRecord.id, SourceRecord.member_id, SourceRecord.person)
            .where(
                SourceRecord.tenant_id == program.tenant_id,
                SourceRecord.status == "ok",
                SourceRecord.id > last_id,
            )
            .order_by(SourceRecord.id)
            .limit(batch)
        ).all()
        if not records:
            break
        last_id = records[-1][0]
        for record_id, member_id, person in records:
            points = person.get("points_balance") if isinstance(person, dict) else None
            if not isinstance(points, int) or points <= 0:
                continue
            if record_id in done:
                result.already += 1
                continue
            member = session.get(Member, member_id) if member_id else None
            if member is None or member.status != ACTIVE:
                result.unresolved += 1
                result.unresolved_points += points
                continue
            account_id = member_account(session, program, member.id, lock=True)
            lot_ops.credit_lot(
                session,
                program=program,
                account_id=account_id,
                member_id=member.id,
                issuer=stores.get(person.get("store_code") or "", "hq"),
                from_kind=ISSUANCE,
                points=points,
                code="migrate",
                operation_id=lot_ops.operation_id(),
                actor=actor,
                refs=Refs(external_ref=record_id, detail={"store_code": person.get("store_code")}),
                at=at,
            )
            result.cards += 1
            result.points += points
        session.flush()
    return result
