"""The coupons API over HTTP, on both backends: templates, issuing within budgets and limits, a member's
coupons, validating with every reason, redeeming exactly once (核销), stacking on one order, reversing,
idempotency keys, and refusals that name the field at fault and change nothing.

Every test makes templates and members of its own, so the figures below are exact.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.calls import answer, refused, write
from tests.api.conftest import Brand, World, instant

TEMPLATES = "/api/v1/coupons/templates"
ISSUE = "/api/v1/coupons/issue"
VALIDATE = "/api/v1/coupons/validate"
REDEEM = "/api/v1/coupons/redeem"


# --- helpers ------------------------------------------------------------------------------------------


def template(w: World, caller: str = "hq_operator", **fields: Any) -> str:
    """A new template (满200减30, 30 days, unless ``fields`` say otherwise); its code."""
    code = f"T-{w.fresh_card()}"
    body = {
        "code": code,
        "name": "满200减30",
        "kind": "threshold",
        "threshold_fen": 20000,
        "amount_fen": 3000,
        "valid_days": 30,
    } | fields
    answer(w.client.post(TEMPLATES, json=body, headers=w.auth(caller)), 201)
    return code


def issue(w: World, member_id: str, template_code: str, caller: str = "pos_key") -> dict[str, Any]:
    body = {"member_id": member_id, "template": template_code, "issue_key": f"ik-{w.fresh_card()}"}
    return answer(write(w, caller, ISSUE, body))


def lines(*items: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    return [{"sku": s, "category": c, "quantity": q, "unit_price_fen": p} for s, c, q, p in items]


TEE = ("TE-1", "tops", 2, 9900)  # 198 yuan
SHOES = ("SH-1", "shoes", 1, 25000)  # 250 yuan


def basket(
    code: str, store: str | None = "A1", *items: tuple[str, str, int, int], **more: Any
) -> dict[str, Any]:
    return {
        "code": code,
        "channel": "pos" if store else "miniprogram",
        "store_code": store,
        "lines": lines(*(items or (SHOES,))),
    } | more


def coupon_status(w: World, brand: Brand, code: str) -> str:
    return w.coupon_by_code(brand, code).status


# --- templates ----------------------------------------------------------------------------------------


def test_a_template_is_created_once_with_its_stores_and_a_bad_one_names_its_field(world: World) -> None:
    w = world
    code = f"T-{w.fresh_card()}"
    body = {
        "code": code,
        "name": "全场8折 最多减50",
        "kind": "discount",
        "rate_pct": 80,
        "cap_fen": 5000,
        "offline": False,
        "store_codes": ["B1"],
        "categories": ["shoes", "bags"],
        "valid_from": "2026-12-01T00:00:00+08:00",
        "valid_until": "2027-01-01T00:00:00+08:00",
        "per_member_limit": 2,
        "exclusive": True,
    }
    created = answer(w.client.post(TEMPLATES, json=body, headers=w.auth("hq_admin")), 201)
    assert instant(created.pop("valid_from")) == instant("2026-12-01T00:00:00+08:00")
    assert instant(created.pop("valid_until")) == instant("2027-01-01T00:00:00+08:00")
    assert created == {
        "id": created["id"],
        "code": code,
        "name": "全场8折 最多减50",
        "kind": "discount",
        "amount_fen": 0,
        "threshold_fen": 0,
        "rate_pct": 80,
        "cap_fen": 5000,
        "sku": None,
        "price_fen": 0,
        "online": True,
        "offline": False,
        "store_codes": ["B1"],
        "skus": [],
        "categories": ["bags", "shoes"],
        "exclusive": True,
        "with_points": True,
        "one_per_category": False,
        "valid_days": None,
        "total_quantity": None,
        "issued_count": 0,
        "per_member_limit": 2,
        "restore_on_refund": True,
        "active": True,
    }
    base = {
        "code": f"T-{w.fresh_card()}",
        "name": "立减5元",
        "kind": "cash_off",
        "amount_fen": 500,
        "valid_days": 7,
    }
    bad = [
        ({"code": code}, (409, "conflict", "code")),  # the same code again
        ({"kind": "lottery"}, (422, "invalid", "kind")),
        ({"colour": "red"}, (422, "invalid", "colour")),
        ({"kind": "threshold", "threshold_fen": 500}, (422, "invalid", "threshold_fen")),
        ({"kind": "discount", "rate_pct": 100}, (422, "invalid", "rate_pct")),
        ({"kind": "pickup"}, (422, "invalid", "sku")),
        ({"valid_days": None}, (422, "invalid", "valid_until")),
        ({"valid_until": "2027-01-01T00:00:00"}, (422, "invalid", "valid_until")),  # no time zone
        ({"store_codes": ["A1", "NOPE"]}, (422, "invalid", "store_codes.1")),
        ({"amount_fen": -1}, (422, "invalid", "amount_fen")),
    ]
    before = w.counts()
    for change, expected in bad:
        assert refused(w.client.post(TEMPLATES, json=base | change, headers=w.auth("hq_admin"))) == expected
    # A store manager may not create templates; brand 2 may create its own with the same code.
    assert refused(w.client.post(TEMPLATES, json=base, headers=w.auth("store_manager")))[:2] == (
        403,
        "forbidden",
    )
    assert w.counts() == before
    other = answer(w.client.post(TEMPLATES, json=body, headers=w.auth("other_brand_admin")), 201)
    assert (other["code"], other["store_codes"]) == (code, ["B1"])
    assert other["id"] != created["id"]


# --- issuing ------------------------------------------------------------------------------------------


def test_issuing_is_idempotent_and_holds_the_budget_and_the_member_limit(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, total_quantity=2, per_member_limit=1)
    m1, m2, m3 = (w.fresh_member(brand, store="A1") for _ in range(3))
    body = {"member_id": m1, "template": code, "issue_key": "campaign-2026-11:" + m1}
    first = answer(write(w, "store_manager", ISSUE, body, "issue-1"))
    [coupon] = w.coupons_of(m1)
    assert (first["id"], first["code"], first["status"], first["created"]) == (
        coupon.id,
        coupon.code,
        "issued",
        True,
    )
    assert first["display_code"] == "-".join(
        (coupon.code[:4], coupon.code[4:8], coupon.code[8:12], coupon.code[12])
    )
    before = w.counts()
    # The same key and body: the first answer. Another key, the same issue key: the same coupon, not created.
    assert answer(write(w, "store_manager", ISSUE, body, "issue-1")) == first
    assert answer(write(w, "store_manager", ISSUE, body)) == first | {"created": False}
    after_replay = w.counts()
    assert after_replay["coupon"] == before["coupon"]
    assert after_replay["coupons_issued"] == before["coupons_issued"]
    assert after_replay["coupons_held"] == before["coupons_held"]
    before = after_replay
    refusals = [
        (
            write(w, "store_manager", ISSUE, body | {"issue_key": "other"}, "issue-1"),
            (409, "conflict", "Idempotency-Key"),
        ),
        (write(w, "store_manager", ISSUE, body | {"issue_key": "second"}), (409, "conflict", "member_id")),
        (write(w, "store_manager", ISSUE, body, send_key=False), (422, "invalid", "Idempotency-Key")),
        (write(w, "pos_key", ISSUE, body | {"template": "no-such"}), (404, "not_found", "template")),
        (write(w, "pos_key", ISSUE, body | {"issue_key": ""}), (422, "invalid", "issue_key")),
        # A member outside the store manager's store, and one of another brand: as if none.
        (
            write(w, "store_manager", ISSUE, body | {"member_id": brand.members["b1"]}),
            (404, "not_found", "member_id"),
        ),
        (write(w, "guide", ISSUE, body | {"member_id": brand.members["a1_guide"]}), (403, "forbidden", None)),
        (
            write(w, "hq_admin", ISSUE, body | {"member_id": w.b2.members["a1"]}),
            (404, "not_found", "member_id"),
        ),
    ]
    for response, expected in refusals:
        assert refused(response) == expected, response.text
    assert w.counts() == before
    second = issue(w, m2, code, caller="store_manager")
    before = w.counts()
    assert refused(write(w, "pos_key", ISSUE, {"member_id": m3, "template": code, "issue_key": "k-m3"})) == (
        409,
        "conflict",
        "template",
    )
    assert w.counts() == before
    assert [c.id for c in w.coupons_of(m2)] == [second["id"]]
    assert w.coupons_of(m3) == []
    # Brand 2 has no such template.
    assert (
        refused(write(w, "other_brand_admin", ISSUE, body | {"member_id": w.b2.members["a1"]}))[2]
        == "template"
    )


def test_a_members_coupons_oldest_first_and_only_where_the_caller_sees_them(world: World) -> None:
    w = world
    brand = w.b1
    member_id = w.fresh_member(brand, store="A1", guide="G1")
    code = template(w)
    first, second = issue(w, member_id, code), issue(w, member_id, code)
    w.redeem_coupon(brand, second["code"], store="A1", order_fen=20000)
    for caller in ("guide", "store_manager", "agent_manager", "hq_operator", "pos_key"):
        body = answer(w.client.get(f"/api/v1/coupons/members/{member_id}", headers=w.auth(caller)))
        assert body["member_id"] == member_id
        assert [(c["id"], c["code"], c["status"], c["template"]) for c in body["coupons"]] == [
            (first["id"], first["code"], "issued", code),
            (second["id"], second["code"], "redeemed", code),
        ]
    for caller in ("store_key", "other_brand_admin"):
        response = w.client.get(f"/api/v1/coupons/members/{member_id}", headers=w.auth(caller))
        assert refused(response) == (404, "not_found", "member_id")


# --- validating ---------------------------------------------------------------------------------------


def test_validating_gives_the_discount_or_every_reason_and_changes_nothing(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, store_codes=["A1"], online=False, with_points=False)
    member_id = w.fresh_member(brand, store="A1")
    coupon = issue(w, member_id, code)["code"]
    before = w.counts()
    typed = coupon.lower()[:4] + "-" + coupon.lower()[4:8] + " " + coupon.lower()[8:]
    applies = answer(write(w, "store_manager", VALIDATE, basket(typed, "A1"), send_key=False))
    assert applies == {
        "coupon_id": w.coupon_by_code(brand, coupon).id,
        "code": coupon,
        "applies": True,
        "discount_fen": 3000,
        "reasons": [],
    }
    at_d1 = answer(
        write(w, "hq_operator", VALIDATE, basket(coupon, "D1", TEE, points_used=10), send_key=False)
    )
    assert at_d1 == applies | {
        "applies": False,
        "discount_fen": 0,
        "reasons": [
            {"code": "store", "message": "not for this store"},
            {"code": "stacking_points", "message": "not with points paid on the same order"},
            {"code": "threshold", "message": "spend 200 fen more on eligible lines"},
        ],
    }
    online = answer(write(w, "pos_key", VALIDATE, basket(coupon, None), send_key=False))
    assert online["reasons"] == [{"code": "channel", "message": "not for online orders"}]
    someone_else = answer(
        write(w, "pos_key", VALIDATE, basket(coupon, "A1", member_id=brand.members["a1"]), send_key=False)
    )
    assert someone_else["reasons"] == [{"code": "member", "message": "this coupon belongs to another member"}]
    wrong = ("Y" if coupon[0] == "X" else "X") + coupon[1:]
    refusals = [
        (write(w, "pos_key", VALIDATE, basket(wrong, "A1"), send_key=False), (422, "invalid", "code")),
        # The store manager's own member, at a store that is not its own: as if no such store.
        (
            write(w, "store_manager", VALIDATE, basket(coupon, "D1"), send_key=False),
            (404, "not_found", "store_code"),
        ),
        (
            write(w, "hq_admin", VALIDATE, basket(coupon, "NOPE"), send_key=False),
            (422, "invalid", "store_code"),
        ),
        # A coupon of a member the caller may not see, and another brand's: as if no such code.
        (write(w, "store_key", VALIDATE, basket(coupon, "D1"), send_key=False), (404, "not_found", "code")),
        (
            write(w, "other_brand_admin", VALIDATE, basket(coupon, "A1"), send_key=False),
            (404, "not_found", "code"),
        ),
        (write(w, "guide", VALIDATE, basket(coupon, "A1"), send_key=False), (403, "forbidden", None)),
        (
            write(w, "pos_key", VALIDATE, basket(coupon, "A1") | {"store_code": None}, send_key=False),
            (422, "invalid", "store_code"),
        ),
        (
            write(w, "pos_key", VALIDATE, basket(coupon, None) | {"store_code": "A1"}, send_key=False),
            (422, "invalid", "store_code"),
        ),
        (
            write(w, "pos_key", VALIDATE, basket(coupon, "A1") | {"lines": []}, send_key=False),
            (422, "invalid", "lines"),
        ),
        (
            write(
                w,
                "pos_key",
                VALIDATE,
                basket(coupon, "A1") | {"lines": lines(("X", "tops", 0, 100))},
                send_key=False,
            ),
            (422, "invalid", "lines.0.quantity"),
        ),
        (
            write(w, "pos_key", VALIDATE, basket(coupon, "A1") | {"channel": "fax"}, send_key=False),
            (422, "invalid", "channel"),
        ),
        (
            write(w, "pos_key", VALIDATE, basket(coupon, "A1", discount=5), send_key=False),
            (422, "invalid", "discount"),
        ),
    ]
    for response, expected in refusals:
        assert refused(response) == expected, response.text
    assert w.counts() == before
    assert coupon_status(w, brand, coupon) == "issued"


# --- redeeming ----------------------------------------------------------------------------------------


def test_a_coupon_is_redeemed_once_and_a_refusal_changes_nothing(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w)
    member_id = w.fresh_member(brand, store="A1")
    coupon, small = issue(w, member_id, code)["code"], issue(w, member_id, code)["code"]
    body = basket(coupon, "A1", SHOES, TEE, order_no="POS-A1-0001")
    before = w.counts()
    # Not enough spent, at a store not the caller's, for another member: refused, nothing written.
    refusals = [
        (write(w, "store_manager", REDEEM, basket(small, "A1", TEE, order_no="POS-A1-0001")), 409, "code"),
        (write(w, "store_manager", REDEEM, body | {"store_code": "A2"}), 404, "store_code"),
        (write(w, "agent_manager", REDEEM, body | {"store_code": "B1"}), 404, "store_code"),
        (write(w, "store_key", REDEEM, body | {"store_code": "D1"}), 404, "code"),
        (write(w, "store_manager", REDEEM, body, send_key=False), 422, "Idempotency-Key"),
    ]
    for response, status, field in refusals:
        assert (response.status_code, response.json()["field"]) == (status, field), response.text
    assert refusals[0][0].json()["detail"] == {"reasons": ["threshold"]}
    assert (
        refusals[0][0].json()["message"] == "the coupon does not apply: spend 200 fen more on eligible lines"
    )
    mismatch = write(w, "pos_key", REDEEM, body | {"member_id": brand.members["a1"]})
    assert (mismatch.status_code, mismatch.json()["detail"]) == (409, {"reasons": ["member"]})
    assert w.counts() == before
    done = answer(write(w, "store_manager", REDEEM, body, "redeem-1"))
    saved = w.coupon_by_code(brand, coupon)
    [r] = w.coupon_redemptions(saved.id)
    assert instant(done.pop("at")) == r.at == saved.redeemed_at
    assert done == {
        "redemption_id": r.id,
        "coupon_id": saved.id,
        "code": coupon,
        "member_id": member_id,
        "status": "redeemed",
        "discount_fen": 3000,
        "order_fen": 25000 + 19800,
        "channel": "pos",
        "order_no": "POS-A1-0001",
        "store_id": brand.stores["A1"],
    }
    assert (r.actor, r.discount_fen, r.reversed_at) == (f"user:{brand.users['store_manager']}", 3000, None)
    before = w.counts()
    again = write(w, "store_manager", REDEEM, body | {"order_no": "POS-A1-0002"})
    assert (again.status_code, again.json()["field"], again.json()["detail"]) == (
        409,
        "code",
        {"reasons": ["redeemed"]},
    )
    replay = write(w, "store_manager", REDEEM, body, "redeem-1")
    assert instant(answer(replay).pop("at")) == r.at
    assert answer(replay) | {"at": None} == done | {"at": None}
    reused = write(w, "store_manager", REDEEM, body | {"order_no": "other"}, "redeem-1")
    assert refused(reused) == (409, "conflict", "Idempotency-Key")
    assert w.counts() == before
    assert len(w.coupon_redemptions(saved.id)) == 1


def test_an_exclusive_coupon_is_the_only_one_on_an_order(world: World) -> None:
    w = world
    brand = w.b1
    plain, exclusive = (
        template(w),
        template(w, exclusive=True, kind="cash_off", amount_fen=1000, threshold_fen=0),
    )
    member_id = w.fresh_member(brand, store="D1")
    first, only = issue(w, member_id, plain)["code"], issue(w, member_id, exclusive)["code"]
    answer(write(w, "store_key", REDEEM, basket(first, "D1", order_no="D1-77")))
    checked = answer(write(w, "store_key", VALIDATE, basket(only, "D1", order_no="D1-77"), send_key=False))
    assert checked["reasons"] == [
        {"code": "stacking_exclusive", "message": "the only coupon allowed on an order"}
    ]
    before = w.counts()
    clash = write(w, "store_key", REDEEM, basket(only, "D1", order_no="D1-77"))
    assert (clash.status_code, clash.json()["detail"]) == (409, {"reasons": ["stacking_exclusive"]})
    assert w.counts() == before
    # On another order, and on the same number from another channel, it applies.
    assert answer(write(w, "store_key", VALIDATE, basket(only, "D1"), send_key=False))["discount_fen"] == 1000
    assert answer(write(w, "pos_key", REDEEM, basket(only, None, order_no="D1-77")))["discount_fen"] == 1000


# --- reversing ----------------------------------------------------------------------------------------


def reverse(w: World, caller: str, redemption_id: str, key: str | None = None) -> httpx.Response:
    return write(w, caller, f"/api/v1/coupons/redemptions/{redemption_id}/reverse", None, key)


def test_a_reversed_redemption_gives_the_coupon_back_once(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w)
    member_id = w.fresh_member(brand, store="A1")
    coupon = issue(w, member_id, code)["code"]
    redemption_id = answer(write(w, "store_manager", REDEEM, basket(coupon, "A1", order_no="A1-9")))[
        "redemption_id"
    ]
    before = w.counts()
    for caller, expected in (
        ("store_key", (404, "not_found", "redemption_id")),  # another store's redemption
        ("guide", (403, "forbidden", None)),
        ("other_brand_admin", (404, "not_found", "redemption_id")),
    ):
        assert refused(reverse(w, caller, redemption_id)) == expected
    assert refused(reverse(w, "hq_admin", "cpr_00000000000000000000000000")) == (
        404,
        "not_found",
        "redemption_id",
    )
    assert w.counts() == before
    back = answer(reverse(w, "agent_manager", redemption_id, "rev-1"))
    [r] = w.coupon_redemptions(w.coupon_by_code(brand, coupon).id)
    assert instant(back.pop("reversed_at")) == r.reversed_at
    assert back == {
        "redemption_id": redemption_id,
        "coupon_id": r.coupon_id,
        "code": coupon,
        "status": "issued",
    }
    assert (r.reversed_by, coupon_status(w, brand, coupon)) == (
        f"user:{brand.users['agent_manager']}",
        "issued",
    )
    before = w.counts()
    assert refused(reverse(w, "agent_manager", redemption_id)) == (409, "conflict", "redemption_id")
    replay = answer(reverse(w, "agent_manager", redemption_id, "rev-1"))
    assert instant(replay.pop("reversed_at")) == r.reversed_at
    assert replay == back
    assert w.counts() == before
    # Given back, the coupon is redeemed again on a new order.
    again = answer(write(w, "store_manager", REDEEM, basket(coupon, "A1", order_no="A1-10")))
    assert (again["discount_fen"], len(w.coupon_redemptions(r.coupon_id))) == (3000, 2)


def test_a_coupon_not_restored_on_refund_is_void_after_reversal(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, restore_on_refund=False)
    member_id = w.fresh_member(brand, store="A1")
    coupon = issue(w, member_id, code)["code"]
    redemption_id = answer(write(w, "pos_key", REDEEM, basket(coupon, "A1", order_no="A1-11")))[
        "redemption_id"
    ]
    assert answer(reverse(w, "pos_key", redemption_id))["status"] == "void"
    assert coupon_status(w, brand, coupon) == "void"
    before = w.counts()
    response = write(w, "pos_key", REDEEM, basket(coupon, "A1", order_no="A1-12"))
    assert (response.status_code, response.json()["detail"]) == (409, {"reasons": ["void"]})
    assert w.counts() == before
