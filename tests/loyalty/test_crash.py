"""A crash in the middle of a stream of earn and redeem calls: the API server is killed with SIGKILL
while requests are in flight, restarted on the same database, and every call is sent again with its
key. Every call must then be in the ledger exactly once, every answer the client saw must come back
identical, and nothing may be half-written. On SQLite and on PostgreSQL.

The request's transaction is committed before its answer is sent (``api/deps.py``, the session
dependency's ``scope="function"``). With the commit after the answer, a client could hold a 200 for a
write that a crash then lost, and the same key sent again would run the write a second time; the crash
test met that on many runs (it kills the server just after an answer arrived), and the last test shows
it on every run on PostgreSQL, by making one commit fail.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from datong.core.clock import utcnow
from datong.core.db import Database
from datong.ledger.models import POSTED, Transfer
from datong.ledger.queries import verify_ledger
from datong.loyalty import service
from datong.loyalty.lots import spendable_points
from datong.loyalty.programs import member_account
from datong.loyalty.queries import verify_lots
from datong.orders.models import Order
from datong.tenancy import rules
from datong.tenancy.models import IdempotentRequest
from datong.tenancy.service import create_api_key
from tests.loyalty.crash_helpers import (
    Call,
    Server,
    send_all,
    stream_until_crash,
    tagged_url,
    wait_until_gone,
)
from tests.loyalty.helpers import ACTOR, PointsWorld, make_world, pos_order

CALLS = 200
KILL_AFTER = 40  # confirmed answers before the SIGKILL
THREADS = 4
MEMBERS = 4
SEED_FEN = 100_000  # each member's first sale, so that every small redemption has points to draw on


def _setup(database: Database) -> tuple[PointsWorld, dict[str, str], dict[str, int], set[str]]:
    """The brand, its program, members with a first sale each, and an API key for a POS system.
    Returns the world, the request headers, each member's points from the seed, the seed's transfers."""
    world = make_world(database, members=MEMBERS, code="crash")
    now = utcnow()
    seed: dict[str, int] = {}
    with database.unit_of_work() as s:
        secret, _key = create_api_key(
            s,
            tenant_id=world.tenant_id,
            name="pos-crash",
            scopes=[rules.POINTS_READ, rules.POINTS_WRITE, rules.MEMBERS_READ],
        )
        program = world.program(s)
        for n, member_id in enumerate(world.members):
            order = pos_order(s, world, member_id, f"SEED-{n}", SEED_FEN, at=now)
            seed[member_id] = service.earn_for_order(
                s, program=program, order=order, actor=ACTOR, at=now
            ).points
    with database.reading() as s:
        seed_transfers = set(s.scalars(select(Transfer.id).where(Transfer.tenant_id == world.tenant_id)))
    assert sorted(seed.values()) == [1050] * MEMBERS  # 1000 yuan: 1000 points, and 50 for ≥ 500 yuan
    return world, {"Authorization": f"Bearer {secret}"}, seed, seed_transfers


def _calls(world: PointsWorld) -> list[Call]:
    """Two earns for new orders, then a small redemption, round and round the members."""
    calls = []
    for n in range(CALLS):
        member_id = world.members[n % MEMBERS]
        key = f"crash-{n:04d}"
        if n % 3 == 2:
            body: dict[str, Any] = {
                "member_id": member_id,
                "points": 1 + n % 7,
                "channel": "pos",
                "store_code": "D1",
            }
            calls.append(Call(key, "redeem", member_id, body))
        else:
            paid = 1_000 + 137 * n  # below 500 yuan: no bonus rule applies
            lines = [{"title": "跑鞋", "quantity": 1, "unit_price_fen": paid, "category": "shoes"}]
            order = {
                "channel": "pos",
                "order_no": f"CR-{n:04d}",
                "store_code": "D1",
                "total_fen": paid,
                "paid_fen": paid,
                "lines": lines if n % 2 else [],
            }
            calls.append(Call(key, "earn", member_id, {"member_id": member_id, "order": order}))
    return calls


def _stored_answers(database: Database, tenant_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
    with database.reading() as s:
        rows = s.execute(
            select(IdempotentRequest.key, IdempotentRequest.status_code, IdempotentRequest.response).where(
                IdempotentRequest.tenant_id == tenant_id
            )
        ).all()
    return {key: (status, response) for key, status, response in rows}


def _summary(url: str, headers: dict[str, str], member_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/v1/points/members/{member_id}", headers=headers, timeout=30.0)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_killed_server_loses_no_confirmed_call_and_writes_none_twice(
    database: Database, tmp_path: Path, _master_key: str
) -> None:
    world, headers, seed, seed_transfers = _setup(database)
    calls = _calls(world)
    keys = {c.key for c in calls}

    first = Server(
        database_url=tagged_url(database, "crash-server-1"),
        master_key=_master_key,
        log=tmp_path / "server-1.log",
    )
    try:
        first.wait_ready()
        seen = stream_until_crash(first, headers, calls, kill_after=KILL_AFTER, threads=THREADS)
    finally:
        first.stop()
    wait_until_gone(database, "crash-server-1")
    assert first.proc.returncode == -9  # the SIGKILL reached the server process itself
    assert len(seen.confirmed) >= KILL_AFTER and seen.unsent
    assert set(seen.confirmed) | seen.lost | seen.unsent == keys
    assert len(seen.confirmed) + len(seen.lost) + len(seen.unsent) == CALLS

    # After the crash, before the restart: what was committed is a call that was sent, with its answer;
    # every answer the client saw was committed.
    after_crash = _stored_answers(database, world.tenant_id)
    committed_lost = sorted(set(after_crash) & seen.lost)
    print(  # shown when the test fails
        f"confirmed {len(seen.confirmed)}, lost {len(seen.lost)} (committed: {committed_lost}), "
        f"unsent {len(seen.unsent)}, in flight at the kill {sorted(seen.in_flight_at_kill)}"
    )
    assert set(after_crash) <= set(seen.confirmed) | seen.lost
    assert {status for status, _answer in after_crash.values()} <= {200}
    lost_confirmed = sorted(set(seen.confirmed) - set(after_crash))
    assert lost_confirmed == [], f"confirmed, then lost in the crash: {lost_confirmed}"
    for key, answer in seen.confirmed.items():
        assert after_crash[key] == (200, answer), key

    second = Server(database_url=database.url, master_key=_master_key, log=tmp_path / "server-2.log")
    try:
        second.wait_ready()
        resent = send_all(second.url, headers, calls, threads=THREADS)
        again = send_all(second.url, headers, calls, threads=THREADS)
        summaries = {m: _summary(second.url, headers, m) for m in world.members}
    finally:
        second.stop()

    # Every call answers 200 after the restart: a committed call with its stored answer (the answer
    # the client saw, when it saw one), and the same answers once more.
    assert {key: status for key, (status, _answer) in resent.items()} == dict.fromkeys(keys, 200)
    answers: dict[str, dict[str, Any]] = {key: answer for key, (_status, answer) in resent.items()}
    for key, (_status, stored) in after_crash.items():
        assert answers[key] == stored, key
    for key, answer in seen.confirmed.items():
        assert answers[key] == answer, key
    assert again == resent

    # One stored answer per key, each the one the client has now.
    assert _stored_answers(database, world.tenant_id) == {key: (200, a) for key, a in answers.items()}

    # The balances: the seed, plus every earn's points, less every redemption's.
    expected = dict(seed)
    for call in calls:
        expected[call.member_id] += (1 if call.kind == "earn" else -1) * answers[call.key]["points"]
    _assert_each_call_once_in_the_ledger(database, world, calls, answers, seed, seed_transfers, expected)
    assert {m: (s["balance"], s["held"]) for m, s in summaries.items()} == {
        m: (points, 0) for m, points in expected.items()
    }


def _assert_each_call_once_in_the_ledger(
    database: Database,
    world: PointsWorld,
    calls: list[Call],
    answers: dict[str, dict[str, Any]],
    seed: dict[str, int],
    seed_transfers: set[str],
    expected: dict[str, int],
) -> None:
    earns = [c for c in calls if c.kind == "earn"]
    redeems = [c for c in calls if c.kind == "redeem"]
    with database.reading() as s:
        transfers = list(s.scalars(select(Transfer).where(Transfer.tenant_id == world.tenant_id)))
        orders = dict(
            s.execute(select(Order.order_no, Order.id).where(Order.tenant_id == world.tenant_id)).all()
        )
        order_count = s.scalar(select(func.count()).where(Order.tenant_id == world.tenant_id))
        program = world.program(s)
        at = utcnow()
        balances = {
            m: spendable_points(s, account_id=member_account(s, program, m), at=at) for m in world.members
        }
        # Nothing half-written: every running total and every lot agrees with the transfers.
        assert verify_ledger(s, tenant_id=world.tenant_id) == []
        assert verify_lots(s, program=program) == []

    # Each order recorded once: the seed's and one per earn call.
    assert order_count == len(orders) == MEMBERS + len(earns)
    assert set(orders) == {f"SEED-{n}" for n in range(MEMBERS)} | {c.body["order"]["order_no"] for c in earns}

    # No transfer but the seed's and those the answers name, and none named twice.
    new = [t for t in transfers if t.id not in seed_transfers]
    named = [tid for answer in answers.values() for tid in answer["transfer_ids"]]
    assert len(named) == len(set(named))
    assert sorted(t.id for t in new) == sorted(named)
    assert {t.code for t in new} == {"earn_purchase", "redeem"}
    assert {t.kind for t in new} == {POSTED}

    # Each order earned once: one operation, the transfers and points its answer names.
    by_order: dict[str, list[Transfer]] = defaultdict(list)
    for t in new:
        if t.code == "earn_purchase":
            by_order[t.order_id or ""].append(t)
    assert set(by_order) == {orders[c.body["order"]["order_no"]] for c in earns}
    for call in earns:
        answer = answers[call.key]
        rows = by_order[orders[call.body["order"]["order_no"]]]
        assert answer["order_id"] == orders[call.body["order"]["order_no"]]
        assert answer["earned_now"] is True and answer["points"] > 0
        assert len({t.operation_id for t in rows}) == 1
        assert sorted(t.id for t in rows) == sorted(answer["transfer_ids"])
        assert sum(t.amount for t in rows) == answer["points"]

    # Each redemption once: as many operations as redeem keys, each the points asked for.
    by_operation: dict[str, list[Transfer]] = defaultdict(list)
    for t in new:
        if t.code == "redeem":
            by_operation[t.operation_id].append(t)
    assert len(by_operation) == len(redeems) == len({answers[c.key]["id"] for c in redeems})
    for call in redeems:
        answer = answers[call.key]
        rows = by_operation[answer["id"]]
        assert (answer["status"], answer["points"]) == ("posted", call.body["points"])
        assert sorted(t.id for t in rows) == sorted(answer["transfer_ids"])
        assert sum(t.amount for t in rows) == call.body["points"]

    assert balances == expected
    # And each answer's balance is a step of one serial history per member: the balances before the
    # calls, with the final one, are the balances after them, with the seed.
    for member_id in world.members:
        mine = [(c, answers[c.key]) for c in calls if c.member_id == member_id]
        after = [a["balance"] for _c, a in mine]
        before = [a["balance"] - (1 if c.kind == "earn" else -1) * a["points"] for c, a in mine]
        assert Counter([*before, expected[member_id]]) == Counter([*after, seed[member_id]]), member_id


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_call_whose_commit_fails_is_not_answered_200(
    database: Database, tmp_path: Path, _master_key: str
) -> None:
    """The commit is where a write becomes durable; a crash there is a commit that never happens. A
    deferred trigger (PostgreSQL runs it at COMMIT) makes one key's commit fail: the client must not
    have a 200 for it."""
    world, headers, _seed, transfers = _setup(database)
    call = _calls(world)[0]
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION crash_test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.key = 'commit-fails' THEN RAISE EXCEPTION 'commit of % fails', NEW.key; "
                "END IF; RETURN NULL; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER crash_test_fail_commit AFTER INSERT ON idempotent_request "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION crash_test_fail_commit()"
            )
        )
    server = Server(database_url=database.url, master_key=_master_key, log=tmp_path / "server.log")
    try:
        server.wait_ready()
        answer = httpx.post(
            f"{server.url}{call.path}",
            json=call.body,
            headers=headers | {"Idempotency-Key": "commit-fails"},
            timeout=30.0,
        )
    finally:
        server.stop()
        with database.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS crash_test_fail_commit ON idempotent_request"))
            conn.execute(text("DROP FUNCTION IF EXISTS crash_test_fail_commit()"))
    # Nothing of the call was committed: no stored answer, no order, no transfer beyond the seed's.
    assert _stored_answers(database, world.tenant_id) == {}
    with database.reading() as s:
        assert s.scalar(select(Order.id).where(Order.order_no == call.body["order"]["order_no"])) is None
        assert set(s.scalars(select(Transfer.id).where(Transfer.tenant_id == world.tenant_id))) == transfers
    assert answer.status_code == 500, answer.text
