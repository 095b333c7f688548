"""The POS refund (``POST /api/v1/points/refund``) reverses the coupons redeemed on the order, over HTTP on
both backends: a full refund gives the coupon back once (a second message of the same refund changes
nothing), a partial refund keeps a coupon the rest of the order still qualifies for and gives it back
when it no longer does, and a refused refund changes nothing.

Every test makes its own members, templates and sales, so the figures below are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datong.core.clock import utcnow
from tests.api.calls import answer, refused, write
from tests.api.conftest import World

EARN = "/api/v1/points/earn"
REFUND = "/api/v1/points/refund"
TEMPLATES = "/api/v1/coupons/templates"
ISSUE = "/api/v1/coupons/issue"
REDEEM = "/api/v1/coupons/redeem"
COAT = {"title": "羊毛大衣", "sku": "COAT-1", "category": "coats", "unit_price_fen": 10000}


def pos_label(w: World) -> str:
    """The actor the till's API key is recorded as (``Principal.label``)."""
    return f"api_key:{w.b1.key_ids['pos_key']}"


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What moved between two ``World.counts()``: a difference for numbers, the new value otherwise."""
    return {
        name: after[name] - before[name] if isinstance(after[name], int) else after[name]
        for name in after
        if after[name] != before[name]
    }


def sale_with_coupon(w: World, coats: int, template_fields: dict[str, Any]) -> tuple[str, str, str, str]:
    """A new member of A1 buys ``coats`` coats at 100 yuan there (sent to points/earn with its lines)
    with a new coupon of a new template redeemed on the sale: (member, order number, code, redemption)."""
    member_id = w.fresh_member(w.b1, store="A1")
    template = f"T-{w.fresh_card()}"
    body = {"code": template, "name": "券", "valid_days": 30} | template_fields
    answer(w.client.post(TEMPLATES, json=body, headers=w.auth("hq_operator")), 201)
    issue = {"member_id": member_id, "template": template, "issue_key": f"ik-{w.fresh_card()}"}
    code = answer(write(w, "pos_key", ISSUE, issue))["code"]
    order_no = f"POS-{w.fresh_card()}"
    total = coats * COAT["unit_price_fen"]
    order = {
        "channel": "pos",
        "order_no": order_no,
        "store_code": "A1",
        "total_fen": total,
        "paid_fen": total,
        "lines": [COAT | {"quantity": coats}],
    }
    answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": order}))
    redeem = {
        "code": code,
        "channel": "pos",
        "store_code": "A1",
        "order_no": order_no,
        "lines": [{"sku": "COAT-1", "category": "coats", "quantity": coats, "unit_price_fen": 10000}],
    }
    redemption_id = answer(write(w, "pos_key", REDEEM, redeem))["redemption_id"]
    return member_id, order_no, code, redemption_id


def refund(
    w: World, order_no: str, refund_no: str, amount_fen: int, lines: Sequence[tuple[int, int]] = ()
) -> dict[str, Any]:
    body = {
        "channel": "pos",
        "order_no": order_no,
        "refund_no": refund_no,
        "amount_fen": amount_fen,
        "lines": [{"line_no": n, "quantity": q} for n, q in lines],
    }
    return answer(write(w, "pos_key", REFUND, body))


def test_a_full_refund_gives_the_coupon_back_once(world: World) -> None:
    w = world
    member_id, order_no, code, redemption_id = sale_with_coupon(
        w, 2, {"kind": "cash_off", "amount_fen": 1000}
    )
    coupon = w.coupon_by_code(w.b1, code)
    before = w.counts()
    sent_at = utcnow()
    full = refund(w, order_no, "RF-1", 20000)
    answered_at = utcnow()
    assert full["order_status"] == "refunded"
    assert full["coupons"] == [
        {
            "redemption_id": redemption_id,
            "coupon_id": coupon.id,
            "code": code,
            "status": "issued",
            "reversed": True,
        }
    ]
    after = w.coupon_by_code(w.b1, code)
    assert (after.status, after.redeemed_at) == ("issued", None)
    (redemption,) = w.coupon_redemptions(coupon.id)
    # The route stamps the reversal with the clock, so the instant is known only to lie within the call.
    assert redemption.reversed_by == pos_label(w)
    assert redemption.reversed_at is not None and sent_at <= redemption.reversed_at <= answered_at
    moved = changes(before, w.counts())
    assert (moved["coupon_issued"], moved["coupons_reversed"]) == (1, 1)
    assert moved["sales_order_refund"] == 1 and moved["sales_order_refunded"] == 1

    # The till sends the same refund again (a new Idempotency-Key): the same answer, nothing changes.
    written = w.counts()
    again = refund(w, order_no, "RF-1", 20000)
    assert again["coupons"] == full["coupons"]
    assert changes(written, w.counts()) == {"idempotent_request": 1}
    # Anything more is refused and changes nothing either.
    more = write(
        w, "pos_key", REFUND, {"channel": "pos", "order_no": order_no, "refund_no": "RF-2", "amount_fen": 1}
    )
    assert refused(more) == (422, "invalid", "amount_fen")
    assert changes(written, w.counts()) == {"idempotent_request": 1}
    assert w.coupons_of(member_id)[0].status == "issued"
    (unchanged,) = w.coupon_redemptions(coupon.id)
    assert (unchanged.reversed_by, unchanged.reversed_at) == (redemption.reversed_by, redemption.reversed_at)


def test_a_partial_refund_keeps_the_coupon_until_the_rest_is_below_its_threshold(world: World) -> None:
    w = world
    _member, order_no, code, redemption_id = sale_with_coupon(
        w, 3, {"kind": "threshold", "threshold_fen": 19800, "amount_fen": 2000}
    )
    coupon = w.coupon_by_code(w.b1, code)
    before = w.counts()
    # One coat of three back: 200 yuan kept, still 满198: the coupon stays used.
    one = refund(w, order_no, "RF-1", 10000, [(1, 1)])
    assert (one["order_status"], one["coupons"]) == (
        "completed",
        [
            {
                "redemption_id": redemption_id,
                "coupon_id": coupon.id,
                "code": code,
                "status": "redeemed",
                "reversed": False,
            }
        ],
    )
    moved = changes(before, w.counts())
    assert "coupons_reversed" not in moved and "coupon_issued" not in moved
    assert w.coupon_by_code(w.b1, code).status == "redeemed"
    (kept,) = w.coupon_redemptions(coupon.id)
    assert (kept.reversed_by, kept.reversed_at) == (None, None)
    # A second coat back: 100 yuan kept, below 198: the redemption is reversed and the coupon comes back.
    sent_at = utcnow()
    two = refund(w, order_no, "RF-2", 10000, [(1, 1)])
    answered_at = utcnow()
    assert (two["order_status"], two["coupons"]) == (
        "completed",
        [
            {
                "redemption_id": redemption_id,
                "coupon_id": coupon.id,
                "code": code,
                "status": "issued",
                "reversed": True,
            }
        ],
    )
    assert w.coupon_by_code(w.b1, code).status == "issued"
    (redemption,) = w.coupon_redemptions(coupon.id)
    assert redemption.reversed_by == pos_label(w)
    assert redemption.reversed_at is not None and sent_at <= redemption.reversed_at <= answered_at
