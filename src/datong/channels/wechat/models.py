"""A brand's WeChat official accounts and what their server callback receives.

The account's secrets (AppSecret, the callback token, the EncodingAESKeys) are encrypted at rest like
personal data. Each callback message is kept in the inbox, keyed by WeChat's dedupe key, before it is
answered: WeChat's retries find the row and change nothing, and the work is done after the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
MAX_ATTEMPTS = 5  # a message that failed this often waits for an operator


class WechatAccount(Base, TenantScoped, Timestamped):
    __tablename__ = "wechat_account"
    # An appid belongs to one brand: the callback URL names the appid and finds the brand from it.
    __table_args__ = (UniqueConstraint("appid"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wxa"))
    appid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # JSON list of EncodingAESKeys, current first, then the previous one (kept after a rotation).
    aes_keys_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=True)


class WechatInbox(Base, TenantScoped):
    """One callback message, stored before the answer. ``message`` is the parsed fields (no secrets);
    it is emptied when WeChat asks us to forget the user (unsubscribe)."""

    __tablename__ = "wechat_inbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "appid", "dedupe_key"),
        Index("ix_wechat_inbox_status", "tenant_id", "status", "received_at"),
        Index("ix_wechat_inbox_openid", "tenant_id", "appid", "openid"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wxi"))
    appid: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(160))
    # The signed request it came in (timestamp, nonce, signatures): one request carries one message, so
    # a captured URL replayed with another body is refused.
    request_key: Mapped[str | None] = mapped_column(String(64), index=True)
    openid: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))
    member_id: Mapped[str | None] = mapped_column(String(32))


class WechatToken(Base, TenantScoped):
    """The account's cached access token, shared by every worker (encrypted)."""

    __tablename__ = "wechat_token"
    __table_args__ = (UniqueConstraint("tenant_id", "appid"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("wxt"))
    appid: Mapped[str] = mapped_column(String(64))
    token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column()
