"""Log in and out; who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from datong.api.deps import PrincipalDep, RuntimeDep, SessionDep
from datong.tenancy.service import login

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=40, description="the brand's code")
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


@router.post("/login")
def do_login(body: LoginIn, s: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    token, user = login(
        s,
        tenant_code=body.tenant,
        username=body.username,
        password=body.password,
        hours=rt.settings.session_hours,
    )
    return {
        "token": token,
        "token_type": "bearer",
        "user_id": user.id,
        "role": user.role,
        "locale": user.locale,
    }


@router.get("/me")
def me(p: PrincipalDep) -> dict[str, Any]:
    return {
        "tenant_id": p.tenant_id,
        "kind": p.kind,
        "id": p.id,
        "role": p.role,
        "permissions": sorted(p.permissions),
        "agent_id": p.agent_id,
        "store_id": p.store_id,
        "guide_id": p.guide_id,
    }
