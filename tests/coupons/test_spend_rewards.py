"""Spend-tiered rewards: the band's coupon, once per order, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields
from datong.core.db import Database
from datong.core.errors import ValidationFailed
from datong.coupons import service
from datong.coupons.models import Coupon, CouponTemplate
from datong.coupons.spend_rewards import Band, band_for, parse_bands, reward_order, reward_sale
from datong.members.models import Member
from datong.orders.models import Order
from datong.orders.service import record_order
from datong.tenancy.models import AuditEntry, Tenant
from datong.tenancy.service import create_tenant

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
ACTOR = "system:test"
BANDS = [{"min_fen": 39900, "template": "C50"}, {"min_fen": 19900, "template": "C20"}]


def test_the_highest_band_reached_and_only_that_one() -> None:
    bands = parse_bands(BANDS)
    assert [band_for(amount, bands) for amount in (19899, 19900, 39899, 39900, 100000)] == [
        None,
        Band(19900, "C20"),
        Band(19900, "C20"),
        Band(39900, "C50"),
        Band(39900, "C50"),
    ]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"min_fen": 1}, "spend_rewards"),
        ([{"min_fen": 0, "template": "C20"}], "spend_rewards.0.min_fen"),
        ([{"min_fen": 100, "template": ""}], "spend_rewards.0.template"),
        ([{"min_fen": 100, "template": "A"}, {"min_fen": 100, "template": "B"}], "spend_rewards"),
    ],
)
def test_bad_bands_name_their_field(raw: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_bands(raw)
    assert err.value.field == field


def test_an_order_earns_its_bands_coupon_once(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant = create_tenant(s, code="beauty", name="美妆")
        tenant.settings = {**(tenant.settings or {}), "spend_rewards": BANDS}
        for code, amount in (("C20", 2000), ("C50", 5000)):
            service.create_template(
                s, tenant_id=tenant.id, actor=ACTOR, code=code, name=code, kind="cash_off", amount_fen=amount,
                valid_days=30,
            )  # fmt: skip
        member = Member(tenant_id=tenant.id, name="王芳")
        s.add(member)
        s.flush()
        won = []
        for order_no, paid in (("M1", 45000), ("M2", 19900), ("M3", 9900)):
            fields = OrderFields(
                order_no, "completed", "completed", paid, paid, created_at=NOW, completed_at=NOW
            )
            order = record_order(
                s,
                tenant_id=tenant.id,
                channel="miniprogram",
                fields=fields,
                member_id=member.id,
                store_id=None,
            )
            first = reward_order(s, order=order, at=NOW)
            again = reward_order(s, order=order, at=NOW)
            assert (first.id if first else None) == (again.id if again else None)
            won.append(first)
        tenant_id = tenant.id
    with database.reading() as s:
        templates = dict(s.execute(select(CouponTemplate.id, CouponTemplate.code)).all())
        issued = s.scalar(select(func.count()).select_from(Coupon).where(Coupon.tenant_id == tenant_id))
    assert [templates[c.template_id] if c else None for c in won] == ["C50", "C20", None]
    assert issued == 2


def _shop(s: Session, *, budget: int | None = None, bands: object = BANDS) -> tuple[str, str]:
    """A brand with the bands and C20/C50 (with ``budget`` each), and a member: (tenant id, member id)."""
    tenant = create_tenant(s, code="shoes", name="鞋服")
    tenant.settings = {**(tenant.settings or {}), "spend_rewards": bands}
    for code, amount in (("C20", 2000), ("C50", 5000)):
        service.create_template(
            s, tenant_id=tenant.id, actor=ACTOR, code=code, name=code, kind="cash_off", amount_fen=amount,
            valid_days=30, total_quantity=budget,
        )  # fmt: skip
    member = Member(tenant_id=tenant.id, name="王芳")
    s.add(member)
    s.flush()
    return tenant.id, member.id


def _sale(s: Session, tenant_id: str, member_id: str, order_no: str, paid: int) -> Order:
    fields = OrderFields(order_no, "completed", "completed", paid, paid, created_at=NOW, completed_at=NOW)
    return record_order(
        s, tenant_id=tenant_id, channel="miniprogram", fields=fields, member_id=member_id, store_id=None
    )


def test_an_order_is_rewarded_once_even_when_the_bands_change_later(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant_id, member_id = _shop(s)
        order = _sale(s, tenant_id, member_id, "M1", 25000)
        first = reward_order(s, order=order, at=NOW)
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None and first is not None
        # The brand moves C50 down to 199 yuan: the order's band is now C50, but it was rewarded already.
        tenant.settings = {"spend_rewards": [{"min_fen": 19900, "template": "C50"}]}
        s.flush()
        again = reward_order(s, order=order, at=NOW)
        assert again is not None and again.id == first.id
    with database.reading() as s:
        assert list(s.execute(select(Coupon.issue_key, Coupon.source))) == [(f"spend:{order.id}", "reward")]


def test_a_sale_stands_when_its_reward_cannot_be_given_and_the_audit_says_why(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant_id, member_id = _shop(s, budget=0)
        order = _sale(s, tenant_id, member_id, "M1", 45000)
        assert reward_sale(s, order=order, actor=ACTOR, at=NOW) is None
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.settings = {"spend_rewards": "20 yuan off from 199"}  # mistyped: a sale still stands
        s.flush()
        assert reward_sale(s, order=order, actor=ACTOR, at=NOW) is None
    with database.reading() as s:
        assert s.get(Order, order.id) is not None
        assert s.scalar(select(func.count()).select_from(Coupon)) == 0
        assert s.scalar(select(CouponTemplate.issued_count).where(CouponTemplate.code == "C50")) == 0
        missed = s.execute(
            select(AuditEntry.action, AuditEntry.object_id, AuditEntry.detail).order_by(AuditEntry.at)
        ).all()
    assert [tuple(m) for m in missed if m.action == "coupon.spend_reward_missed"] == [
        (
            "coupon.spend_reward_missed",
            order.id,
            {"reason": "the budget of 'C50' is spent", "field": "template"},
        ),
        (
            "coupon.spend_reward_missed",
            order.id,
            {"reason": "spend_rewards is a list of {min_fen, template}", "field": "spend_rewards"},
        ),
    ]


def test_a_sale_without_bands_or_not_paid_earns_nothing_and_writes_nothing(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant_id, member_id = _shop(s, bands=[])
        order = _sale(s, tenant_id, member_id, "M1", 45000)
        assert reward_sale(s, order=order, actor=ACTOR, at=NOW) is None
        order.status = "created"
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.settings = {"spend_rewards": BANDS}
        assert reward_sale(s, order=order, actor=ACTOR, at=NOW) is None
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Coupon)) == 0
        assert (
            s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("coupon.spend%"))
            )
            == 0
        )
