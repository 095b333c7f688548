"""Coupon templates (what a coupon is and where it applies, with its budget), the coupons issued to
members, and their redemptions (核销). Face values in fen; see ``rules.py`` for what each field means."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

ISSUED = "issued"
REDEEMED = "redeemed"
VOID = "void"


class CouponTemplate(Base, TenantScoped, Timestamped):
    """``issued_count`` moves in the same ``UPDATE`` that checks it against ``total_quantity``, so the
    budget is never oversold whatever the concurrency."""

    __tablename__ = "coupon_template"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cpt"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(default=0)
    threshold_fen: Mapped[int] = mapped_column(default=0)
    rate_pct: Mapped[int] = mapped_column(default=100)
    cap_fen: Mapped[int | None] = mapped_column()
    sku: Mapped[str | None] = mapped_column(String(64))
    price_fen: Mapped[int] = mapped_column(default=0)
    online: Mapped[bool] = mapped_column(default=True)
    offline: Mapped[bool] = mapped_column(default=True)
    store_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    skus: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    exclusive: Mapped[bool] = mapped_column(default=False)
    with_points: Mapped[bool] = mapped_column(default=True)
    one_per_category: Mapped[bool] = mapped_column(default=False)
    valid_from: Mapped[datetime | None] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    valid_days: Mapped[int | None] = mapped_column()
    total_quantity: Mapped[int | None] = mapped_column()  # None: no budget
    issued_count: Mapped[int] = mapped_column(default=0)
    per_member_limit: Mapped[int | None] = mapped_column()
    restore_on_refund: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)


class CouponHolding(Base, TenantScoped):
    """How many coupons of a template a member was given: the per-member limit's counter."""

    __tablename__ = "coupon_holding"
    __table_args__ = (UniqueConstraint("tenant_id", "template_id", "member_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cph"))
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_template.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    issued: Mapped[int] = mapped_column(default=0)


class Coupon(Base, TenantScoped):
    __tablename__ = "coupon"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        # Issuing is idempotent: one coupon per (template, issue key).
        UniqueConstraint("tenant_id", "template_id", "issue_key"),
        Index("ix_coupon_member", "tenant_id", "member_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cpn"))
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_template.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    code: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column()
    valid_from: Mapped[datetime] = mapped_column()
    valid_until: Mapped[datetime | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))  # api | bulk | points | prize | reward
    issue_key: Mapped[str] = mapped_column(String(128))
    redeemed_at: Mapped[datetime | None] = mapped_column()


class CouponRedemption(Base, TenantScoped):
    """One redemption of a coupon on an order; a refund marks it reversed (the coupon may come back)."""

    __tablename__ = "coupon_redemption"
    __table_args__ = (Index("ix_coupon_redemption_coupon", "coupon_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cpr"))
    coupon_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    channel: Mapped[str] = mapped_column(String(32))
    order_no: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    discount_fen: Mapped[int] = mapped_column()
    order_fen: Mapped[int] = mapped_column()  # what the order's lines came to, for the reports
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(64))
    reversed_at: Mapped[datetime | None] = mapped_column()
    reversed_by: Mapped[str | None] = mapped_column(String(64))
