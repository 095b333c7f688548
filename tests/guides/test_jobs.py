"""The guides' batch jobs against the database (SQLite and PostgreSQL): attributing recent online orders,
posting commission on completed credited orders, taking it back on refunds and closings; idempotent,
resumable, batch by batch. And the issue's end-to-end run: a guide's code, a follow, a Tmall order
imported days later, credited, paid commission, refunded, taken back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from datong.channels.records import OrderFields
from datong.core.db import Database
from datong.guides import jobs, queries, service
from datong.guides.models import Attribution
from datong.ledger.models import Transfer
from datong.ledger.queries import verify_ledger
from datong.orders.models import Order
from datong.orders.service import IncomingOrder, record_refund, upsert_orders
from datong.tenancy.models import Tenant
from tests.guides.test_commissions import shoe_order, world_with_plan
from tests.guides.test_service import World, guide_code, make, scan
from tests.loyalty.helpers import ACTOR, T0, pos_order

DAY = timedelta(days=1)


def imported(
    w: World, channel: str, order_no: str, member: int | None, paid_fen: int, at: datetime, **kw: str
) -> str:
    """An order as a Tmall or JD export gives it (``status`` completed unless said)."""
    status = kw.get("status", "completed")
    fields = OrderFields(
        order_no,
        status,
        kw.get("status_raw", "交易成功"),
        paid_fen,
        paid_fen,
        created_at=at,
        paid_at=at,
        completed_at=at if status == "completed" else None,
    )
    member_id = w.points.members[member] if member is not None else None
    with w.db.unit_of_work() as s:
        upsert_orders(
            s, tenant_id=w.tenant_id, incoming=[IncomingOrder(channel, fields, member_id, "nick", "n", None)]
        )
        found = s.scalar(select(Order.id).where(Order.tenant_id == w.tenant_id, Order.order_no == order_no))
        assert found is not None
        return found


def online(
    w: World, member: int, order_no: str, at: datetime, *, channel: str = "eshop", status: str = "completed"
) -> str:
    with w.db.unit_of_work() as s:
        return pos_order(
            s,
            w.points,
            w.points.members[member],
            order_no,
            39900,
            store=None,
            channel=channel,
            at=at,
            status=status,
        ).id


def credits(w: World) -> dict[str, tuple[str | None, str | None, str]]:
    with w.db.reading() as s:
        rows = s.execute(
            select(Order.order_no, Attribution.guide_id, Attribution.store_id, Attribution.rule).join(
                Attribution, Attribution.order_id == Order.id
            )
        ).all()
    return {no: (guide, store, rule) for no, guide, store, rule in rows}


def attribute_all(
    w: World, since: datetime, limit: int = 500
) -> tuple[tuple[int, int, int], list[tuple[int, int, int]]]:
    heard: list[tuple[int, int, int]] = []
    totals = jobs.run_batches(
        w.db,
        step=lambda s, after: jobs.attribute_orders(
            s, tenant_id=w.tenant_id, since=since, after_id=after, limit=limit
        ),
        on_batch=lambda *running: heard.append(running),
    )
    return totals, heard


def test_recent_online_orders_are_attributed_once_batch_by_batch(database: Database) -> None:
    w = make(database)
    scan(w, 0, guide_code(w, "G1"), T0)
    with database.unit_of_work() as s:
        service.record_touch(
            s,
            tenant_id=w.tenant_id,
            member_id=w.points.members[1],
            kind="coupon",
            at=T0,
            guide_id=w.guides["G3"],
        )
    online(w, 0, "ES-1", T0 + 2 * DAY, status="paid")  # credited once paid, before it completes
    imported(w, "tmall", "TM-1", 0, 25000, T0 + 3 * DAY)
    online(w, 1, "MP-1", T0 + DAY, channel="miniprogram")
    imported(w, "jd", "JD-1", 2, 15000, T0 + DAY)  # member 2 was never reached: looked at, not credited
    # Not looked at: a sale in a store, an order from before the look-back, an unpaid one, a buyer
    # datong does not know.
    with database.unit_of_work() as s:
        pos_order(s, w.points, w.points.members[0], "POS-1", 10000, store="D1", at=T0 + DAY)
    online(w, 0, "ES-OLD", T0 - 70 * DAY)
    online(w, 0, "ES-UNPAID", T0 + DAY, status="created")
    imported(w, "tmall", "TM-ANON", None, 9900, T0 + DAY)
    since = jobs.recent_since(T0 + 5 * DAY)
    assert since == T0 - 55 * DAY
    with database.reading() as s:
        assert jobs.count_to_attribute(s, tenant_id=w.tenant_id, since=since) == 4

    totals, heard = attribute_all(w, since, limit=1)
    assert totals == (4, 3, 39900 + 25000 + 39900)
    assert [seen for seen, _, _ in heard] == [1, 2, 3, 4, 4]  # a batch an order, then the empty last one
    g1 = (w.guides["G1"], w.points.stores["D1"], "last_guide_touch")
    assert credits(w) == {
        "ES-1": g1,
        "TM-1": g1,
        "MP-1": (w.guides["G3"], w.points.stores["F1"], "last_guide_touch"),
    }
    # Again: only the order no one reached is looked at, and nothing changes.
    assert attribute_all(w, since)[0] == (1, 0, 0)
    assert len(credits(w)) == 3


def test_a_run_that_stopped_is_picked_up_by_the_next(database: Database) -> None:
    w = make(database)
    scan(w, 0, guide_code(w, "G2"), T0)
    for n in range(5):
        online(w, 0, f"ES-{n}", T0 + (n + 1) * DAY)
    since = jobs.recent_since(T0)
    # The first batch of two commits; the run stops there (a crash, a deploy).
    with database.unit_of_work() as s:
        after, seen, credited, _fen = jobs.attribute_orders(s, tenant_id=w.tenant_id, since=since, limit=2)
    assert (seen, credited) == (2, 2) and after is not None
    assert attribute_all(w, since, limit=2)[0] == (3, 3, 3 * 39900)
    assert sorted(credits(w)) == [f"ES-{n}" for n in range(5)]
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(Attribution)) == 5


def post_all(w: World, at: datetime) -> tuple[int, int, int]:
    return jobs.run_batches(
        w.db,
        step=lambda s, after: jobs.post_commissions(
            s, tenant_id=w.tenant_id, actor=ACTOR, after_id=after, at=at
        ),
    )


def claw_all(w: World, at: datetime) -> tuple[int, int, int]:
    return jobs.run_batches(
        w.db,
        step=lambda s, after: jobs.claw_back_commissions(
            s, tenant_id=w.tenant_id, actor=ACTOR, after_id=after, at=at
        ),
    )


def refund(w: World, order_id: str, refund_no: str, amount_fen: int, at: datetime) -> None:
    with w.db.unit_of_work() as s:
        order = s.get(Order, order_id)
        assert order is not None
        record_refund(
            s, tenant_id=w.tenant_id, order=order, refund_no=refund_no, amount_fen=amount_fen, at=at
        )


def test_commission_is_posted_once_and_taken_back_as_refunds_come(database: Database) -> None:
    w = world_with_plan(database)
    scan(w, 0, guide_code(w, "G1"), T0)
    first = shoe_order(w, 0, "ES-1", T0 + DAY)  # 54,000 paid: 1,800 on the shoes, 600 on two tees
    second = shoe_order(w, 0, "ES-2", T0 + DAY, status="paid")
    assert attribute_all(w, jobs.recent_since(T0))[0] == (2, 2, 108000)
    with database.reading() as s:
        assert jobs.count_to_post(s, tenant_id=w.tenant_id) == 1  # the paid order waits until it completes
    assert post_all(w, T0 + 2 * DAY) == (1, 1, 2400)
    assert post_all(w, T0 + 3 * DAY) == (0, 0, 0)
    with database.unit_of_work() as s:
        order = s.get(Order, second)
        assert order is not None
        order.status = "completed"
    assert post_all(w, T0 + 4 * DAY) == (1, 1, 2400)

    with database.reading() as s:
        assert jobs.count_to_claw_back(s, tenant_id=w.tenant_id) == 0
    refund(w, first, "R1", 18000, T0 + 25 * DAY)  # a third back, in April (China time)
    assert claw_all(w, T0 + 25 * DAY) == (1, 1, 800)
    # Partly taken back: looked at again, nothing more is due until another refund.
    assert claw_all(w, T0 + 26 * DAY) == (1, 0, 0)
    with database.unit_of_work() as s:
        order = s.get(Order, second)
        assert order is not None
        order.status = "closed"  # a later export: 交易关闭, the money went back
    assert claw_all(w, T0 + 27 * DAY) == (2, 1, 2400)
    refund(w, first, "R2", 36000, T0 + 28 * DAY)
    assert claw_all(w, T0 + 28 * DAY) == (1, 1, 1600)
    assert claw_all(w, T0 + 29 * DAY) == (0, 0, 0)

    with database.reading() as s:
        rows, _ = queries.commission_statement(s, tenant_id=w.tenant_id, period="2026-03")
        april, _ = queries.commission_statement(s, tenant_id=w.tenant_id, period="2026-04")
        assert [(r.orders, r.earned_fen, r.clawed_back_fen, r.net_fen) for r in rows] == [(2, 4800, 0, 4800)]
        assert [(r.orders, r.earned_fen, r.clawed_back_fen, r.net_fen) for r in april] == [
            (0, 0, 4800, -4800)
        ]
        assert verify_ledger(s, tenant_id=w.tenant_id) == []


@pytest.mark.parametrize(("window", "day", "credited"), [(15, 10, True), (15, 16, False), (30, 16, True)])
def test_from_a_guides_code_to_commission_taken_back(
    database: Database, window: int, day: int, credited: bool
) -> None:
    """Guide code → follow (subscribe) → bound member → Tmall order imported ``day`` days later →
    attributed → commission posted → the order closed by a later export → commission taken back."""
    w = world_with_plan(database)
    with database.unit_of_work() as s:
        tenant = s.get(Tenant, w.tenant_id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "guides": {"window_days": window}}
    with database.unit_of_work() as s:
        follow = service.record_scan(
            s,
            tenant_id=w.tenant_id,
            member_id=w.points.members[0],
            scene=guide_code(w, "G1"),
            at=T0,
            kind="subscribe",
        )
        assert follow.binding is not None
    at = T0 + day * DAY
    order_id = imported(w, "tmall", "TM-900", 0, 30000, at)
    now = at + DAY
    assert attribute_all(w, jobs.recent_since(now))[0] == (1, int(credited), 30000 if credited else 0)
    # base: 1% of 30,000
    assert post_all(w, now) == ((1, 1, 300) if credited else (0, 0, 0))
    imported(w, "tmall", "TM-900", 0, 30000, at, status="closed", status_raw="交易关闭")
    assert claw_all(w, now + DAY) == ((1, 1, 300) if credited else (0, 0, 0))
    with database.reading() as s:
        credit = queries.attribution_of(s, tenant_id=w.tenant_id, order_id=order_id)
        got = (credit.guide_id, credit.rule, credit.window_days) if credit else None
        assert got == ((w.guides["G1"], "last_guide_touch", window) if credited else None)
        codes = sorted(s.scalars(select(Transfer.code).where(Transfer.order_id == order_id)))
        assert codes == (["commission", "commission_clawback"] if credited else [])
        assert verify_ledger(s, tenant_id=w.tenant_id) == []
