"""Points under concurrency, on SQLite and PostgreSQL: many spends of one balance, one Idempotency-Key sent
by many callers at once through the real API (and a second request while the first is still running),
many confirms of one hold, confirms racing voids, many earnings of one order, and two sends of one new
sale at once.

Every thread has its own session and transaction, and all are released together by a barrier. The
assertions are about outcomes only (who won, what the ledger holds), never about how long anything took.
Where a test needs one transaction to be waiting for another's lock, it holds that lock itself and polls
PostgreSQL until the other is seen waiting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from datong.api.app import create_app
from datong.core.clock import utcnow
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict
from datong.ledger.models import PENDING, POST_PENDING, Account, Transfer
from datong.ledger.service import LimitExceeded
from datong.loyalty import redemptions, service
from datong.loyalty.lots import spendable_points
from datong.loyalty.programs import member_account_id
from datong.orders.models import Order
from datong.orders.service import get_order
from datong.tenancy import rules
from datong.tenancy.models import IdempotentRequest
from datong.tenancy.service import create_api_key
from tests.loyalty.helpers import ACTOR, T0, PointsWorld, assert_consistent, make_world, pos_order

# A safety net so that a deadlock fails the test instead of hanging the run; nothing is measured.
THREAD_JOIN_LIMIT_S = 300

STILL_RUNNING = {
    "code": "conflict",
    "message": "a request with this Idempotency-Key is still running; retry with the same key",
    "field": "Idempotency-Key",
}
OTHER_BODY = {
    "code": "conflict",
    "message": "this Idempotency-Key was used with a different body",
    "field": "Idempotency-Key",
}


def _together(count: int, work: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Runs ``work(i)`` in ``count`` threads released at once; per thread, in order, ``("ok", result)``
    or ``("error", exception)``."""
    barrier = threading.Barrier(count)
    outcomes: list[tuple[str, Any]] = [("missing", None)] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = ("ok", work(index))
        except Exception as exc:
            outcomes[index] = ("error", exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_JOIN_LIMIT_S)
    assert [thread.is_alive() for thread in threads] == [False] * count
    return outcomes


def _earn(db: Database, world: PointsWorld, order_no: str, paid_fen: int, *, at: datetime, store: str) -> int:
    with db.unit_of_work() as s:
        order = pos_order(s, world, world.members[0], order_no, paid_fen, store=store, at=at)
        return service.earn_for_order(s, program=world.program(s), order=order, actor=ACTOR, at=at).points


def _balance(db: Database, world: PointsWorld, at: datetime) -> int:
    with db.reading() as s:
        account_id = member_account_id(s, world.program(s), world.members[0])
        assert account_id is not None
        return spendable_points(s, account_id=account_id, at=at)


def _transfers(db: Database, world: PointsWorld, code: str) -> list[tuple[str, str, int, str | None]]:
    """(operation, kind, amount, pending id) of the brand's transfers with ``code``."""
    with db.reading() as s:
        rows = s.execute(
            select(Transfer.operation_id, Transfer.kind, Transfer.amount, Transfer.pending_id)
            .where(Transfer.tenant_id == world.tenant_id, Transfer.code == code)
            .order_by(Transfer.kind, Transfer.amount)
        ).all()
    return [(op, kind, amount, pending_id) for op, kind, amount, pending_id in rows]


def _member_totals(db: Database, world: PointsWorld) -> tuple[int, int, int, int]:
    with db.reading() as s:
        account = s.get(Account, member_account_id(s, world.program(s), world.members[0]))
        assert account is not None
        return (
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        )


# --- many spends of one balance ------------------------------------------------------------------


def test_sixteen_spends_of_one_balance_exactly_one_succeeds(database: Database) -> None:
    world = make_world(database, members=1)
    assert _earn(database, world, "P1", 10000, at=T0, store="D1") == 100

    def redeem(_index: int) -> redemptions.Redemption:
        with database.unit_of_work() as s:
            return redemptions.redeem_points(
                s,
                program=world.program(s),
                member_id=world.members[0],
                points=60,
                channel="pos",
                store_id=world.stores["D1"],
                actor=ACTOR,
                at=T0,
            )

    outcomes = _together(16, redeem)
    won = [value for kind, value in outcomes if kind == "ok"]
    lost = [value for kind, value in outcomes if kind == "error"]
    assert len(won) == 1
    assert (won[0].status, won[0].points, won[0].value_fen, won[0].issuers, won[0].balance) == (
        "posted",
        60,
        60,
        {"hq": 60},
        40,
    )
    # Every other spend saw the winner's result: 40 points left, fewer than it asked.
    assert [type(exc) for exc in lost] == [LimitExceeded] * 15
    assert [exc.detail for exc in lost] == [{"available": 40}] * 15
    assert _balance(database, world, T0) == 40
    assert _transfers(database, world, "redeem") == [(won[0].id, "posted", 60, None)]
    assert _member_totals(database, world) == (0, 60, 0, 100)
    assert_consistent(database, world)


# --- one Idempotency-Key, many callers, through the API --------------------------------------------


@pytest.fixture
def api(database: Database) -> Iterator[tuple[PointsWorld, TestClient, dict[str, str]]]:
    """A brand whose member holds 100 points (earned now, so they have not expired), the real app over
    the test database, and the headers of a brand-wide API key with points:read, points:write and
    members:read."""
    world = make_world(database, members=1)
    assert _earn(database, world, "P1", 10000, at=utcnow(), store="D1") == 100
    with database.unit_of_work() as s:
        secret, _key = create_api_key(
            s,
            tenant_id=world.tenant_id,
            name="pos",
            scopes=[rules.POINTS_READ, rules.POINTS_WRITE, rules.MEMBERS_READ],
        )
    runtime = Runtime(
        settings=Settings(database_url=database.url), db=database, keyring=Keyring(master=os.urandom(32))
    )
    with TestClient(create_app(runtime, check_schema=False)) as client:
        yield world, client, {"Authorization": f"Bearer {secret}"}


def _stored_answers(db: Database, world: PointsWorld, key: str) -> list[tuple[int, dict[str, Any]]]:
    with db.reading() as s:
        rows = s.execute(
            select(IdempotentRequest.status_code, IdempotentRequest.response).where(
                IdempotentRequest.tenant_id == world.tenant_id, IdempotentRequest.key == key
            )
        ).all()
    return [(status, response) for status, response in rows]


def test_thirty_two_callers_with_one_idempotency_key_redeem_once(
    database: Database, api: tuple[PointsWorld, TestClient, dict[str, str]]
) -> None:
    world, client, auth = api
    body = {"member_id": world.members[0], "points": 30, "channel": "pos", "store_code": "D1"}
    headers = {**auth, "Idempotency-Key": "pos-7-sale-1-redeem"}

    def send(_index: int) -> tuple[int, Any]:
        answer = client.post("/api/v1/points/redeem", json=body, headers=headers)
        return answer.status_code, answer.json()

    outcomes = _together(32, send)
    assert [kind for kind, _value in outcomes] == ["ok"] * 32
    answers = [value for _kind, value in outcomes]
    done = [answer for status, answer in answers if status == 200]
    # 409 only for a caller that gave up waiting for the first one (PostgreSQL's in-flight wait).
    busy = [answer for status, answer in answers if status == 409]
    assert len(done) + len(busy) == 32
    assert len(done) >= 1
    assert busy == [STILL_RUNNING] * len(busy)
    assert done == [done[0]] * len(done)  # every 200 is the same answer

    redeemed = _transfers(database, world, "redeem")
    assert [(op, kind, amount) for op, kind, amount, _pending in redeemed] == [(done[0]["id"], "posted", 30)]
    with database.reading() as s:
        transfer_id = s.scalar(
            select(Transfer.id).where(Transfer.tenant_id == world.tenant_id, Transfer.code == "redeem")
        )
    assert done[0] == {
        "id": redeemed[0][0],
        "status": "posted",
        "points": 30,
        "value_fen": 30,
        "hold_expires_at": None,
        "transfer_ids": [transfer_id],
        "issuers": {"hq": 30},
        "balance": 70,
    }
    assert _stored_answers(database, world, "pos-7-sale-1-redeem") == [(200, done[0])]
    assert _balance(database, world, utcnow()) == 70
    assert _member_totals(database, world) == (0, 30, 0, 100)
    assert_consistent(database, world)


def test_one_idempotency_key_with_another_body_is_refused_and_changes_nothing(
    database: Database, api: tuple[PointsWorld, TestClient, dict[str, str]]
) -> None:
    world, client, auth = api
    body = {"member_id": world.members[0], "points": 30, "channel": "pos", "store_code": "D1"}
    headers = {**auth, "Idempotency-Key": "pos-7-sale-2-redeem"}
    first = client.post("/api/v1/points/redeem", json=body, headers=headers)
    assert (first.status_code, first.json()["points"], first.json()["balance"]) == (200, 30, 70)
    before = (
        _transfers(database, world, "redeem"),
        _member_totals(database, world),
        _stored_answers(database, world, "pos-7-sale-2-redeem"),
    )

    other = client.post("/api/v1/points/redeem", json={**body, "points": 31}, headers=headers)
    assert (other.status_code, other.json()) == (409, OTHER_BODY)
    after = (
        _transfers(database, world, "redeem"),
        _member_totals(database, world),
        _stored_answers(database, world, "pos-7-sale-2-redeem"),
    )
    assert after == before
    assert _balance(database, world, utcnow()) == 70

    again = client.post("/api/v1/points/redeem", json=body, headers=headers)
    assert (again.status_code, again.json()) == (200, first.json())
    assert _transfers(database, world, "redeem") == before[0]
    assert_consistent(database, world)


def _wait_until_one_waits_for_a_lock(db: Database) -> None:
    """Returns once a PostgreSQL session of this test database waits for a lock (polled: the outcome,
    not the time, is what matters)."""
    for _attempt in range(30_000):
        with db.reading() as s:
            waiting = s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("no session ever waited for the lock")


def test_a_second_request_while_the_first_is_still_running_answers_409_and_changes_nothing(
    database: Database, api: tuple[PointsWorld, TestClient, dict[str, str]]
) -> None:
    """The first request with a key is held up inside its transaction (another transaction holds the
    member's account); the second with the same key gives up waiting for it and answers 409. Once the
    first finishes, the key answers the first request's 200."""
    if database.engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one writer at a time: a request never finds another one in flight")
    world, client, auth = api
    body = {"member_id": world.members[0], "points": 30, "channel": "pos", "store_code": "D1"}
    headers = {**auth, "Idempotency-Key": "pos-7-sale-3-redeem"}
    first: list[tuple[int, Any]] = []

    def send_first() -> None:
        answer = client.post("/api/v1/points/redeem", json=body, headers=headers)
        first.append((answer.status_code, answer.json()))

    with database.unit_of_work() as blocker:
        with database.reading() as s:
            account_id = member_account_id(s, world.program(s), world.members[0])
        blocker.execute(select(Account.id).where(Account.id == account_id).with_for_update())
        thread = threading.Thread(target=send_first)
        thread.start()
        _wait_until_one_waits_for_a_lock(database)  # the first holds the key, waits for the account
        second = client.post("/api/v1/points/redeem", json=body, headers=headers)
        assert (second.status_code, second.json()) == (409, STILL_RUNNING)
        assert _transfers(database, world, "redeem") == []
        assert _stored_answers(database, world, "pos-7-sale-3-redeem") == []
    thread.join(THREAD_JOIN_LIMIT_S)
    assert not thread.is_alive()
    assert [(status, answer["points"], answer["balance"]) for status, answer in first] == [(200, 30, 70)]
    third = client.post("/api/v1/points/redeem", json=body, headers=headers)
    assert (third.status_code, third.json()) == first[0]
    assert [(op, amount) for op, _kind, amount, _pending in _transfers(database, world, "redeem")] == [
        (first[0][1]["id"], 30)
    ]
    assert _stored_answers(database, world, "pos-7-sale-3-redeem") == [first[0]]
    assert_consistent(database, world)


# --- many confirms of one hold ---------------------------------------------------------------------


def _hold_on_two_lots(database: Database, world: PointsWorld) -> tuple[redemptions.Redemption, datetime]:
    """A hold of 150 points drawn on two lots: 100 issued by HQ (D1) and 50 of 200 issued by the agent
    (F1); so the hold is two pending transfers."""
    assert _earn(database, world, "P1", 10000, at=T0, store="D1") == 100
    assert _earn(database, world, "P2", 20000, at=T0 + timedelta(days=1), store="F1") == 200
    at = T0 + timedelta(days=1, hours=1)
    with database.unit_of_work() as s:
        held = redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=150,
            channel="pos",
            store_id=world.stores["D1"],
            hold=True,
            actor=ACTOR,
            at=at,
        )
    assert (held.status, held.points, len(held.transfer_ids), held.balance) == ("held", 150, 2, 150)
    assert held.issuers == {"hq": 100, world.party("F1"): 50}
    return held, at


def _resolve(database: Database, world: PointsWorld, hold_id: str, *, post: bool, at: datetime) -> Any:
    with database.unit_of_work() as s:
        return redemptions.resolve_hold(
            s, program=world.program(s), hold_id=hold_id, post=post, actor=ACTOR, at=at
        )


def test_eight_confirms_of_one_hold_post_it_once(database: Database) -> None:
    world = make_world(database, members=1)
    held, at = _hold_on_two_lots(database, world)
    confirm_at = at + timedelta(seconds=60)

    outcomes = _together(8, lambda _index: _resolve(database, world, held.id, post=True, at=confirm_at))
    assert [kind for kind, _value in outcomes] == ["ok"] * 8
    answers = [value for _kind, value in outcomes]
    assert [(a.id, a.status, a.points, a.transfer_ids, a.issuers, a.balance) for a in answers] == [
        (held.id, "posted", 150, held.transfer_ids, held.issuers, 150)
    ] * 8
    transfers = _transfers(database, world, "redeem")
    assert [(op, kind, amount) for op, kind, amount, _pending in transfers] == [
        (held.id, PENDING, 50),
        (held.id, PENDING, 100),
        (held.id, POST_PENDING, 50),
        (held.id, POST_PENDING, 100),
    ]
    posted_for = sorted(str(pending) for _op, kind, _amount, pending in transfers if kind == POST_PENDING)
    assert posted_for == sorted(held.transfer_ids)  # one post for each pending transfer, no more
    assert _balance(database, world, confirm_at) == 150
    assert _member_totals(database, world) == (0, 150, 0, 300)
    assert_consistent(database, world)


def test_confirms_racing_voids_of_one_hold_settle_on_one_outcome(database: Database) -> None:
    world = make_world(database, members=1)
    held, at = _hold_on_two_lots(database, world)
    resolve_at = at + timedelta(seconds=60)

    # Even threads confirm, odd threads void.
    outcomes = _together(
        8, lambda index: _resolve(database, world, held.id, post=index % 2 == 0, at=resolve_at)
    )
    answered = [(value.status, value.balance) for kind, value in outcomes if kind == "ok"]
    refused = [value for kind, value in outcomes if kind == "error"]
    # Whichever came first, every caller on its side gets its answer; the balance is after the outcome.
    assert answered in ([("posted", 150)] * 4, [("voided", 300)] * 4)
    won = answered[0][0]
    loser = "confirmed" if won == "posted" else "voided"
    assert [type(exc) for exc in refused] == [Conflict] * 4
    assert [exc.message for exc in refused] == [f"hold {held.id} was already {loser}"] * 4
    resolutions = [
        (kind, str(pending))
        for _op, kind, _amount, pending in _transfers(database, world, "redeem")
        if pending is not None
    ]
    expected_kind = POST_PENDING if won == "posted" else "void_pending"
    assert sorted(resolutions) == sorted((expected_kind, pending) for pending in held.transfer_ids)
    if won == "posted":
        assert (_balance(database, world, resolve_at), _member_totals(database, world)) == (
            150,
            (0, 150, 0, 300),
        )
    else:
        assert (_balance(database, world, resolve_at), _member_totals(database, world)) == (
            300,
            (0, 0, 0, 300),
        )
    assert_consistent(database, world)


# --- many earnings of one order --------------------------------------------------------------------


def test_eight_earnings_of_one_order_credit_it_once(database: Database) -> None:
    world = make_world(database, members=1)
    with database.unit_of_work() as s:
        order_id = pos_order(s, world, world.members[0], "P1", 25000, at=T0).id

    def earn(_index: int) -> service.EarnResult:
        with database.unit_of_work() as s:
            order = get_order(s, tenant_id=world.tenant_id, channel="pos", order_no="P1")
            return service.earn_for_order(s, program=world.program(s), order=order, actor=ACTOR, at=T0)

    outcomes = _together(8, earn)
    assert [kind for kind, _value in outcomes] == ["ok"] * 8
    results = [value for _kind, value in outcomes]
    assert sorted(r.earned_now for r in results) == [False] * 7 + [True]
    first = next(r for r in results if r.earned_now)
    assert [(r.order_id, r.points, r.transfer_ids, r.balance) for r in results] == [
        (order_id, 250, first.transfer_ids, 250)
    ] * 8
    with database.reading() as s:
        earned = s.scalar(
            select(func.count()).where(Transfer.tenant_id == world.tenant_id, Transfer.order_id == order_id)
        )
    assert earned == 1
    assert _balance(database, world, T0) == 250
    assert _member_totals(database, world) == (0, 0, 0, 250)
    assert_consistent(database, world)


def test_two_sends_of_one_new_sale_at_once_record_it_once_and_it_earns_once(database: Database) -> None:
    """A POS sends a new sale and, before the first call has committed, sends it again (a retry with a
    new Idempotency-Key, a second till). The second send must find the first's order, as it does when
    the first has committed, and the sale earns once."""
    world = make_world(database, members=1)
    second: list[tuple[str, Any]] = []

    def send_again() -> None:
        try:
            with database.unit_of_work() as s:
                order = pos_order(s, world, world.members[0], "P9", 25000, at=T0)
                result = service.earn_for_order(s, program=world.program(s), order=order, actor=ACTOR, at=T0)
                second.append(("ok", (order.id, result.points, result.earned_now, result.transfer_ids)))
        except Exception as exc:
            second.append(("error", exc))

    with database.unit_of_work() as s:
        order = pos_order(s, world, world.members[0], "P9", 25000, at=T0)
        earned = service.earn_for_order(s, program=world.program(s), order=order, actor=ACTOR, at=T0)
        thread = threading.Thread(target=send_again)
        thread.start()
        if database.engine.dialect.name != "sqlite":  # SQLite: the second waits to begin at all
            _wait_until_one_waits_for_a_lock(database)  # the second's insert waits for the first
    thread.join(THREAD_JOIN_LIMIT_S)
    assert not thread.is_alive()
    assert (earned.points, earned.earned_now) == (250, True)
    if second[0][0] == "error":
        raise second[0][1]
    assert second == [("ok", (order.id, 250, False, earned.transfer_ids))]
    with database.reading() as s:
        orders = s.scalar(select(func.count()).select_from(Order).where(Order.tenant_id == world.tenant_id))
    assert orders == 1
    earnings = _transfers(database, world, "earn_purchase")
    assert [(kind, amount, pending) for _op, kind, amount, pending in earnings] == [("posted", 250, None)]
    assert _balance(database, world, T0) == 250
    assert_consistent(database, world)
