"""Route matrix rows: coupons."""

from __future__ import annotations

from datetime import timedelta

import httpx

from datong.coupons.models import Coupon, CouponRedemption
from tests.api.conftest import (
    AWAY,
    COUPON_TEMPLATE,
    WORLD_COUPON_ORDER_FEN,
    World,
    instant,
)
from tests.api.matrix import (
    COUPON_ADMINS,
    COUPON_READERS,
    COUPON_WRITERS,
    MEMBER_TARGETS,
    POINTS_TARGETS,
    SEES_AWAY,
    SEES_MEMBERS,
    UNKNOWN_CODE,
    UNKNOWN_REDEMPTION,
    Endpoint,
    Shopper,
    brand_and_label,
    fresh_like,
    fresh_shopper,
    label,
    shopper,
    target_member_id,
    write,
)

# --- coupons --------------------------------------------------------------------------------------


def _coupon_shopper(w: World, target: str) -> Shopper:
    """As ``shopper``: the member a coupon target names and where it shops (an unknown one at A1)."""
    return shopper(w, target)


def _world_coupon(w: World, target: str) -> str:
    """The target's unused coupon in the world (a code no coupon has for "unknown")."""
    if target == "unknown":
        return UNKNOWN_CODE
    if target in AWAY:
        return w.b1.coupons[target]
    brand, label = brand_and_label(w, target)
    return brand.coupons[label]


def _world_redemption(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_REDEMPTION
    if target in AWAY:
        return w.b1.coupon_redemptions[target]
    brand, label = brand_and_label(w, target)
    return brand.coupon_redemptions[label]


def _coupon_view(coupon_id: str, code: str, member_id: str, status: str) -> dict[str, object]:
    """A coupon of the world's template as the API shows it, less its times."""
    return {
        "id": coupon_id,
        "code": code,
        "display_code": f"{code[:4]}-{code[4:8]}-{code[8:12]}-{code[12:]}",
        "template": COUPON_TEMPLATE["code"],
        "name": COUPON_TEMPLATE["name"],
        "kind": "cash_off",
        "member_id": member_id,
        "status": status,
    }


def _basket_lines() -> list[dict[str, object]]:
    """Two tops of 25 yuan: WORLD_COUPON_ORDER_FEN."""
    return [
        {"sku": "SKU-M", "category": "tops", "quantity": 2, "unit_price_fen": WORLD_COUPON_ORDER_FEN // 2}
    ]


def call_coupon_template(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    code = f"T-{w.fresh_card()}"
    body = {
        "code": code,
        "name": "满200减30",
        "kind": "threshold",
        "threshold_fen": 20000,
        "amount_fen": 3000,
        "valid_days": 30,
        "store_codes": ["A2", "A1"],
        "total_quantity": 100,
    }
    response: httpx.Response = w.client.post("/api/v1/coupons/templates", json=body, headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        assert answer == {
            "id": answer["id"],
            "code": code,
            "name": "满200减30",
            "kind": "threshold",
            "amount_fen": 3000,
            "threshold_fen": 20000,
            "rate_pct": 100,
            "cap_fen": None,
            "sku": None,
            "price_fen": 0,
            "online": True,
            "offline": True,
            "store_codes": ["A1", "A2"],
            "skus": [],
            "categories": [],
            "exclusive": False,
            "with_points": True,
            "one_per_category": False,
            "valid_from": None,
            "valid_until": None,
            "valid_days": 30,
            "total_quantity": 100,
            "issued_count": 0,
            "per_member_limit": None,
            "restore_on_refund": True,
            "active": True,
        }
        assert w.audit_actions(brand.tenant_id, answer["id"]) == ["coupon.template_create"]
    return response


def call_coupon_issue(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    body = {"member_id": member_id, "template": COUPON_TEMPLATE["code"], "issue_key": f"m-{w.fresh_card()}"}
    response: httpx.Response = w.client.post("/api/v1/coupons/issue", json=body, headers=write(w, caller))
    if ok:
        [coupon] = w.coupons_of(member_id)
        assert (coupon.status, coupon.source, coupon.issue_key) == ("issued", "api", body["issue_key"])
        answer = response.json()
        times = [instant(answer.pop(k)) for k in ("issued_at", "valid_from", "valid_until")]
        assert times == [coupon.issued_at, coupon.issued_at, coupon.issued_at + timedelta(days=365)]
        assert answer == {
            **_coupon_view(coupon.id, coupon.code, member_id, "issued"),
            "redeemed_at": None,
            "created": True,
        }
    return response


def call_coupon_member(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _coupon_shopper(w, target)
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/members/{who.member_id}", headers=w.auth(caller)
    )
    if ok:
        brand, at = who.brand, who.brand.coupons_at
        assert at is not None
        body = response.json()
        assert body["member_id"] == who.member_id
        coupons = sorted(body["coupons"], key=lambda c: str(c["status"]))
        unused = w.coupon_by_code(brand, _world_coupon(w, target))
        with w.db.reading() as s:
            used = s.get(CouponRedemption, _world_redemption(w, target))
            assert used is not None
            redeemed = s.get(Coupon, used.coupon_id)
            assert redeemed is not None
        for view in coupons:
            times = [instant(view.pop(k)) for k in ("issued_at", "valid_from", "valid_until")]
            assert times == [at, at, at + timedelta(days=365)]
        redeemed_at = [c.pop("redeemed_at") for c in coupons]
        assert (redeemed_at[0], instant(redeemed_at[1])) == (None, at)
        assert coupons == [
            _coupon_view(unused.id, unused.code, who.member_id, "issued"),
            _coupon_view(redeemed.id, redeemed.code, who.member_id, "redeemed"),
        ]
    return response


def call_coupon_validate(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _coupon_shopper(w, target)
    code = _world_coupon(w, target)
    body = {
        "code": code.lower(),  # read leniently, as typed
        "channel": who.channel,
        "store_code": who.store,
        "lines": _basket_lines(),
    }
    before = w.counts() if ok else None
    response: httpx.Response = w.client.post("/api/v1/coupons/validate", json=body, headers=w.auth(caller))
    if ok:
        assert response.json() == {
            "coupon_id": w.coupon_by_code(who.brand, code).id,
            "code": code,
            "applies": True,
            "discount_fen": COUPON_TEMPLATE["amount_fen"],
            "reasons": [],
        }
        assert w.counts() == before, "validating changed something"
    return response


def call_coupon_redeem(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        who = fresh_shopper(w, target)
        code = w.issue_coupon(who.brand, who.member_id).code
    else:
        who, code = _coupon_shopper(w, target), _world_coupon(w, target)
    order_no = f"CP-{w.fresh_card()}"
    body = {
        "code": code,
        "order_no": order_no,
        "channel": who.channel,
        "store_code": who.store,
        "lines": _basket_lines(),
    }
    response: httpx.Response = w.client.post("/api/v1/coupons/redeem", json=body, headers=write(w, caller))
    if ok:
        coupon = w.coupon_by_code(who.brand, code)
        [r] = w.coupon_redemptions(coupon.id)
        assert (coupon.status, coupon.redeemed_at) == ("redeemed", r.at)
        assert (
            r.member_id,
            r.channel,
            r.order_no,
            r.store_id,
            r.discount_fen,
            r.order_fen,
            r.reversed_at,
        ) == (
            who.member_id,
            who.channel,
            order_no,
            who.store_id(),
            COUPON_TEMPLATE["amount_fen"],
            WORLD_COUPON_ORDER_FEN,
            None,
        )
        answer = response.json()
        assert instant(answer.pop("at")) == r.at
        assert answer == {
            "redemption_id": r.id,
            "coupon_id": coupon.id,
            "code": code,
            "member_id": who.member_id,
            "status": "redeemed",
            "discount_fen": COUPON_TEMPLATE["amount_fen"],
            "order_fen": WORLD_COUPON_ORDER_FEN,
            "channel": who.channel,
            "order_no": order_no,
            "store_id": who.store_id(),
        }
    return response


def call_coupon_reverse(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        who = fresh_shopper(w, target)
        code = w.issue_coupon(who.brand, who.member_id).code
        redemption_id = w.redeem_coupon(who.brand, code, store=who.store).id
    else:
        redemption_id = _world_redemption(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/coupons/redemptions/{redemption_id}/reverse", headers=write(w, caller)
    )
    if ok:
        coupon = w.coupon_by_code(who.brand, code)
        [r] = w.coupon_redemptions(coupon.id)
        assert r.reversed_at is not None
        assert (coupon.status, coupon.redeemed_at, r.id) == ("issued", None, redemption_id)
        assert r.reversed_by == label(w, caller)
        answer = response.json()
        assert instant(answer.pop("reversed_at")) == r.reversed_at
        assert answer == {"redemption_id": r.id, "coupon_id": coupon.id, "code": code, "status": "issued"}
    return response


ENDPOINTS = [
    Endpoint("POST", "/api/v1/coupons/templates", COUPON_ADMINS, 201, call_coupon_template),
    Endpoint(
        "POST", "/api/v1/coupons/issue", COUPON_WRITERS, 200, call_coupon_issue, MEMBER_TARGETS, SEES_MEMBERS
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/members/{member_id}",
        COUPON_READERS,
        200,
        call_coupon_member,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/coupons/validate",
        COUPON_WRITERS,
        200,
        call_coupon_validate,
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST", "/api/v1/coupons/redeem", COUPON_WRITERS, 200, call_coupon_redeem, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/coupons/redemptions/{redemption_id}/reverse",
        COUPON_WRITERS,
        200,
        call_coupon_reverse,
        POINTS_TARGETS,
        SEES_AWAY,
    ),
]
