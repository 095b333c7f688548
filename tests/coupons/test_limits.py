"""A template's limits beyond its budget: coupons per day (China time), stores' allocations of the budget,
issuing through a store and its guide; each refusal a conflict naming its field that changes nothing,
and, under concurrent issuing, never one coupon over a limit. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons import service
from datong.coupons.models import (
    Coupon,
    CouponAllocation,
    CouponDayCount,
    CouponHolding,
    CouponTemplate,
)
from datong.members.models import Member
from datong.org.models import Guide, Store
from datong.org.service import load_org
from datong.tenancy.models import AuditEntry
from datong.tenancy.service import create_tenant

# 23:00 on 23 November in China: an hour before the day (and the day's count) turns.
LATE = datetime(2026, 11, 23, 15, tzinfo=UTC)
ACTOR = "system:test"
ORG = {
    "stores": [
        {"code": "S1", "name": "一店", "kind": "direct", "guides": [{"code": "G1", "name": "小周"}]},
        {"code": "S2", "name": "二店", "kind": "direct"},
        {"code": "S3", "name": "三店", "kind": "direct"},
    ]
}


@dataclass
class Brand:
    db: Database
    tenant_id: str
    stores: dict[str, str] = field(default_factory=dict)
    guides: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)

    def issue(
        self, member: int, key: str, *, store: str | None = None, at: datetime = LATE, **more: Any
    ) -> Coupon:
        with self.db.unit_of_work() as s:
            coupon, _created = service.issue_coupon(
                s,
                tenant_id=self.tenant_id,
                template_code="T",
                member_id=self.members[member],
                issue_key=key,
                source="api",
                at=at,
                store_id=self.stores[store] if store else None,
                **more,
            )
            return coupon

    def allocate(self, store: str, quantity: int) -> CouponAllocation:
        with self.db.unit_of_work() as s:
            return service.set_allocation(
                s,
                tenant_id=self.tenant_id,
                template_code="T",
                store_id=self.stores[store],
                quantity=quantity,
                actor=ACTOR,
            )

    def state(self) -> dict[str, Any]:
        """Every counter and what it counts: the coupons by store, the budget, the day counts, the
        allocations and the members' holdings."""
        with self.db.reading() as s:
            codes = {v: k for k, v in self.stores.items()}
            return {
                "coupons": sorted(
                    (codes.get(store_id or "", "-"), int(n))
                    for store_id, n in s.execute(
                        select(Coupon.store_id, func.count()).group_by(Coupon.store_id)
                    )
                ),
                "issued_count": s.scalar(select(CouponTemplate.issued_count)),
                "days": sorted(
                    (d, n) for d, n in s.execute(select(CouponDayCount.day, CouponDayCount.issued))
                ),
                "allocations": sorted(
                    (codes[a.store_id], a.quantity, a.issued) for a in s.scalars(select(CouponAllocation))
                ),
                "holdings": sorted(s.scalars(select(CouponHolding.issued))),
            }


def _brand(db: Database, members: int = 3, **template: Any) -> Brand:
    with db.unit_of_work() as s:
        tenant_id = create_tenant(s, code="beauty", name="美妆").id
        load_org(s, tenant_id=tenant_id, actor=ACTOR, data=ORG)
        brand = Brand(db, tenant_id)
        brand.stores = dict(s.execute(select(Store.code, Store.id)).all())
        brand.guides = dict(s.execute(select(Guide.code, Guide.id)).all())
        for index in range(members):
            member = Member(tenant_id=tenant_id, name=f"会员{index}")
            s.add(member)
            s.flush()
            brand.members.append(member.id)
        service.create_template(
            s,
            tenant_id=tenant_id,
            actor=ACTOR,
            code="T",
            name="立减10元",
            kind="cash_off",
            amount_fen=1000,
            valid_days=30,
            **template,
        )
    return brand


def _refused(action: Callable[[], object]) -> tuple[type[Exception], str | None, str]:
    with pytest.raises((Conflict, NotFound, ValidationFailed)) as err:
        action()
    assert isinstance(err.value, Conflict | NotFound | ValidationFailed)
    return type(err.value), err.value.field, err.value.message


# --- per day ------------------------------------------------------------------------------------------


def test_the_day_limit_counts_coupons_per_china_day_for_all_members(database: Database) -> None:
    brand = _brand(database, per_day_limit=2, total_quantity=10)
    brand.issue(0, "k1")
    brand.issue(1, "k2")
    before = brand.state()
    assert _refused(lambda: brand.issue(2, "k3")) == (
        Conflict,
        "template",
        "the 2 coupons of 'T' for 2026-11-23 are given out",
    )
    # The budget moved before the day's count said no: it was taken back with it.
    assert (
        brand.state()
        == before
        == {
            "coupons": [("-", 2)],
            "issued_count": 2,
            "days": [(date(2026, 11, 23), 2)],
            "allocations": [],
            "holdings": [],
        }
    )
    brand.issue(2, "k3", at=LATE + timedelta(hours=1))  # midnight in China: a new day
    assert brand.state()["days"] == [(date(2026, 11, 23), 2), (date(2026, 11, 24), 1)]


# --- allocations -------------------------------------------------------------------------------------


def test_allocations_reserve_the_budget_for_their_stores(database: Database) -> None:
    brand = _brand(database, total_quantity=10)
    brand.allocate("S1", 4)
    brand.allocate("S2", 3)  # 3 left for issues through no store
    for n in range(4):
        brand.issue(n % 3, f"s1-{n}", store="S1")
    for n in range(3):
        brand.issue(n, f"hq-{n}")
    before = brand.state()
    assert before == {
        "coupons": [("-", 3), ("S1", 4)],
        "issued_count": 7,
        "days": [],
        "allocations": [("S1", 4, 4), ("S2", 3, 0)],
        "holdings": [],
    }
    refusals = [
        (
            lambda: brand.issue(0, "s1-5", store="S1"),
            (Conflict, "store_id", "the 4 coupons of 'T' allocated to store S1 are given out"),
        ),
        (
            lambda: brand.issue(0, "s3-1", store="S3"),
            (Conflict, "store_id", "store S3 has no allocation of 'T'"),
        ),
        (
            lambda: brand.issue(0, "hq-4"),
            (
                Conflict,
                "template",
                "the rest of the budget of 'T' is allocated to stores: issue through one",
            ),
        ),
    ]
    for action, expected in refusals:
        assert _refused(action) == expected
    assert brand.state() == before
    for n in range(3):  # S2's share was kept for it
        brand.issue(n, f"s2-{n}", store="S2")
    after = brand.state()
    assert (after["issued_count"], after["allocations"]) == (10, [("S1", 4, 4), ("S2", 3, 3)])
    assert _refused(lambda: brand.issue(0, "hq-5")) == (Conflict, "template", "the budget of 'T' is spent")


def test_an_allocation_keeps_within_the_budget_and_above_what_was_given_out(database: Database) -> None:
    brand = _brand(database, total_quantity=10)
    for n in range(3):
        brand.issue(n, f"hq-{n}")  # 3 given out through no store: 7 left to allocate
    brand.allocate("S1", 5)
    brand.issue(0, "s1-0", store="S1")
    brand.issue(1, "s1-1", store="S1")
    before = brand.state()
    with database.reading() as s:
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
    refusals = [
        (
            lambda: brand.allocate("S2", 3),
            (Conflict, "quantity", "allocations may not exceed the budget of 'T': 2 left"),
        ),
        (lambda: brand.allocate("S1", 1), (Conflict, "quantity", "store S1 has issued 2 of 'T' already")),
        (
            lambda: brand.allocate("S1", -1),
            (ValidationFailed, "quantity", "an allocation is 0 coupons or more"),
        ),
    ]
    for action, expected in refusals:
        assert _refused(action) == expected
    with pytest.raises(NotFound) as err, database.unit_of_work() as s:
        service.set_allocation(
            s, tenant_id=brand.tenant_id, template_code="T", store_id="sto_x", quantity=1, actor=ACTOR
        )
    assert err.value.field == "store_id"
    with pytest.raises(NotFound) as err, database.unit_of_work() as s:
        service.set_allocation(
            s,
            tenant_id=brand.tenant_id,
            template_code="NOPE",
            store_id=brand.stores["S1"],
            quantity=1,
            actor=ACTOR,
        )
    assert err.value.field == "template"
    assert brand.state() == before
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audits
    brand.allocate("S2", 2)
    brand.allocate("S1", 2)  # down to what it gave out: S1 issues no more, and 3 are free again
    assert brand.state()["allocations"] == [("S1", 2, 2), ("S2", 2, 0)]
    with database.reading() as s:
        details = list(
            s.scalars(
                select(AuditEntry.detail)
                .where(AuditEntry.action == "coupon.allocation_set")
                .order_by(AuditEntry.at, AuditEntry.id)
            )
        )
    assert [(d["store_id"], d["quantity"], d["was"]) for d in details] == [
        (brand.stores["S1"], 5, None),
        (brand.stores["S2"], 2, None),
        (brand.stores["S1"], 2, 5),
    ]


def test_a_guide_gives_coupons_through_their_own_store(database: Database) -> None:
    brand = _brand(database)
    coupon = brand.issue(0, "g1", guide_id=brand.guides["G1"])
    assert (coupon.store_id, coupon.guide_id) == (brand.stores["S1"], brand.guides["G1"])
    before = brand.state()
    assert _refused(lambda: brand.issue(0, "g2", store="S2", guide_id=brand.guides["G1"])) == (
        ValidationFailed,
        "guide_id",
        "guide G1 works at another store",
    )
    assert _refused(lambda: brand.issue(0, "g3", guide_id="gde_nope")) == (
        NotFound,
        "guide_id",
        "no guide gde_nope",
    )
    assert brand.state() == before


def test_a_refusal_takes_back_the_counters_before_it_in_a_transaction_that_goes_on(
    database: Database,
) -> None:
    """What a bulk file relies on: its rows share one transaction, and a refused row must leave no trace
    in the counters that moved before the refusing one. (So here the conflict is caught inside the
    transaction on purpose, and the transaction commits.)"""
    brand = _brand(database, total_quantity=5, per_member_limit=1, per_day_limit=10)
    brand.allocate("S1", 3)
    with database.unit_of_work() as s:

        def issue(member: int, key: str) -> None:
            service.issue_coupon(
                s,
                tenant_id=brand.tenant_id,
                template_code="T",
                member_id=brand.members[member],
                issue_key=key,
                source="bulk",
                at=LATE,
                store_id=brand.stores["S1"],
            )

        issue(0, "a")
        # The allocation, the budget and the day moved, then the member's limit said no.
        assert _refused(lambda: issue(0, "b")) == (Conflict, "member_id", "this member already has 1 of 'T'")
        issue(1, "c")
    assert brand.state() == {
        "coupons": [("S1", 2)],
        "issued_count": 2,
        "days": [(date(2026, 11, 23), 2)],
        "allocations": [("S1", 3, 2)],
        "holdings": [1, 1],
    }


# --- concurrency ------------------------------------------------------------------------------------


def _race(actions: list[Callable[[], object]]) -> list[str]:
    """Run every action at once, each in its own thread; what each came to ("ok" or the refusal), in
    the order of ``actions``."""
    barrier = threading.Barrier(len(actions))
    outcomes = [""] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        try:
            actions[index]()
            outcomes[index] = "ok"
        except Conflict as exc:
            outcomes[index] = exc.message

    workers = [threading.Thread(target=run, args=(index,)) for index in range(len(actions))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def test_concurrent_issuing_never_passes_the_day_limit(database: Database) -> None:
    brand = _brand(database, members=12, per_day_limit=4)
    outcomes = _race([lambda n=n: brand.issue(n, f"k{n}") for n in range(12)])
    assert sorted(outcomes) == sorted(["ok"] * 4 + ["the 4 coupons of 'T' for 2026-11-23 are given out"] * 8)
    assert brand.state() == {
        "coupons": [("-", 4)],
        "issued_count": 4,
        "days": [(date(2026, 11, 23), 4)],
        "allocations": [],
        "holdings": [],
    }


def test_concurrent_issuing_through_stores_and_not_never_passes_an_allocation_or_the_budget(
    database: Database,
) -> None:
    brand = _brand(database, members=16, total_quantity=8)
    brand.allocate("S1", 3)
    through_s1 = [lambda n=n: brand.issue(n, f"s1-{n}", store="S1") for n in range(8)]
    through_none = [lambda n=n: brand.issue(n, f"hq-{n}") for n in range(8, 16)]
    outcomes = _race(through_s1 + through_none)
    assert (
        sorted(outcomes[:8]) == ["ok"] * 3 + ["the 3 coupons of 'T' allocated to store S1 are given out"] * 5
    )
    # Five of the budget's eight were never allocated. A late loser finds S1's share given out too.
    assert outcomes[8:].count("ok") == 5
    assert {o for o in outcomes[8:] if o != "ok"} <= {
        "the rest of the budget of 'T' is allocated to stores: issue through one",
        "the budget of 'T' is spent",
    }
    assert brand.state() == {
        "coupons": [("-", 5), ("S1", 3)],
        "issued_count": 8,
        "days": [],
        "allocations": [("S1", 3, 3)],
        "holdings": [],
    }


def test_concurrent_issuing_to_one_member_never_passes_the_member_limit(database: Database) -> None:
    brand = _brand(database, members=1, per_member_limit=2, per_day_limit=100, total_quantity=100)
    outcomes = _race([lambda n=n: brand.issue(0, f"k{n}") for n in range(10)])
    assert sorted(outcomes) == sorted(["ok"] * 2 + ["this member already has 2 of 'T'"] * 8)
    assert brand.state() == {
        "coupons": [("-", 2)],
        "issued_count": 2,
        "days": [(date(2026, 11, 23), 2)],
        "allocations": [],
        "holdings": [2],
    }


# --- points buy coupons ------------------------------------------------------------------------------


def test_points_are_not_taken_when_the_coupon_they_buy_is_refused(database: Database) -> None:
    from datong.loyalty import redemptions
    from datong.loyalty.programs import load_program
    from tests.loyalty.helpers import PROGRAM, T0, balance, earn_points, make_world

    world = make_world(database, program={**PROGRAM, "rewards": []})
    with database.unit_of_work() as s:
        service.create_template(
            s, tenant_id=world.tenant_id, actor=ACTOR, code="C10", name="10元券", kind="cash_off",
            amount_fen=1000, valid_days=30, per_day_limit=1,
        )  # fmt: skip
        reward = {
            "code": "c10",
            "name": "10元券",
            "kind": "coupon",
            "points_cost": 200,
            "coupon_template": "C10",
        }
        load_program(s, tenant_id=world.tenant_id, data={**PROGRAM, "rewards": [reward]}, actor=ACTOR)
    earn_points(database, world, 0, "P1", 50000)  # 550 points

    def buy() -> redemptions.Redemption:
        with database.unit_of_work() as s:
            return redemptions.redeem_points(
                s, program=world.program(s), member_id=world.members[0], points=None, reward_code="c10",
                channel="miniprogram", store_id=None, actor=ACTOR, at=T0,
            )  # fmt: skip

    assert (buy().points, balance(database, world, 0)) == (200, 350)
    with database.reading() as s:
        before = s.execute(text("SELECT count(*), (SELECT count(*) FROM ledger_transfer) FROM coupon")).one()
    assert _refused(buy) == (
        Conflict,
        "template",
        f"the 1 coupons of 'C10' for {T0.date().isoformat()} are given out",
    )
    assert balance(database, world, 0) == 350  # the day's coupon is gone, and the points were not taken
    with database.reading() as s:
        assert (
            s.execute(text("SELECT count(*), (SELECT count(*) FROM ledger_transfer) FROM coupon")).one()
            == before
        )
