"""Behaviour events: what a member did (a menu click, a page view, a scan, a location report), kept
for profiles and the guide's alerts. Location is kept only with the member's consent to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped
from datong.core.ids import new_id


class BehaviourEvent(Base, TenantScoped):
    __tablename__ = "behaviour_event"
    __table_args__ = (Index("ix_behaviour_event_member", "tenant_id", "member_id", "kind", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("evt"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    kind: Mapped[str] = mapped_column(String(24))  # click | view | scan | location | ...
    channel: Mapped[str] = mapped_column(String(32))  # wechat | miniprogram | pos | ...
    # The identity it came through (e.g. "openid:<appid>"), so forgetting that identity finds its events.
    via: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
