"""Brands (tenants), users, roles, API keys, login sessions and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id


class Tenant(Base, Timestamped):
    """A brand. ``settings`` holds per-brand policy (attribution window days, ...)."""

    __tablename__ = "tenant"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ten"))
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base, TenantScoped, Timestamped):
    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    username: Mapped[str] = mapped_column(String(80))
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    # The object a scoped role is limited to: an agent, a store or a guide.
    agent_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("agent.id"))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    active: Mapped[bool] = mapped_column(default=True)


class ApiKey(Base, TenantScoped, Timestamped):
    """A system's credential (POS, mini-program). Only a hash of the secret is stored."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    revoked_at: Mapped[datetime | None] = mapped_column()


class LoginSession(Base, TenantScoped, Timestamped):
    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ses"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("app_user.id"))
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base, TenantScoped):
    """Every write and every unmasked view or export of personal data. Append-only."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_tenant_object", "tenant_id", "object_type", "object_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("aud"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | api_key | system
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class IdempotentRequest(Base, TenantScoped, Timestamped):
    """The first answer to an idempotency key: the same key and body get it again; another body is a 409."""

    __tablename__ = "idempotent_request"
    __table_args__ = (UniqueConstraint("tenant_id", "actor_id", "key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("idm"))
    actor_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column()
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
