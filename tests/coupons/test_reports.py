"""Coupon reports with exact figures, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from datong.channels.records import OrderFields
from datong.core.db import Database
from datong.coupons import service
from datong.coupons.reports import Figures, store_report, template_report
from datong.coupons.rules import Basket, Line
from datong.members.models import Member
from datong.orders.service import record_order
from datong.org.models import Store
from datong.org.service import load_org
from datong.tenancy.service import create_tenant

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
ACTOR = "system:test"


def test_per_template_and_per_store(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant_id = create_tenant(s, code="beauty", name="美妆").id
        load_org(
            s,
            tenant_id=tenant_id,
            actor=ACTOR,
            data={"stores": [{"code": "S1", "name": "柜台一", "kind": "counter"}]},
        )
        store_id = s.scalar(select(Store.id))
        assert store_id is not None
        member = Member(tenant_id=tenant_id, name="王芳")
        s.add(member)
        s.flush()
        for code, fields in (
            ("T20", {"kind": "threshold", "threshold_fen": 19800, "amount_fen": 2000}),
            ("C5", {"kind": "cash_off", "amount_fen": 500}),
        ):
            service.create_template(
                s, tenant_id=tenant_id, actor=ACTOR, code=code, name=code, valid_days=30, **fields
            )
        coupons = {
            key: service.issue_coupon(
                s,
                tenant_id=tenant_id,
                template_code=template,
                member_id=member.id,
                issue_key=key,
                source="api",
                at=NOW,
            )[0]
            for key, template in (("t1", "T20"), ("t2", "T20"), ("t3", "T20"), ("c1", "C5"))
        }
        for key, order_no, price in (("t1", "P1", 19800), ("t2", "P2", 30000), ("c1", "P3", 10000)):
            basket = Basket("pos", store_id, NOW, [Line("SKU", None, 1, price)])
            done = service.redeem_coupon(
                s, coupon=coupons[key], basket=basket, order_no=order_no, actor=ACTOR
            )
            if key == "c1":
                service.reverse_redemption(
                    s, tenant_id=tenant_id, redemption_id=done.redemption.id, actor=ACTOR, at=NOW
                )
        for order_no, total in (("P1", 19800), ("P2", 30000), ("P4", 15000), ("P5", 25000)):
            fields = OrderFields(
                order_no, "completed", "completed", total, total, created_at=NOW, completed_at=NOW
            )
            record_order(
                s, tenant_id=tenant_id, channel="pos", fields=fields, member_id=member.id, store_id=store_id
            )
    window = {"since": NOW - timedelta(days=1), "until": NOW + timedelta(days=1)}
    with database.reading() as s:
        templates = template_report(s, tenant_id=tenant_id, at=NOW + timedelta(days=31), **window)
        stores = store_report(s, tenant_id=tenant_id, **window)
    assert templates == [
        # C5's only redemption was reversed: the coupon came back, then ran out unused.
        Figures(
            "C5", issued=1, redeemed=0, expired=1, gmv_fen=0, average_with_fen=None, average_without_fen=20000
        ),
        Figures(
            "T20",
            issued=3,
            redeemed=2,
            expired=1,
            gmv_fen=49800,
            average_with_fen=24900,
            average_without_fen=20000,
        ),
    ]
    assert templates[1].redemption_rate == 2 / 3
    assert stores == [Figures(store_id, 0, 2, 0, 49800, 24900, 20000)]


def test_per_store_for_one_template_counts_each_order_once(database: Database) -> None:
    with database.unit_of_work() as s:
        tenant_id = create_tenant(s, code="beauty", name="美妆").id
        load_org(
            s,
            tenant_id=tenant_id,
            actor=ACTOR,
            data={"stores": [{"code": c, "name": c, "kind": "direct"} for c in ("S1", "S2")]},
        )
        stores = dict(s.execute(select(Store.code, Store.id)).all())
        member = Member(tenant_id=tenant_id, name="王芳")
        s.add(member)
        s.flush()
        for code in ("T", "U"):
            service.create_template(
                s, tenant_id=tenant_id, actor=ACTOR, code=code, name=code, kind="cash_off", amount_fen=500,
                valid_days=30,
            )  # fmt: skip
        issued = {
            key: service.issue_coupon(
                s,
                tenant_id=tenant_id,
                template_code=template,
                member_id=member.id,
                issue_key=key,
                source="api",
                at=NOW,
                store_id=stores[store] if store else None,
            )[0]
            for key, template, store in (
                ("c1", "T", "S1"),
                ("c2", "T", "S1"),
                ("c3", "T", "S1"),
                ("c4", "T", "S2"),
                ("c5", "T", None),
                ("c6", "T", None),
                ("u1", "U", "S1"),
            )
        }
        # c1 and c2 on one order at S1; c5, given out by HQ, redeemed at S2; U's coupon on an order at S1.
        for key, store, order_no, price in (
            ("c1", "S1", "P1", 10000),
            ("c2", "S1", "P1", 10000),
            ("c4", "S2", "P2", 20000),
            ("c5", "S2", "P3", 30000),
            ("u1", "S1", "P4", 5000),
        ):
            basket = Basket("pos", stores[store], NOW, [Line("SKU", None, 1, price)])
            service.redeem_coupon(s, coupon=issued[key], basket=basket, order_no=order_no, actor=ACTOR)
        for order_no, store, total in (
            ("P1", "S1", 10000),
            ("P2", "S2", 20000),
            ("P3", "S2", 30000),
            ("P4", "S1", 5000),
            ("P5", "S1", 8000),
            ("P6", "S2", 12000),
        ):
            fields = OrderFields(
                order_no, "completed", "completed", total, total, created_at=NOW, completed_at=NOW
            )
            record_order(
                s,
                tenant_id=tenant_id,
                channel="pos",
                fields=fields,
                member_id=member.id,
                store_id=stores[store],
            )
        template_id = issued["c1"].template_id
    window = {
        "since": NOW - timedelta(days=1),
        "until": NOW + timedelta(days=1),
        "at": NOW + timedelta(days=31),
    }
    with database.reading() as s:
        [total] = template_report(s, tenant_id=tenant_id, template_id=template_id, **window)
        per_store = store_report(s, tenant_id=tenant_id, template_id=template_id, **window)
        only_s2 = store_report(
            s, tenant_id=tenant_id, template_id=template_id, store_ids={stores["S2"]}, **window
        )
        before = template_report(s, tenant_id=tenant_id, template_id=template_id, until=NOW, at=NOW)
    # P1 carries two of T's coupons: its 100 yuan count once. Orders with no coupon: P5 and P6.
    assert total == Figures("T", 6, 4, 2, 60000, 20000, 10000)
    assert {f.key: f for f in per_store} == {
        stores["S1"]: Figures(stores["S1"], 3, 2, 1, 10000, 10000, 8000),
        stores["S2"]: Figures(stores["S2"], 1, 2, 0, 50000, 25000, 12000),  # honours HQ's coupon too
    }
    assert only_s2 == [Figures(stores["S2"], 1, 2, 0, 50000, 25000, 12000)]
    assert before == [Figures("T", 0, 0, 0, 0, None, None)]  # asked for, the template has a row
