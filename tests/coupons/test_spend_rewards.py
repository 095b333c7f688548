"""Spend-tiered rewards: the band's coupon, once per order, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from datong.channels.records import OrderFields
from datong.core.db import Database
from datong.core.errors import ValidationFailed
from datong.coupons import service
from datong.coupons.models import Coupon, CouponTemplate
from datong.coupons.spend_rewards import Band, band_for, parse_bands, reward_order
from datong.members.models import Member
from datong.orders.service import record_order
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
