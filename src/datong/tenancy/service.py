"""Writes for tenancy: brands, users, API keys, login sessions, the audit log and idempotent requests."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from datong.tenancy import rules
from datong.tenancy.models import ApiKey, AuditEntry, LoginSession, Tenant, User

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps the timing of a wrong username and a
# wrong password alike.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def audit(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    detail: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    kind, _, ident = actor.partition(":")
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            actor_kind=kind,
            actor_id=ident or kind,
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail or {},
            note=note,
        )
    )


def create_tenant(
    session: Session, *, code: str, name: str, settings: dict[str, Any] | None = None
) -> Tenant:
    if not code or not code.replace("-", "").replace("_", "").isalnum():
        raise ValidationFailed("a brand code is letters, digits, - and _", field="code")
    if session.scalar(select(Tenant).where(Tenant.code == code)) is not None:
        raise Conflict(f"a brand with code {code!r} exists", field="code")
    tenant = Tenant(code=code, name=name, settings={"attribution_window_days": 15, **(settings or {})})
    session.add(tenant)
    session.flush()
    audit(
        session,
        tenant_id=tenant.id,
        actor="system:cli",
        action="tenant.create",
        object_type="tenant",
        object_id=tenant.id,
        detail={"code": code},
    )
    return tenant


def create_user(
    session: Session,
    *,
    tenant_id: str,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    agent_id: str | None = None,
    store_id: str | None = None,
    guide_id: str | None = None,
    actor: str = "system:cli",
) -> User:
    if role not in rules.ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(rules.ROLES)}", field="role")
    if len(password) < 10:
        raise ValidationFailed("a password has at least 10 characters", field="password")
    needs = {
        rules.AGENT_MANAGER: ("agent_id", agent_id),
        rules.STORE_MANAGER: ("store_id", store_id),
        rules.GUIDE: ("guide_id", guide_id),
    }.get(role)
    if needs is not None and not needs[1]:
        raise ValidationFailed(f"role {role} needs {needs[0]}", field=needs[0])
    if session.scalar(select(User).where(User.tenant_id == tenant_id, User.username == username)):
        raise Conflict(f"user {username!r} exists", field="username")
    user = User(
        tenant_id=tenant_id,
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        role=role,
        agent_id=agent_id,
        store_id=store_id,
        guide_id=guide_id,
    )
    session.add(user)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        detail={"username": username, "role": role},
    )
    return user


def login(
    session: Session, *, tenant_code: str, username: str, password: str, hours: int
) -> tuple[str, User]:
    """Returns a new bearer token (shown once; only its hash is stored) and the user."""
    user = session.scalar(
        select(User)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.code == tenant_code, User.username == username, User.active.is_(True))
    )
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except VerifyMismatchError:
        user = None
    if user is None:
        raise Unauthenticated("wrong brand, username or password")
    token = "dts_" + secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            tenant_id=user.tenant_id,
            token_hash=_sha256(token),
            user_id=user.id,
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    audit(
        session,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        action="user.login",
        object_type="user",
        object_id=user.id,
    )
    return token, user


def create_api_key(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    scopes: list[str],
    store_id: str | None = None,
    actor: str = "system:cli",
) -> tuple[str, ApiKey]:
    """Returns the secret (shown once) and the key. The secret is ``dtk_<prefix>_<random>``."""
    unknown = sorted(set(scopes) - set(rules.SCOPES))
    if unknown:
        raise ValidationFailed(f"unknown scopes: {', '.join(unknown)}", field="scopes")
    if not scopes:
        raise ValidationFailed("an API key needs at least one scope", field="scopes")
    prefix = secrets.token_hex(6)
    secret = f"dtk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        secret_hash=_sha256(secret),
        scopes=sorted(set(scopes)),
        store_id=store_id,
    )
    session.add(key)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="api_key.create",
        object_type="api_key",
        object_id=key.id,
        detail={"name": name, "scopes": key.scopes},
    )
    return secret, key


def authenticate_token(session: Session, token: str) -> tuple[str, User | ApiKey]:
    """A bearer token is a login session (``dts_``) or an API key (``dtk_``)."""
    now = utcnow()
    if token.startswith("dtk_"):
        prefix = token.split("_")[1] if token.count("_") >= 2 else ""
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if (
            key is None
            or key.revoked_at is not None
            or not secrets.compare_digest(key.secret_hash, _sha256(token))
        ):
            raise Unauthenticated("unknown or revoked API key")
        return "api_key", key
    login_session = session.scalar(select(LoginSession).where(LoginSession.token_hash == _sha256(token)))
    if login_session is None or login_session.revoked_at is not None or login_session.expires_at < now:
        raise Unauthenticated("unknown or expired session; log in again")
    user = session.get(User, login_session.user_id)
    if user is None or not user.active:
        raise Unauthenticated("the user is disabled")
    return "user", user


def get_tenant_by_code(session: Session, code: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.code == code))
    if tenant is None:
        raise NotFound(f"no brand with code {code!r}", field="tenant")
    return tenant
