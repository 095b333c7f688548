"""Idempotency keys for writes from outside systems.

The same key with the same body returns the first answer; with another body it is a 409, and so is a
second request that arrives while the first is still running (and has not finished within
``IN_FLIGHT_WAIT_MS``). The first answer is stored in the same transaction as the write, so it exists
exactly when the write does: a request that failed or was killed left no answer, and may be resent.

Concurrent requests with one key meet on a lock: on PostgreSQL a transaction-scoped advisory lock on
the key (released at commit or rollback, or when a killed process's connection drops); on SQLite the
database's single writer lock, which every write transaction takes when it begins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from datong.core.db import advisory_lock_id, is_sqlite
from datong.core.errors import Conflict, ValidationFailed
from datong.tenancy.models import IdempotentRequest
from datong.tenancy.rules import Principal


def run_once(
    session: Session,
    principal: Principal,
    key: str | None,
    body: Any,
    action: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any]]:
    if not key or not key.strip() or len(key) > 128:
        raise ValidationFailed(
            "an Idempotency-Key header (1-128 characters) is required", field="Idempotency-Key"
        )
    _wait_for_key(session, principal, key)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    found = session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.tenant_id == principal.tenant_id,
            IdempotentRequest.actor_id == principal.label,
            IdempotentRequest.key == key,
        )
    )
    if found is not None:
        if found.request_hash != digest:
            raise Conflict("this Idempotency-Key was used with a different body", field="Idempotency-Key")
        return found.status_code, found.response
    status, response = action()
    session.add(
        IdempotentRequest(
            tenant_id=principal.tenant_id,
            actor_id=principal.label,
            key=key,
            request_hash=digest,
            status_code=status,
            response=response,
        )
    )
    session.flush()
    return status, response


def answer_once(
    session: Session,
    principal: Principal,
    key: str | None,
    body: Any,
    action: Callable[[], tuple[int, dict[str, Any]]],
) -> dict[str, Any]:
    """:func:`run_once` for a route whose status is fixed: only the answer."""
    return run_once(session, principal, key, body, action)[1]


# How long a second request waits for a first one with the same key before it answers 409.
IN_FLIGHT_WAIT_MS = 2000


def _wait_for_key(session: Session, principal: Principal, key: str) -> None:
    if is_sqlite(session):
        return  # the writer lock taken by BEGIN IMMEDIATE already serialises the two
    lock_id = advisory_lock_id(f"{principal.tenant_id}|{principal.label}|{key}")
    # One round trip: wait at most IN_FLIGHT_WAIT_MS for the key, then put back the server's usual limit
    # for the rest of the transaction. (lock_id is an integer computed here: safe to write into the SQL.)
    statement = (
        f"SET LOCAL lock_timeout = '{IN_FLIGHT_WAIT_MS}ms'; "
        f"SELECT pg_advisory_xact_lock({lock_id}); "
        "SET LOCAL lock_timeout = DEFAULT"
    )
    try:
        session.connection().exec_driver_sql(statement)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise Conflict(
                "a request with this Idempotency-Key is still running; retry with the same key",
                field="Idempotency-Key",
            ) from None
        raise
