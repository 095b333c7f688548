"""Reads for the organisation, limited to what the caller may see."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.errors import NotFound, ValidationFailed
from datong.org.models import Agent, Guide, Region, Store
from datong.tenancy.rules import Principal


def store_ids_for(
    session: Session, *, tenant_id: str, agent_id: str | None, store_id: str | None
) -> frozenset[str]:
    """The stores a scoped role covers: all of an agent's stores, or one store."""
    if agent_id:
        return frozenset(
            session.scalars(select(Store.id).where(Store.tenant_id == tenant_id, Store.agent_id == agent_id))
        )
    if store_id:
        return frozenset({store_id})
    return frozenset()


def list_stores(session: Session, principal: Principal) -> list[Store]:
    query = select(Store).where(Store.tenant_id == principal.tenant_id).order_by(Store.code)
    if principal.role not in ("hq_admin", "hq_operator") and principal.kind == "user":
        if principal.guide_id:
            guide = session.get(Guide, principal.guide_id)
            query = query.where(Store.id == (guide.store_id if guide else ""))
        else:
            query = query.where(Store.id.in_(sorted(principal.store_ids or ())))
    return list(session.scalars(query))


def get_store(session: Session, principal: Principal, store_id: str) -> Store:
    for store in list_stores(session, principal):
        if store.id == store_id:
            return store
    raise NotFound(f"no store {store_id}", field="store_id")


def list_agents(session: Session, principal: Principal) -> list[Agent]:
    query = select(Agent).where(Agent.tenant_id == principal.tenant_id).order_by(Agent.code)
    if principal.role not in ("hq_admin", "hq_operator") and principal.kind == "user":
        query = query.where(Agent.id == (principal.agent_id or ""))
    return list(session.scalars(query))


def list_regions(session: Session, principal: Principal) -> list[Region]:
    return list(
        session.scalars(select(Region).where(Region.tenant_id == principal.tenant_id).order_by(Region.code))
    )


def list_guides(session: Session, principal: Principal) -> list[Guide]:
    store_ids = {s.id for s in list_stores(session, principal)}
    query = select(Guide).where(Guide.tenant_id == principal.tenant_id, Guide.store_id.in_(sorted(store_ids)))
    if principal.role == "guide":
        query = query.where(Guide.id == (principal.guide_id or ""))
    return list(session.scalars(query.order_by(Guide.code)))


def store_by_code(session: Session, *, tenant_id: str, code: str, field: str = "store_code") -> Store:
    store = session.scalar(select(Store).where(Store.tenant_id == tenant_id, Store.code == code))
    if store is None:
        raise ValidationFailed(f"no store {code!r}", field=field)
    return store


def store_to_act_at(
    session: Session, principal: Principal, code: str | None, *, field: str = "store_code"
) -> Store | None:
    """The store a sale, a redemption or a refund happens at: the one named, if the caller may act
    there, else the caller's own. To a caller bound to stores, a store it may not act at and a store
    that does not exist look alike (404)."""
    if code is None:
        return session.get(Store, principal.store_id) if principal.store_id else None
    scope = principal.store_scope
    try:
        store = store_by_code(session, tenant_id=principal.tenant_id, code=code, field=field)
    except ValidationFailed:
        if scope is not None:
            raise NotFound(f"no store {code!r}", field=field) from None
        raise
    if scope is not None and store.id not in scope:
        raise NotFound(f"no store {code!r}", field=field)
    return store
