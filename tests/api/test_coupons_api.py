"""The coupons API over HTTP, on both backends: templates, issuing within budgets and limits, a member's
coupons, validating with every reason, redeeming exactly once (核销), stacking on one order, reversing,
idempotency keys, and refusals that name the field at fault and change nothing.

Every test makes templates and members of its own, so the figures below are exact.
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from datong.api.routers import coupons as coupons_router
from datong.core.clock import utcnow
from datong.coupons.codes import dynamic_payload, dynamic_signer
from datong.coupons.models import CouponTemplate
from tests.api.calls import answer, refused, write
from tests.api.conftest import Brand, World, instant
from tests.api.matrix_coupons import wait_for_batch

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


def template_id(w: World, brand: Brand, code: str) -> str:
    with w.db.reading() as s:
        found = s.scalar(
            select(CouponTemplate.id).where(
                CouponTemplate.tenant_id == brand.tenant_id, CouponTemplate.code == code
            )
        )
        assert found is not None
        return found


def phone(w: World, brand: Brand, member_id: str) -> str:
    """The member's phone, as the brand's key opens it."""
    member = w.member(member_id)
    assert member.phone_enc is not None
    return w.keyring.decrypt(
        member.phone_enc, tenant_id=brand.tenant_id, table="member", row_id=member_id, column="phone_enc"
    )


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
        "region_codes": [],
        "agent_codes": [],
        "skus": [],
        "categories": ["bags", "shoes"],
        "exclusive": True,
        "with_points": True,
        "one_per_category": False,
        "valid_days": None,
        "total_quantity": None,
        "issued_count": 0,
        "per_member_limit": 2,
        "per_day_limit": None,
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


# --- where a template applies: regions and agents ----------------------------------------------------


def test_a_template_for_regions_and_agents_applies_at_their_stores(world: World) -> None:
    w = world
    brand = w.b1
    body = {
        "code": f"T-{w.fresh_card()}",
        "name": "华南与代理A 立减10元",
        "kind": "cash_off",
        "amount_fen": 1000,
        "valid_days": 30,
        "region_codes": ["SOUTH"],
        "agent_codes": ["AGA"],
        "per_day_limit": 500,
    }
    before = w.counts()
    for change, expected in (
        ({"region_codes": ["SOUTH", "NOPE"]}, (422, "invalid", "region_codes.1")),
        ({"agent_codes": ["AGB", "AGA", "AGC"]}, (422, "invalid", "agent_codes.2")),
        ({"per_day_limit": 0}, (422, "invalid", "per_day_limit")),
    ):
        assert refused(w.client.post(TEMPLATES, json=body | change, headers=w.auth("hq_admin"))) == expected
    assert w.counts() == before
    created = answer(w.client.post(TEMPLATES, json=body, headers=w.auth("hq_admin")), 201)
    assert (
        created["store_codes"],
        created["region_codes"],
        created["agent_codes"],
        created["per_day_limit"],
    ) == (
        [],
        ["SOUTH"],
        ["AGA"],
        500,
    )
    coupon = issue(w, w.fresh_member(brand, store="A1"), body["code"])["code"]
    # A1 and A2 are agent A's (east), B1 is agent B's in the south, C1 a counter in the south, D1 HQ's in
    # the east; online, where no store is, it applies.
    outcomes = {
        store: answer(write(w, "pos_key", VALIDATE, basket(coupon, store), send_key=False))["reasons"]
        for store in ("A1", "A2", "B1", "C1", "D1", None)
    }
    assert outcomes == {
        "A1": [],
        "A2": [],
        "B1": [],
        "C1": [],
        "D1": [{"code": "store", "message": "not for this store"}],
        None: [],
    }


# --- issuing through a store: allocations, guides, the day's limit --------------------------------------


def allocate(w: World, caller: str, template_code: str, store: str, quantity: int) -> httpx.Response:
    path = f"{TEMPLATES}/{template_code}/allocations/{store}"
    response: httpx.Response = w.client.put(path, json={"quantity": quantity}, headers=w.auth(caller))
    return response


def test_a_store_issues_from_its_allocation_and_hq_from_what_is_left(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, total_quantity=5)
    assert answer(allocate(w, "hq_operator", code, "A1", 2)) == {
        "template": code,
        "store_code": "A1",
        "quantity": 2,
        "issued": 0,
    }
    assert w.audit_actions(brand.tenant_id, template_id(w, brand, code))[-1] == "coupon.allocation_set"
    a1 = [w.fresh_member(brand, store="A1") for _ in range(3)]
    d1 = w.fresh_member(brand, store="D1")
    first = issue(w, a1[0], code, caller="store_manager")  # a store manager issues through its store
    body = {"member_id": a1[1], "template": code, "issue_key": f"ik-{w.fresh_card()}", "guide_code": "G1"}
    second = answer(write(w, "hq_admin", ISSUE, body))  # HQ, through guide G1 of A1
    coupons = [w.coupon_by_code(brand, c["code"]) for c in (first, second)]
    assert [(c.store_id, c.guide_id) for c in coupons] == [
        (brand.stores["A1"], None),
        (brand.stores["A1"], brand.guides["G1"]),
    ]
    before = w.counts()
    fresh = {"template": code, "issue_key": "k-refused"}
    refusals = [
        (
            write(w, "store_manager", ISSUE, fresh | {"member_id": a1[2]}),
            (409, "store_code", f"the 2 coupons of {code!r} allocated to store A1 are given out"),
        ),
        (
            write(w, "store_key", ISSUE, fresh | {"member_id": d1}),
            (409, "store_code", f"store D1 has no allocation of {code!r}"),
        ),
        (
            write(w, "hq_admin", ISSUE, fresh | {"member_id": d1, "store_code": "A2", "guide_code": "G1"}),
            (422, "guide_code", "guide G1 works at another store"),
        ),
        (
            write(w, "hq_admin", ISSUE, fresh | {"member_id": d1, "guide_code": "G9"}),
            (422, "guide_code", "no guide 'G9'"),
        ),
        (
            write(w, "store_key", ISSUE, fresh | {"member_id": d1, "guide_code": "G1"}),  # a guide of A1
            (404, "guide_code", "no guide 'G1'"),
        ),
        (
            write(w, "store_manager", ISSUE, fresh | {"member_id": a1[2], "store_code": "A2"}),
            (404, "store_code", "no store 'A2'"),
        ),
        (
            allocate(w, "hq_admin", code, "A1", 1),
            (409, "quantity", f"store A1 has issued 2 of {code!r} already"),
        ),
        (
            allocate(w, "hq_admin", code, "D1", 4),
            (409, "quantity", f"allocations may not exceed the budget of {code!r}: 3 left"),
        ),
        (allocate(w, "hq_admin", code, "NOPE", 1), (404, "store_code", "no store 'NOPE'")),
        (allocate(w, "hq_admin", "no-such", "A1", 1), (404, "template", "no coupon template 'no-such'")),
        (
            allocate(w, "hq_admin", code, "A1", -1),
            (422, "quantity", "Input should be greater than or equal to 0"),
        ),
        (allocate(w, "store_manager", code, "A1", 9), (403, None, "this needs the coupons:admin right")),
    ]
    for response, (status, field, message) in refusals:
        assert (response.status_code, response.json().get("field"), response.json()["message"]) == (
            status,
            field,
            message,
        ), response.text
    assert w.counts() == before
    for _ in range(3):  # HQ issues the three no allocation holds
        issue(w, d1, code)
    response = write(w, "hq_admin", ISSUE, fresh | {"member_id": d1})
    assert refused(response) == (409, "conflict", "template")
    assert response.json()["message"] == f"the budget of {code!r} is spent"


def test_an_agent_manager_issues_through_one_of_its_stores_never_through_none(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, total_quantity=3)
    answer(allocate(w, "hq_operator", code, "A1", 2))  # one coupon left for issues through no store
    a1 = [w.fresh_member(brand, store="A1") for _ in range(3)]
    before = w.counts()
    fresh = {"template": code, "issue_key": "k-agent"}
    response = write(w, "agent_manager", ISSUE, fresh | {"member_id": a1[0]})
    assert refused(response) == (422, "invalid", "store_code")
    assert response.json()["message"] == (
        "a caller bound to stores issues through one of them: name store_code (or a guide)"
    )
    assert w.counts() == before
    # Through a store of its own, or a guide of one (through the guide's store): A1's allocation.
    first = answer(write(w, "agent_manager", ISSUE, fresh | {"member_id": a1[0], "store_code": "A1"}))
    body = fresh | {"member_id": a1[1], "guide_code": "G2", "issue_key": "k-agent-2"}
    second = answer(write(w, "agent_manager", ISSUE, body))
    coupons = [w.coupon_by_code(brand, c["code"]) for c in (first, second)]
    assert [(c.store_id, c.guide_id) for c in coupons] == [
        (brand.stores["A1"], None),
        (brand.stores["A1"], brand.guides["G2"]),
    ]
    # A1's share is given out: the one coupon outside the allocations is not the agent's to take.
    before = w.counts()
    third = fresh | {"member_id": a1[2], "issue_key": "k-agent-3"}
    assert refused(write(w, "agent_manager", ISSUE, third | {"store_code": "A1"})) == (
        409,
        "conflict",
        "store_code",
    )
    assert refused(write(w, "agent_manager", ISSUE, third)) == (422, "invalid", "store_code")
    assert w.counts() == before
    assert answer(write(w, "hq_admin", ISSUE, third))["created"] is True  # HQ may, through no store


def test_to_a_caller_bound_to_stores_an_unknown_guide_and_another_stores_look_alike(world: World) -> None:
    w = world
    code = template(w)
    member_id = w.fresh_member(w.b1, store="D1")
    before = w.counts()
    for guide_code in ("G9", "G1"):  # no such guide; a guide of A1, not D1's key's store
        body = {"member_id": member_id, "template": code, "issue_key": "k-g", "guide_code": guide_code}
        response = write(w, "store_key", ISSUE, body)
        assert (refused(response), response.json()["message"]) == (
            (404, "not_found", "guide_code"),
            f"no guide {guide_code!r}",
        )
    assert w.counts() == before


def test_the_day_limit_is_a_conflict_naming_the_template(world: World) -> None:
    w = world
    code = template(w, per_day_limit=1)
    member_id = w.fresh_member(w.b1, store="A1")
    issue(w, member_id, code)
    before = w.counts()
    response = write(w, "pos_key", ISSUE, {"member_id": member_id, "template": code, "issue_key": "again"})
    assert refused(response) == (409, "conflict", "template")
    assert response.json()["message"].startswith(f"the 1 coupons of {code!r} for ")
    assert w.counts() == before


# --- the member page's dynamic code --------------------------------------------------------------------


def test_the_member_pages_dynamic_code_validates_and_redeems_while_fresh(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w)
    member_id = w.fresh_member(brand, store="A1")
    issued = issue(w, member_id, code)
    coupon, coupon_id = issued["code"], issued["id"]
    sign = dynamic_signer(w.keyring, brand.tenant_id)
    fresh = dynamic_payload(coupon_id, at_epoch=time.time(), sign=sign)
    stale = dynamic_payload(coupon_id, at_epoch=time.time() - 180, sign=sign)
    body, window, mac = fresh.split(".")
    before = w.counts()
    for payload, message in (
        (stale, "this dynamic code has expired: refresh the member page"),
        (f"{body}.{window}.{'0' * len(mac)}", "not a coupon's dynamic code"),
        (
            dynamic_payload(coupon_id, at_epoch=time.time(), sign=dynamic_signer(w.keyring, w.b2.tenant_id)),
            "not a coupon's dynamic code",
        ),
    ):
        for response in (
            write(w, "pos_key", VALIDATE, basket(payload, "A1"), send_key=False),
            write(w, "pos_key", REDEEM, basket(payload, "A1", order_no="DY-1")),
        ):
            assert (refused(response), response.json()["message"]) == ((422, "invalid", "code"), message)
    assert w.counts() == before
    checked = answer(write(w, "store_manager", VALIDATE, basket(fresh, "A1"), send_key=False))
    assert (checked["code"], checked["applies"], checked["discount_fen"]) == (coupon, True, 3000)
    done = answer(write(w, "store_manager", REDEEM, basket(fresh, "A1", order_no="DY-1")))
    assert (done["code"], done["discount_fen"], coupon_status(w, brand, coupon)) == (coupon, 3000, "redeemed")


# --- bulk issuing from a member list file ---------------------------------------------------------------


def upload(
    w: World, caller: str, template_code: str, content: bytes, name: str = "list.csv", **form: str
) -> httpx.Response:
    response: httpx.Response = w.client.post(
        "/api/v1/coupons/batches",
        data={"template": template_code, **form},
        files={"file": (name, content, "text/csv")},
        headers=w.auth(caller),
    )
    return response


def test_a_member_list_file_is_issued_in_the_background_with_its_bad_rows_kept(world: World) -> None:
    w = world
    brand = w.b1
    code = template(w, per_member_limit=1)
    members = [w.fresh_member(brand, store="A1") for _ in range(3)]
    phone_of = phone(w, brand, members[2])
    content = (
        f"member_id,手机号\n{members[0]},\n{members[1]},\n{members[0]},\nmem_nobody,\n,{phone_of}\n"
    ).encode()
    before = w.counts()
    refusals = [
        (upload(w, "store_manager", code, content), (403, "forbidden", None)),
        (upload(w, "hq_admin", code, b""), (422, "invalid", "file")),
        (upload(w, "hq_admin", code, "姓名\n王芳\n".encode()), (422, "invalid", "file")),
        (upload(w, "hq_admin", code, b"card_no\nC1\n"), (422, "invalid", "card_source")),
        (upload(w, "hq_admin", "no-such", content), (404, "not_found", "template")),
        (upload(w, "other_brand_admin", code, content), (404, "not_found", "template")),
        (upload(w, "anonymous", code, content), (401, "unauthenticated", None)),
    ]
    for response, expected in refusals:
        assert refused(response) == expected, response.text
    assert w.counts() == before
    started = answer(upload(w, "hq_operator", code, content, name="双十一名单.csv"), 202)
    assert (started["template"], started["filename"]) == (code, "双十一名单.csv")
    done = wait_for_batch(w, "hq_operator", started["id"])
    assert instant(done.pop("finished_at")) >= instant(done.pop("created_at"))
    assert done == {
        "id": started["id"],
        "template": code,
        "filename": "双十一名单.csv",
        "status": "done",
        "rows_seen": 5,
        "rows_issued": 3,
        "rows_already": 0,
        "rows_failed": 2,
    }
    assert [len(w.coupons_of(m)) for m in members] == [1, 1, 1]
    errors = w.client.get(f"/api/v1/coupons/batches/{started['id']}/errors", headers=w.auth("hq_admin"))
    assert errors.status_code == 200
    assert list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig")))) == [
        ["row_no", "field", "reason", "row"],
        [
            "3",
            "member_id",
            f"the member is in this file already (row 1), and {code!r} gives at most 1 per member",
            f"{members[0]}|",
        ],
        ["4", "member_id", "no member mem_nobody", "mem_nobody|"],
    ]
    assert w.audit_actions(brand.tenant_id, started["id"]) == [
        "coupon.bulk_start",
        "coupon.bulk_finish",
        "coupon.bulk_errors_export",
    ]
    before = w.counts()
    again = answer(upload(w, "hq_admin", code, content), 202)  # the same file: the same batch, done
    assert (again["id"], again["status"], again["rows_issued"]) == (started["id"], "done", 3)
    assert w.counts() == before
    for caller in ("other_brand_admin", "store_manager"):
        response = w.client.get(f"/api/v1/coupons/batches/{started['id']}", headers=w.auth(caller))
        assert refused(response) == (
            (404, "not_found", "batch_id") if caller == "other_brand_admin" else (403, "forbidden", None)
        )


def test_a_member_list_file_over_the_cap_is_refused_and_leaves_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = world
    code = template(w)
    content = f"member_id\n{w.fresh_member(w.b1, store='A1')}\n".encode()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the upload would be copied
    monkeypatch.setattr(coupons_router, "MAX_BATCH_FILE_BYTES", len(content) - 1)
    before = w.counts()
    response = upload(w, "hq_admin", code, content)
    assert (refused(response), response.json()["message"]) == (
        (422, "invalid", "file"),
        "a member list file is at most 50 MB",
    )
    assert w.counts() == before
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(coupons_router, "MAX_BATCH_FILE_BYTES", len(content))  # at the cap: taken
    started = answer(upload(w, "hq_admin", code, content), 202)
    assert wait_for_batch(w, "hq_admin", started["id"])["rows_issued"] == 1


# --- reports -------------------------------------------------------------------------------------------


def test_reports_per_template_and_per_store_each_caller_seeing_its_stores(world: World) -> None:
    w = world
    brand = w.b1
    start = utcnow()
    code = template(w, kind="cash_off", amount_fen=1000, threshold_fen=0, total_quantity=10)
    answer(allocate(w, "hq_admin", code, "A1", 3))
    answer(allocate(w, "hq_admin", code, "D1", 2))
    a1 = [w.fresh_member(brand, store="A1") for _ in range(2)]
    d1 = w.fresh_member(brand, store="D1")
    c1, _c2 = (issue(w, m, code, caller="store_manager")["code"] for m in a1)
    c3 = issue(w, d1, code, caller="store_key")["code"]
    answer(write(w, "store_manager", REDEEM, basket(c1, "A1", ("X", "tops", 1, 20000), order_no="RP-1")))
    answer(write(w, "store_key", REDEEM, basket(c3, "D1", ("X", "tops", 1, 5000), order_no="RP-4")))
    w.earn(brand, a1[0], "RP-1", 20000, store="A1")  # the order the coupon was used on
    w.earn(brand, a1[1], "RP-2", 8000, store="A1")  # orders with no coupon
    w.earn(brand, d1, "RP-3", 12000, store="D1")
    since = {"since": start.isoformat()}
    report = answer(w.client.get(f"{TEMPLATES}/{code}/report", params=since, headers=w.auth("hq_operator")))
    assert (instant(report.pop("since")), instant(report.pop("until")) >= start) == (start, True)
    assert report == {
        "template": code,
        "name": "满200减30",
        "issued": 3,
        "redeemed": 2,
        "expired": 0,
        "redemption_rate": 0.6667,
        "gmv_fen": 25000,
        "average_with_fen": 12500,
        "average_without_fen": 10000,
    }
    a1_row = {
        "store_code": "A1",
        "store_name": "杭州湖滨加盟店",
        "issued": 2,
        "redeemed": 1,
        "expired": 0,
        "redemption_rate": 0.5,
        "gmv_fen": 20000,
        "average_with_fen": 20000,
        "average_without_fen": 8000,
    }
    d1_row = a1_row | {
        "store_code": "D1",
        "store_name": "上海南京东路直营店",
        "issued": 1,
        "redemption_rate": 1.0,
        "gmv_fen": 5000,
        "average_with_fen": 5000,
        "average_without_fen": 12000,
    }
    for caller, rows in (
        ("hq_admin", [a1_row, d1_row]),
        ("pos_key", [a1_row, d1_row]),
        ("agent_manager", [a1_row]),
        ("store_manager", [a1_row]),
        ("store_key", [d1_row]),
        ("guide", []),
    ):
        stores = answer(w.client.get(f"{TEMPLATES}/{code}/stores", params=since, headers=w.auth(caller)))
        assert (stores["template"], stores["stores"]) == (code, rows), caller
    before = w.counts()
    for response, expected in (
        (
            w.client.get(f"{TEMPLATES}/{code}/report", headers=w.auth("store_manager")),
            (403, "forbidden", None),
        ),
        (
            w.client.get(f"{TEMPLATES}/{code}/report", headers=w.auth("other_brand_admin")),
            (404, "not_found", "template"),
        ),
        (
            w.client.get(f"{TEMPLATES}/{code}/stores", headers=w.auth("other_brand_admin")),
            (404, "not_found", "template"),
        ),
        (
            w.client.get(
                f"{TEMPLATES}/{code}/report",
                params={"since": "2026-11-01T00:00:00"},
                headers=w.auth("hq_admin"),
            ),
            (422, "invalid", "since"),
        ),
    ):
        assert refused(response) == expected
    assert w.counts() == before
