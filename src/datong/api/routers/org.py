"""The organisation as the caller may see it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from datong.api.deps import PrincipalDep, SessionDep
from datong.members.queries import require
from datong.org import queries
from datong.tenancy import rules

router = APIRouter(prefix="/api/v1/org", tags=["org"])


@router.get("/stores")
def stores(s: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    require(p, rules.ORG_READ)
    return [
        {
            "id": x.id,
            "code": x.code,
            "name": x.name,
            "kind": x.kind,
            "agent_id": x.agent_id,
            "city": x.city,
            "district": x.district,
            "latitude": x.latitude,
            "longitude": x.longitude,
        }
        for x in queries.list_stores(s, p)
    ]


@router.get("/stores/{store_id}")
def store(store_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    require(p, rules.ORG_READ)
    x = queries.get_store(s, p, store_id)
    return {
        "id": x.id,
        "code": x.code,
        "name": x.name,
        "kind": x.kind,
        "agent_id": x.agent_id,
        "city": x.city,
        "address": x.address,
        "latitude": x.latitude,
        "longitude": x.longitude,
    }


@router.get("/agents")
def agents(s: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    require(p, rules.ORG_READ)
    return [{"id": a.id, "code": a.code, "name": a.name} for a in queries.list_agents(s, p)]


@router.get("/regions")
def regions(s: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    require(p, rules.ORG_READ)
    return [{"id": r.id, "code": r.code, "name": r.name} for r in queries.list_regions(s, p)]


@router.get("/guides")
def guides(s: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    require(p, rules.ORG_READ)
    return [
        {"id": g.id, "code": g.code, "name": g.name, "store_id": g.store_id}
        for g in queries.list_guides(s, p)
    ]
