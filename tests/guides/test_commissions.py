"""Commission: the plan's rules with exact fen, posting once, taking back on refunds (also in a later
month), adjustments, statements and KPIs — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from datong.channels.records import OrderLineFields
from datong.core.db import Database
from datong.core.errors import NotFound, ValidationFailed
from datong.guides import commissions, queries, service
from datong.guides.commission_rules import (
    SaleLine,
    commission_for,
    kept_after_refunds,
    paid_shares,
    parse_plan,
)
from datong.ledger.models import Transfer
from datong.ledger.queries import verify_ledger
from datong.orders.models import Order
from datong.orders.service import record_refund
from datong.tenancy.models import AuditEntry, Tenant
from tests.guides.test_service import World, guide_code, make, scan
from tests.loyalty.helpers import ACTOR, T0, pos_order

DAY = timedelta(days=1)
PLAN = {
    "rules": [
        {"code": "shoes-senior", "categories": ["shoes"], "guide_levels": ["senior"], "rate_bp": 800},
        {"code": "shoes", "categories": ["shoes"], "rate_bp": 500},
        {"code": "tee", "skus": ["TEE-01"], "fen_per_item": 300},
        {"code": "base", "rate_bp": 100},
    ]
}


# --- the plan, pure --------------------------------------------------------------------------------


def test_each_line_takes_the_first_rule_that_matches() -> None:
    plan = parse_plan(PLAN)
    lines = [
        SaleLine(1, "SH-1", "shoes", 1, 40000),
        SaleLine(2, "TEE-01", "tops", 2, 10000),
        SaleLine(3, "CAP-1", "caps", 1, 10000),
    ]
    # Paid 54,000 of 60,000 list: each line at 90%.
    got = commission_for(plan, lines, paid_fen=54000, store_kind="direct", guide_level="standard")
    assert [(c.line_no, c.rule, c.base_fen, c.commission_fen) for c in got] == [
        (1, "shoes", 36000, 1800),
        (2, "tee", 9000, 600),
        (3, "base", 9000, 90),
    ]
    senior = commission_for(plan, lines[:1], paid_fen=40000, store_kind="direct", guide_level="senior")
    assert [(c.rule, c.commission_fen) for c in senior] == [("shoes-senior", 3200)]
    only_shoes = parse_plan(
        {"rules": [{"code": "s", "categories": ["shoes"], "store_kinds": ["franchise"], "rate_bp": 1000}]}
    )
    assert commission_for(only_shoes, lines, paid_fen=60000, store_kind="direct", guide_level=None) == []


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"rules": {}}, "commission.rules"),
        ({"rules": [{"rate_bp": 100}]}, "commission.rules.0.code"),
        ({"rules": [{"code": "a"}]}, "commission.rules.0.rate_bp"),
        ({"rules": [{"code": "a", "rate_bp": 100, "fen_per_item": 1}]}, "commission.rules.0.rate_bp"),
        ({"rules": [{"code": "a", "rate_bp": 10001}]}, "commission.rules.0.rate_bp"),
        ({"rules": [{"code": "a", "fen_per_item": 0}]}, "commission.rules.0.fen_per_item"),
        ({"rules": [{"code": "a", "rate_bp": 1, "categories": "shoes"}]}, "commission.rules.0.categories"),
        ({"rules": [{"code": "a", "rate_bp": 1, "colour": ["red"]}]}, "commission.rules.0.colour"),
        ({"rules": [{"code": "a", "rate_bp": 1}, {"code": "a", "rate_bp": 2}]}, "commission.rules"),
    ],
)
def test_a_bad_plan_names_its_field(plan: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_plan(plan)
    assert caught.value.field == field


@given(st.lists(st.integers(0, 10**7), min_size=1, max_size=10), st.integers(0, 10**8))
def test_paid_shares_add_up_exactly(amounts: list[int], paid: int) -> None:
    lines = [SaleLine(n, None, None, 1, a) for n, a in enumerate(amounts)]
    shares = paid_shares(lines, paid)
    assert sum(shares) == (paid if sum(amounts) > 0 else 0)
    assert all(s >= 0 for s in shares)


def test_refunds_take_back_the_same_share() -> None:
    assert kept_after_refunds(1800, paid_fen=36000, refunded_fen=0) == 1800
    assert kept_after_refunds(1800, paid_fen=36000, refunded_fen=12000) == 1200
    assert kept_after_refunds(1800, paid_fen=36000, refunded_fen=40000) == 0


# --- against the database ---------------------------------------------------------------------------


def world_with_plan(database: Database) -> World:
    w = make(database)
    with database.unit_of_work() as s:
        tenant = s.get(Tenant, w.tenant_id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "commission": PLAN}
    return w


def shoe_order(w: World, member: int, order_no: str, at: Any, *, status: str = "completed") -> str:
    lines = [
        OrderLineFields(sku="SH-1", title="跑鞋", category="shoes", quantity=1, unit_price_fen=40000),
        OrderLineFields(sku="TEE-01", title="T恤", category="tops", quantity=2, unit_price_fen=10000),
    ]
    with w.db.unit_of_work() as s:
        return pos_order(
            s,
            w.points,
            w.points.members[member],
            order_no,
            54000,
            total_fen=60000,
            store=None,
            channel="eshop",
            lines=lines,
            at=at,
            status=status,
        ).id


def post(w: World, order_id: str, at: Any = None) -> int | None:
    with w.db.unit_of_work() as s:
        service.attribute_order(s, tenant_id=w.tenant_id, order_id=order_id)
        posted = commissions.post_commission(s, tenant_id=w.tenant_id, order_id=order_id, actor=ACTOR, at=at)
        return posted.transfer.amount if posted and posted.transfer else None


def claw(w: World, order_id: str, at: Any) -> int:
    with w.db.unit_of_work() as s:
        return commissions.claw_back_commission(
            s, tenant_id=w.tenant_id, order_id=order_id, actor=ACTOR, at=at
        )


def refund(w: World, order_id: str, refund_no: str, amount_fen: int, at: Any) -> None:
    with w.db.unit_of_work() as s:
        order = s.get(Order, order_id)
        assert order is not None
        record_refund(
            s, tenant_id=w.tenant_id, order=order, refund_no=refund_no, amount_fen=amount_fen, at=at
        )


def statement(w: World, period: str) -> list[tuple[str, int, int, int, int, int]]:
    with w.db.reading() as s:
        rows, _ = queries.commission_statement(s, tenant_id=w.tenant_id, period=period)
        return [
            (r.guide_code, r.orders, r.earned_fen, r.clawed_back_fen, r.adjusted_fen, r.net_fen) for r in rows
        ]


def test_posted_once_and_taken_back_in_the_month_of_the_refund(database: Database) -> None:
    w = world_with_plan(database)
    scan(w, 0, guide_code(w, "G1"), T0)  # 2026-03-10
    order_id = shoe_order(w, 0, "ES-1", T0 + 10 * DAY)
    # shoes: 36,000 paid × 5% = 1,800; tees: 2 × 300 = 600.
    assert post(w, order_id, T0 + 12 * DAY) == 2400
    assert post(w, order_id, T0 + 13 * DAY) == 2400  # asked again: the first posting
    refund(w, order_id, "R1", 18000, T0 + 25 * DAY)  # a third back, in April (China time)
    assert claw(w, order_id, T0 + 25 * DAY) == 800
    assert claw(w, order_id, T0 + 26 * DAY) == 0  # cumulative: nothing more is due
    assert statement(w, "2026-03") == [("G1", 1, 2400, 0, 0, 2400)]
    assert statement(w, "2026-04") == [("G1", 0, 0, 800, 0, -800)]
    refund(w, order_id, "R2", 36000, T0 + 40 * DAY)
    assert claw(w, order_id, T0 + 40 * DAY) == 1600
    with database.reading() as s:
        assert verify_ledger(s, tenant_id=w.tenant_id) == []
        codes = s.execute(
            select(Transfer.code, func.count()).where(Transfer.order_id == order_id).group_by(Transfer.code)
        ).all()
        assert sorted(codes) == [("commission", 1), ("commission_clawback", 2)]


def test_an_order_not_credited_to_a_guide_or_not_completed_earns_nothing(database: Database) -> None:
    w = world_with_plan(database)
    assert post(w, shoe_order(w, 1, "ES-2", T0)) is None  # no touch
    scan(w, 2, guide_code(w, "G1"), T0)
    assert post(w, shoe_order(w, 2, "ES-3", T0 + DAY, status="paid")) is None
    assert post(w, shoe_order(w, 2, "ES-4", T0 + 20 * DAY)) is None  # outside the window
    with database.reading() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.tenant_id == w.tenant_id, Transfer.code.like("commission%"))
            )
            == 0
        )


def test_adjustments_need_a_reason_and_are_audited(database: Database) -> None:
    w = world_with_plan(database)
    for amount, reason, field in ((0, "x", "amount_fen"), (100, "  ", "reason")):
        with pytest.raises(ValidationFailed) as caught, database.unit_of_work() as s:
            commissions.adjust_commission(
                s,
                tenant_id=w.tenant_id,
                guide_id=w.guides["G1"],
                amount_fen=amount,
                reason=reason,
                actor=ACTOR,
            )
        assert caught.value.field == field
    with pytest.raises(NotFound), database.unit_of_work() as s:
        commissions.adjust_commission(
            s, tenant_id=w.tenant_id, guide_id="gde_nope", amount_fen=5, reason="x", actor=ACTOR
        )
    assert statement(w, "2026-03") == []
    with database.unit_of_work() as s:
        commissions.adjust_commission(
            s,
            tenant_id=w.tenant_id,
            guide_id=w.guides["G1"],
            amount_fen=500,
            reason="漏记一单",
            actor=ACTOR,
            at=T0,
        )
        commissions.adjust_commission(
            s,
            tenant_id=w.tenant_id,
            guide_id=w.guides["G1"],
            amount_fen=-200,
            reason="多记",
            actor=ACTOR,
            at=T0,
        )
    assert statement(w, "2026-03") == [("G1", 0, 0, 0, 300, 300)]
    with database.reading() as s:
        notes = s.scalars(
            select(AuditEntry.note)
            .where(AuditEntry.action == "guides.commission_adjust")
            .order_by(AuditEntry.note)
        ).all()
        assert notes == ["多记", "漏记一单"]


def test_kpis_by_guide_store_and_agent(database: Database) -> None:
    w = world_with_plan(database)
    g1, g3 = guide_code(w, "G1"), guide_code(w, "G3")
    with database.unit_of_work() as s:
        service.record_scan(
            s, tenant_id=w.tenant_id, member_id=w.points.members[0], scene=g1, at=T0, kind="subscribe"
        )
    scan(w, 1, g3, T0)
    post(w, shoe_order(w, 0, "ES-5", T0 + DAY), T0 + 2 * DAY)
    with database.reading() as s:
        by_guide = {
            k.key: k for k in queries.guide_kpis(s, tenant_id=w.tenant_id, period="2026-03", by="guide")
        }
        by_agent = {
            k.key: k for k in queries.guide_kpis(s, tenant_id=w.tenant_id, period="2026-03", by="agent")
        }
    k1 = by_guide[w.guides["G1"]]
    assert (
        k1.fans_added,
        k1.members_bound,
        k1.attributed_orders,
        k1.attributed_gmv_fen,
        k1.commission_fen,
    ) == (1, 1, 1, 54000, 2400)
    k3 = by_guide[w.guides["G3"]]
    assert (k3.fans_added, k3.members_bound, k3.attributed_orders, k3.commission_fen) == (0, 1, 0, 0)
    assert by_agent[w.points.agent_id].members_bound == 1 and by_agent[""].members_bound == 1
    with pytest.raises(ValidationFailed), database.reading() as s:
        queries.guide_kpis(s, tenant_id=w.tenant_id, period="2026-3x", by="guide")


def test_one_order_posted_at_once_from_eight_threads_is_posted_once(database: Database) -> None:
    w = world_with_plan(database)
    scan(w, 0, guide_code(w, "G1"), T0)
    order_id = shoe_order(w, 0, "ES-6", T0 + DAY)
    with database.unit_of_work() as s:
        service.attribute_order(s, tenant_id=w.tenant_id, order_id=order_id)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(post(w, order_id))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2400] * 8
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Transfer).where(Transfer.order_id == order_id)) == 1
