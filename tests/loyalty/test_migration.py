"""Opening balances from POS exports: one migrate transfer per card, one balance per person."""

from __future__ import annotations

from sqlalchemy import func, select

from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.ledger.models import Account, Transfer
from datong.loyalty.lots import spendable_points
from datong.loyalty.migration import migrate_balances
from datong.loyalty.programs import member_account
from tests.loyalty.helpers import ACTOR, T0, assert_consistent, make_world
from tests.members.helpers import card, ingest, member_of


def _card(row: int, source: str, number: str, points: int | None, store: str, phone: str | None = None):  # type: ignore[no-untyped-def]
    record = card(row, source, number, name="王芳", phone=phone)
    record.person.points_balance = points
    record.person.store_code = store
    return record


def test_cards_at_three_stores_become_one_balance_migrated_once(database: Database, keyring: Keyring) -> None:
    world = make_world(database, members=0)
    # One person, three cards (two stores of HQ, one of the agent), joined by her phone.
    ingest(
        database,
        keyring,
        world.tenant_id,
        "members",
        "pos-d1",
        [_card(1, "pos-d1", "D-1", 120, "D1", "13800138000")],
    )
    ingest(
        database,
        keyring,
        world.tenant_id,
        "members",
        "pos-f1",
        [_card(1, "pos-f1", "F-1", 300, "F1", "13800138000")],
    )
    ingest(
        database,
        keyring,
        world.tenant_id,
        "members",
        "pos-d1b",
        [_card(1, "pos-d1b", "D-2", 80, "D1", "13800138000"), _card(2, "pos-d1b", "D-3", 0, "D1")],
    )
    (person,) = member_of(database, keyring, world.tenant_id, "phone", "13800138000")
    with database.unit_of_work() as s:
        first = migrate_balances(s, program=world.program(s), actor=ACTOR, at=T0)
    assert (first.cards, first.points, first.already, first.unresolved) == (3, 500, 0, 0)
    with database.unit_of_work() as s:
        again = migrate_balances(s, program=world.program(s), actor=ACTOR, at=T0)
    assert (again.cards, again.points, again.already) == (0, 0, 3)
    with database.reading() as s:
        program = world.program(s)
        assert spendable_points(s, account_id=member_account(s, program, person), at=T0) == 500
        issued = dict(
            s.execute(
                select(Account.holder, func.sum(Transfer.amount))
                .join(Account, Account.id == Transfer.debit_account_id)
                .where(Transfer.tenant_id == world.tenant_id, Transfer.code == "migrate")
                .group_by(Account.holder)
            ).all()
        )
    assert issued == {"hq": 200, world.party("F1"): 300}
    assert_consistent(database, world)
