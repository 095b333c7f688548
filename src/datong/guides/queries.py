"""Reads for guides: the brand's guide policy, a guide, a store."""

from __future__ import annotations

from sqlalchemy.orm import Session

from datong.core.errors import NotFound
from datong.guides import rules
from datong.org.models import Guide, Store
from datong.tenancy.models import Tenant


def guide_policy(session: Session, *, tenant_id: str) -> rules.Policy:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no brand {tenant_id}", field="tenant_id")
    return rules.parse_policy((tenant.settings or {}).get("guides"))


def get_guide(session: Session, *, tenant_id: str, guide_id: str) -> Guide:
    guide = session.get(Guide, guide_id)
    if guide is None or guide.tenant_id != tenant_id:
        raise NotFound(f"no guide {guide_id}", field="guide_id")
    return guide


def get_store(session: Session, *, tenant_id: str, store_id: str) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != tenant_id:
        raise NotFound(f"no store {store_id}", field="store_id")
    return store
