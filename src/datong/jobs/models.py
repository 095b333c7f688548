"""The outbox: calls to outside systems (a WeChat template message, a WeChat Pay profit-sharing
request) written in the same transaction as the change that needs them, and sent after it commits by
the worker, with retries. ``key`` makes writing one twice harmless; ``external_id`` is what the outside
system calls it (a msgid, an order id), so its later reports can find the row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

PENDING, SENT, DONE, FAILED = "pending", "sent", "done", "failed"


class OutboxMessage(Base, TenantScoped, Timestamped):
    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "key"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_external", "tenant_id", "kind", "external_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("obx"))
    kind: Mapped[str] = mapped_column(String(40))  # wechat.template | wechatpay.profit_sharing | ...
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error: Mapped[str | None] = mapped_column(String(500))
