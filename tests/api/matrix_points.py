"""Route matrix rows: points."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.api.conftest import (
    AWAY,
    FEN_PER_POINT,
    POINTS_PROGRAM,
    SETTLEMENT_PERIOD,
    WORLD_HOLD,
    WORLD_ORDER_FEN,
    World,
    a_year_on,
    instant,
)
from tests.api.matrix import (
    MEMBER_TARGETS,
    POINTS_ADJUSTERS,
    POINTS_READERS,
    POINTS_SETTLERS,
    POINTS_TARGETS,
    POINTS_WRITERS,
    SEES_AWAY,
    SEES_MEMBERS,
    UNKNOWN_HOLD,
    Endpoint,
    brand_and_label,
    fresh_like,
    fresh_shopper,
    party,
    shopper,
    target_member_id,
    write,
)


def call_points_summary(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = shopper(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/points/members/{who.member_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        at, balance = who.brand.points_at, who.brand.start_balance()
        assert at is not None
        expiring = [(instant(e["expires_at"]), e["points"]) for e in body.pop("expiring")]
        assert expiring == [(a_year_on(at), balance)]
        assert instant(body.pop("tier_since")) == at
        assert body == {
            "member_id": who.member_id,
            "program": POINTS_PROGRAM["code"],
            "balance": balance,
            "value_fen": balance * FEN_PER_POINT,
            "held": WORLD_HOLD,
            "tier": "silver",
            "qualifying_value": WORLD_ORDER_FEN // 100,
            "tier_basis": "points",
        }
    return response


def call_points_history(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = shopper(w, target)
    response: httpx.Response = w.client.get(
        f"/api/v1/points/members/{who.member_id}/history", headers=w.auth(caller)
    )
    if ok:
        body = response.json()
        brand, at = who.brand, who.brand.points_at
        label = brand_and_label(w, target)[1]
        order_id = w.order(brand, who.channel, brand.orders[label]).id
        moves = sorted(
            (m["code"], m["kind"], m["points"], m["operation_id"] == brand.holds[label], m["order_id"])
            for m in body["transfers"]
        )
        assert moves == [
            ("earn_purchase", "posted", WORLD_ORDER_FEN // 100, False, order_id),
            ("redeem", "pending", -WORLD_HOLD, True, None),
        ]
        assert {(m["store_id"], instant(m["at"])) for m in body["transfers"]} == {(who.store_id(), at)}
        assert body["member_id"] == who.member_id
        tiers = body["tiers"]
        assert [instant(c.pop("at")) for c in tiers] == [at]
        assert tiers == [
            {"from": None, "to": "silver", "reason": "upgrade", "qualifying_value": WORLD_ORDER_FEN // 100}
        ]
    return response


def call_points_earn(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = fresh_shopper(w, target) if ok else shopper(w, target)
    order_no = f"E-{w.fresh_card()}"
    order = {
        "channel": who.channel,
        "order_no": order_no,
        "store_code": who.store,
        "total_fen": 12000,
        "paid_fen": 12000,
    }
    response: httpx.Response = w.client.post(
        "/api/v1/points/earn", json={"member_id": who.member_id, "order": order}, headers=write(w, caller)
    )
    if ok:
        saved = w.order(who.brand, who.channel, order_no)
        assert (saved.member_id, saved.store_id, saved.status) == (who.member_id, who.store_id(), "completed")
        moves = w.moves(who.member_id)
        assert [(m.code, m.amount, m.order_id) for m in moves] == [("earn_purchase", 120, saved.id)]
        assert response.json() == {
            "order_id": saved.id,
            "points": 120,
            "earned_now": True,
            "transfer_ids": [moves[0].id],
            "rules": [],
            "note": None,
            "balance": 120,
            "reward_coupon": None,  # the brand gives no spend rewards
        }
    return response


def call_points_redeem(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = fresh_shopper(w, target) if ok else shopper(w, target)
    if ok:  # 100 points earned at home
        w.earn(who.brand, who.member_id, f"H-{w.fresh_card()}", 10000, store=who.home)
    body = {"member_id": who.member_id, "points": 30, "channel": who.channel, "store_code": who.store}
    response: httpx.Response = w.client.post("/api/v1/points/redeem", json=body, headers=write(w, caller))
    if ok:
        spent = [m for m in w.moves(who.member_id) if m.code == "redeem"]
        assert [(m.kind, m.amount, m.store_id) for m in spent] == [("posted", 30, who.store_id())]
        assert response.json() == {
            "id": spent[0].operation_id,
            "status": "posted",
            "points": 30,
            "value_fen": 30 * FEN_PER_POINT,
            "hold_expires_at": None,
            "transfer_ids": [spent[0].id],
            "issuers": {party(who.brand, who.home): 30},
            "balance": 70,
        }
    return response


def call_points_hold(action: str) -> Callable[[World, str, str, bool], httpx.Response]:
    """Confirm or void a hold: the target member's open hold (held at the store the target shops at)."""
    post = action == "confirm"

    def call(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
        if ok:
            who = fresh_shopper(w, target)
            w.earn(who.brand, who.member_id, f"H-{w.fresh_card()}", 10000, store=who.home)
            hold_id = w.redeem(who.brand, who.member_id, 10, store=who.store, hold=True).id
        elif target == "unknown":
            hold_id = UNKNOWN_HOLD
        else:
            brand, label = (w.b1, target) if target in AWAY else brand_and_label(w, target)
            hold_id = brand.holds[label]
        response: httpx.Response = w.client.post(
            f"/api/v1/points/holds/{hold_id}/{action}", json={}, headers=write(w, caller)
        )
        if ok:
            held = [m for m in w.moves(who.member_id) if m.code == "redeem"]
            assert [(m.kind, m.amount, m.operation_id) for m in held] == [
                ("pending", 10, hold_id),
                ("post_pending" if post else "void_pending", 10, hold_id),
            ]
            assert response.json() == {
                "id": hold_id,
                "status": "posted" if post else "voided",
                "points": 10,
                "value_fen": 10 * FEN_PER_POINT,
                "hold_expires_at": None,
                "transfer_ids": [held[0].id],
                "issuers": {party(who.brand, who.home): 10},
                "balance": 90 if post else 100,
            }
        return response

    return call


def call_points_refund(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:  # a new member's sale of 120 yuan where the target shops, refunded in full
        who = fresh_shopper(w, target)
        order_no, amount = f"F-{w.fresh_card()}", 12000
        assert w.earn(who.brand, who.member_id, order_no, amount, store=who.store).points == 120
    else:  # the target's own sale in the world, refunded in part
        who = shopper(w, target)
        order_no, amount = ("W-nobody" if target == "unknown" else _world_order(w, target)), 1000
    body = {
        "channel": who.channel,
        "order_no": order_no,
        "refund_no": f"RF-{w.fresh_card()}",
        "amount_fen": amount,
    }
    response: httpx.Response = w.client.post("/api/v1/points/refund", json=body, headers=write(w, caller))
    if ok:
        order = w.order(who.brand, who.channel, order_no)
        refunds = w.refunds(order.id)
        assert [(r.refund_no, r.amount_fen) for r in refunds] == [(body["refund_no"], amount)]
        back = [m for m in w.moves(who.member_id) if m.code == "clawback"]
        assert [(m.amount, m.order_id, m.external_ref) for m in back] == [(120, order.id, refunds[0].id)]
        assert response.json() == {
            "refund_id": refunds[0].id,
            "clawed_back": 120,
            "given_back": 0,
            "shortfall": 0,
            "transfer_ids": [back[0].id],
            "order_status": "refunded",
            "balance": 0,
        }
    return response


def _world_order(w: World, target: str) -> str:
    if target in AWAY:
        return w.b1.orders[target]
    brand, label = brand_and_label(w, target)
    return brand.orders[label]


def call_points_adjust(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    body = {"member_id": member_id, "points": 25, "reason": "补录门店活动积分"}
    response: httpx.Response = w.client.post("/api/v1/points/adjust", json=body, headers=write(w, caller))
    if ok:
        moves = w.moves(member_id)
        assert [(m.code, m.amount, m.reason) for m in moves] == [("adjust", 25, "补录门店活动积分")]
        assert response.json() == {
            "operation_id": moves[0].operation_id,
            "points": 25,
            "transfer_ids": [moves[0].id],
            "balance": 25,
        }
        brand, _ = brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "points.adjust"
    return response


def call_points_settlement(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        "/api/v1/points/settlement", params={"period": SETTLEMENT_PERIOD}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        spent = brand.settlement_redemptions
        # Agent A's points were honoured by agent B (30) and by HQ (80); those it honoured itself are no debt.
        assert response.json() == {
            "period": SETTLEMENT_PERIOD,
            "fen_per_point": FEN_PER_POINT,
            "obligations": [
                {
                    "debtor": brand.agent_a,
                    "creditor": brand.agent_b,
                    "points": 30,
                    "transfer_ids": spent["B1"],
                    "amount_fen": 30 * FEN_PER_POINT,
                },
                {
                    "debtor": brand.agent_a,
                    "creditor": "hq",
                    "points": 80,
                    "transfer_ids": spent["D1"],
                    "amount_fen": 80 * FEN_PER_POINT,
                },
            ],
            "net": [
                {"debtor": brand.agent_a, "creditor": brand.agent_b, "amount_fen": 30 * FEN_PER_POINT},
                {"debtor": brand.agent_a, "creditor": "hq", "amount_fen": 80 * FEN_PER_POINT},
            ],
        }
    return response


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/points/members/{member_id}",
        POINTS_READERS,
        200,
        call_points_summary,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/points/members/{member_id}/history",
        POINTS_READERS,
        200,
        call_points_history,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("POST", "/api/v1/points/earn", POINTS_WRITERS, 200, call_points_earn, POINTS_TARGETS, SEES_AWAY),
    Endpoint(
        "POST", "/api/v1/points/redeem", POINTS_WRITERS, 200, call_points_redeem, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/points/holds/{hold_id}/confirm",
        POINTS_WRITERS,
        200,
        call_points_hold("confirm"),
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST",
        "/api/v1/points/holds/{hold_id}/void",
        POINTS_WRITERS,
        200,
        call_points_hold("void"),
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST", "/api/v1/points/refund", POINTS_WRITERS, 200, call_points_refund, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/points/adjust",
        POINTS_ADJUSTERS,
        200,
        call_points_adjust,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("GET", "/api/v1/points/settlement", POINTS_SETTLERS, 200, call_points_settlement),
]
