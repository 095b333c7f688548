"""The outbox: write a call to an outside system in the same transaction as the change that needs it
(``enqueue``), and send it after that commits (``deliver_due``), retrying with growing pauses.

A sender is told one message and answers what happened: ``done`` (finished), ``sent`` (accepted,
the outcome comes later, e.g. by a query or a callback), ``retry`` (a failure worth trying again, such
as a timeout: every outside call here is idempotent by its key, so sending twice is safe) or ``failed``
(refused for good, with the reason). Each message is sent in its own transaction; on PostgreSQL two
workers skip each other's rows (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.db import Database, is_sqlite, upsert_insert
from datong.core.ids import new_id
from datong.jobs.models import DONE, FAILED, PENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
FIRST_PAUSE = timedelta(seconds=30)


@dataclass(frozen=True)
class Outcome:
    status: str  # done | sent | retry | failed
    external_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Sender(Protocol):
    def __call__(self, session: Session, message: OutboxMessage) -> Outcome: ...


def enqueue(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> OutboxMessage:
    """Add a message once per (kind, key): enqueueing it again returns the first one unchanged."""
    session.execute(
        upsert_insert(session, OutboxMessage)
        .values(
            id=new_id("obx"),
            tenant_id=tenant_id,
            kind=kind,
            key=key,
            payload=payload,
            status=PENDING,
            attempts=0,
            next_attempt_at=at or utcnow(),
            result={},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "key"])
    )
    row = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id, OutboxMessage.kind == kind, OutboxMessage.key == key
        )
    )
    assert row is not None
    return row


def pause_after(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … doubling, at most a day."""
    pause: timedelta = FIRST_PAUSE * 2 ** max(attempts - 1, 0)
    return min(pause, timedelta(days=1))


def deliver_due(
    db: Database,
    senders: Mapping[str, Sender],
    *,
    now: datetime | None = None,
    limit: int = 100,
    tenant_id: str | None = None,
) -> dict[str, int]:
    """Send every pending message that is due and has a sender; returns counts by outcome. Senders
    built from one brand's accounts are given that brand's ``tenant_id``, so they never see another
    brand's messages."""
    now = now or utcnow()
    counts = {"done": 0, "sent": 0, "retry": 0, "failed": 0}
    with db.reading() as s:
        ids = list(
            s.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    OutboxMessage.kind.in_(sorted(senders)),
                    OutboxMessage.tenant_id == tenant_id if tenant_id is not None else true(),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
        )
    for message_id in ids:
        with db.unit_of_work() as s:
            query = select(OutboxMessage).where(
                OutboxMessage.id == message_id, OutboxMessage.status == PENDING
            )
            if not is_sqlite(s):
                query = query.with_for_update(skip_locked=True)
            message = s.scalar(query)
            if message is None:
                continue  # another worker has it, or sent it already
            try:
                with s.begin_nested():  # a sender that fails leaves none of its writes behind
                    outcome = senders[message.kind](s, message)
            except Exception as exc:  # an unexpected failure is retried, and logged
                log.warning("outbox %s %s: %s", message.kind, message.id, exc)
                outcome = Outcome("retry", error=f"{type(exc).__name__}: {exc}")
            _record(message, outcome, now)
            counts[outcome.status] += 1
    return counts


def _record(message: OutboxMessage, outcome: Outcome, now: datetime) -> None:
    message.attempts += 1
    message.result = {**(message.result or {}), **outcome.result}
    if outcome.external_id:
        message.external_id = outcome.external_id
    message.last_error = outcome.error[:500] if outcome.error else None
    if outcome.status in ("done", "sent"):
        message.status = DONE if outcome.status == "done" else SENT
        message.sent_at = now
    elif outcome.status == "retry" and message.attempts < MAX_ATTEMPTS:
        message.next_attempt_at = now + pause_after(message.attempts)
    else:
        message.status = FAILED
