"""What every ``datong`` command shares: the ``--tenant`` option, the actor its writes are recorded
under, and the runtime with the brand the command is for."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from datong.core.context import Runtime, load_runtime
from datong.core.errors import NotFound

TenantOpt = Annotated[str | None, typer.Option("--tenant", envvar="DATONG_TENANT", help="brand code")]
ACTOR = "system:cli"


def tenant_id_of(rt: Runtime, code: str | None) -> str:
    """The brand named by ``code``; with none, the only brand there is (else say which is needed)."""
    from datong.tenancy.models import Tenant
    from datong.tenancy.service import get_tenant_by_code

    with rt.db.reading() as s:
        if code:
            return get_tenant_by_code(s, code).id
        ids = list(s.scalars(select(Tenant.id).limit(2)))
    if len(ids) != 1:
        raise NotFound("name the brand with --tenant CODE (or DATONG_TENANT)", field="tenant")
    return ids[0]


def brand_context(tenant: str | None) -> tuple[Runtime, str]:
    rt = load_runtime()
    return rt, tenant_id_of(rt, tenant)
