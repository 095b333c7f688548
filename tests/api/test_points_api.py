"""The points API over HTTP, on both backends: earning, redeeming (in one step, on hold, for a reward),
refunds, adjustments, a member's points and history, clearing between owners, idempotency keys, and
refusals that name the field at fault and change nothing.

The world's program (``POINTS_PROGRAM``): 1 point per yuan paid, a point is worth 2 fen, shoes earn
double, 500 yuan or more earns 50 more, gold (from 1000 points in 12 months) earns 1.5 times. Every
test works on members of its own, so the figures below are exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from datong.core.clock import CHINA_TZ
from datong.loyalty import redemptions, refunds
from datong.loyalty.programs import get_program
from datong.orders import service as orders_service
from tests.api.calls import answer, refused, write
from tests.api.conftest import (
    FEN_PER_POINT,
    HOLD_SECONDS,
    POINTS_PROGRAM,
    SETTLEMENT_PERIOD,
    Brand,
    World,
    a_year_on,
    instant,
)

EARN = "/api/v1/points/earn"
REDEEM = "/api/v1/points/redeem"
REFUND = "/api/v1/points/refund"
ADJUST = "/api/v1/points/adjust"
SETTLEMENT = "/api/v1/points/settlement"
UNKNOWN_MEMBER = "mem_00000000000000000000000000"
UNKNOWN_HOLD = "op_00000000000000000000000000"


# --- helpers ------------------------------------------------------------------------------------------


def summary(w: World, member_id: str, caller: str = "pos_key") -> dict[str, Any]:
    return answer(w.client.get(f"/api/v1/points/members/{member_id}", headers=w.auth(caller)))


def history(w: World, member_id: str, caller: str = "pos_key", **params: str) -> dict[str, Any]:
    return answer(
        w.client.get(f"/api/v1/points/members/{member_id}/history", params=params, headers=w.auth(caller))
    )


def balance(w: World, member_id: str) -> int:
    value: int = summary(w, member_id)["balance"]
    return value


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What moved between two ``World.counts()``: a difference for numbers, the new value otherwise."""
    return {
        name: after[name] - before[name] if isinstance(after[name], int) else after[name]
        for name in after
        if after[name] != before[name]
    }


def pos_order(
    order_no: str, total_fen: int, *, paid_fen: int | None = None, store: str | None = "A1", **more: Any
) -> dict[str, Any]:
    return {
        "channel": "pos",
        "order_no": order_no,
        "store_code": store,
        "total_fen": total_fen,
        "paid_fen": total_fen if paid_fen is None else paid_fen,
        **more,
    }


def earn(w: World, member_id: str, order: dict[str, Any], caller: str = "pos_key") -> dict[str, Any]:
    return answer(write(w, caller, EARN, {"member_id": member_id, "order": order}))


def member_with(w: World, points: int, *, store: str = "A1") -> str:
    """A new member of ``store`` who earned ``points`` there (an order of as many yuan, no bonus)."""
    assert points < 500  # the big-basket bonus starts at 500 yuan
    member_id = w.fresh_member(w.b1, store=store)
    result = earn(w, member_id, pos_order(f"P-{w.fresh_card()}", points * 100, store=store))
    assert (result["points"], result["balance"]) == (points, points)
    return member_id


# --- earning ------------------------------------------------------------------------------------------


def test_a_pos_sale_earns_by_its_lines_and_answers_the_balance(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    order_no = f"POS-{w.fresh_card()}"
    lines = [
        {"title": "跑鞋", "quantity": 1, "unit_price_fen": 40000, "sku": "S1", "category": "shoes"},
        {"title": "袜子", "quantity": 2, "unit_price_fen": 10000, "sku": "S2", "category": "socks"},
    ]
    before = w.counts()
    first = earn(w, member_id, pos_order(order_no, 60000, lines=lines))
    # 600 yuan paid: the shoes' 400 earn double (800), the socks' 200 earn 200, and 50 for a 500-yuan basket.
    order = w.order(w.b1, "pos", order_no)
    moves = w.moves(member_id)
    code_of = {m.id: m.code for m in moves}
    assert sorted((m.code, m.amount, m.order_id, m.store_id) for m in moves) == [
        ("earn_bonus", 50, order.id, w.b1.stores["A1"]),
        ("earn_purchase", 1000, order.id, w.b1.stores["A1"]),
    ]
    assert [code_of[t] for t in first["transfer_ids"]] == ["earn_purchase", "earn_bonus"]
    assert first == {
        "order_id": order.id,
        "points": 1050,
        "earned_now": True,
        "transfer_ids": first["transfer_ids"],
        "rules": ["big-basket", "shoes-x2"],
        "note": None,
        "balance": 1050,
        "reward_coupon": None,  # the brand gives no spend rewards
    }
    assert (order.member_id, order.store_id, order.status, order.total_fen, order.paid_fen) == (
        member_id,
        w.b1.stores["A1"],
        "completed",
        60000,
        60000,
    )
    assert changes(before, w.counts()) == {
        "sales_order": 1,
        "sales_order_completed": 1,
        "sales_order_line": 2,
        "ledger_account": 1,  # the member's points account (agent A's issuance account already exists)
        "ledger_transfer": 2,
        "loyalty_points_lot": 2,
        "loyalty_member_tier": 1,
        "loyalty_tier_change": 1,
        "idempotent_request": 1,
        "points_left": 1050,
        "account_credits_posted": 1050,
    }

    # The same sale sent again (a POS retrying under a new key) earns nothing more; the answer names the
    # earlier transfers and the rules they applied.
    written = w.counts()
    again = earn(w, member_id, pos_order(order_no, 60000, lines=lines))
    assert again == first | {"earned_now": False}
    assert changes(written, w.counts()) == {"idempotent_request": 1}

    # 1050 points in 12 months: gold at once, and gold earns 1.5 times (100 yuan → 150 points).
    assert summary(w, member_id)["tier"] == "gold"
    assert earn(w, member_id, pos_order(f"POS-{w.fresh_card()}", 10000))["points"] == 150
    assert balance(w, member_id) == 1200


def test_an_online_order_sent_as_paid_earns_when_sent_again_as_completed(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1)  # registered online: no home store
    order_no = f"MP-{w.fresh_card()}"
    order = {
        "channel": "miniprogram",
        "order_no": order_no,
        "status": "paid",
        "total_fen": 32000,
        "paid_fen": 32000,
    }
    before = w.counts()
    paid = earn(w, member_id, order)
    saved = w.order(w.b1, "miniprogram", order_no)
    assert paid == {
        "order_id": saved.id,
        "points": 0,
        "earned_now": False,
        "transfer_ids": [],
        "rules": [],
        "note": "the order is paid; it earns once completed",
        "balance": 0,
        "reward_coupon": None,
    }
    assert (saved.status, saved.store_id, saved.completed_at) == ("paid", None, None)
    assert changes(before, w.counts()) == {
        "sales_order": 1,
        "sales_order_paid": 1,
        "idempotent_request": 1,
    }

    completed = earn(w, member_id, order | {"status": "completed"})
    moves = w.moves(member_id)
    assert [(m.code, m.amount, m.order_id, m.store_id) for m in moves] == [
        ("earn_purchase", 320, saved.id, None)
    ]
    assert completed == {
        "order_id": saved.id,
        "points": 320,
        "earned_now": True,
        "transfer_ids": [moves[0].id],
        "rules": [],
        "note": None,
        "balance": 320,
        "reward_coupon": None,
    }
    assert w.order(w.b1, "miniprogram", order_no).status == "completed"
    assert w.counts()["sales_order"] == before["sales_order"] + 1  # the same order, now completed


# --- redeeming ----------------------------------------------------------------------------------------


def test_redeem_in_one_step_and_never_below_zero(world: World) -> None:
    w = world
    member_id = member_with(w, 400)  # agent A's points (earned at A1)
    before = w.counts()
    spent = answer(
        write(
            w,
            "pos_key",
            REDEEM,
            {"member_id": member_id, "points": 120, "channel": "pos", "store_code": "D1"},
        )
    )
    redeem = [m for m in w.moves(member_id) if m.code == "redeem"]
    assert [(m.kind, m.amount, m.store_id) for m in redeem] == [("posted", 120, w.b1.stores["D1"])]
    assert spent == {
        "id": redeem[0].operation_id,
        "status": "posted",
        "points": 120,
        "value_fen": 240,
        "hold_expires_at": None,
        "transfer_ids": [redeem[0].id],
        "issuers": {w.b1.agent_a: 120},
        "balance": 280,
    }
    assert changes(before, w.counts()) == {
        "ledger_transfer": 1,
        "idempotent_request": 1,
        "points_left": -120,
        "account_debits_posted": 120,
    }
    assert (summary(w, member_id)["balance"], summary(w, member_id)["held"]) == (280, 0)

    written = w.counts()
    too_much = write(
        w, "pos_key", REDEEM, {"member_id": member_id, "points": 281, "channel": "pos", "store_code": "D1"}
    )
    assert too_much.status_code == 409
    assert too_much.json() == {
        "code": "exceeds_balance",
        "message": "not enough points: 280 can be spent, 281 asked",
        "field": "points",
        "detail": {"available": 280},
    }
    assert w.counts() == written


def test_a_hold_is_confirmed_or_voided_once(world: World) -> None:
    w = world
    member_id = member_with(w, 300)
    body = {"member_id": member_id, "points": 100, "channel": "pos", "store_code": "A1", "hold": True}
    held = answer(write(w, "pos_key", REDEEM, body))
    pending = [m for m in w.moves(member_id) if m.code == "redeem"]
    assert [(m.kind, m.amount) for m in pending] == [("pending", 100)]
    assert pending[0].timeout_at == pending[0].created_at + timedelta(seconds=HOLD_SECONDS)
    assert instant(held.pop("hold_expires_at")) == pending[0].timeout_at
    hold_id = pending[0].operation_id
    assert held == {
        "id": hold_id,
        "status": "held",
        "points": 100,
        "value_fen": 200,
        "transfer_ids": [pending[0].id],
        "issuers": {w.b1.agent_a: 100},
        "balance": 200,
    }
    shown = summary(w, member_id)
    assert (shown["balance"], shown["held"], shown["value_fen"]) == (200, 100, 400)

    before = w.counts()
    confirmed = answer(write(w, "pos_key", f"/api/v1/points/holds/{hold_id}/confirm", {}))
    assert confirmed == {
        "id": hold_id,
        "status": "posted",
        "points": 100,
        "value_fen": 200,
        "hold_expires_at": None,
        "transfer_ids": [pending[0].id],
        "issuers": {w.b1.agent_a: 100},
        "balance": 200,
    }
    assert changes(before, w.counts()) == {
        "ledger_transfer": 1,
        "idempotent_request": 1,
        "account_debits_pending": -100,
        "account_debits_posted": 100,
    }
    assert [(m.kind, m.pending_id) for m in w.moves(member_id) if m.code == "redeem"] == [
        ("pending", None),
        ("post_pending", pending[0].id),
    ]
    assert (summary(w, member_id)["balance"], summary(w, member_id)["held"]) == (200, 0)

    # Confirming again answers the same; voiding what was confirmed is refused.
    written = w.counts()
    assert answer(write(w, "pos_key", f"/api/v1/points/holds/{hold_id}/confirm", {})) == confirmed
    assert changes(written, w.counts()) == {"idempotent_request": 1}
    written = w.counts()
    late = write(w, "pos_key", f"/api/v1/points/holds/{hold_id}/void", {})
    assert refused(late) == (409, "conflict", "hold_id")
    assert late.json()["message"] == f"hold {hold_id} was already confirmed"
    assert w.counts() == written

    # A second hold, voided: the points come back; confirming it afterwards is refused.
    second = answer(write(w, "pos_key", REDEEM, body | {"points": 50}))
    assert second["balance"] == 150
    voided = answer(write(w, "pos_key", f"/api/v1/points/holds/{second['id']}/void", {}))
    assert voided == {
        "id": second["id"],
        "status": "voided",
        "points": 50,
        "value_fen": 100,
        "hold_expires_at": None,
        "transfer_ids": second["transfer_ids"],
        "issuers": {w.b1.agent_a: 50},
        "balance": 200,
    }
    written = w.counts()
    late = write(w, "pos_key", f"/api/v1/points/holds/{second['id']}/confirm", {})
    assert refused(late) == (409, "conflict", "hold_id")
    assert late.json()["message"] == f"hold {second['id']} was already voided"
    unknown = write(w, "pos_key", f"/api/v1/points/holds/{UNKNOWN_HOLD}/confirm", {})
    assert refused(unknown) == (404, "not_found", "hold_id")
    assert w.counts() == written
    assert (summary(w, member_id)["balance"], summary(w, member_id)["held"]) == (200, 0)


def test_redeem_for_a_reward(world: World) -> None:
    w = world
    member_id = member_with(w, 350)
    tote = answer(
        write(w, "pos_key", REDEEM, {"member_id": member_id, "reward_code": "tote", "channel": "miniprogram"})
    )
    redeem = [m for m in w.moves(member_id) if m.code == "redeem"]
    assert [(m.amount, m.external_ref, m.store_id) for m in redeem] == [(300, "reward:tote", None)]
    assert tote == {
        "id": redeem[0].operation_id,
        "status": "posted",
        "points": 300,  # the reward's price in points
        "value_fen": 600,
        "hold_expires_at": None,
        "transfer_ids": [redeem[0].id],
        "issuers": {w.b1.agent_a: 300},
        "balance": 50,
    }

    before = w.counts()
    for body, status, field in (
        ({"reward_code": "umbrella"}, 422, "reward_code"),  # no such reward
        ({"reward_code": "tote"}, 409, "points"),  # 50 points left: not enough for another
        ({"reward_code": "tote", "points": 300}, 422, "body"),  # points, or a reward: not both
    ):
        refusal = write(w, "pos_key", REDEEM, {"member_id": member_id, "channel": "miniprogram", **body})
        assert (refusal.status_code, refusal.json()["field"]) == (status, field), refusal.text
    assert w.counts() == before


# --- refunds ------------------------------------------------------------------------------------------


def test_partial_then_full_refund_takes_back_earned_and_gives_back_spent_points(world: World) -> None:
    w = world
    member_id = member_with(w, 450)
    order_no = f"POS-{w.fresh_card()}"
    # 100 points (200 fen) paid towards a 300-yuan sale at A1 before the POS sends it; 298 yuan in money.
    paid_with_points = answer(
        write(
            w,
            "pos_key",
            REDEEM,
            {
                "member_id": member_id,
                "points": 100,
                "channel": "pos",
                "store_code": "A1",
                "order_no": order_no,
            },
        )
    )
    assert paid_with_points["balance"] == 350
    assert earn(w, member_id, pos_order(order_no, 30000, paid_fen=29800))["points"] == 298
    assert balance(w, member_id) == 648
    order = w.order(w.b1, "pos", order_no)

    def refund(refund_no: str, amount_fen: int) -> dict[str, Any]:
        body = {"channel": "pos", "order_no": order_no, "refund_no": refund_no, "amount_fen": amount_fen}
        return answer(write(w, "pos_key", REFUND, body))

    before = w.counts()
    half = refund("RF-1", 15000)  # half the total: half the 298 earned back, half the 100 spent given back
    rf1 = w.refunds(order.id)
    moves = [m for m in w.moves(member_id) if m.external_ref == rf1[0].id]
    assert sorted((m.code, m.amount) for m in moves) == [("clawback", 149), ("give_back", 50)]
    assert half == {
        "refund_id": rf1[0].id,
        "clawed_back": 149,
        "given_back": 50,
        "shortfall": 0,
        "transfer_ids": half["transfer_ids"],
        "order_status": "completed",
        "balance": 549,
    }
    assert sorted(half["transfer_ids"]) == sorted(m.id for m in moves)
    assert changes(before, w.counts()) == {
        "sales_order_refund": 1,
        "ledger_transfer": 2,
        "idempotent_request": 1,
        "points_left": -99,
        "account_debits_posted": 149,
        "account_credits_posted": 50,
    }

    rest = refund("RF-2", 15000)
    rfs = w.refunds(order.id)
    assert [(r.refund_no, r.amount_fen) for r in rfs] == [("RF-1", 15000), ("RF-2", 15000)]
    assert rest == {
        "refund_id": rfs[1].id,
        "clawed_back": 149,
        "given_back": 50,
        "shortfall": 0,
        "transfer_ids": rest["transfer_ids"],
        "order_status": "refunded",
        "balance": 450,  # what the earlier sale earned, whole again
    }
    assert w.order(w.b1, "pos", order_no).status == "refunded"

    # Nothing is left to refund; the refund already recorded may be sent again, with its own amount only.
    written = w.counts()
    over = write(
        w, "pos_key", REFUND, {"channel": "pos", "order_no": order_no, "refund_no": "RF-3", "amount_fen": 1}
    )
    assert refused(over) == (422, "invalid", "amount_fen")
    other = write(
        w,
        "pos_key",
        REFUND,
        {"channel": "pos", "order_no": order_no, "refund_no": "RF-1", "amount_fen": 14000},
    )
    assert refused(other) == (409, "conflict", "amount_fen")
    missing = write(
        w,
        "pos_key",
        REFUND,
        {"channel": "pos", "order_no": "POS-nowhere", "refund_no": "RF-1", "amount_fen": 100},
    )
    assert refused(missing) == (404, "not_found", "order_no")
    assert w.counts() == written


def test_a_refund_of_spent_points_reports_the_shortfall(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    order_no = f"POS-{w.fresh_card()}"
    assert earn(w, member_id, pos_order(order_no, 30000))["points"] == 300
    write(w, "pos_key", REDEEM, {"member_id": member_id, "points": 250, "channel": "pos", "store_code": "A1"})
    assert balance(w, member_id) == 50

    full = answer(
        write(
            w,
            "pos_key",
            REFUND,
            {"channel": "pos", "order_no": order_no, "refund_no": "R1", "amount_fen": 30000},
        )
    )
    order = w.order(w.b1, "pos", order_no)
    back = [m for m in w.moves(member_id) if m.code == "clawback"]
    assert [(m.amount, m.detail) for m in back] == [(50, {"shortfall": 250})]
    assert full == {
        "refund_id": w.refunds(order.id)[0].id,
        "clawed_back": 50,  # all the member has left
        "given_back": 0,
        "shortfall": 250,  # already spent: never taken below zero
        "transfer_ids": [back[0].id],
        "order_status": "refunded",
        "balance": 0,
    }


# --- adjustments --------------------------------------------------------------------------------------


def test_an_adjustment_needs_a_reason_and_is_audited(world: World) -> None:
    w = world
    member_id = member_with(w, 100)
    before = w.counts()
    for body, field in (
        ({"points": 40}, "reason"),  # no reason
        ({"points": 40, "reason": ""}, "reason"),
        ({"points": 40, "reason": "   "}, "reason"),
        ({"points": 0, "reason": "nothing"}, "body"),  # an adjustment moves at least one point
    ):
        refusal = write(w, "hq_admin", ADJUST, {"member_id": member_id, **body})
        assert refused(refusal) == (422, "invalid", field), body
    too_much = write(w, "hq_admin", ADJUST, {"member_id": member_id, "points": -101, "reason": "退货冲正"})
    assert refused(too_much) == (409, "exceeds_balance", "points")
    assert w.counts() == before
    assert balance(w, member_id) == 100

    added = answer(
        write(w, "hq_admin", ADJUST, {"member_id": member_id, "points": 40, "reason": " 补录活动积分 "})
    )
    taken = answer(
        write(w, "hq_admin", ADJUST, {"member_id": member_id, "points": -15, "reason": "重复积分冲正"})
    )
    account = w.moves(member_id)[0].credit_account_id  # the member's: credited by the first sale
    moves = [m for m in w.moves(member_id) if m.code == "adjust"]
    assert [(m.amount, m.reason, m.credit_account_id == account) for m in moves] == [
        (40, "补录活动积分", True),  # the reason is kept trimmed on the transfer, as typed in the audit log
        (15, "重复积分冲正", False),
    ]
    assert added == {
        "operation_id": moves[0].operation_id,
        "points": 40,
        "transfer_ids": [moves[0].id],
        "balance": 140,
    }
    assert taken == {
        "operation_id": moves[1].operation_id,
        "points": -15,
        "transfer_ids": [moves[1].id],
        "balance": 125,
    }
    trail = w.client.get("/api/v1/audit", params={"object_id": member_id}, headers=w.auth("hq_admin"))
    assert trail.status_code == 200, trail.text
    adjustments = [e for e in trail.json() if e["action"] == "points.adjust"]
    assert sorted(
        (e["detail"]["points"], e["detail"]["operation_id"], e["note"]) for e in adjustments
    ) == sorted([(40, moves[0].operation_id, "补录活动积分"), (-15, moves[1].operation_id, "重复积分冲正")])


# --- a member's points and history --------------------------------------------------------------------


def test_summary_and_history_show_balance_holds_expiry_and_tier(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    assert summary(w, member_id) == {
        "member_id": member_id,
        "program": POINTS_PROGRAM["code"],
        "balance": 0,
        "value_fen": 0,
        "held": 0,
        "expiring": [],
        "tier": None,
        "tier_since": None,
        "qualifying_value": 0,
        "tier_basis": "points",
    }
    assert history(w, member_id) == {"member_id": member_id, "transfers": [], "tiers": []}

    order_no = f"POS-{w.fresh_card()}"
    earned = earn(w, member_id, pos_order(order_no, 40000))
    held = answer(
        write(
            w,
            "pos_key",
            REDEEM,
            {"member_id": member_id, "points": 100, "channel": "pos", "store_code": "A1", "hold": True},
        )
    )
    order = w.order(w.b1, "pos", order_no)
    moves = w.moves(member_id)
    earned_at = moves[0].created_at

    shown = summary(w, member_id)
    assert [(instant(e["expires_at"]), e["points"]) for e in shown.pop("expiring")] == [
        (a_year_on(earned_at), 300)
    ]
    assert instant(shown.pop("tier_since")) == earned_at
    assert shown == {
        "member_id": member_id,
        "program": POINTS_PROGRAM["code"],
        "balance": 300,
        "value_fen": 300 * FEN_PER_POINT,
        "held": 100,
        "tier": "silver",
        "qualifying_value": 400,
        "tier_basis": "points",
    }

    found = history(w, member_id)
    assert [instant(t.pop("at")) for t in found["transfers"]] == [moves[1].created_at, earned_at]
    assert found["transfers"] == [
        {
            "transfer_id": held["transfer_ids"][0],
            "code": "redeem",
            "kind": "pending",
            "points": -100,
            "operation_id": held["id"],
            "order_id": None,
            "store_id": w.b1.stores["A1"],
            "lot_id": earned["transfer_ids"][0],  # a lot is named by the transfer that opened it
            "reason": None,
        },
        {
            "transfer_id": earned["transfer_ids"][0],
            "code": "earn_purchase",
            "kind": "posted",
            "points": 400,
            "operation_id": moves[0].operation_id,
            "order_id": order.id,
            "store_id": w.b1.stores["A1"],
            "lot_id": None,
            "reason": None,
        },
    ]
    assert [instant(c.pop("at")) for c in found["tiers"]] == [earned_at]
    assert found["tiers"] == [{"from": None, "to": "silver", "reason": "upgrade", "qualifying_value": 400}]
    newest = history(w, member_id, limit="1")["transfers"]
    assert [t["transfer_id"] for t in newest] == held["transfer_ids"]
    older = history(w, member_id, before=moves[1].created_at.isoformat())["transfers"]
    assert [t["transfer_id"] for t in older] == earned["transfer_ids"]

    naive = w.client.get(
        f"/api/v1/points/members/{member_id}/history",
        params={"before": "2026-11-01T00:00:00"},
        headers=w.auth("pos_key"),
    )
    assert refused(naive) == (422, "invalid", "before")
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"program": "nope"}, "program"),
    ):
        bad = w.client.get(
            f"/api/v1/points/members/{member_id}/history", params=params, headers=w.auth("pos_key")
        )
        assert (bad.status_code, bad.json()["field"]) == (404 if field == "program" else 422, field)


# --- clearing -----------------------------------------------------------------------------------------


def _october_2025(w: World, brand: Brand) -> dict[str, list[str]]:
    """Written through the services, since the API books everything now: a member of A1 earned 300
    points at A1 (agent A's) on 5 October 2025, paid 100 of them towards a 200-yuan sale at D1 (HQ
    honours them) on the 6th, and had half that sale refunded on the 20th (50 points given back)."""
    member_id = w.fresh_member(brand, store="A1")
    w.earn(
        brand, member_id, f"OCT-{member_id}", 30000, store="A1", at=datetime(2025, 10, 5, 12, tzinfo=CHINA_TZ)
    )
    with w.db.unit_of_work() as s:
        program = get_program(s, tenant_id=brand.tenant_id)
        spent = redemptions.redeem_points(
            s,
            program=program,
            member_id=member_id,
            points=100,
            channel="pos",
            store_id=brand.stores["D1"],
            order_ref=redemptions.order_ref("pos", f"OCT-D1-{member_id}"),
            actor="system:test",
            at=datetime(2025, 10, 6, 12, tzinfo=CHINA_TZ),
        )
    sale = w.earn(
        brand,
        member_id,
        f"OCT-D1-{member_id}",
        19800,
        total_fen=20000,
        store="D1",
        at=datetime(2025, 10, 6, 12, 5, tzinfo=CHINA_TZ),
    )
    refunded_at = datetime(2025, 10, 20, 12, tzinfo=CHINA_TZ)
    with w.db.unit_of_work() as s:
        program = get_program(s, tenant_id=brand.tenant_id)
        order = orders_service.get_order(
            s, tenant_id=brand.tenant_id, channel="pos", order_no=f"OCT-D1-{member_id}"
        )
        assert order.id == sale.order_id
        refund, _ = orders_service.record_refund(
            s, tenant_id=brand.tenant_id, order=order, refund_no="OCT-R1", amount_fen=10000, at=refunded_at
        )
        back = refunds.refund_points(
            s, program=program, order=order, refund=refund, actor="system:test", at=refunded_at
        )
    assert (back.clawed_back, back.given_back) == (99, 50)
    code_of = {m.id: m.code for m in w.moves(member_id)}
    given_back = [t for t in back.transfer_ids if code_of[t] == "give_back"]
    assert len(spent.transfer_ids) == len(given_back) == 1
    return {"redeem": spent.transfer_ids, "give_back": given_back}


def test_settlement_says_who_owes_whom_for_a_month(world: World) -> None:
    w = world
    october = _october_2025(w, w.b1)
    answered = answer(w.client.get(SETTLEMENT, params={"period": "2025-10"}, headers=w.auth("hq_operator")))
    assert answered == {
        "period": "2025-10",
        "fen_per_point": FEN_PER_POINT,
        "obligations": [
            {
                "debtor": w.b1.agent_a,
                "creditor": "hq",
                "points": 50,  # 100 honoured, 50 given back on the refund
                "transfer_ids": october["redeem"] + october["give_back"],
                "amount_fen": 100,
            }
        ],
        "net": [{"debtor": w.b1.agent_a, "creditor": "hq", "amount_fen": 100}],
    }
    # The world's month (see conftest): agent A owes agent B for 30 points and HQ for 80.
    november = answer(
        w.client.get(SETTLEMENT, params={"period": SETTLEMENT_PERIOD}, headers=w.auth("hq_admin"))
    )
    assert [(o["debtor"], o["creditor"], o["points"], o["amount_fen"]) for o in november["obligations"]] == [
        (w.b1.agent_a, w.b1.agent_b, 30, 60),
        (w.b1.agent_a, "hq", 80, 160),
    ]
    quiet = answer(w.client.get(SETTLEMENT, params={"period": "2025-09"}, headers=w.auth("hq_admin")))
    assert quiet == {"period": "2025-09", "fen_per_point": FEN_PER_POINT, "obligations": [], "net": []}

    for params, status, field in (
        ({"period": "2025-13"}, 422, "period"),
        ({"period": "2025-1"}, 422, "period"),
        ({"period": "October"}, 422, "period"),
        ({}, 422, "period"),
        ({"period": "2025-10", "program": "nope"}, 404, "program"),
    ):
        bad = w.client.get(SETTLEMENT, params=params, headers=w.auth("hq_admin"))
        assert (bad.status_code, bad.json()["field"]) == (status, field), bad.text


# --- idempotency --------------------------------------------------------------------------------------


def test_the_same_key_and_body_answer_the_first_answer_and_spend_once(world: World) -> None:
    w = world
    member_id = member_with(w, 300)
    key = f"redeem-{member_id}"
    body = {"member_id": member_id, "points": 40, "channel": "pos", "store_code": "A1"}
    before = w.counts()
    first = answer(write(w, "pos_key", REDEEM, body, key))
    once = w.counts()
    assert changes(before, once) == {
        "ledger_transfer": 1,
        "idempotent_request": 1,
        "points_left": -40,
        "account_debits_posted": 40,
    }
    again = write(w, "pos_key", REDEEM, body, key)
    assert (again.status_code, again.json()) == (200, first)
    assert w.counts() == once
    assert balance(w, member_id) == 260

    for changed in (body | {"points": 41}, body | {"store_code": "A2"}, body | {"hold": True}):
        conflict = write(w, "pos_key", REDEEM, changed, key)
        assert refused(conflict) == (409, "conflict", "Idempotency-Key")
        assert conflict.json()["message"] == "this Idempotency-Key was used with a different body"
    assert w.counts() == once

    # A key is its caller's: the agent manager's request under the same key is its own, and spends again.
    mine = answer(write(w, "agent_manager", REDEEM, body, key))
    assert (mine["points"], mine["balance"]) == (40, 220)
    assert mine["id"] != first["id"]


def test_every_write_needs_an_idempotency_key(world: World) -> None:
    w = world
    member_id = member_with(w, 200)
    order_no = f"POS-{w.fresh_card()}"
    earn(w, member_id, pos_order(order_no, 10000))
    hold_id = w.redeem(w.b1, member_id, 10, store="A1", hold=True).id
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("pos_key", EARN, {"member_id": member_id, "order": pos_order(f"POS-{w.fresh_card()}", 5000)}),
        ("pos_key", REDEEM, {"member_id": member_id, "points": 5, "channel": "pos", "store_code": "A1"}),
        ("pos_key", f"/api/v1/points/holds/{hold_id}/confirm", {}),
        ("pos_key", f"/api/v1/points/holds/{hold_id}/void", {}),
        ("pos_key", REFUND, {"channel": "pos", "order_no": order_no, "refund_no": "R1", "amount_fen": 100}),
        ("hq_admin", ADJUST, {"member_id": member_id, "points": 5, "reason": "补录"}),
    ]
    before = w.counts()
    for caller, path, body in writes:
        for key in (None, "", "   ", "k" * 129):
            response = write(w, caller, path, body, key, send_key=key is not None)
            assert refused(response) == (422, "invalid", "Idempotency-Key"), (path, key)
            assert response.json()["message"] == "an Idempotency-Key header (1-128 characters) is required"
    assert w.counts() == before
    assert (summary(w, member_id)["balance"], summary(w, member_id)["held"]) == (290, 10)


# --- refusals -----------------------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(world: World) -> None:
    w = world
    member_id = member_with(w, 200)
    order = pos_order(f"POS-{w.fresh_card()}", 10000)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (REDEEM, {"member_id": member_id, "points": -5, "channel": "pos", "store_code": "A1"}, 422, "points"),
        (REDEEM, {"member_id": member_id, "points": 0, "channel": "pos", "store_code": "A1"}, 422, "points"),
        (
            REDEEM,
            {"member_id": member_id, "points": 5, "channel": "pos", "store_code": "ZZ9"},
            422,
            "store_code",
        ),
        (
            REDEEM,
            {"member_id": member_id, "points": 5, "channel": "pos"},
            422,
            "store_code",
        ),  # a POS names its store
        (REDEEM, {"member_id": member_id, "points": 5, "channel": "wechat"}, 422, "channel"),
        (
            REDEEM,
            {"member_id": UNKNOWN_MEMBER, "points": 5, "channel": "pos", "store_code": "A1"},
            404,
            "member_id",
        ),
        (
            REDEEM,
            {"member_id": member_id, "points": 5, "channel": "pos", "store_code": "A1", "program": "nope"},
            404,
            "program",
        ),
        (EARN, {"member_id": UNKNOWN_MEMBER, "order": order}, 404, "member_id"),
        (EARN, {"member_id": member_id, "order": order | {"paid_fen": 10001}}, 422, "order.paid_fen"),
        (
            EARN,
            {"member_id": member_id, "order": order | {"total_fen": -1, "paid_fen": 0}},
            422,
            "order.total_fen",
        ),
        (EARN, {"member_id": member_id, "order": order | {"store_code": None}}, 422, "order.store_code"),
        (EARN, {"member_id": member_id, "order": order | {"channel": "tmall"}}, 422, "order.channel"),
        (EARN, {"member_id": member_id, "order": order | {"status": "shipped"}}, 422, "order.status"),
        (
            EARN,
            {
                "member_id": member_id,
                "order": order | {"lines": [{"title": "x", "quantity": 0, "unit_price_fen": 1}]},
            },
            422,
            "order.lines.0.quantity",
        ),
        (EARN, {"member_id": member_id, "order": order, "bonus": 100}, 422, "bonus"),
        (
            REFUND,
            {"channel": "pos", "order_no": "POS-nowhere", "refund_no": "R1", "amount_fen": 100},
            404,
            "order_no",
        ),
        (
            REFUND,
            {"channel": "pos", "order_no": "POS-x", "refund_no": "R1", "amount_fen": -100},
            422,
            "amount_fen",
        ),
        (ADJUST, {"member_id": UNKNOWN_MEMBER, "points": 5, "reason": "补录"}, 404, "member_id"),
    ]
    before = w.counts()
    for path, body, status, field in cases:
        caller = "hq_admin" if path == ADJUST else "pos_key"
        response = write(w, caller, path, body)
        assert (response.status_code, response.json()["field"]) == (status, field), response.text
    assert w.counts() == before
    assert balance(w, member_id) == 200


def test_an_unknown_store_in_an_earn_names_the_order_field(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    before = w.counts()
    response = write(
        w, "pos_key", EARN, {"member_id": member_id, "order": pos_order("POS-ZZ9", 100, store="ZZ9")}
    )
    assert refused(response) == (422, "invalid", "order.store_code")
    assert w.counts() == before


# --- where a caller may act ---------------------------------------------------------------------------


def test_a_store_bound_caller_acts_only_at_its_own_stores(world: World) -> None:
    w = world
    direct = w.fresh_member(w.b1, store="D1")
    ours = w.fresh_member(w.b1, store="A1")
    # The store key: its member at its own store, named or not.
    named = earn(w, direct, pos_order(f"POS-{w.fresh_card()}", 20000, store="D1"), caller="store_key")
    unnamed = earn(w, direct, pos_order(f"POS-{w.fresh_card()}", 10000, store=None), caller="store_key")
    assert (named["points"], unnamed["points"], unnamed["balance"]) == (200, 100, 300)
    assert {m.store_id for m in w.moves(direct)} == {w.b1.stores["D1"]}
    # The agent manager at agent A's other store.
    assert (
        earn(w, ours, pos_order(f"POS-{w.fresh_card()}", 10000, store="A2"), caller="agent_manager")["points"]
        == 100
    )
    b1_sale = f"POS-{w.fresh_card()}"
    assert earn(w, direct, pos_order(b1_sale, 10000, store="B1"))["points"] == 100  # the brand's POS key

    before = w.counts()
    for caller, path, body, field in (
        (
            "store_key",
            EARN,
            {"member_id": direct, "order": pos_order(f"POS-{w.fresh_card()}", 100, store="B1")},
            "order.store_code",
        ),
        (
            "store_key",
            REDEEM,
            {"member_id": direct, "points": 5, "channel": "pos", "store_code": "B1"},
            "store_code",
        ),
        (
            "store_key",
            REFUND,
            {"channel": "pos", "order_no": b1_sale, "refund_no": "R1", "amount_fen": 100},
            "order_no",
        ),
        (
            "store_manager",
            EARN,
            {"member_id": ours, "order": pos_order(f"POS-{w.fresh_card()}", 100, store="A2")},
            "order.store_code",
        ),
        (
            "store_manager",
            REDEEM,
            {"member_id": ours, "points": 5, "channel": "pos", "store_code": "D1"},
            "store_code",
        ),
        (
            "agent_manager",
            REDEEM,
            {"member_id": ours, "points": 5, "channel": "pos", "store_code": "B1"},
            "store_code",
        ),
        # Another store's member is not found either, wherever the sale.
        (
            "store_key",
            EARN,
            {"member_id": ours, "order": pos_order(f"POS-{w.fresh_card()}", 100, store="D1")},
            "member_id",
        ),
    ):
        response = write(w, caller, path, body)
        assert refused(response) == (404, "not_found", field), (caller, path, response.text)
    assert w.counts() == before


def test_a_store_bound_caller_cannot_tell_another_store_from_none(world: World) -> None:
    w = world
    direct = w.fresh_member(w.b1, store="D1")
    before = w.counts()
    body = {"member_id": direct, "points": 5, "channel": "pos"}
    other = write(w, "store_key", REDEEM, body | {"store_code": "B1"})
    nowhere = write(w, "store_key", REDEEM, body | {"store_code": "ZZ9"})
    assert refused(other) == (404, "not_found", "store_code")
    assert refused(nowhere) == refused(other)
    assert w.counts() == before


def test_a_store_bound_caller_cannot_resolve_another_stores_hold(world: World) -> None:
    w = world
    direct = w.fresh_member(w.b1, store="D1")
    w.earn(w.b1, direct, f"POS-{w.fresh_card()}", 10000, store="D1")
    hold_id = w.redeem(w.b1, direct, 30, store="B1", hold=True).id
    before = w.counts()
    for action in ("void", "confirm"):
        response = write(w, "store_key", f"/api/v1/points/holds/{hold_id}/{action}", {})
        assert refused(response) == (404, "not_found", "hold_id")
    assert w.counts() == before


def test_hq_acts_at_any_store(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="B1")
    order_no = f"POS-{w.fresh_card()}"
    earned = answer(
        write(
            w, "hq_operator", EARN, {"member_id": member_id, "order": pos_order(order_no, 10000, store="B1")}
        )
    )
    order = w.order(w.b1, "pos", order_no)
    assert (order.store_id, order.status) == (w.b1.stores["B1"], "completed")
    assert earned == {
        "order_id": order.id,
        "points": 100,
        "earned_now": True,
        "transfer_ids": [w.moves(member_id)[0].id],
        "rules": [],
        "note": None,
        "balance": 100,
        "reward_coupon": None,
    }
    body = {"member_id": member_id, "points": 30, "channel": "pos", "store_code": "D1"}
    spent = answer(write(w, "hq_admin", REDEEM, body))
    assert (spent["status"], spent["issuers"], spent["balance"]) == ("posted", {w.b1.agent_b: 30}, 70)

    refund = {"channel": "pos", "order_no": order_no, "refund_no": "R1", "amount_fen": 10000}
    back = answer(write(w, "hq_operator", REFUND, refund))
    clawback = [m for m in w.moves(member_id) if m.code == "clawback"]
    assert [(m.amount, m.store_id) for m in clawback] == [(70, w.b1.stores["B1"])]
    assert back == {
        "refund_id": w.refunds(order.id)[0].id,
        "clawed_back": 70,
        "given_back": 0,
        "shortfall": 30,  # spent at D1 before the refund
        "transfer_ids": [clawback[0].id],
        "order_status": "refunded",
        "balance": 0,
    }


def test_a_guide_reads_its_members_points_and_writes_none(world: World) -> None:
    """A guide reads points (of its own members) but may not write them."""
    w = world
    member_id = w.b1.members["a1_guide"]
    assert summary(w, member_id, caller="guide")["balance"] == w.b1.start_balance()
    before = w.counts()
    response = write(
        w, "guide", REDEEM, {"member_id": member_id, "points": 5, "channel": "pos", "store_code": "A1"}
    )
    assert refused(response) == (403, "forbidden", None)
    assert w.counts() == before


def test_a_sale_rung_up_by_a_guide_is_credited_to_that_guide(world: World) -> None:
    from sqlalchemy import select

    from datong.guides.models import Attribution

    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    sale = pos_order(f"POS-{w.fresh_card()}", 30000, store="A1") | {"guide_code": "G1"}
    earn(w, member_id, sale)
    with w.db.reading() as s:
        credit = s.execute(
            select(
                Attribution.guide_id, Attribution.store_id, Attribution.rule, Attribution.amount_fen
            ).where(Attribution.member_id == member_id)
        ).one()
    assert tuple(credit) == (w.b1.guides["G1"], w.b1.stores["A1"], "pos_sale", 30000)
    # A guide of another store, or one that does not exist: refused, naming the field, nothing written.
    before = w.counts()
    for code, store in (("G-NOPE", "A1"), ("G1", "D1")):
        bad = pos_order(f"POS-{w.fresh_card()}", 100, store=store) | {"guide_code": code}
        response = write(w, "pos_key", EARN, {"member_id": member_id, "order": bad})
        assert refused(response) == (422, "invalid", "order.guide_code")
    assert w.counts() == before
