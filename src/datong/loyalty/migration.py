"""Opening balances: the 积分余额 column of every POS export becomes points in the one ledger.

One ``migrate`` transfer per source card (the source record is its ``external_ref``, and a unique index
makes a second transfer for the same card impossible), credited to whichever member the card belongs
to now. A person with cards at three stores gets three transfers on one account: nothing is lost or
doubled. Each card's points are issued by the owner of the store that opened it.

A brand moves millions of cards at once, so the work goes a batch of cards at a time in a few set-wide
statements (members read together, accounts opened and locked together, transfers, lots and running
totals written together), rather than a dozen round trips per card.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.ids import new_id
from datong.ledger import service as ledger
from datong.ledger.models import POSTED, Account, Transfer
from datong.loyalty import lots as lot_ops
from datong.loyalty.models import PointsLot, Program
from datong.loyalty.programs import ISSUANCE, MEMBER, party_account
from datong.loyalty.rules import HQ, expires_at, owner_party
from datong.members.models import ACTIVE, Member, SourceRecord
from datong.org.models import Store


@dataclass
class MigrationResult:
    cards: int = 0
    points: int = 0
    already: int = 0
    unresolved: int = 0  # cards with a balance whose record has no member yet (run `datong unify`)
    unresolved_points: int = 0


@dataclass(frozen=True)
class _Card:
    record_id: str
    member_id: str
    points: int
    issuer: str
    store_code: str | None


def migrate_balances(
    session: Session, *, program: Program, actor: str, at: datetime | None = None, batch: int = 2000
) -> MigrationResult:
    at = at or utcnow()
    result = MigrationResult()
    stores = {
        s.code: owner_party(store_id=s.id, store_kind=s.kind, agent_id=s.agent_id)
        for s in session.scalars(select(Store).where(Store.tenant_id == program.tenant_id))
    }
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
        with_balance = [
            (record_id, member_id, person)
            for record_id, member_id, person in records
            if isinstance(person, dict) and isinstance(person.get("points_balance"), int)
            if person["points_balance"] > 0
        ]
        if not with_balance:
            continue
        done = set(
            session.scalars(
                select(Transfer.external_ref).where(
                    Transfer.tenant_id == program.tenant_id,
                    Transfer.ledger_id == program.ledger_id,
                    Transfer.code == "migrate",
                    Transfer.external_ref.in_([r[0] for r in with_balance]),
                )
            )
        )
        member_ids = sorted({m for _r, m, _p in with_balance if m})
        active = set(
            session.scalars(select(Member.id).where(Member.id.in_(member_ids), Member.status == ACTIVE))
        )
        cards: list[_Card] = []
        for record_id, member_id, person in with_balance:
            points = int(person["points_balance"])
            if record_id in done:
                result.already += 1
            elif member_id not in active:
                result.unresolved += 1
                result.unresolved_points += points
            else:
                code = person.get("store_code")
                cards.append(_Card(record_id, member_id, points, stores.get(code or "", HQ), code))
        if cards:
            _credit(session, program, cards, actor, at)
            result.cards += len(cards)
            result.points += sum(card.points for card in cards)
    return result


def _credit(session: Session, program: Program, cards: list[_Card], actor: str, at: datetime) -> None:
    accounts = ledger.ensure_accounts_locked(
        session,
        tenant_id=program.tenant_id,
        ledger_id=program.ledger_id,
        kind=MEMBER,
        holders=sorted({card.member_id for card in cards}),
        debits_must_not_exceed_credits=True,
    )
    issuance = {
        issuer: party_account(session, program, ISSUANCE, issuer) for issuer in {c.issuer for c in cards}
    }
    expiry = expires_at(at, policy=program.expiry_policy, months=program.expiry_months)
    transfers: list[dict[str, Any]] = []
    lots: list[dict[str, Any]] = []
    credited: dict[str, int] = defaultdict(int)
    for card in cards:
        transfer_id, account_id = new_id("trf"), accounts[card.member_id]
        common = {"id": transfer_id, "tenant_id": program.tenant_id, "code": "migrate"}
        transfers.append(
            {
                **common,
                "ledger_id": program.ledger_id,
                "debit_account_id": issuance[card.issuer],
                "credit_account_id": account_id,
                "amount": card.points,
                "kind": POSTED,
                "operation_id": lot_ops.operation_id(),
                "external_ref": card.record_id,
                "detail": {"store_code": card.store_code},
                "actor": actor,
                "created_at": at,
            }
        )
        lots.append(
            {
                **common,
                "program_id": program.id,
                "account_id": account_id,
                "member_id": card.member_id,
                "issuer": card.issuer,
                "points": card.points,
                "remaining": card.points,
                "earned_at": at,
                "expires_at": expiry,
                "detail": {},
            }
        )
        credited[account_id] += card.points
    session.execute(_table(Transfer).insert(), transfers)
    session.execute(_table(PointsLot).insert(), lots)
    # A credit never breaks a member account's limit (its debits may not exceed its credits), so the
    # running totals move without the limit's WHERE: one statement for the whole batch.
    table = _table(Account)
    session.execute(
        table.update()
        .where(table.c.id == bindparam("account"))
        .values(credits_posted=table.c.credits_posted + bindparam("points")),
        [{"account": account, "points": points} for account, points in credited.items()],
    )


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table
