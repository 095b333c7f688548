"""Idempotency keys for writes from outside systems.

The same key with the same body returns the first answer; with another body it is a 409. The first
answer is stored in the same transaction as the write, so it exists exactly when the write does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
