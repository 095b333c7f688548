"""Coupon templates (what a coupon is and where it applies, with its budget), the coupons issued to
members, and their redemptions (核销). Face values in fen; see ``rules.py`` for what each field means."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
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
    # Where it may be used in store: any of these stores, regions or agents' stores (all empty: anywhere).
    store_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    region_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    agent_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
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
    per_day_limit: Mapped[int | None] = mapped_column()  # coupons issued per day (China time), all members
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
    # The store whose allocation it came from, and the guide who gave it (a touch for attribution).
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"))
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


class CouponDayCount(Base, TenantScoped):
    """Coupons of a template issued on one day (China time): the per-day limit's counter."""

    __tablename__ = "coupon_day_count"
    __table_args__ = (UniqueConstraint("tenant_id", "template_id", "day"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cpd"))
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_template.id"))
    day: Mapped[date] = mapped_column()
    issued: Mapped[int] = mapped_column(default=0)


class CouponAllocation(Base, TenantScoped):
    """A store's share of a template's budget: coupons issued through the store (by its guides, at its
    counter) count here, and never exceed ``quantity``."""

    __tablename__ = "coupon_allocation"
    __table_args__ = (UniqueConstraint("tenant_id", "template_id", "store_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cpa"))
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_template.id"))
    store_id: Mapped[str] = mapped_column(String(32), ForeignKey("store.id"))
    quantity: Mapped[int] = mapped_column()
    issued: Mapped[int] = mapped_column(default=0)


class CouponIssueBatch(Base, TenantScoped, Timestamped):
    """A member list file issued in bulk: one coupon per good row, every bad row kept with its error.
    The same file for the same template is one batch, so sending it again issues nothing more."""

    __tablename__ = "coupon_issue_batch"
    __table_args__ = (UniqueConstraint("tenant_id", "template_id", "file_sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cib"))
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_template.id"))
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    rows_seen: Mapped[int] = mapped_column(default=0)
    rows_issued: Mapped[int] = mapped_column(default=0)
    rows_already: Mapped[int] = mapped_column(default=0)  # the member had this batch's coupon already
    rows_failed: Mapped[int] = mapped_column(default=0)
    actor: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column()


class CouponIssueRow(Base, TenantScoped):
    """One row of a bulk file that was not issued, with the reason; the row as given is encrypted (it
    may hold a phone number)."""

    __tablename__ = "coupon_issue_row"
    __table_args__ = (UniqueConstraint("tenant_id", "batch_id", "row_no"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cir"))
    batch_id: Mapped[str] = mapped_column(String(32), ForeignKey("coupon_issue_batch.id"), index=True)
    row_no: Mapped[int] = mapped_column()
    raw_enc: Mapped[bytes] = mapped_column(LargeBinary)
    field: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300))


class SpendClaim(Base, TenantScoped, Timestamped):
    """A member asks for a spend reward on a purchase datong did not see at the POS: an order number
    (checked against the orders by a rule) or a receipt photo (checked by staff)."""

    __tablename__ = "spend_claim"
    __table_args__ = (Index("ix_spend_claim_status", "tenant_id", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("scl"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # order_no | receipt
    channel: Mapped[str | None] = mapped_column(String(32))
    order_no: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    receipt_no: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[int | None] = mapped_column()  # as verified (the photo's total, read by staff)
    photo: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    photo_type: Mapped[str | None] = mapped_column(String(40))
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | rewarded | no_reward | rejected
    reason: Mapped[str | None] = mapped_column(String(300))
    order_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("sales_order.id"))
    coupon_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("coupon.id"))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column()


# --- lucky draws (the fairness scheme is in draws.py) ----------------------------------------------


class Draw(Base, TenantScoped, Timestamped):
    """A lucky draw. ``seed_enc`` is the secret seed, encrypted; ``commitment`` (its SHA-256) is
    published when the draw opens, and ``revealed_seed`` when it closes. ``entry_count`` is the number
    of the last entry: taking an entry moves it under the draw's row lock, so entries are numbered
    1, 2, 3 … without gaps and every limit below is checked by one entry at a time."""

    __tablename__ = "draw"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("drw"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # draft | open | closed
    opens_at: Mapped[datetime | None] = mapped_column()
    closes_at: Mapped[datetime | None] = mapped_column()
    pass_codes: Mapped[bool] = mapped_column(default=False)  # entries by a code from a pack or receipt
    points_cost: Mapped[int | None] = mapped_column()  # entries by points (None: not offered)
    free_per_day: Mapped[int] = mapped_column(default=0)  # free entries per member per day
    per_member_limit: Mapped[int | None] = mapped_column()  # entries per member, all kinds
    per_member_daily_limit: Mapped[int | None] = mapped_column()
    seed_enc: Mapped[bytes] = mapped_column(LargeBinary)
    commitment: Mapped[str] = mapped_column(String(64))
    revealed_seed: Mapped[str | None] = mapped_column(String(64))  # hex, once closed
    entry_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()


class DrawPrize(Base, TenantScoped):
    """A prize and its odds (``weight``). ``position`` fixes the order of the weight bands, which the
    audit needs; ``remaining`` moves under the draw's lock. Kinds: ``none`` (no prize), ``coupon``
    (a coupon of ``coupon_template``), ``points``, ``goods`` (collected at a store with a code)."""

    __tablename__ = "draw_prize"
    __table_args__ = (UniqueConstraint("tenant_id", "draw_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("drp"))
    draw_id: Mapped[str] = mapped_column(String(32), ForeignKey("draw.id"), index=True)
    position: Mapped[int] = mapped_column()
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    weight: Mapped[int] = mapped_column()
    stock: Mapped[int | None] = mapped_column()  # None: unlimited
    remaining: Mapped[int | None] = mapped_column()
    coupon_template: Mapped[str | None] = mapped_column(String(40))
    points: Mapped[int | None] = mapped_column()


class DrawEntry(Base, TenantScoped):
    """One entry and its outcome: the draw log an auditor replays."""

    __tablename__ = "draw_entry"
    __table_args__ = (
        UniqueConstraint("tenant_id", "draw_id", "entry_no"),
        Index("ix_draw_entry_member", "draw_id", "member_id", "day"),
        # Goods are collected with this code at a store.
        UniqueConstraint("tenant_id", "pickup_code"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("dre"))
    draw_id: Mapped[str] = mapped_column(String(32), ForeignKey("draw.id"))
    entry_no: Mapped[int] = mapped_column()
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    source: Mapped[str] = mapped_column(String(16))  # pass_code | points | free
    at: Mapped[datetime] = mapped_column()
    day: Mapped[date] = mapped_column()  # China time, for the daily limits
    prize_code: Mapped[str] = mapped_column(String(40))
    coupon_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("coupon.id"))
    pickup_code: Mapped[str | None] = mapped_column(String(16))
    collected_at: Mapped[datetime | None] = mapped_column()
    collected_store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DrawPassCode(Base, TenantScoped):
    """A code printed in a product pack or on a receipt: one entry each. Stored as its keyed hash, so
    the table cannot be read back into usable codes."""

    __tablename__ = "draw_pass_code"
    __table_args__ = (UniqueConstraint("tenant_id", "code_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("dpc"))
    draw_id: Mapped[str] = mapped_column(String(32), ForeignKey("draw.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    batch: Mapped[str] = mapped_column(String(64))  # e.g. the print run
    entry_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("draw_entry.id"))
    used_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
