"""Points programs: earn rules, tiers, rewards, expiry lots and each member's tier with its history.

A program's points live in one ledger (``ledger_id``); this domain decides how many points a sale earns
and which lots a spend draws on, and the ledger records the movements.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

EXPIRY_POLICIES = ("rolling_months", "end_of_next_year", "never")
TIER_BASES = ("points", "spend")
REWARD_KINDS = ("gift", "coupon")


class Program(Base, TenantScoped, Timestamped):
    __tablename__ = "loyalty_program"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("prg"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    ledger_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger.id"))
    points_per_yuan: Mapped[int] = mapped_column()  # base earning on money paid
    fen_per_point: Mapped[int] = mapped_column()  # what a point is worth when spent
    expiry_policy: Mapped[str] = mapped_column(String(20))
    expiry_months: Mapped[int | None] = mapped_column()
    tier_basis: Mapped[str] = mapped_column(String(10))
    hold_seconds: Mapped[int] = mapped_column(default=900)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EarnRule(Base, TenantScoped, Timestamped):
    """A rule that multiplies or adds to what a sale earns. Empty lists mean "any"."""

    __tablename__ = "loyalty_earn_rule"
    __table_args__ = (UniqueConstraint("tenant_id", "program_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ern"))
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    store_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime | None] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column()
    min_spend_fen: Mapped[int] = mapped_column(default=0)
    multiplier_pct: Mapped[int] = mapped_column(default=100)
    bonus_points: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class Tier(Base, TenantScoped):
    __tablename__ = "loyalty_tier"
    __table_args__ = (UniqueConstraint("tenant_id", "program_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tir"))
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    rank: Mapped[int] = mapped_column()
    threshold: Mapped[int] = mapped_column(BigInteger)  # points earned, or fen spent, in 12 months
    earn_multiplier_pct: Mapped[int] = mapped_column(default=100)
    birthday_bonus_points: Mapped[int] = mapped_column(default=0)


class MemberTier(Base, TenantScoped):
    """A member's current tier in a program. A member without a row is at the entry tier."""

    __tablename__ = "loyalty_member_tier"
    __table_args__ = (UniqueConstraint("tenant_id", "program_id", "member_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mti"))
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    tier_code: Mapped[str] = mapped_column(String(40))
    since: Mapped[datetime] = mapped_column()


class TierChange(Base, TenantScoped):
    """Tier history: append-only."""

    __tablename__ = "loyalty_tier_change"
    __table_args__ = (Index("ix_loyalty_tier_change_member", "tenant_id", "member_id", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tch"))
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    from_code: Mapped[str | None] = mapped_column(String(40))
    to_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(20))  # upgrade | review
    qualifying_value: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column()


class Reward(Base, TenantScoped, Timestamped):
    """Something a member can take for points: a gift collected at a store, or a coupon."""

    __tablename__ = "loyalty_reward"
    __table_args__ = (UniqueConstraint("tenant_id", "program_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rwd"))
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    points_cost: Mapped[int] = mapped_column()
    coupon_template: Mapped[str | None] = mapped_column(String(40))  # the coupon a "coupon" reward gives
    active: Mapped[bool] = mapped_column(default=True)


class PointsLot(Base, TenantScoped):
    """One earning (or migrated balance) with its expiry. ``id`` is the ledger transfer that credited it.

    ``remaining`` is a running figure kept under the member account's lock; the ledger's transfers that
    name the lot (``Transfer.lot_id``) are its record, and ``queries.verify_lots`` checks one against the
    other.
    """

    __tablename__ = "loyalty_points_lot"
    __table_args__ = (
        Index("ix_loyalty_points_lot_account", "account_id", "expires_at"),
        Index("ix_loyalty_points_lot_expiry", "tenant_id", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(32), ForeignKey("loyalty_program.id"))
    account_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger_account.id"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    issuer: Mapped[str] = mapped_column(String(64))  # the owner party that issued: hq, agent:…, store:…
    code: Mapped[str] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    order_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
