"""The brand's guide settings, kept in ``Tenant.settings``: the guide policy (``"guides"``: binding,
protection and attribution windows, and the landing page a code's picture points to) and the commission
plan (``"commission"``). ``load_plan`` checks a whole file before it changes anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from datong.core.errors import NotFound, ValidationFailed
from datong.guides.commission_rules import parse_plan
from datong.guides.rules import parse_policy
from datong.guides.split_rules import parse_split_plan
from datong.tenancy.models import Tenant
from datong.tenancy.service import audit

POLICY_FIELDS = frozenset({"binding", "protection_days", "window_days", "landing_url"})
SECTIONS = ("guides", "commission", "profit_sharing")


def check_landing_url(value: Any, *, field: str = "guides.landing_url") -> str:
    """The page a code's picture opens when the code has no WeChat ticket: an absolute http(s) address
    without a fragment (the scene is added to its query)."""
    if not isinstance(value, str) or len(value) > 500:
        raise ValidationFailed("landing_url is an address of at most 500 characters", field=field)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        raise ValidationFailed(
            "landing_url is an absolute http(s) address without a #fragment, e.g. https://m.example.com/g",
            field=field,
        )
    return value


def load_plan(session: Session, *, tenant_id: str, data: Any, actor: str) -> list[str]:
    """Put the file's ``guides`` policy and ``commission`` plan into the brand's settings, each section
    replacing the one before; a section the file leaves out is kept. Returns the sections loaded."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(
            "the file is a JSON object with guides, commission and/or profit_sharing", field="file"
        )
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValidationFailed(f"unknown section {unknown[0]!r}", field=unknown[0])
    loaded = [name for name in SECTIONS if name in data]
    if not loaded:
        raise ValidationFailed("the file has no guides, commission or profit_sharing section", field="file")
    for name in loaded:
        if not isinstance(data[name], Mapping):
            raise ValidationFailed(f"{name} is an object", field=name)
    guides = data.get("guides")
    if guides is not None:
        extra = sorted(set(guides) - POLICY_FIELDS)
        if extra:
            raise ValidationFailed(f"unknown field {extra[0]!r}", field=f"guides.{extra[0]}")
        parse_policy(guides)
        if "landing_url" in guides:
            check_landing_url(guides["landing_url"])
    if "commission" in data:
        parse_plan(data["commission"])
    if "profit_sharing" in data:
        parse_split_plan(data["profit_sharing"])
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no brand {tenant_id}", field="tenant_id")
    # A new dict, so the JSON column is seen as changed.
    tenant.settings = {**(tenant.settings or {}), **{name: data[name] for name in loaded}}
    session.flush()
    rules = len((data.get("commission") or {}).get("rules", [])) if "commission" in data else None
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.load_plan",
        object_type="tenant",
        object_id=tenant_id,
        detail={
            "sections": loaded,
            "commission_rules": rules,
            **({"guides": dict(guides)} if guides else {}),
        },
    )
    return loaded


def landing_url(session: Session, *, tenant_id: str) -> str | None:
    tenant = session.get(Tenant, tenant_id)
    raw = ((tenant.settings or {}).get("guides") or {}) if tenant is not None else {}
    value = raw.get("landing_url") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and value else None
