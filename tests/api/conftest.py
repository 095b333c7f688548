"""Fixtures for the API tests: the real app over a two-brand world, built once per backend per module.

Building a world costs a migrated database, two brands with their organisation, users for every
role (argon2), API keys and members; doing it per test would take minutes. So ``api_database`` is a
module-scoped twin of ``tests/conftest.py::database`` (same helpers, same two backends) and ``world``
is built on it once per module and backend. Tests in a module that uses ``world`` must therefore only
add data (fresh members, fresh merges ...) and compare counts before and after, never rely on a count
being absolute; and they must not also take the function-scoped ``database`` fixture, whose
PostgreSQL teardown empties every table.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from datong.api.app import create_app
from datong.api.routers import imports as imports_router
from datong.channels.models import ImportBatch
from datong.channels.records import FieldError, OrderFields
from datong.channels.registration import Registration, register_member
from datong.channels.service import finish_batch
from datong.core.clock import CHINA_TZ, utcnow
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Base, Database
from datong.coupons import service as coupons_service
from datong.coupons.models import Coupon, CouponRedemption
from datong.coupons.rules import Basket, Line
from datong.ledger.models import Account, Transfer
from datong.loyalty import redemptions
from datong.loyalty import service as points_service
from datong.loyalty.programs import get_program, load_program
from datong.members import service as members_service
from datong.members.models import Member
from datong.orders.models import Order, OrderRefund
from datong.orders.service import record_order
from datong.org.models import Agent, Guide, Region, Store
from datong.org.service import load_org
from datong.tenancy import rules
from datong.tenancy import service as tenancy
from datong.tenancy.models import AuditEntry
from tests.api.guides_world import build_guides
from tests.conftest import BACKENDS, _pg_database, _sqlite_database
from tests.members.helpers import card, ingest

ROLES = rules.ROLES  # hq_admin, hq_operator, agent_manager, store_manager, guide
KEYS = ("pos_key", "store_key")
# Every kind of caller the matrix tries, in the order reports print them.
CALLERS = (*ROLES, *KEYS, "anonymous", "bad_token", "other_brand_admin")
BAD_TOKEN = "dts_this-is-not-a-session-token"

ORG: dict[str, Any] = {
    "regions": [{"code": "EAST", "name": "华东大区"}, {"code": "SOUTH", "name": "华南大区"}],
    "agents": [
        {"code": "AGA", "name": "杭州某某贸易 (代理A)", "region_code": "EAST"},
        {"code": "AGB", "name": "广州某某商贸 (代理B)", "region_code": "SOUTH"},
    ],
    "stores": [
        {
            "code": "D1",
            "name": "上海南京东路直营店",
            "kind": "direct",
            "region_code": "EAST",
            "province": "上海市",
            "city": "上海市",
            "district": "黄浦区",
            "address": "南京东路299号",
            "latitude": 31.2363,
            "longitude": 121.4801,
        },
        {
            "code": "A1",
            "name": "杭州湖滨加盟店",
            "kind": "franchise",
            "agent_code": "AGA",
            "region_code": "EAST",
            "province": "浙江省",
            "city": "杭州市",
            "district": "上城区",
            "address": "湖滨路18号",
            "latitude": 30.2565,
            "longitude": 120.1621,
            "guides": [{"code": "G1", "name": "小周"}, {"code": "G2", "name": "小吴"}],
        },
        {
            "code": "A2",
            "name": "宁波天一加盟店",
            "kind": "franchise",
            "agent_code": "AGA",
            "region_code": "EAST",
            "province": "浙江省",
            "city": "宁波市",
            "district": "海曙区",
        },
        {
            "code": "B1",
            "name": "广州天河加盟店",
            "kind": "franchise",
            "agent_code": "AGB",
            "region_code": "SOUTH",
            "province": "广东省",
            "city": "广州市",
            "district": "天河区",
        },
        {
            "code": "C1",
            "name": "深圳万象城专柜",
            "kind": "counter",
            "region_code": "SOUTH",
            "province": "广东省",
            "city": "深圳市",
            "district": "南山区",
        },
    ],
}
STORE_CODES = ("D1", "A1", "A2", "B1", "C1")

# The members every brand starts with: label → (home store code, guide code, name, phone).
# Both brands hold the same phones: one person may be a member of two brands, and neither brand may
# see the other's member through it.
MEMBERS: dict[str, tuple[str | None, str | None, str, str]] = {
    "a1_guide": ("A1", "G1", "王芳", "13912340001"),  # agent A's store, bound to guide G1
    "a1": ("A1", None, "李娜", "13912340002"),  # agent A's store, no guide
    "a2": ("A2", None, "张伟", "13912340003"),  # agent A's other store
    "b1": ("B1", None, "刘洋", "13912340004"),  # agent B's store
    "direct": ("D1", None, "陈静", "13912340005"),  # the direct store (the store key's store)
    "online": (None, None, "杨磊", "13912340006"),  # registered in the mini-program: no store
}
CARD_SOURCE = "pos_hq"
MINI_APPID = "wxmini-app"

# The brand's points program (both brands load the same file). 1 point per yuan paid, a point is worth
# 2 fen; shoes earn double, a basket of 500 yuan or more earns 50 more; gold from 1000 points in 12
# months earns 1.5 times. Holds last a day, so none of the world's holds times out during a module.
POINTS_PROGRAM: dict[str, Any] = {
    "code": "club",
    "name": "会员积分",
    "points_per_yuan": 1,
    "fen_per_point": 2,
    "expiry": {"policy": "rolling_months", "months": 12},
    "tier_basis": "points",
    "hold_seconds": 86400,
    "tiers": [
        {"code": "silver", "name": "银卡", "rank": 0, "threshold": 0},
        {"code": "gold", "name": "金卡", "rank": 1, "threshold": 1000, "earn_multiplier_pct": 150},
    ],
    "earn_rules": [
        {"code": "shoes-x2", "name": "鞋类双倍", "categories": ["shoes"], "multiplier_pct": 200},
        {"code": "big-basket", "name": "满500送50", "min_spend_fen": 50000, "bonus_points": 50},
    ],
    "rewards": [{"code": "tote", "name": "帆布袋", "kind": "gift", "points_cost": 300}],
}
FEN_PER_POINT: int = POINTS_PROGRAM["fen_per_point"]
HOLD_SECONDS: int = POINTS_PROGRAM["hold_seconds"]
# The points every member starts with, all at one moment (``Brand.points_at``): an order of 100 yuan at
# their home store (the mini-program for "online") → 100 points, then a hold of 10 at that store, still
# open. Two more members shop away from home, at agent B's store B1 (see ``AWAY``).
WORLD_ORDER_FEN = 10000
WORLD_HOLD = 10
# target → the home store of a member who bought for 100 yuan at B1 and holds 10 points there: "a1_at_B1"
# is agent A's member (A1), "direct_at_B1" the direct store's (D1).
AWAY = {"a1_at_B1": "A1", "direct_at_B1": "D1"}
# A month in the past with known redemptions, for clearing: see ``_build_settlement``.
SETTLEMENT_PERIOD = "2025-11"

# The coupon template every brand starts with: 10 yuan off anything, valid for a year from issue, no
# budget and no limit per member. Every member of ``MEMBERS`` and every ``AWAY`` member holds two of
# them, both issued at ``Brand.coupons_at``: one unused (``Brand.coupons``), and one redeemed on an
# order of ``WORLD_COUPON_ORDER_FEN`` where the member shops (its home store, the mini-program for
# "online", B1 for the AWAY members), not reversed (``Brand.coupon_redemptions``).
COUPON_TEMPLATE: dict[str, Any] = {
    "code": "welcome",
    "name": "新会员立减10元",
    "kind": "cash_off",
    "amount_fen": 1000,
    "valid_days": 365,
}
WORLD_COUPON_ORDER_FEN = 5000


def instant(written: str | None) -> datetime:
    """A time the API wrote (ISO 8601 with an offset), to compare as a moment, whatever the offset."""
    assert written is not None
    moment = datetime.fromisoformat(written)
    assert moment.tzinfo is not None, written
    return moment


def a_year_on(earned_at: datetime) -> datetime:
    """When points earned at ``earned_at`` expire under POINTS_PROGRAM (12 rolling months), worked out by
    hand: at the end of the same day, China time, a year later (of 28 February for a 29 February)."""
    day = earned_at.astimezone(CHINA_TZ).date()
    try:
        later = day.replace(year=day.year + 1)
    except ValueError:
        later = day.replace(year=day.year + 1, day=28)
    following = later + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=CHINA_TZ)


_SURNAMES = "赵钱孙李周吴郑冯褚卫蒋沈韩朱秦尤许何吕施孔曹严华金魏陶姜戚谢邹喻柏水窦章云苏潘葛"
_GIVEN = "安宁佳怡子涵浩然思远雨桐梓萱宇轩欣悦一鸣"

# Cheap argon2 parameters while the world's users are created: the hash format and the verify path are
# the real ones, only the work factor is lower (login verifies with the parameters stored in the hash).
_FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Brand:
    code: str
    tenant_id: str
    regions: dict[str, str] = field(default_factory=dict)  # code → id
    agents: dict[str, str] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)
    guides: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # role → user id
    usernames: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # role → bearer token
    keys: dict[str, str] = field(default_factory=dict)  # pos_key | store_key → secret
    key_ids: dict[str, str] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)  # label → member id
    batch_id: str = ""  # an import batch with one failed row
    merge_id: str = ""  # a merge that is in force
    points_at: datetime | None = None  # when the members' starting points were earned and held
    away: dict[str, str] = field(default_factory=dict)  # AWAY target → member id
    orders: dict[str, str] = field(default_factory=dict)  # label or AWAY target → its order number
    holds: dict[str, str] = field(default_factory=dict)  # label or AWAY target → its open hold
    # SETTLEMENT_PERIOD: the store code where points were redeemed → that redemption's transfer ids
    settlement_redemptions: dict[str, list[str]] = field(default_factory=dict)
    coupons_at: datetime | None = None  # when the members' coupons were issued (and one redeemed)
    coupons: dict[str, str] = field(default_factory=dict)  # label or AWAY target → its unused coupon's code
    coupon_redemptions: dict[str, str] = field(default_factory=dict)  # label or AWAY target → redemption
    # The guides' world (tests/api/guides_world.py), by guide code (G1, G2): its card (a QR code id), the
    # member credited with an e-shop order in GUIDES_PERIOD, that order's number, an open dispute.
    guide_cards: dict[str, str] = field(default_factory=dict)
    guide_shoppers: dict[str, str] = field(default_factory=dict)
    guide_orders: dict[str, str] = field(default_factory=dict)
    guide_disputes: dict[str, str] = field(default_factory=dict)

    @property
    def agent_a(self) -> str:
        """The owner party of agent A's stores' points (A1, A2)."""
        return f"agent:{self.agents['AGA']}"

    @property
    def agent_b(self) -> str:
        return f"agent:{self.agents['AGB']}"

    def start_balance(self) -> int:
        """What a member of ``MEMBERS`` can spend: their starting points less their open hold."""
        return WORLD_ORDER_FEN // 100 - WORLD_HOLD


@dataclass
class World:
    backend: str
    db: Database
    keyring: Keyring
    app: FastAPI
    client: TestClient
    uploads: Path
    brands: dict[str, Brand] = field(default_factory=dict)  # "b1", "b2"
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def b1(self) -> Brand:
        return self.brands["b1"]

    @property
    def b2(self) -> Brand:
        return self.brands["b2"]

    # --- callers ------------------------------------------------------------------------------

    def token(self, caller: str) -> str | None:
        if caller in ROLES:
            return self.b1.tokens[caller]
        if caller in KEYS:
            return self.b1.keys[caller]
        if caller == "other_brand_admin":
            return self.b2.tokens[rules.HQ_ADMIN]
        if caller == "bad_token":
            return BAD_TOKEN
        assert caller == "anonymous", caller
        return None

    def auth(self, caller: str) -> dict[str, str]:
        token = self.token(caller)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def brand_of(self, caller: str) -> Brand:
        return self.b2 if caller == "other_brand_admin" else self.b1

    # --- what is stored ---------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Rows in every table, plus the newest member change, the orders' and the
        points' state (points left in lots, the member accounts' running totals), the coupons' (by status,
        reversed redemptions, budgets and members' counts spent, the newest redemption) and the uploads."""
        # Every table: a new domain's tables are counted without a change here.
        tables = sorted(Base.metadata.tables)
        parts = [f"(SELECT count(*) FROM {t}) AS {t}" for t in tables]
        parts += [
            f"(SELECT count(*) FROM member WHERE status = '{status}') AS member_{status}"
            for status in ("active", "merged", "deleted")
        ]
        parts += [
            f"(SELECT count(*) FROM sales_order WHERE status = '{status}') AS sales_order_{status}"
            for status in ("paid", "completed", "refunded")
        ]
        parts += [
            f"(SELECT count(*) FROM coupon WHERE status = '{status}') AS coupon_{status}"
            for status in ("issued", "redeemed", "void")
        ]
        parts.append(
            "(SELECT count(*) FROM coupon_redemption WHERE reversed_at IS NOT NULL) AS coupons_reversed"
        )
        parts.append(
            "(SELECT CAST(coalesce(sum(issued_count), 0) AS BIGINT) FROM coupon_template) AS coupons_issued"
        )
        parts.append("(SELECT CAST(coalesce(sum(issued), 0) AS BIGINT) FROM coupon_holding) AS coupons_held")
        parts.append("(SELECT max(redeemed_at) FROM coupon) AS coupon_redeemed")
        parts.append("(SELECT max(updated_at) FROM member) AS member_updated")
        parts.append("(SELECT count(*) FROM merge_event WHERE undone_at IS NOT NULL) AS merges_undone")
        parts.append(
            "(SELECT CAST(coalesce(sum(remaining), 0) AS BIGINT) FROM loyalty_points_lot) AS points_left"
        )
        parts += [
            f"(SELECT CAST(coalesce(sum({c}), 0) AS BIGINT) FROM ledger_account) AS account_{c}"
            for c in ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
        ]
        with self.db.reading() as s:
            row = dict(s.execute(text("SELECT " + ", ".join(parts))).mappings().one())
        row["upload_files"] = sum(1 for p in self.uploads.rglob("*") if p.is_file())
        return row

    def audit_actions(self, tenant_id: str, object_id: str) -> list[str]:
        with self.db.reading() as s:
            return list(
                s.scalars(
                    select(AuditEntry.action)
                    .where(AuditEntry.tenant_id == tenant_id, AuditEntry.object_id == object_id)
                    .order_by(AuditEntry.at, AuditEntry.id)
                )
            )

    def member(self, member_id: str) -> Member:
        with self.db.reading() as s:
            found = s.get(Member, member_id)
            assert found is not None, member_id
            return found

    # --- fresh objects for tests that change things ----------------------------------------------

    def fresh_phone(self) -> str:
        return f"137{next(self._serial):08d}"

    def fresh_name(self) -> str:
        n = next(self._serial)
        return _SURNAMES[n % len(_SURNAMES)] + _GIVEN[(n // len(_SURNAMES)) % len(_GIVEN)] + _GIVEN[n % 7]

    def fresh_card(self) -> str:
        return f"VIP{next(self._serial):07d}"

    def fresh_member(self, brand: Brand, *, store: str | None = None, guide: str | None = None) -> str:
        """A new person registered at a POS of ``store`` (a store code), bound to ``guide`` if given."""
        with self.db.unit_of_work() as s:
            member_id, created = register_member(
                s,
                tenant_id=brand.tenant_id,
                keyring=self.keyring,
                actor="system:test",
                registration=Registration(
                    source=CARD_SOURCE,
                    card_no=self.fresh_card(),
                    phone=self.fresh_phone(),
                    name=self.fresh_name(),
                    store_code=store,
                ),
            )
            assert created
            if guide:
                member = s.get(Member, member_id)
                assert member is not None
                member.guide_id = brand.guides[guide]
        return member_id

    def fresh_merge(self, brand: Brand) -> str:
        """Two new people merged by hand: the merge's id."""
        survivor, absorbed = self.fresh_member(brand), self.fresh_member(brand)
        with self.db.unit_of_work() as s:
            event = members_service.merge_members(
                s,
                tenant_id=brand.tenant_id,
                survivor_id=survivor,
                absorbed_id=absorbed,
                rule="manual",
                evidence={"reason": "test fixture"},
                actor="system:test",
            )
            return event.id

    # --- points, written through the services (what the POS did before a test) ----------------------

    def earn(
        self,
        brand: Brand,
        member_id: str,
        order_no: str,
        paid_fen: int,
        *,
        store: str | None,
        at: datetime | None = None,
        total_fen: int | None = None,
    ) -> points_service.EarnResult:
        """A completed sale at ``store`` (a code; None: the mini-program) and the points it earns."""
        at = at or utcnow()
        with self.db.unit_of_work() as s:
            order = record_order(
                s,
                tenant_id=brand.tenant_id,
                channel="pos" if store else "miniprogram",
                fields=OrderFields(
                    order_no=order_no,
                    status="completed",
                    status_raw="completed",
                    total_fen=paid_fen if total_fen is None else total_fen,
                    paid_fen=paid_fen,
                    created_at=at,
                    paid_at=at,
                    completed_at=at,
                ),
                member_id=member_id,
                store_id=brand.stores[store] if store else None,
            )
            return points_service.earn_for_order(
                s, program=get_program(s, tenant_id=brand.tenant_id), order=order, actor="system:test", at=at
            )

    def redeem(
        self,
        brand: Brand,
        member_id: str,
        points: int,
        *,
        store: str | None,
        hold: bool = False,
        at: datetime | None = None,
    ) -> redemptions.Redemption:
        """Points spent (or held, with ``hold``) at ``store`` (a code; None: the mini-program)."""
        with self.db.unit_of_work() as s:
            return redemptions.redeem_points(
                s,
                program=get_program(s, tenant_id=brand.tenant_id),
                member_id=member_id,
                points=points,
                channel="pos" if store else "miniprogram",
                store_id=brand.stores[store] if store else None,
                hold=hold,
                actor="system:test",
                at=at,
            )

    def moves(self, member_id: str) -> list[Transfer]:
        """Every transfer to or from the member's points account, oldest first."""
        with self.db.reading() as s:
            account = select(Account.id).where(Account.kind == "member", Account.holder == member_id)
            return list(
                s.scalars(
                    select(Transfer)
                    .where(
                        Transfer.debit_account_id.in_(account.scalar_subquery())
                        | Transfer.credit_account_id.in_(account.scalar_subquery())
                    )
                    .order_by(Transfer.created_at, Transfer.id)
                )
            )

    def order(self, brand: Brand, channel: str, order_no: str) -> Order:
        with self.db.reading() as s:
            found = s.scalar(
                select(Order).where(
                    Order.tenant_id == brand.tenant_id, Order.channel == channel, Order.order_no == order_no
                )
            )
            assert found is not None, order_no
            return found

    def refunds(self, order_id: str) -> list[OrderRefund]:
        with self.db.reading() as s:
            return list(
                s.scalars(
                    select(OrderRefund)
                    .where(OrderRefund.order_id == order_id)
                    .order_by(OrderRefund.refunded_at, OrderRefund.id)
                )
            )

    # --- coupons, written through the services (what HQ and the POS did before a test) --------------

    def issue_coupon(self, brand: Brand, member_id: str, *, template: str = "welcome") -> Coupon:
        """A new coupon of ``template`` for the member, issued now."""
        with self.db.unit_of_work() as s:
            coupon, created = coupons_service.issue_coupon(
                s,
                tenant_id=brand.tenant_id,
                template_code=template,
                member_id=member_id,
                issue_key=f"test-{self.fresh_card()}",
                source="api",
            )
            assert created
            return coupon

    def redeem_coupon(
        self, brand: Brand, code: str, *, store: str | None, order_fen: int = WORLD_COUPON_ORDER_FEN
    ) -> CouponRedemption:
        """The coupon redeemed now at ``store`` (a code; None: the mini-program) on one line of
        ``order_fen``."""
        with self.db.unit_of_work() as s:
            done = coupons_service.redeem_coupon(
                s,
                coupon=coupons_service.find_coupon(s, tenant_id=brand.tenant_id, code=code),
                basket=Basket(
                    channel="pos" if store else "miniprogram",
                    store_id=brand.stores[store] if store else None,
                    at=utcnow(),
                    lines=[Line("SKU-W", "tops", 1, order_fen)],
                ),
                order_no=f"CR-{self.fresh_card()}",
                actor="system:test",
            )
            return done.redemption

    def coupon_by_code(self, brand: Brand, code: str) -> Coupon:
        with self.db.reading() as s:
            found = s.scalar(select(Coupon).where(Coupon.tenant_id == brand.tenant_id, Coupon.code == code))
            assert found is not None, code
            return found

    def coupons_of(self, member_id: str) -> list[Coupon]:
        """The member's coupons, oldest first."""
        with self.db.reading() as s:
            return list(
                s.scalars(
                    select(Coupon).where(Coupon.member_id == member_id).order_by(Coupon.issued_at, Coupon.id)
                )
            )

    def coupon_redemptions(self, coupon_id: str) -> list[CouponRedemption]:
        with self.db.reading() as s:
            return list(
                s.scalars(
                    select(CouponRedemption)
                    .where(CouponRedemption.coupon_id == coupon_id)
                    .order_by(CouponRedemption.at, CouponRedemption.id)
                )
            )

    def wait_for_imports(self, timeout: float = 30.0) -> None:
        """Import jobs run in a thread after the upload answers: wait until none is running.
        (Batches written by ``tests.members.helpers.ingest`` are never finished: they are not waited for.)"""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.reading() as s:
                running = s.scalar(
                    select(ImportBatch.id)
                    .where(ImportBatch.status == "running", ImportBatch.actor != "system:test")
                    .limit(1)
                )
            if running is None:
                return
            assert time.monotonic() < deadline, f"import {running} still running after {timeout}s"
            time.sleep(0.02)


def _build_brand(world: World, code: str) -> Brand:
    db, keyring = world.db, world.keyring
    with db.unit_of_work() as s:
        tenant = tenancy.create_tenant(s, code=code, name=f"{code} 服饰")
        brand = Brand(code=code, tenant_id=tenant.id)
        load_org(s, tenant_id=tenant.id, actor="system:test", data=ORG)
        for model, target in (
            (Region, brand.regions),
            (Agent, brand.agents),
            (Store, brand.stores),
            (Guide, brand.guides),
        ):
            target.update(s.execute(select(model.code, model.id).where(model.tenant_id == tenant.id)).all())
        scope = {
            rules.HQ_ADMIN: {},
            rules.HQ_OPERATOR: {},
            rules.AGENT_MANAGER: {"agent_id": brand.agents["AGA"]},
            rules.STORE_MANAGER: {"store_id": brand.stores["A1"]},
            rules.GUIDE: {"guide_id": brand.guides["G1"]},
        }
        for role in ROLES:
            # The same usernames in both brands, with different passwords.
            brand.usernames[role] = role.replace("_", "-")
            brand.passwords[role] = f"{code}-{role}-密码-0"
            user = tenancy.create_user(
                s,
                tenant_id=tenant.id,
                username=brand.usernames[role],
                password=brand.passwords[role],
                role=role,
                **scope[role],
            )
            brand.users[role] = user.id
        for name, store in (("pos_key", None), ("store_key", brand.stores["D1"])):
            secret, key = tenancy.create_api_key(
                s,
                tenant_id=tenant.id,
                name=name,
                scopes=[
                    rules.MEMBERS_READ,
                    rules.MEMBERS_WRITE,
                    rules.POINTS_READ,
                    rules.POINTS_WRITE,
                    rules.COUPONS_READ,
                    rules.COUPONS_WRITE,
                ],
                store_id=store,
            )
            brand.keys[name], brand.key_ids[name] = secret, key.id
    with db.unit_of_work() as s:
        for label, (store, guide, name, phone) in MEMBERS.items():
            if store is None:
                registration = Registration(
                    source="miniprogram",
                    openid=f"o-{label}",
                    appid=MINI_APPID,
                    unionid=f"u-{label}",
                    phone=phone,
                    name=name,
                )
            else:
                registration = Registration(
                    source=CARD_SOURCE, card_no=f"C-{label}", phone=phone, name=name, store_code=store
                )
            member_id, created = register_member(
                s, tenant_id=tenant.id, keyring=keyring, actor="system:test", registration=registration
            )
            assert created, label
            brand.members[label] = member_id
            if guide:
                s.flush()
                bound = s.get(Member, member_id)
                assert bound is not None
                bound.guide_id = brand.guides[guide]  # binding is a later feature: set it directly
    bad = card(1, CARD_SOURCE, f"BAD-{code}", name="周强")
    bad.errors.append(FieldError("手机号", "not a mainland mobile or international number"))
    brand.batch_id = ingest(db, keyring, tenant.id, "members", CARD_SOURCE, [bad], name=f"{code}.csv").id
    with db.unit_of_work() as s:
        batch = s.get(ImportBatch, brand.batch_id)
        assert batch is not None
        finish_batch(s, batch)
    brand.merge_id = world.fresh_merge(brand)
    _build_points(world, brand)
    _build_settlement(world, brand)
    _build_coupons(world, brand)
    build_guides(world, brand)
    return brand


def _build_points(world: World, brand: Brand) -> None:
    """The points program, and every member's starting points and hold (see ``WORLD_ORDER_FEN``)."""
    with world.db.unit_of_work() as s:
        load_program(s, tenant_id=brand.tenant_id, data=POINTS_PROGRAM, actor="system:test")
    at = brand.points_at = utcnow()
    shoppers = {label: (brand.members[label], store) for label, (store, _, _, _) in MEMBERS.items()}
    for target, home in AWAY.items():
        brand.away[target] = world.fresh_member(brand, store=home)
        shoppers[target] = (brand.away[target], "B1")
    for target, (member_id, store) in shoppers.items():
        order_no = brand.orders[target] = f"W-{brand.code}-{target}"
        assert world.earn(brand, member_id, order_no, WORLD_ORDER_FEN, store=store, at=at).points == 100
        brand.holds[target] = world.redeem(brand, member_id, WORLD_HOLD, store=store, hold=True, at=at).id


def _build_settlement(world: World, brand: Brand) -> None:
    """In SETTLEMENT_PERIOD a new member of A1 earned 200 points at A1 (agent A's points), then spent 80
    at D1 (HQ honours them), 30 at B1 (agent B honours them) and 20 at A1 (agent A's own: no debt)."""
    member_id = world.fresh_member(brand, store="A1")
    earned_at = datetime(2025, 11, 10, 12, tzinfo=CHINA_TZ)
    assert world.earn(brand, member_id, f"S-{member_id}", 20000, store="A1", at=earned_at).points == 200
    for day, store, points in ((11, "D1", 80), (12, "B1", 30), (13, "A1", 20)):
        at = datetime(2025, 11, day, 12, tzinfo=CHINA_TZ)
        redemption = world.redeem(brand, member_id, points, store=store, at=at)
        brand.settlement_redemptions[store] = redemption.transfer_ids


def _build_coupons(world: World, brand: Brand) -> None:
    """The coupon template, and every member's two coupons (see ``COUPON_TEMPLATE``)."""
    with world.db.unit_of_work() as s:
        coupons_service.create_template(s, tenant_id=brand.tenant_id, actor="system:test", **COUPON_TEMPLATE)
    at = brand.coupons_at = utcnow()
    shoppers = {label: (brand.members[label], store) for label, (store, _, _, _) in MEMBERS.items()}
    shoppers.update({target: (member_id, "B1") for target, member_id in brand.away.items()})
    for target, (member_id, store) in shoppers.items():
        with world.db.unit_of_work() as s:
            unused, used = (
                coupons_service.issue_coupon(
                    s,
                    tenant_id=brand.tenant_id,
                    template_code=COUPON_TEMPLATE["code"],
                    member_id=member_id,
                    issue_key=f"world-{target}-{n}",
                    source="api",
                    at=at,
                )[0]
                for n in (1, 2)
            )
            brand.coupons[target] = unused.code
            basket = Basket(
                channel="pos" if store else "miniprogram",
                store_id=brand.stores[store] if store else None,
                at=at,
                lines=[Line("SKU-W", "tops", 1, WORLD_COUPON_ORDER_FEN)],
            )
            done = coupons_service.redeem_coupon(
                s, coupon=used, basket=basket, order_no=f"CW-{brand.code}-{target}", actor="system:test"
            )
            assert done.decision.discount_fen == COUPON_TEMPLATE["amount_fen"]
            brand.coupon_redemptions[target] = done.redemption.id


def _log_in(world: World, brand: Brand) -> None:
    for role in ROLES:
        answer = world.client.post(
            "/api/v1/auth/login",
            json={"tenant": brand.code, "username": brand.usernames[role], "password": brand.passwords[role]},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["user_id"], body["role"], body["token_type"]) == (brand.users[role], role, "bearer")
        brand.tokens[role] = body["token"]


@pytest.fixture(scope="module", params=BACKENDS, ids=list(BACKENDS))
def api_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """Like ``database`` (a freshly migrated, empty schema on each backend), but once per module."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        yield from _sqlite_database(template, tmp_path_factory.mktemp("api-sqlite"))
    else:
        yield from _pg_database(request.getfixturevalue("_pg_admin"))


@pytest.fixture(scope="module")
def world(api_database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two brands (``b1`` is the one under test; ``b2`` is the neighbour), each with 2 regions, agents
    A and B, stores D1 (direct), A1 and A2 (agent A's franchises), B1 (agent B's), C1 (a counter), guides
    G1 and G2 in A1, a user per role (agent manager of A, store manager of A1, guide G1), a brand-wide POS
    key and a key bound to D1 (both members:read + members:write + points:read + points:write +
    coupons:read + coupons:write), the members in ``MEMBERS``, an import batch with a failed row, a merge
    in force, the points program ``POINTS_PROGRAM`` with every member's starting points and open hold
    (``WORLD_ORDER_FEN``, ``AWAY``), redemptions in ``SETTLEMENT_PERIOD``, and the coupon template
    ``COUPON_TEMPLATE`` with every member's unused and redeemed coupon, and the guides' codes, credited
    orders, commission and disputes (``tests/api/guides_world.py``). Every brand-1 user and brand 2's
    admin are logged in through the API."""
    keyring = Keyring(master=os.urandom(32))
    backend = api_database.engine.dialect.name
    runtime = Runtime(settings=Settings(database_url=api_database.url), db=api_database, keyring=keyring)
    app = create_app(runtime, check_schema=True)
    uploads = tmp_path_factory.mktemp("uploads")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(imports_router, "UPLOADS", uploads)  # the upload route writes under the cwd otherwise
        with TestClient(app) as client:
            world = World(
                backend=backend, db=api_database, keyring=keyring, app=app, client=client, uploads=uploads
            )
            with pytest.MonkeyPatch.context() as fast:
                fast.setattr(tenancy, "_hasher", _FAST_HASHER)
                world.brands["b1"] = _build_brand(world, "brand-one")
                world.brands["b2"] = _build_brand(world, "brand-two")
            _log_in(world, world.b1)
            _log_in(world, world.b2)
            yield world
            world.wait_for_imports()
