"""Earning, spending, holds, refunds, adjustments, expiry, tiers, migration and clearing: exact figures."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from datong.channels.records import OrderLineFields
from datong.core.db import Database
from datong.core.errors import Conflict, ValidationFailed
from datong.ledger.models import Transfer
from datong.ledger.service import LimitExceeded
from datong.loyalty import redemptions, refunds, service
from datong.loyalty.clearing import settle
from datong.loyalty.expiry import expire_points
from datong.loyalty.programs import member_account
from datong.loyalty.queries import points_summary
from datong.loyalty.tiers import current_tier, grant_birthday_bonus, review_tiers
from datong.members.models import Member
from datong.orders.service import record_refund
from datong.tenancy.models import AuditEntry
from tests.loyalty.helpers import (
    ACTOR,
    T0,
    assert_consistent,
    balance,
    earn_points,
    make_world,
    pos_order,
)


def test_a_sale_earns_by_line_category_rule_and_minimum_spend(database: Database) -> None:
    world = make_world(database)
    lines = [
        OrderLineFields("跑鞋", 1, sku="S1", category="shoes", unit_price_fen=40000),
        OrderLineFields("袜子", 2, sku="S2", category="socks", unit_price_fen=10000),
    ]
    # 600 yuan paid: shoes 400 × 2 = 800, socks 200 × 1 = 200, bonus 50 for ≥ 500 yuan.
    assert earn_points(database, world, 0, "P1", 60000, lines=lines) == 1050
    with database.reading() as s:
        codes = dict(
            s.execute(
                select(Transfer.code, func.sum(Transfer.amount))
                .where(Transfer.tenant_id == world.tenant_id)
                .group_by(Transfer.code)
            ).all()
        )
    assert codes == {"earn_purchase": 1000, "earn_bonus": 50}
    assert balance(database, world, 0) == 1050
    assert_consistent(database, world)


def test_an_order_earns_once_and_an_unfinished_one_not_yet(database: Database) -> None:
    world = make_world(database)
    assert earn_points(database, world, 0, "P1", 12345) == 123
    assert earn_points(database, world, 0, "P1", 12345) == 123  # the first earning, again
    assert earn_points(database, world, 0, "M1", 20000, channel="miniprogram", store=None, status="paid") == 0
    assert balance(database, world, 0) == 123
    assert earn_points(database, world, 0, "M1", 20000, channel="miniprogram", store=None) == 200
    assert balance(database, world, 0) == 323


def test_redeem_takes_soonest_expiring_lots_first_and_never_below_zero(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P1", 10000, at=T0)  # 100, expires T0 + 12 months
    earn_points(database, world, 0, "P2", 20000, at=T0 + timedelta(days=30), store="F1")  # 200, a month later
    with database.unit_of_work() as s:
        r = redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=150,
            channel="pos",
            store_id=world.stores["F1"],
            actor=ACTOR,
            at=T0 + timedelta(days=31),
        )
    assert (r.status, r.points, r.value_fen) == ("posted", 150, 150)
    assert r.issuers == {"hq": 100, world.party("F1"): 50}
    with database.unit_of_work() as s, pytest.raises(LimitExceeded):
        redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=151,
            channel="pos",
            store_id=world.stores["D1"],
            actor=ACTOR,
            at=T0 + timedelta(days=31),
        )
    assert balance(database, world, 0, T0 + timedelta(days=31)) == 150
    assert_consistent(database, world)


def test_hold_then_confirm_or_void_and_a_hold_times_out(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P1", 50000)  # 500 + 50 bonus
    at = T0 + timedelta(hours=1)
    with database.unit_of_work() as s:
        held = redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=300,
            channel="pos",
            store_id=world.stores["D1"],
            hold=True,
            actor=ACTOR,
            at=at,
        )
    assert held.status == "held" and held.hold_expires_at == at + timedelta(seconds=600)
    assert balance(database, world, 0, at) == 250
    with database.unit_of_work() as s:
        assert (
            redemptions.resolve_hold(
                s, program=world.program(s), hold_id=held.id, post=True, actor=ACTOR, at=at
            ).status
            == "posted"
        )
    with database.unit_of_work() as s:  # confirming twice answers the same; voiding now is refused
        assert (
            redemptions.resolve_hold(
                s, program=world.program(s), hold_id=held.id, post=True, actor=ACTOR, at=at
            ).status
            == "posted"
        )
    with database.unit_of_work() as s, pytest.raises(Conflict):
        redemptions.resolve_hold(s, program=world.program(s), hold_id=held.id, post=False, actor=ACTOR, at=at)
    assert balance(database, world, 0, at) == 250
    with database.unit_of_work() as s:
        second = redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=200,
            channel="pos",
            store_id=world.stores["D1"],
            hold=True,
            actor=ACTOR,
            at=at,
        )
    late = at + timedelta(seconds=601)
    with database.unit_of_work() as s, pytest.raises(Conflict):
        redemptions.resolve_hold(
            s, program=world.program(s), hold_id=second.id, post=True, actor=ACTOR, at=late
        )
    assert balance(database, world, 0, late) == 50
    with database.unit_of_work() as s:
        assert redemptions.void_timed_out_holds(s, program=world.program(s), at=late) == 1
    assert balance(database, world, 0, late) == 250
    assert_consistent(database, world)


def test_refunds_claw_back_earned_and_give_back_spent_in_proportion(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P0", 30000)  # 300 to spend
    with database.unit_of_work() as s:
        redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=200,
            channel="pos",
            store_id=world.stores["D1"],
            order_ref=redemptions.order_ref("pos", "P1"),
            actor=ACTOR,
            at=T0,
        )
    # P1: total 1000 yuan, 2 yuan paid in points (200 points), 998 yuan in money → 998 + 50 bonus.
    assert earn_points(database, world, 0, "P1", 99800, total_fen=100000) == 1048
    assert balance(database, world, 0) == 100 + 1048
    with database.unit_of_work() as s:
        order = pos_order(s, world, world.members[0], "P1", 99800, total_fen=100000)
        refund, _ = record_refund(
            s, tenant_id=world.tenant_id, order=order, refund_no="R1", amount_fen=25000, at=T0
        )
        first = refunds.refund_points(
            s, program=world.program(s), order=order, refund=refund, actor=ACTOR, at=T0
        )
    assert (first.clawed_back, first.given_back, first.shortfall) == (262, 50, 0)  # a quarter of each
    with database.unit_of_work() as s:
        order = pos_order(s, world, world.members[0], "P1", 99800, total_fen=100000)
        refund, _ = record_refund(
            s, tenant_id=world.tenant_id, order=order, refund_no="R2", amount_fen=75000, at=T0
        )
        rest = refunds.refund_points(
            s, program=world.program(s), order=order, refund=refund, actor=ACTOR, at=T0
        )
        assert order.status == "refunded"
    assert (rest.clawed_back, rest.given_back, rest.shortfall) == (786, 150, 0)
    assert balance(database, world, 0) == 300  # back where the member started
    assert_consistent(database, world)


def test_a_refund_never_takes_a_balance_below_zero(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P1", 40000)
    with database.unit_of_work() as s:
        redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=350,
            channel="pos",
            store_id=world.stores["D1"],
            actor=ACTOR,
            at=T0,
        )
        order = pos_order(s, world, world.members[0], "P1", 40000)
        refund, _ = record_refund(
            s, tenant_id=world.tenant_id, order=order, refund_no="R1", amount_fen=40000, at=T0
        )
        result = refunds.refund_points(
            s, program=world.program(s), order=order, refund=refund, actor=ACTOR, at=T0
        )
    assert (result.clawed_back, result.shortfall) == (50, 350)
    assert balance(database, world, 0) == 0
    assert_consistent(database, world)


def test_adjustment_needs_a_reason_and_is_audited(database: Database) -> None:
    world = make_world(database)
    with database.unit_of_work() as s, pytest.raises(ValidationFailed) as err:
        service.adjust_points(
            s, program=world.program(s), member_id=world.members[0], points=10, reason=" ", actor=ACTOR
        )
    assert err.value.field == "reason"
    assert balance(database, world, 0) == 0
    with database.unit_of_work() as s:
        service.adjust_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=80,
            reason="门店补录",
            actor=ACTOR,
            at=T0,
        )
        service.adjust_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=-30,
            reason="重复补录",
            actor=ACTOR,
            at=T0,
        )
    assert balance(database, world, 0) == 50
    with database.reading() as s:
        notes = list(
            s.scalars(
                select(AuditEntry.note).where(AuditEntry.action == "points.adjust").order_by(AuditEntry.at)
            )
        )
    assert notes == ["门店补录", "重复补录"]


def test_expiry_sweeps_what_is_left_to_the_issuers_breakage(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P1", 10000, at=T0, store="F1")  # expires end of 2027-03-10, China time
    with database.unit_of_work() as s:
        redemptions.redeem_points(
            s,
            program=world.program(s),
            member_id=world.members[0],
            points=30,
            channel="pos",
            store_id=world.stores["F1"],
            actor=ACTOR,
            at=T0,
        )
    with database.reading() as s:
        summary = points_summary(s, program=world.program(s), member_id=world.members[0], at=T0)
    assert summary["expiring"] == [{"expires_at": "2027-03-10T16:00:00+00:00", "points": 70}]
    before = T0 + timedelta(days=365, hours=11)
    with database.unit_of_work() as s:
        assert expire_points(s, program=world.program(s), at=before).lots == 0
        swept = expire_points(s, program=world.program(s), at=before + timedelta(hours=1))
    assert (swept.lots, swept.points) == (1, 70)
    with database.reading() as s:
        breakage = s.scalar(
            select(Transfer.credit_account_id).where(
                Transfer.code == "expire", Transfer.tenant_id == world.tenant_id
            )
        )
        from datong.ledger.models import Account

        assert s.get(Account, breakage).holder == world.party("F1")  # type: ignore[union-attr]
    assert balance(database, world, 0, before) == 0
    assert_consistent(database, world)


def test_tiers_upgrade_at_once_and_downgrade_only_at_review(database: Database) -> None:
    world = make_world(database)
    with database.reading() as s:  # no tier before the first earning: the entry tier's benefits apply
        assert current_tier(s, program=world.program(s), member_id=world.members[0]) is None
    earn_points(database, world, 0, "P1", 60000, at=T0)  # 650 with the bonus: silver
    with database.reading() as s:
        assert current_tier(s, program=world.program(s), member_id=world.members[0]).tier_code == "silver"  # type: ignore[union-attr]
    earn_points(database, world, 0, "P2", 40000, at=T0 + timedelta(days=1))  # 1050 in 12 months: gold
    with database.reading() as s:
        assert current_tier(s, program=world.program(s), member_id=world.members[0]).tier_code == "gold"  # type: ignore[union-attr]
    assert earn_points(database, world, 0, "P3", 10000, at=T0 + timedelta(days=2)) == 150  # gold earns × 1.5
    with database.unit_of_work() as s:
        result = review_tiers(s, program=world.program(s), at=T0 + timedelta(days=400))
    assert (result.reviewed, result.downgraded) == (1, 1)
    with database.reading() as s:
        assert current_tier(s, program=world.program(s), member_id=world.members[0]).tier_code == "silver"  # type: ignore[union-attr]


def test_birthday_bonus_once_a_year_from_the_tier(database: Database) -> None:
    world = make_world(database)
    with database.unit_of_work() as s:
        s.get(Member, world.members[1]).birthday = date(1990, 11, 23)  # type: ignore[union-attr]
    with database.unit_of_work() as s:
        assert grant_birthday_bonus(s, program=world.program(s), on=date(2026, 11, 23)) == 1
    with database.unit_of_work() as s:
        assert grant_birthday_bonus(s, program=world.program(s), on=date(2026, 11, 23)) == 0
    assert balance(database, world, 1, T0 + timedelta(days=300)) == 50


def test_clearing_says_who_owes_whom(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "P1", 10000, store="D1", at=T0)  # HQ issues 100
    earn_points(database, world, 1, "P2", 20000, store="F1", at=T0)  # the agent issues 200
    with database.unit_of_work() as s:
        program = world.program(s)
        redemptions.redeem_points(
            s,
            program=program,
            member_id=world.members[0],
            points=80,
            channel="pos",
            store_id=world.stores["F1"],
            actor=ACTOR,
            at=T0,
        )
        redemptions.redeem_points(
            s,
            program=program,
            member_id=world.members[1],
            points=150,
            channel="tmall",
            store_id=None,
            actor=ACTOR,
            at=T0,
        )
    with database.reading() as s:
        result = settle(s, program=world.program(s), period="2026-03")
    agent = world.party("F1")
    assert [(o.debtor, o.creditor, o.points) for o in result.obligations] == [
        (agent, "hq", 150),
        ("hq", agent, 80),
    ]
    assert [(n.debtor, n.creditor, n.amount_fen) for n in result.net] == [(agent, "hq", 70)]
    with database.reading() as s:
        assert settle(s, program=world.program(s), period="2026-04").obligations == []


def test_the_checks_find_a_running_total_or_a_lot_that_disagrees_with_the_transfers(
    database: Database,
) -> None:
    from sqlalchemy import update

    from datong.ledger.models import Account
    from datong.ledger.queries import verify_ledger
    from datong.loyalty.models import PointsLot
    from datong.loyalty.queries import verify_lots

    world = make_world(database)
    earn_points(database, world, 0, "P1", 10000)
    with database.unit_of_work() as s:
        account_id = member_account(s, world.program(s), world.members[0])
        s.execute(
            update(Account).where(Account.id == account_id).values(credits_posted=Account.credits_posted + 5)
        )
        lot_id = s.scalar(select(PointsLot.id).where(PointsLot.account_id == account_id))
        s.execute(update(PointsLot).where(PointsLot.id == lot_id).values(remaining=99))
    with database.reading() as s:
        (wrong,) = verify_ledger(s, tenant_id=world.tenant_id)
        assert (wrong.account_id, wrong.kept.credits_posted, wrong.summed.credits_posted) == (
            account_id,
            105,
            100,
        )
        assert verify_lots(s, program=world.program(s)) == [lot_id]


def test_tiers_on_a_spend_basis_count_money_less_refunds(database: Database) -> None:
    from tests.loyalty.helpers import PROGRAM

    spend_program = {**PROGRAM, "tier_basis": "spend"}
    spend_program["tiers"] = [
        {**t, "threshold": 0 if t["code"] == "silver" else 100000} for t in PROGRAM["tiers"]
    ]
    world = make_world(database, program=spend_program)
    earn_points(database, world, 0, "P1", 60000, at=T0)
    earn_points(database, world, 0, "P2", 30000, at=T0)  # 900 yuan in 12 months: still silver
    with database.reading() as s:
        assert current_tier(s, program=world.program(s), member_id=world.members[0]).tier_code == "silver"  # type: ignore[union-attr]
    earn_points(database, world, 0, "P3", 10000, at=T0)  # 1000 yuan: gold at once
    with database.reading() as s:
        assert current_tier(s, program=world.program(s), member_id=world.members[0]).tier_code == "gold"  # type: ignore[union-attr]
    with database.unit_of_work() as s:  # 100 yuan comes back: at the review, 900 yuan is silver again
        order = pos_order(s, world, world.members[0], "P3", 10000, at=T0)
        record_refund(s, tenant_id=world.tenant_id, order=order, refund_no="R1", amount_fen=10000, at=T0)
        result = review_tiers(s, program=world.program(s), at=T0 + timedelta(days=1))
    assert (result.reviewed, result.downgraded) == (1, 1)


def test_points_buy_a_coupon_in_one_step_and_both_or_neither_happen(database: Database) -> None:
    from datong.coupons.models import Coupon
    from datong.coupons.service import create_template
    from datong.loyalty.programs import load_program
    from tests.loyalty.helpers import PROGRAM

    world = make_world(database, program={**PROGRAM, "rewards": []})
    with database.unit_of_work() as s:
        create_template(
            s, tenant_id=world.tenant_id, actor=ACTOR, code="C10", name="10元券", kind="cash_off",
            amount_fen=1000, valid_days=30, total_quantity=1,
        )  # fmt: skip
        reward = {
            "code": "c10",
            "name": "10元券",
            "kind": "coupon",
            "points_cost": 200,
            "coupon_template": "C10",
        }
        load_program(s, tenant_id=world.tenant_id, data={**PROGRAM, "rewards": [reward]}, actor=ACTOR)
    earn_points(database, world, 0, "P1", 50000)  # 550
    with database.unit_of_work() as s:
        bought = redemptions.redeem_points(
            s, program=world.program(s), member_id=world.members[0], points=None, reward_code="c10",
            channel="miniprogram", store_id=None, actor=ACTOR, at=T0,
        )  # fmt: skip
    assert (bought.points, bought.balance, bought.coupon_code is not None) == (200, 350, True)
    with pytest.raises(Conflict) as err, database.unit_of_work() as s:  # the budget of one is spent
        redemptions.redeem_points(
            s, program=world.program(s), member_id=world.members[0], points=None, reward_code="c10",
            channel="miniprogram", store_id=None, actor=ACTOR, at=T0,
        )  # fmt: skip
    assert err.value.field == "template"
    assert balance(database, world, 0) == 350  # the points of the refused exchange were not taken
    with database.reading() as s:
        assert s.scalar(select(Coupon.code).where(Coupon.member_id == world.members[0])) == bought.coupon_code
    bad = {**PROGRAM, "rewards": [{**reward, "coupon_template": "NOPE"}]}
    with pytest.raises(ValidationFailed) as invalid, database.unit_of_work() as s:
        load_program(s, tenant_id=world.tenant_id, data=bad, actor=ACTOR)
    assert invalid.value.field == "rewards.0.coupon_template"
    assert_consistent(database, world)
