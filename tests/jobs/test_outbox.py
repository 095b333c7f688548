"""The outbox's retries, on SQLite and PostgreSQL, with senders written here (the plug-in interface: a
function ``(session, message) -> Outcome``): a message that keeps asking for a retry waits 30 s, 1 min,
2 min … and fails after 8 attempts, a message not yet due is not sent, a sender that raises leaves none
of its writes behind and is retried with the error kept, and a message is enqueued once per key."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.db import Database
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import MAX_ATTEMPTS, Outcome, deliver_due, enqueue
from datong.tenancy.models import AuditEntry
from datong.tenancy.service import audit, create_tenant

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
RETRY, BOOM = "test.retry", "test.boom"
NOTHING = {"done": 0, "sent": 0, "retry": 0, "failed": 0}


def make_tenant(db: Database, code: str = "acme") -> str:
    with db.unit_of_work() as s:
        return create_tenant(s, code=code, name=code.title()).id


def state(db: Database, message_id: str) -> tuple[Any, ...]:
    """(status, attempts, next_attempt_at, last_error, sent_at, payload) of one message, as stored."""
    with db.reading() as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None, message_id
        return (m.status, m.attempts, m.next_attempt_at, m.last_error, m.sent_at, m.payload)


def test_a_message_asking_for_retries_waits_longer_each_time_and_fails_after_8(database: Database) -> None:
    tenant_id = make_tenant(database)
    sent: list[tuple[str, int, dict[str, Any]]] = []

    def busy(session: Session, message: OutboxMessage) -> Outcome:
        sent.append((message.key, message.attempts, dict(message.payload)))
        return Outcome("retry", error="busy, try later")

    with database.unit_of_work() as s:
        message_id = enqueue(s, tenant_id=tenant_id, kind=RETRY, key="k1", payload={"n": 1}, at=T0).id
    assert state(database, message_id) == ("pending", 0, T0, None, None, {"n": 1})

    due = T0
    pauses: list[timedelta] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # A moment before it is due: nothing is sent and nothing changes.
        before = state(database, message_id)
        early = deliver_due(database, {RETRY: busy}, now=due - timedelta(seconds=1), tenant_id=tenant_id)
        assert (early, len(sent), state(database, message_id)) == (NOTHING, attempt - 1, before)

        now = due + timedelta(seconds=1)
        counts = deliver_due(database, {RETRY: busy}, now=now, tenant_id=tenant_id)
        assert counts == NOTHING | {"retry": 1}
        assert sent[-1] == ("k1", attempt - 1, {"n": 1})
        status, attempts, next_at, last_error, sent_at, payload = state(database, message_id)
        assert (attempts, last_error, sent_at, payload) == (attempt, "busy, try later", None, {"n": 1})
        if attempt < MAX_ATTEMPTS:
            assert status == "pending"
            pauses.append(next_at - now)
            due = next_at
        else:  # the 8th retry is the last: failed for good, next_attempt_at left as it was
            assert (status, next_at) == ("failed", due)

    assert MAX_ATTEMPTS == 8 and len(sent) == 8
    assert pauses == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 960, 1920)]
    # Failed: never sent again, however late.
    final = state(database, message_id)
    assert deliver_due(database, {RETRY: busy}, now=T0 + timedelta(days=30), tenant_id=tenant_id) == NOTHING
    assert (len(sent), state(database, message_id)) == (8, final)


def test_a_sender_that_raises_leaves_nothing_behind_and_is_retried_with_the_error(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    tenant_id = make_tenant(database)
    seen_inside: list[int] = []

    def count_writes(session: Session) -> int:
        found = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "outbox.test")
        )
        return int(found or 0)

    def boom(session: Session, message: OutboxMessage) -> Outcome:
        audit(
            session,
            tenant_id=message.tenant_id,
            actor="system:test",
            action="outbox.test",
            object_type="outbox_message",
            object_id=message.id,
        )
        session.flush()
        seen_inside.append(count_writes(session))  # the row was really written, inside the savepoint
        raise RuntimeError("the far side hung up")

    with database.unit_of_work() as s:
        message_id = enqueue(s, tenant_id=tenant_id, kind=BOOM, key="k1", payload={"n": 1}, at=T0).id
    with database.reading() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEntry))

    with caplog.at_level(logging.WARNING, logger="datong.jobs.outbox"):
        counts = deliver_due(database, {BOOM: boom}, now=T0, tenant_id=tenant_id)
    assert counts == NOTHING | {"retry": 1}
    assert seen_inside == [1]
    with database.reading() as s:
        assert count_writes(s) == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audit_before
    assert state(database, message_id) == (
        "pending",
        1,
        T0 + timedelta(seconds=30),
        "RuntimeError: the far side hung up",
        None,
        {"n": 1},
    )
    assert [r.getMessage() for r in caplog.records] == [f"outbox {BOOM} {message_id}: the far side hung up"]


def test_a_message_is_enqueued_once_per_kind_and_key(database: Database) -> None:
    tenant_id = make_tenant(database)
    other_tenant = make_tenant(database, "other")
    with database.unit_of_work() as s:
        first = enqueue(s, tenant_id=tenant_id, kind=RETRY, key="k1", payload={"v": 1}, at=T0)
        first_id = first.id
        again = enqueue(
            s, tenant_id=tenant_id, kind=RETRY, key="k1", payload={"v": 2}, at=T0 + timedelta(hours=1)
        )
        assert again.id == first_id
    with database.unit_of_work() as s:  # again in a later transaction
        later = enqueue(s, tenant_id=tenant_id, kind=RETRY, key="k1", payload={"v": 3})
        assert later.id == first_id
    assert state(database, first_id) == ("pending", 0, T0, None, None, {"v": 1})
    with database.unit_of_work() as s:  # another key, another kind, another brand: rows of their own
        others = {
            enqueue(s, tenant_id=tenant_id, kind=RETRY, key="k2", payload={"v": 4}, at=T0).id,
            enqueue(s, tenant_id=tenant_id, kind=BOOM, key="k1", payload={"v": 5}, at=T0).id,
            enqueue(s, tenant_id=other_tenant, kind=RETRY, key="k1", payload={"v": 6}, at=T0).id,
        }
    assert len(others) == 3 and first_id not in others
    with database.reading() as s:
        rows = s.execute(
            select(OutboxMessage.tenant_id, OutboxMessage.kind, OutboxMessage.key, OutboxMessage.payload)
        ).all()
    assert sorted((t == tenant_id, kind, key, payload["v"]) for t, kind, key, payload in rows) == [
        (False, RETRY, "k1", 6),
        (True, BOOM, "k1", 5),
        (True, RETRY, "k1", 1),
        (True, RETRY, "k2", 4),
    ]
