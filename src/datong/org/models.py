"""Regions, agents (franchisees), stores (with coordinates), guides and the brand's online shops."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

STORE_KINDS = ("direct", "franchise", "counter")


class Region(Base, TenantScoped, Timestamped):
    __tablename__ = "region"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("reg"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class Agent(Base, TenantScoped, Timestamped):
    """A franchisee: owns franchise stores and sees only those."""

    __tablename__ = "agent"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("agt"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    region_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("region.id"))


class Store(Base, TenantScoped, Timestamped):
    __tablename__ = "store"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sto"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # direct | franchise | counter
    agent_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("agent.id"), index=True)
    region_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("region.id"))
    province: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str | None] = mapped_column(String(40))
    district: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column()
    longitude: Mapped[float | None] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)


class Guide(Base, TenantScoped, Timestamped):
    """A shopping guide (导购). Their phone is staff data, not a member identity."""

    __tablename__ = "guide"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("gde"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    store_id: Mapped[str] = mapped_column(String(32), ForeignKey("store.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    level: Mapped[str] = mapped_column(String(16), default="standard")  # commission rules may depend on it
    left_at: Mapped[datetime | None] = mapped_column()  # set when the guide leaves and hands members over
    # The guide's openid at the brand's payment app: where WeChat Pay profit sharing pays commission.
    wechat_openid: Mapped[str | None] = mapped_column(String(64))


class Shop(Base, TenantScoped, Timestamped):
    """An online shop or app: a Tmall/JD shop, the official account, the mini-program."""

    __tablename__ = "shop"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "external_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("shp"))
    channel: Mapped[str] = mapped_column(String(20))  # tmall | jd | wechat | miniprogram
    external_id: Mapped[str] = mapped_column(String(64))  # shop id or appid
    name: Mapped[str] = mapped_column(String(200))
