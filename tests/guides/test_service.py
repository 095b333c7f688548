"""Guides against the database (SQLite and PostgreSQL): codes, scans and binding under each policy, HQ
assignment, hand-over when a guide leaves, and attribution of online and POS orders."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.guides import service
from datong.guides.models import Attribution, BindingChange, QrCode, Touch
from datong.members.models import Member
from datong.org.models import Guide
from datong.org.service import load_org
from datong.tenancy.models import Tenant
from tests.loyalty.helpers import ACTOR, ORG, T0, PointsWorld, make_world, pos_order

DAY = timedelta(days=1)
GUIDES = [{"code": "G1", "name": "小林"}, {"code": "G2", "name": "小陈"}]


@dataclass
class World:
    points: PointsWorld
    guides: dict[str, str]

    @property
    def tenant_id(self) -> str:
        return self.points.tenant_id

    @property
    def db(self) -> Database:
        return self.points.db


def make(database: Database, brand: str = "shoes", **guides_policy: Any) -> World:
    points = make_world(database, members=3, code=brand)
    org = {
        "stores": [
            {**ORG["stores"][0], "guides": GUIDES},
            {**ORG["stores"][1], "guides": [{"code": "G3", "name": "小黄"}]},
        ]
    }
    with database.unit_of_work() as s:
        load_org(s, tenant_id=points.tenant_id, actor=ACTOR, data={**ORG, **org})
        tenant = s.get(Tenant, points.tenant_id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "guides": guides_policy}
        guides = dict(
            s.execute(select(Guide.code, Guide.id).where(Guide.tenant_id == points.tenant_id)).all()
        )
    return World(points, guides)


def guide_code(w: World, guide: str, **extra: Any) -> str:
    with w.db.unit_of_work() as s:
        code = service.create_qr_code(
            s,
            tenant_id=w.tenant_id,
            actor=ACTOR,
            kind="guide",
            name=f"{guide}的名片",
            guide_id=w.guides[guide],
            **extra,
        )
        return code.scene


def scan(w: World, member: int, scene: str, at: Any) -> service.Scan:
    with w.db.unit_of_work() as s:
        return service.record_scan(
            s, tenant_id=w.tenant_id, member_id=w.points.members[member], scene=scene, at=at
        )


def guide_of(w: World, member: int) -> tuple[str | None, str | None]:
    with w.db.reading() as s:
        m = s.get(Member, w.points.members[member])
        assert m is not None
        return m.guide_id, m.home_store_id


def history(w: World, member: int) -> list[tuple[str | None, str | None, str]]:
    with w.db.reading() as s:
        rows = s.scalars(
            select(BindingChange)
            .where(BindingChange.member_id == w.points.members[member])
            .order_by(BindingChange.at)
        )
        return [(r.from_guide_id, r.to_guide_id, r.reason) for r in rows]


def test_a_guide_code_carries_a_short_scene_and_names_its_store(database: Database) -> None:
    w = make(database)
    scene = guide_code(w, "G1")
    assert scene.startswith("g_") and len(scene) == 14
    with database.reading() as s:
        code = s.scalar(select(QrCode).where(QrCode.scene == scene))
        assert code is not None
        assert (code.kind, code.guide_id, code.store_id) == ("guide", w.guides["G1"], w.points.stores["D1"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "guide"}, "guide_id"),
        ({"kind": "store"}, "store_id"),
        ({"kind": "campaign"}, "campaign_code"),
        ({"kind": "campaign", "campaign_code": "xm"}, "store_id"),  # its scans would have no one to touch
        ({"kind": "event", "campaign_code": "xm"}, "store_id"),
        ({"kind": "poster"}, "kind"),
        ({"kind": "event", "campaign_code": "xm", "store_id": "D1", "scene": "厦门"}, "scene"),
        ({"kind": "event", "campaign_code": "xm", "store_id": "D1", "window_days": 0}, "window_days"),
        ({"kind": "store", "store_id": "sto_nope"}, "store_id"),
    ],
)
def test_bad_codes_are_refused_and_change_nothing(
    database: Database, fields: dict[str, Any], field: str
) -> None:
    w = make(database)
    if "store_id" in fields:  # a store of the world by its code
        fields = {**fields, "store_id": w.points.stores.get(fields["store_id"], fields["store_id"])}
    with pytest.raises((ValidationFailed, NotFound)) as caught, database.unit_of_work() as s:
        service.create_qr_code(s, tenant_id=w.tenant_id, actor=ACTOR, name="x", **fields)
    assert caught.value.field == field
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(QrCode)) == 0


def test_a_campaign_codes_scan_is_a_touch_of_its_store(database: Database) -> None:
    w = make(database)
    with database.unit_of_work() as s:
        code = service.create_qr_code(
            s,
            tenant_id=w.tenant_id,
            actor=ACTOR,
            kind="campaign",
            name="厦门展会",
            store_id=w.points.stores["F1"],
            campaign_code="xm",
            window_days=30,
        )
        scene = code.scene
    assert scan(w, 0, scene, T0).binding is None
    with database.reading() as s:
        touch = s.execute(
            select(Touch.guide_id, Touch.store_id, Touch.campaign_code, Touch.window_days)
        ).one()
        assert tuple(touch) == (None, w.points.stores["F1"], "xm", 30)
        assert s.scalar(select(QrCode.scans).where(QrCode.scene == scene)) == 1
    assert attribute(w, _online_order(w, 0, "ES-XM", 20)) == (None, w.points.stores["F1"], "store_touch")


def test_a_refused_scan_counts_nothing(database: Database) -> None:
    """A campaign code made before codes had to name a store: its scans are refused (a touch names a
    guide or a store). The WeChat callback catches the refusal and commits the follow: the code's count
    must not have moved."""
    w = make(database)
    with database.unit_of_work() as s:
        s.add(
            QrCode(
                tenant_id=w.tenant_id, scene="c_OLD", kind="campaign", name="旧活动码", campaign_code="old"
            )
        )
    # pytest.raises inside the unit of work on purpose: the caller carries on and commits, as the
    # callback does.
    with database.unit_of_work() as s, pytest.raises(ValidationFailed) as caught:
        service.record_scan(s, tenant_id=w.tenant_id, member_id=w.points.members[0], scene="c_OLD", at=T0)
    assert caught.value.field == "guide_id"
    with database.reading() as s:
        assert s.scalar(select(QrCode.scans).where(QrCode.scene == "c_OLD")) == 0
        assert s.scalar(select(func.count()).select_from(Touch)) == 0


def test_a_taken_scene_is_a_conflict(database: Database) -> None:
    w = make(database)
    guide_code(w, "G1", scene="xm-event")
    with pytest.raises(Conflict):
        guide_code(w, "G2", scene="xm-event")


def test_first_guide_keeps_the_member_for_the_protection_period(database: Database) -> None:
    w = make(database, protection_days=30)
    g1, g2 = guide_code(w, "G1"), guide_code(w, "G2")
    first = scan(w, 0, g1, T0)
    assert first.binding is not None and first.binding.protected_until == T0 + 30 * DAY
    assert guide_of(w, 0) == (w.guides["G1"], w.points.stores["D1"])
    assert scan(w, 0, g2, T0 + 29 * DAY).binding is None  # protected: a touch only
    assert guide_of(w, 0)[0] == w.guides["G1"]
    assert scan(w, 0, g2, T0 + 30 * DAY).binding is not None
    assert guide_of(w, 0)[0] == w.guides["G2"]
    assert history(w, 0) == [(None, w.guides["G1"], "scan"), (w.guides["G1"], w.guides["G2"], "scan")]
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Touch)) == 3
        assert s.scalar(select(QrCode.scans).where(QrCode.scene == g2)) == 2


def test_last_scan_wins_and_hq_assigns_ignores_scans(database: Database) -> None:
    w = make(database, binding="last_scan")
    g1, g2 = guide_code(w, "G1"), guide_code(w, "G2")
    scan(w, 0, g1, T0)
    scan(w, 0, g2, T0 + DAY)
    assert guide_of(w, 0)[0] == w.guides["G2"]
    hq = make(database, "bags", binding="hq_assigns")
    h1 = guide_code(hq, "G1")
    assert scan(hq, 0, h1, T0).binding is None
    assert guide_of(hq, 0)[0] is None
    with database.unit_of_work() as s:
        service.assign_guide(
            s,
            tenant_id=hq.tenant_id,
            member_id=hq.points.members[0],
            guide_id=hq.guides["G3"],
            actor=ACTOR,
            at=T0,
        )
    assert guide_of(hq, 0) == (hq.guides["G3"], hq.points.stores["F1"])
    assert history(hq, 0) == [(None, hq.guides["G3"], "assign")]


def test_an_unknown_scene_or_another_brands_code_records_nothing(database: Database) -> None:
    w = make(database)
    other = make(database, "bags")
    foreign = guide_code(other, "G1")
    for scene in ("g_UNKNOWN00000", foreign):
        with pytest.raises(NotFound):
            scan(w, 0, scene, T0)
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Touch).where(Touch.tenant_id == w.tenant_id)) == 0
    assert guide_of(w, 0) == (None, w.points.stores["D1"])


def test_a_leaving_guide_hands_members_to_a_guide_or_the_stores_pool(database: Database) -> None:
    w = make(database)
    g1 = guide_code(w, "G1")
    scan(w, 0, g1, T0)
    scan(w, 1, g1, T0)
    with database.unit_of_work() as s:
        moved = service.hand_over_members(
            s,
            tenant_id=w.tenant_id,
            guide_id=w.guides["G1"],
            to_guide_id=w.guides["G2"],
            actor=ACTOR,
            at=T0 + DAY,
        )
    assert moved == 2
    assert guide_of(w, 0)[0] == guide_of(w, 1)[0] == w.guides["G2"]
    assert history(w, 0) == [(None, w.guides["G1"], "scan"), (w.guides["G1"], w.guides["G2"], "handover")]
    with database.reading() as s:
        g1_row = s.get(Guide, w.guides["G1"])
        assert g1_row is not None and (g1_row.active, g1_row.left_at) == (False, T0 + DAY)
    # A left guide's code still records a touch (of the store alone) but binds no one.
    assert scan(w, 2, g1, T0 + 2 * DAY).binding is None
    with database.unit_of_work() as s:
        moved = service.hand_over_members(
            s,
            tenant_id=w.tenant_id,
            guide_id=w.guides["G2"],
            to_store_id=w.points.stores["F1"],
            actor=ACTOR,
            at=T0 + 3 * DAY,
        )
    assert moved == 2
    assert guide_of(w, 0) == (None, w.points.stores["F1"])
    assert history(w, 0)[-1] == (w.guides["G2"], None, "handover")


def test_a_departed_guides_code_is_a_touch_of_its_store_alone(database: Database) -> None:
    w = make(database)
    g1 = guide_code(w, "G1")
    with database.unit_of_work() as s:
        service.hand_over_members(
            s, tenant_id=w.tenant_id, guide_id=w.guides["G1"], to_guide_id=w.guides["G2"], actor=ACTOR, at=T0
        )
    got = scan(w, 0, g1, T0 + DAY)
    assert got.binding is None
    with database.reading() as s:
        touch = s.execute(select(Touch.kind, Touch.guide_id, Touch.store_id, Touch.qr_code_id)).one()
        code = s.scalar(select(QrCode).where(QrCode.scene == g1))
        assert code is not None
    assert tuple(touch) == ("scan", None, w.points.stores["D1"], code.id)
    assert code.scans == 1  # the code still counts its scans
    assert guide_of(w, 0) == (None, w.points.stores["D1"])
    # An order after it credits the store, never the guide who left (nor commission to them).
    assert attribute(w, _online_order(w, 0, "ES-LEFT", 3)) == (None, w.points.stores["D1"], "store_touch")


def test_hand_over_refusals_change_nothing(database: Database) -> None:
    w = make(database)
    scan(w, 0, guide_code(w, "G1"), T0)
    for kwargs, field in (
        ({}, "to_guide_id"),
        ({"to_guide_id": "G1"}, "to_guide_id"),
        ({"to_guide_id": "G2", "to_store_id": "D1"}, "to_guide_id"),
    ):
        ids = {k: (w.guides[v] if k == "to_guide_id" else w.points.stores[v]) for k, v in kwargs.items()}
        with pytest.raises((ValidationFailed, Conflict)) as caught, database.unit_of_work() as s:
            service.hand_over_members(
                s, tenant_id=w.tenant_id, guide_id=w.guides["G1"], actor=ACTOR, at=T0, **ids
            )
        assert caught.value.field == field
    assert guide_of(w, 0)[0] == w.guides["G1"]
    assert history(w, 0) == [(None, w.guides["G1"], "scan")]


def _online_order(w: World, member: int, order_no: str, days_after: int, channel: str = "eshop") -> str:
    with w.db.unit_of_work() as s:
        return pos_order(
            s,
            w.points,
            w.points.members[member],
            order_no,
            39900,
            store=None,
            channel=channel,
            at=T0 + days_after * DAY,
        ).id


def attribute(
    w: World, order_id: str, pos_guide: str | None = None
) -> tuple[str | None, str | None, str] | None:
    with w.db.unit_of_work() as s:
        got = service.attribute_order(
            s,
            tenant_id=w.tenant_id,
            order_id=order_id,
            pos_guide_id=w.guides[pos_guide] if pos_guide else None,
        )
        return (got.guide_id, got.store_id, got.rule) if got else None


@pytest.mark.parametrize(
    ("window", "day", "credited"), [(15, 10, True), (15, 15, True), (15, 16, False), (30, 16, True)]
)
def test_online_orders_within_the_window_are_credited(
    database: Database, window: int, day: int, credited: bool
) -> None:
    w = make(database, window_days=window)
    scan(w, 0, guide_code(w, "G1"), T0)
    order_id = _online_order(w, 0, f"ES{day}", day)
    expected = (w.guides["G1"], w.points.stores["D1"], "last_guide_touch") if credited else None
    assert attribute(w, order_id) == expected
    assert attribute(w, order_id) == expected  # asked again: the same answer, one row at most
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Attribution)) == (1 if credited else 0)


def test_a_campaign_code_sets_its_own_window(database: Database) -> None:
    w = make(database)
    scene = guide_code(w, "G2", window_days=30)
    scan(w, 1, scene, T0)
    assert attribute(w, _online_order(w, 1, "ES-20", 20)) == (
        w.guides["G2"],
        w.points.stores["D1"],
        "last_guide_touch",
    )


def test_a_sent_coupon_is_a_touch_and_pos_sales_go_to_the_guide_who_rang_them(database: Database) -> None:
    w = make(database)
    with database.unit_of_work() as s:
        service.record_touch(
            s,
            tenant_id=w.tenant_id,
            member_id=w.points.members[2],
            kind="coupon",
            at=T0,
            guide_id=w.guides["G3"],
        )
    assert attribute(w, _online_order(w, 2, "MP-1", 3, "miniprogram")) == (
        w.guides["G3"],
        w.points.stores["F1"],
        "last_guide_touch",
    )
    with database.unit_of_work() as s:
        pos_id = pos_order(s, w.points, w.points.members[2], "POS-1", 10000, store="D1", at=T0 + DAY).id
    assert attribute(w, pos_id) is None  # an in-store sale is not looked back on
    with database.unit_of_work() as s:
        pos2 = pos_order(s, w.points, w.points.members[2], "POS-2", 10000, store="D1", at=T0 + DAY).id
    assert attribute(w, pos2, pos_guide="G1") == (w.guides["G1"], w.points.stores["D1"], "pos_sale")


def test_a_coupon_a_guide_sent_is_a_touch(database: Database) -> None:
    from datong.coupons import service as coupons

    w = make(database)
    with database.unit_of_work() as s:
        coupons.create_template(
            s,
            tenant_id=w.tenant_id,
            actor=ACTOR,
            code="T10",
            name="立减10元",
            kind="cash_off",
            amount_fen=1000,
            valid_days=30,
        )
        coupons.issue_coupon(
            s,
            tenant_id=w.tenant_id,
            template_code="T10",
            member_id=w.points.members[1],
            issue_key="g1-sent",
            source="api",
            at=T0,
            store_id=w.points.stores["D1"],
            guide_id=w.guides["G1"],
        )
    with database.reading() as s:
        touch = s.execute(select(Touch.kind, Touch.at, Touch.guide_id, Touch.store_id)).one()
    assert tuple(touch) == ("coupon", T0, w.guides["G1"], w.points.stores["D1"])
    order_id = _online_order(w, 1, "ES-C1", 5)
    assert attribute(w, order_id) == (w.guides["G1"], w.points.stores["D1"], "last_guide_touch")


def test_scans_of_many_guides_codes_at_once_bind_a_new_member_once(database: Database) -> None:
    """Eight guides' codes scanned by one new member at the same moment, each in its own transaction:
    under first_protected exactly one guide binds the member, and the other scans are touches only."""
    w = make(database)
    more = [{"code": f"G{n}", "name": f"导购{n}"} for n in range(4, 9)]
    with database.unit_of_work() as s:
        load_org(s, tenant_id=w.tenant_id, actor=ACTOR, data={"stores": [{"code": "D1", "guides": more}]})
        w.guides.update(s.execute(select(Guide.code, Guide.id).where(Guide.tenant_id == w.tenant_id)).all())
    scenes = [guide_code(w, f"G{n}") for n in range(1, 9)]
    barrier = threading.Barrier(len(scenes))
    results: list[object] = []

    def worker(scene: str) -> None:
        barrier.wait()
        try:
            results.append(scan(w, 0, scene, T0).binding is not None)
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(scene,)) for scene in scenes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [False] * 7 + [True]
    [(from_guide, to_guide, reason)] = history(w, 0)
    assert (from_guide, reason) == (None, "scan")
    with database.reading() as s:
        winner = s.get(Guide, to_guide)
        assert winner is not None
        assert guide_of(w, 0) == (winner.id, winner.store_id)  # G3 is of F1, the others of D1
        assert s.scalar(select(func.count()).select_from(Touch)) == 8
        assert set(s.scalars(select(QrCode.scans))) == {1}
