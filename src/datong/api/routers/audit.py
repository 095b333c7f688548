"""The audit log, for HQ administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from datong.api.deps import PrincipalDep, SessionDep
from datong.members.queries import require
from datong.tenancy import rules
from datong.tenancy.models import AuditEntry

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def entries(
    s: SessionDep, p: PrincipalDep, object_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    require(p, rules.AUDIT_READ)
    query = select(AuditEntry).where(AuditEntry.tenant_id == p.tenant_id)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    rows = s.scalars(query.order_by(AuditEntry.at.desc()).limit(max(1, min(limit, 1000))))
    return [
        {
            "at": e.at.isoformat(),
            "actor": f"{e.actor_kind}:{e.actor_id}",
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "detail": e.detail,
            "note": e.note,
        }
        for e in rows
    ]
