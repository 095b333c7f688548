"""Orders and their lines from every channel, amounts in fen. Points and attribution build on these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

STATUSES = ("created", "paid", "shipped", "completed", "closed", "refunded", "unknown")
# What became of a coupon code written on an imported order (OrderCoupon.status).
PENDING = "pending"
REDEEMED = "redeemed"
REFUSED = "refused"


class Order(Base, TenantScoped, Timestamped):
    __tablename__ = "sales_order"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "order_no"),
        Index("ix_sales_order_member", "tenant_id", "member_id", "ordered_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ord"))
    channel: Mapped[str] = mapped_column(String(32))  # tmall | jd | pos | miniprogram | ...
    order_no: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("member.id"))
    buyer_kind: Mapped[str | None] = mapped_column(String(16))  # the identity that bought: nick, pin ...
    buyer_lookup: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    status_raw: Mapped[str] = mapped_column(String(64))
    total_fen: Mapped[int] = mapped_column()
    paid_fen: Mapped[int] = mapped_column()
    postage_fen: Mapped[int] = mapped_column(default=0)
    ordered_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    shop_external_id: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    source_record_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OrderLine(Base, TenantScoped):
    __tablename__ = "sales_order_line"
    __table_args__ = (UniqueConstraint("tenant_id", "order_id", "line_no"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("oln"))
    order_id: Mapped[str] = mapped_column(String(32), ForeignKey("sales_order.id"), index=True)
    line_no: Mapped[int] = mapped_column()
    sku: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(80))
    size: Mapped[str | None] = mapped_column(String(20))
    colour: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column()
    unit_price_fen: Mapped[int | None] = mapped_column()


class OrderRefund(Base, TenantScoped, Timestamped):
    """A full or partial refund of an order, in fen of the order's total. ``lines`` names the lines and
    quantities returned, when the caller knows them. What it did to points is in the ledger."""

    __tablename__ = "sales_order_refund"
    __table_args__ = (UniqueConstraint("tenant_id", "order_id", "refund_no"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rfd"))
    order_id: Mapped[str] = mapped_column(String(32), ForeignKey("sales_order.id"), index=True)
    refund_no: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column()
    lines: Mapped[list[dict[str, int]]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(300))
    refunded_at: Mapped[datetime] = mapped_column()


class OrderCoupon(Base, TenantScoped, Timestamped):
    """A brand coupon code an imported order carries (the export's coupon column), and what became of it.
    ``pending`` until the coupon job (``coupons/orders.py``) redeems it on the order, then ``redeemed``
    (with the redemption, which a refund may later reverse) or ``refused`` with every reason: the list
    the CRM team works through. ``reason`` on a pending code says what it waits for."""

    __tablename__ = "sales_order_coupon"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_id", "code"),
        Index("ix_sales_order_coupon_status", "tenant_id", "status", "order_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ocp"))
    order_id: Mapped[str] = mapped_column(String(32), ForeignKey("sales_order.id"))
    code: Mapped[str] = mapped_column(String(16))  # normalised, as coupon.code
    status: Mapped[str] = mapped_column(String(16), default=PENDING)  # PENDING | REDEEMED | REFUSED
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)  # codes: member, expired, not_found …
    reason: Mapped[str | None] = mapped_column(String(300))  # for a person
    coupon_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("coupon.id"))
    redemption_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("coupon_redemption.id"))
    checked_at: Mapped[datetime | None] = mapped_column()
