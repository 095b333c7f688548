"""Writes for the organisation: regions, agents, stores, guides and shops, one at a time or from a file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.errors import Conflict, ValidationFailed
from datong.org.models import STORE_KINDS, Agent, Guide, Region, Shop, Store
from datong.tenancy.service import audit


def _by_code(session: Session, model: Any, tenant_id: str, code: str | None, field: str) -> str | None:
    if not code:
        return None
    found: str | None = session.scalar(
        select(model.id).where(model.tenant_id == tenant_id, model.code == code)
    )
    if found is None:
        raise ValidationFailed(f"no {model.__tablename__} with code {code!r}", field=field)
    return found


def _unique(session: Session, model: Any, tenant_id: str, code: str) -> None:
    if not code or not code.strip():
        raise ValidationFailed("a code is required", field="code")
    if session.scalar(select(model.id).where(model.tenant_id == tenant_id, model.code == code)):
        raise Conflict(f"a {model.__tablename__} with code {code!r} exists", field="code")


def create_store(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    code: str,
    name: str,
    kind: str,
    agent_code: str | None = None,
    region_code: str | None = None,
    province: str | None = None,
    city: str | None = None,
    district: str | None = None,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> Store:
    if kind not in STORE_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(STORE_KINDS)}", field="kind")
    if kind == "franchise" and not agent_code:
        raise ValidationFailed("a franchise store belongs to an agent", field="agent_code")
    if latitude is not None and not -90 <= latitude <= 90:
        raise ValidationFailed("latitude is between -90 and 90", field="latitude")
    if longitude is not None and not -180 <= longitude <= 180:
        raise ValidationFailed("longitude is between -180 and 180", field="longitude")
    _unique(session, Store, tenant_id, code)
    store = Store(
        tenant_id=tenant_id,
        code=code,
        name=name,
        kind=kind,
        agent_id=_by_code(session, Agent, tenant_id, agent_code, "agent_code"),
        region_id=_by_code(session, Region, tenant_id, region_code, "region_code"),
        province=province,
        city=city,
        district=district,
        address=address,
        latitude=latitude,
        longitude=longitude,
    )
    session.add(store)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="store.create",
        object_type="store",
        object_id=store.id,
        detail={"code": code},
    )
    return store


def load_org(session: Session, *, tenant_id: str, actor: str, data: dict[str, Any]) -> dict[str, int]:
    """Create what an ``org.json`` describes (see ``datong.demo.org``); codes already present are kept."""
    counts = {"regions": 0, "agents": 0, "stores": 0, "guides": 0, "shops": 0}
    for item in data.get("regions", []):
        if not session.scalar(
            select(Region.id).where(Region.tenant_id == tenant_id, Region.code == item["code"])
        ):
            session.add(Region(tenant_id=tenant_id, code=item["code"], name=item["name"]))
            counts["regions"] += 1
    session.flush()
    for item in data.get("agents", []):
        if not session.scalar(
            select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.code == item["code"])
        ):
            session.add(
                Agent(
                    tenant_id=tenant_id,
                    code=item["code"],
                    name=item["name"],
                    region_id=_by_code(session, Region, tenant_id, item.get("region_code"), "region_code"),
                )
            )
            counts["agents"] += 1
    session.flush()
    for item in data.get("stores", []):
        store_id = session.scalar(
            select(Store.id).where(Store.tenant_id == tenant_id, Store.code == item["code"])
        )
        if store_id is None:
            store_id = create_store(
                session,
                tenant_id=tenant_id,
                actor=actor,
                code=item["code"],
                name=item["name"],
                kind=item["kind"],
                agent_code=item.get("agent_code"),
                region_code=item.get("region_code"),
                province=item.get("province"),
                city=item.get("city"),
                district=item.get("district"),
                address=item.get("address"),
                latitude=item.get("latitude"),
                longitude=item.get("longitude"),
            ).id
            counts["stores"] += 1
        for guide in item.get("guides", []):
            if not session.scalar(
                select(Guide.id).where(Guide.tenant_id == tenant_id, Guide.code == guide["code"])
            ):
                session.add(
                    Guide(tenant_id=tenant_id, code=guide["code"], name=guide["name"], store_id=store_id)
                )
                counts["guides"] += 1
    for item in data.get("shops", []):
        if not session.scalar(
            select(Shop.id).where(
                Shop.tenant_id == tenant_id,
                Shop.channel == item["channel"],
                Shop.external_id == item["external_id"],
            )
        ):
            session.add(
                Shop(
                    tenant_id=tenant_id,
                    channel=item["channel"],
                    external_id=item["external_id"],
                    name=item["name"],
                )
            )
            counts["shops"] += 1
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="org.load",
        object_type="tenant",
        object_id=tenant_id,
        detail=counts,
    )
    return counts
