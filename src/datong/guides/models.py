"""Shopping guides' reach: QR codes carrying a scene, the touches a member has with a guide or store (a
scan, a binding, a link or coupon the guide sent), the history of exclusive-guide bindings, and which guide
and store an order is credited to. The member's current exclusive guide (专属导购) is ``Member.guide_id``,
which the access rules already read; ``BindingChange`` keeps every change of it, with the reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id


class QrCode(Base, TenantScoped, Timestamped):
    """A parametric code for a guide (the guide's card), a store, or a campaign or event. ``scene`` is
    what the code carries (WeChat's ``scene_str``; kept to 30 characters so it also fits a WeCom
    ``state``). The WeChat ticket, when one was made, is kept with its expiry."""

    __tablename__ = "guide_qr_code"
    __table_args__ = (UniqueConstraint("tenant_id", "scene"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("qrc"))
    scene: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # guide | store | campaign | event
    name: Mapped[str] = mapped_column(String(200))
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"), index=True)
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    campaign_code: Mapped[str | None] = mapped_column(String(40))
    # A campaign may set its own attribution window; None: the brand's.
    window_days: Mapped[int | None] = mapped_column()
    permanent: Mapped[bool] = mapped_column(default=False)
    wechat_appid: Mapped[str | None] = mapped_column(String(64))
    wechat_ticket: Mapped[str | None] = mapped_column(String(200))
    wechat_url: Mapped[str | None] = mapped_column(String(300))
    expires_at: Mapped[datetime | None] = mapped_column()
    scans: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class Touch(Base, TenantScoped):
    """A moment a guide or store reached a member: what attribution looks back on."""

    __tablename__ = "guide_touch"
    __table_args__ = (Index("ix_guide_touch_member", "tenant_id", "member_id", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tch"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    kind: Mapped[str] = mapped_column(String(16))  # scan | subscribe | binding | link | coupon | visit
    at: Mapped[datetime] = mapped_column()
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    qr_code_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide_qr_code.id"))
    campaign_code: Mapped[str | None] = mapped_column(String(40))
    window_days: Mapped[int | None] = mapped_column()  # the campaign's window, if it sets one
    source_ref: Mapped[str | None] = mapped_column(String(128))  # e.g. the WeChat event's dedupe key
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BindingChange(Base, TenantScoped):
    """One change of a member's exclusive guide: by a scan under the brand's policy, by HQ, or when a
    guide leaves and their members are handed over."""

    __tablename__ = "guide_binding_change"
    __table_args__ = (Index("ix_guide_binding_change_member", "tenant_id", "member_id", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("gbc"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    from_guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
    to_guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
    to_store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))  # a store's pool
    reason: Mapped[str] = mapped_column(String(16))  # scan | assign | handover | unbind
    at: Mapped[datetime] = mapped_column()
    # Until when the new guide keeps the member against other guides' scans (first-guide policy).
    protected_until: Mapped[datetime | None] = mapped_column()
    actor: Mapped[str] = mapped_column(String(64))
    touch_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide_touch.id"))


class Attribution(Base, TenantScoped, Timestamped):
    """The guide and store an order is credited to, and why (the rule and the touch). One per order."""

    __tablename__ = "guide_attribution"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id"),
        Index("ix_guide_attribution_guide", "tenant_id", "guide_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("att"))
    order_id: Mapped[str] = mapped_column(String(32), ForeignKey("sales_order.id"))
    member_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("member.id"))
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    touch_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide_touch.id"))
    rule: Mapped[str] = mapped_column(String(32))  # pos_sale | last_guide_touch | store_touch | ...
    window_days: Mapped[int | None] = mapped_column()
    at: Mapped[datetime] = mapped_column()  # when the order was placed
    amount_fen: Mapped[int] = mapped_column()


class CommissionDispute(Base, TenantScoped, Timestamped):
    """A guide (or their store) disputes a commission figure; resolved by a manual adjustment or rejected,
    with the reason. The adjustment itself is a ledger transfer, audited."""

    __tablename__ = "guide_commission_dispute"
    __table_args__ = (Index("ix_guide_commission_dispute_guide", "tenant_id", "guide_id", "period"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cdp"))
    guide_id: Mapped[str] = mapped_column(String(32), ForeignKey("guide.id"))
    period: Mapped[str] = mapped_column(String(7))  # 2026-10
    order_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("sales_order.id"))
    claim: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))  # open | adjusted | rejected
    resolution: Mapped[str | None] = mapped_column(String(500))
    transfer_id: Mapped[str | None] = mapped_column(String(32))
    raised_by: Mapped[str] = mapped_column(String(64))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column()


class ProfitShare(Base, TenantScoped, Timestamped):
    """One WeChat Pay profit-sharing request (分账) for a paid order: who receives what. ``out_order_no``
    is the request's id at WeChat Pay (the same one again is the same request); it is sent through the
    outbox, and ``status``/``results`` follow WeChat Pay's answers."""

    __tablename__ = "guide_profit_share"
    __table_args__ = (
        UniqueConstraint("tenant_id", "out_order_no"),
        Index("ix_guide_profit_share_order", "tenant_id", "order_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("psh"))
    order_id: Mapped[str] = mapped_column(String(32), ForeignKey("sales_order.id"))
    transaction_id: Mapped[str] = mapped_column(String(32))
    out_order_no: Mapped[str] = mapped_column(String(64))
    # [{"party", "type", "account", "amount_fen", "description"}]
    receivers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))  # pending | processing | finished | failed
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column()


class ProfitShareReturn(Base, TenantScoped, Timestamped):
    """Money taken back (回退) from a merchant receiver of a split, e.g. after a refund."""

    __tablename__ = "guide_profit_share_return"
    __table_args__ = (UniqueConstraint("tenant_id", "out_return_no"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("psr"))
    profit_share_id: Mapped[str] = mapped_column(String(32), ForeignKey("guide_profit_share.id"), index=True)
    out_return_no: Mapped[str] = mapped_column(String(64))
    return_mchid: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))  # pending | processing | success | failed
    fail_reason: Mapped[str | None] = mapped_column(String(100))
