"""Spend-tiered rewards over HTTP, on both backends: a POS sale rewarded at once in its earn call, a
member's claim by order number checked at once (once per order whatever the path), a receipt photo
reviewed by the staff of its store, idempotency keys, and refusals that name the field and change nothing.

This module's brand 1 gives C20 (20 yuan off) from 199 yuan and C50 from 399 (``BANDS``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from datong.channels.records import OrderFields
from datong.core.clock import utcnow
from datong.coupons import claims
from datong.coupons import service as coupons_service
from datong.coupons.models import Coupon, CouponTemplate, SpendClaim
from datong.orders.service import IncomingOrder, upsert_orders
from datong.tenancy.models import Tenant
from tests.api.calls import answer, refused, write
from tests.api.conftest import World
from tests.api.matrix import label

CLAIMS = "/api/v1/spend-claims"
EARN = "/api/v1/points/earn"
BANDS = [{"min_fen": 19900, "template": "C20"}, {"min_fen": 39900, "template": "C50"}]


@pytest.fixture(scope="module")
def shop(world: World) -> Iterator[World]:
    """The module's world, with brand 1 giving spend rewards."""
    with world.db.unit_of_work() as s:
        for code, amount in (("C20", 2000), ("C50", 5000)):
            coupons_service.create_template(
                s,
                tenant_id=world.b1.tenant_id,
                actor="system:test",
                code=code,
                name=f"满额礼{amount // 100}元",
                kind="cash_off",
                amount_fen=amount,
                valid_days=30,
            )
        tenant = s.get(Tenant, world.b1.tenant_id)
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "spend_rewards": BANDS}
    yield world


def changes(before: dict[str, Any], after: dict[str, Any], *names: str) -> dict[str, Any]:
    """How the named counts of ``World.counts()`` moved."""
    return {name: after[name] - before[name] for name in names}


# What a refused call could change in a claim: its status, reason, what it was matched to (order, store,
# receipt, amount), its coupon and its review.
CLAIM_STATE = ("id", "status", "reason", "order_id", "store_id", "receipt_no", "amount_fen", "coupon_id")
CLAIM_STATE += ("reviewed_by", "reviewed_at")


def claim_state(w: World, member_id: str) -> list[tuple[Any, ...]]:
    """``CLAIM_STATE`` of each of the member's claims, oldest first."""
    with w.db.reading() as s:
        query = select(*(getattr(SpendClaim, name) for name in CLAIM_STATE)).where(
            SpendClaim.member_id == member_id
        )
        return [tuple(row) for row in s.execute(query.order_by(SpendClaim.created_at, SpendClaim.id))]


def coupon_of(w: World, coupon_id: str) -> tuple[str, str, str]:
    """(template code, issue key, member) of a coupon."""
    with w.db.reading() as s:
        row = s.execute(
            select(CouponTemplate.code, Coupon.issue_key, Coupon.member_id)
            .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
            .where(Coupon.id == coupon_id)
        ).one()
    return row[0], row[1], row[2]


def pos_sale(order_no: str, paid_fen: int, store: str = "A1") -> dict[str, Any]:
    return {
        "channel": "pos",
        "order_no": order_no,
        "store_code": store,
        "total_fen": paid_fen,
        "paid_fen": paid_fen,
    }


def tmall_order(w: World, member_id: str, order_no: str, paid_fen: int, status: str = "completed") -> None:
    """A Tmall order imported and linked to the member (as an import and unification leave it)."""
    fields = OrderFields(
        order_no, status, "交易成功", paid_fen, paid_fen, created_at=utcnow(), completed_at=utcnow()
    )
    with w.db.unit_of_work() as s:
        upsert_orders(
            s,
            tenant_id=w.b1.tenant_id,
            incoming=[IncomingOrder("tmall", fields, member_id, "nick", "x", None)],
        )


def send_photo(
    w: World, caller: str, member_id: str, photo: bytes, *, store: str | None = "A1", key: str | None = None
) -> httpx.Response:
    headers = {**w.auth(caller), "Idempotency-Key": key or f"key-{w.fresh_card()}"}
    form = {"member_id": member_id, **({"store_code": store} if store else {})}
    response: httpx.Response = w.client.post(
        f"{CLAIMS}/receipts", data=form, files={"photo": ("小票.jpg", photo, "image/jpeg")}, headers=headers
    )
    return response


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe1" + os.urandom(48)


# --- a POS sale ---------------------------------------------------------------------------------------


def test_a_pos_sale_is_rewarded_in_its_earn_call_once(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    order_no = f"POS-{w.fresh_card()}"
    before = w.counts()
    first = answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(order_no, 45000)}))
    order = w.order(w.b1, "pos", order_no)
    reward = first["reward_coupon"]
    assert coupon_of(w, reward["id"]) == ("C50", f"spend:{order.id}", member_id)
    [coupon] = w.coupons_of(member_id)
    assert reward == {
        "id": coupon.id,
        "code": coupon.code,
        "display_code": f"{coupon.code[:4]}-{coupon.code[4:8]}-{coupon.code[8:12]}-{coupon.code[12:]}",
        "template": "C50",
        "name": "满额礼50元",
        "kind": "cash_off",
        "member_id": member_id,
        "status": "issued",
        "issued_at": reward["issued_at"],
        "valid_from": reward["valid_from"],
        "valid_until": reward["valid_until"],
        "redeemed_at": None,
    }
    assert (first["points"], first["earned_now"]) == (450, True)
    assert changes(before, w.counts(), "coupon", "coupon_issued", "sales_order") == {
        "coupon": 1,
        "coupon_issued": 1,
        "sales_order": 1,
    }
    # Sent again (a till retrying under a new key): the same coupon, nothing more.
    written = w.counts()
    again = answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(order_no, 45000)}))
    assert (again["reward_coupon"], again["earned_now"]) == (reward, False)
    assert changes(written, w.counts(), "coupon", "coupon_issued") == {"coupon": 0, "coupon_issued": 0}
    # A sale under every band earns points and no coupon; the member's claim of the rewarded sale is late.
    small = answer(
        write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(f"POS-{w.fresh_card()}", 19899)})
    )
    assert (small["points"], small["reward_coupon"]) == (198, None)
    claim = answer(
        write(
            w, "pos_key", f"{CLAIMS}/orders", {"member_id": member_id, "channel": "pos", "order_no": order_no}
        ),
        201,
    )
    assert (claim["status"], claim["reason"], claim["order_id"], claim["coupon"]) == (
        "rejected",
        "already rewarded",
        order.id,
        None,
    )
    assert len(w.coupons_of(member_id)) == 1


# --- claims by order number ---------------------------------------------------------------------------


def test_a_claim_by_order_number_is_checked_at_once_and_only_once(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    order_no = f"T-{w.fresh_card()}"
    tmall_order(w, member_id, order_no, 25000)
    body = {"member_id": member_id, "channel": "tmall", "order_no": order_no}
    before = w.counts()
    claim = answer(write(w, "agent_manager", f"{CLAIMS}/orders", body, key="claim-1"), 201)
    order = w.order(w.b1, "tmall", order_no)
    assert coupon_of(w, claim["coupon"]["id"]) == ("C20", f"spend:{order.id}", member_id)
    assert {k: claim[k] for k in ("kind", "status", "reason", "order_id", "amount_fen", "reviewed_by")} == {
        "kind": "order_no",
        "status": "rewarded",
        "reason": None,
        "order_id": order.id,
        "amount_fen": 25000,
        "reviewed_by": claims.RULE,
    }
    assert changes(before, w.counts(), "spend_claim", "coupon", "idempotent_request") == {
        "spend_claim": 1,
        "coupon": 1,
        "idempotent_request": 1,
    }
    # The same key and body: the first answer. The same key, another body: a conflict. Nothing written.
    written, state = w.counts(), claim_state(w, member_id)
    assert [(c[0], c[1], c[7]) for c in state] == [(claim["id"], "rewarded", claim["coupon"]["id"])]
    assert answer(write(w, "agent_manager", f"{CLAIMS}/orders", body, key="claim-1"), 201) == claim
    other = write(w, "agent_manager", f"{CLAIMS}/orders", {**body, "order_no": "T-other"}, key="claim-1")
    assert refused(other) == (409, "conflict", "Idempotency-Key")
    assert (w.counts(), claim_state(w, member_id)) == (written, state)
    # A new claim of the same order: kept, and turned down.
    again = answer(write(w, "pos_key", f"{CLAIMS}/orders", body), 201)
    assert (again["status"], again["reason"], again["coupon"]) == ("rejected", "already rewarded", None)
    assert len(w.coupons_of(member_id)) == 1


def test_a_claim_of_an_order_not_imported_yet_waits_and_staff_may_turn_it_down(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    body = {"member_id": member_id, "channel": "jd", "order_no": f"JD-{w.fresh_card()}"}
    waiting = answer(write(w, "pos_key", f"{CLAIMS}/orders", body), 201)
    assert (waiting["status"], waiting["reason"], waiting["reviewed_by"]) == (
        "pending",
        "order not found",
        None,
    )
    before, state = w.counts(), claim_state(w, member_id)
    assert [c[:3] + c[7:] for c in state] == [(waiting["id"], "pending", "order not found", None, None, None)]
    assert refused(write(w, "pos_key", f"{CLAIMS}/orders", body)) == (409, "conflict", "order_no")
    # An order-number claim is the head office's to turn down, not a store's.
    assert refused(write(w, "store_manager", f"{CLAIMS}/{waiting['id']}/reject", {"reason": "x"})) == (
        404,
        "not_found",
        "claim_id",
    )
    assert (w.counts(), claim_state(w, member_id)) == (before, state)
    turned = answer(write(w, "hq_operator", f"{CLAIMS}/{waiting['id']}/reject", {"reason": "订单号不存在"}))
    assert (turned["status"], turned["reason"], turned["reviewed_by"]) == (
        "rejected",
        "订单号不存在",
        label(w, "hq_operator"),
    )
    assert w.audit_actions(w.b1.tenant_id, waiting["id"]) == ["spend_claim.reject"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"channel": "weibo"}, "channel"), ({"order_no": ""}, "order_no"), ({"extra": 1}, "extra")],
)
def test_a_bad_order_claim_names_its_field_and_changes_nothing(
    shop: World, change: dict[str, Any], field: str
) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    body = {"member_id": member_id, "channel": "tmall", "order_no": "T-1", **change}
    before = w.counts()
    assert refused(write(w, "pos_key", f"{CLAIMS}/orders", body)) == (422, "invalid", field)
    assert (w.counts(), claim_state(w, member_id)) == (before, [])


# --- receipt photos -----------------------------------------------------------------------------------


def test_a_receipt_photo_is_reviewed_by_its_stores_staff_and_rewarded_once(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    photo = jpeg()
    sent = answer(send_photo(w, "pos_key", member_id, photo, store="A1"), 201)
    assert {k: sent[k] for k in ("kind", "status", "store_code", "photo_type", "photo_sha256")} == {
        "kind": "receipt",
        "status": "pending",
        "store_code": "A1",
        "photo_type": "image/jpeg",
        "photo_sha256": hashlib.sha256(photo).hexdigest(),
    }
    # The queue: A1's manager and agent A's manager see it; the store key of D1 does not.
    for caller, sees in (
        ("store_manager", True),
        ("agent_manager", True),
        ("hq_admin", True),
        ("store_key", False),
    ):
        queue = answer(w.client.get(CLAIMS, headers=w.auth(caller)))["claims"]
        assert (sent["id"] in [c["id"] for c in queue]) is sees, caller
    before, state = w.counts(), claim_state(w, member_id)
    assert state == [(sent["id"], "pending", None, None, w.b1.stores["A1"], None, None, None, None, None)]
    assert refused(w.client.get(f"{CLAIMS}/{sent['id']}", headers=w.auth("store_key"))) == (
        404,
        "not_found",
        "claim_id",
    )
    # A1's manager cannot put the receipt on another agent's store.
    elsewhere = {"store_code": "B1", "receipt_no": "B1-1", "amount_fen": 45000}
    assert refused(write(w, "store_manager", f"{CLAIMS}/{sent['id']}/approve", elsewhere)) == (
        404,
        "not_found",
        "store_code",
    )
    assert (w.counts(), claim_state(w, member_id)) == (before, state)

    shown = w.client.get(f"{CLAIMS}/{sent['id']}/photo", headers=w.auth("store_manager"))
    assert (shown.status_code, shown.content, shown.headers["content-type"]) == (200, photo, "image/jpeg")
    read = {"store_code": "A1", "receipt_no": " a1-0001 ", "amount_fen": 45000}
    approved = answer(write(w, "store_manager", f"{CLAIMS}/{sent['id']}/approve", read))
    assert coupon_of(w, approved["coupon"]["id"]) == (
        "C50",
        f"spend:receipt:{w.b1.stores['A1']}:A1-0001",
        member_id,
    )
    assert {k: approved[k] for k in ("status", "reason", "receipt_no", "amount_fen", "reviewed_by")} == {
        "status": "rewarded",
        "reason": None,
        "receipt_no": "A1-0001",
        "amount_fen": 45000,
        "reviewed_by": label(w, "store_manager"),
    }
    assert w.audit_actions(w.b1.tenant_id, sent["id"]) == ["spend_claim.photo_view", "spend_claim.approve"]

    # Another photo of the same receipt: a conflict for the reviewer, and the claim waits for a rejection.
    copy = answer(send_photo(w, "pos_key", member_id, jpeg(), store="A1"), 201)
    before, state = w.counts(), claim_state(w, member_id)
    assert [c[1] for c in state] == ["rewarded", "pending"]
    assert refused(write(w, "agent_manager", f"{CLAIMS}/{copy['id']}/approve", read)) == (
        409,
        "conflict",
        "receipt_no",
    )
    assert (w.counts(), claim_state(w, member_id)) == (before, state)
    assert (
        answer(write(w, "agent_manager", f"{CLAIMS}/{copy['id']}/reject", {"reason": "重复的小票"}))["status"]
        == "rejected"
    )
    assert len(w.coupons_of(member_id)) == 1
    before, state = w.counts(), claim_state(w, member_id)
    assert [c[1] for c in state] == ["rewarded", "rejected"]
    assert refused(write(w, "hq_admin", f"{CLAIMS}/{copy['id']}/approve", read)) == (
        409,
        "conflict",
        "claim_id",
    )
    assert (w.counts(), claim_state(w, member_id)) == (before, state)


def test_a_member_lists_their_own_claims(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A2")
    sent = answer(send_photo(w, "pos_key", member_id, jpeg(), store=None), 201)
    tmall_order(w, member_id, order_no := f"T-{w.fresh_card()}", 9900)
    by_order = answer(
        write(
            w,
            "pos_key",
            f"{CLAIMS}/orders",
            {"member_id": member_id, "channel": "tmall", "order_no": order_no},
        ),
        201,
    )
    assert (by_order["status"], by_order["reason"]) == ("no_reward", "under every band")
    listed = answer(
        w.client.get(
            CLAIMS, params={"member_id": member_id, "status": "all"}, headers=w.auth("agent_manager")
        )
    )
    assert [c["id"] for c in listed["claims"]] == [sent["id"], by_order["id"]]
    pending = answer(w.client.get(CLAIMS, params={"member_id": member_id}, headers=w.auth("pos_key")))
    assert [c["id"] for c in pending["claims"]] == [sent["id"]]
    assert refused(
        w.client.get(CLAIMS, params={"member_id": member_id}, headers=w.auth("store_manager"))
    ) == (404, "not_found", "member_id")


def test_a_bad_photo_names_its_field_and_changes_nothing(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    taken = jpeg()
    answer(send_photo(w, "pos_key", member_id, taken), 201)
    before, state = w.counts(), claim_state(w, member_id)
    cases = [
        (send_photo(w, "pos_key", member_id, b"GIF89a" + os.urandom(20)), 422, "photo"),
        (send_photo(w, "pos_key", member_id, jpeg() + bytes(claims.MAX_PHOTO_BYTES)), 422, "photo"),
        (send_photo(w, "pos_key", member_id, taken), 409, "photo"),
        (send_photo(w, "pos_key", member_id, jpeg(), store="ZZ9"), 422, "store_code"),
        (send_photo(w, "store_key", member_id, jpeg()), 404, "member_id"),  # D1's key, A1's member
    ]
    missing = w.client.post(
        f"{CLAIMS}/receipts",
        data={"member_id": member_id},
        headers={**w.auth("pos_key"), "Idempotency-Key": "k-missing"},
    )
    cases.append((missing, 422, "photo"))
    for response, status, field in cases:
        assert (response.status_code, response.json()["field"]) == (status, field), response.text
    assert (w.counts(), claim_state(w, member_id)) == (before, state)


# --- one purchase, one reward: a POS sale and its printed receipt; a refund takes the reward back ------


def test_a_photo_of_a_pos_sales_receipt_is_that_sale_whichever_comes_first(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    # The till's sale first, rewarded in its earn call; then a photo of its receipt.
    sold = f"A1-{w.fresh_card()}"
    earned = answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(sold, 45000)}))
    order = w.order(w.b1, "pos", sold)
    assert coupon_of(w, earned["reward_coupon"]["id"]) == ("C50", f"spend:{order.id}", member_id)
    photo = answer(send_photo(w, "pos_key", member_id, jpeg(), store="A1"), 201)
    before = w.counts()
    read = {"store_code": "A1", "receipt_no": sold.lower(), "amount_fen": 45000}
    response = write(w, "store_manager", f"{CLAIMS}/{photo['id']}/approve", read)
    assert (refused(response), response.json()["message"]) == (
        (409, "conflict", "receipt_no"),
        "this receipt was rewarded already",
    )
    assert w.counts() == before
    # A photo approved first; then the till sends its sale (it was offline): the receipt's coupon.
    later = f"A1-{w.fresh_card()}"
    photo = answer(send_photo(w, "pos_key", member_id, jpeg(), store="A1"), 201)
    read = {"store_code": "A1", "receipt_no": later, "amount_fen": 25000}
    approved = answer(write(w, "store_manager", f"{CLAIMS}/{photo['id']}/approve", read))
    written = w.counts()
    sale = answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(later, 25000)}))
    assert sale["reward_coupon"]["id"] == approved["coupon"]["id"]
    assert changes(written, w.counts(), "coupon", "coupon_issued") == {"coupon": 0, "coupon_issued": 0}
    assert len(w.coupons_of(member_id)) == 2


def test_a_sale_refunded_in_full_at_the_till_loses_its_unused_reward(shop: World) -> None:
    w = shop
    member_id = w.fresh_member(w.b1, store="A1")
    order_no = f"POS-{w.fresh_card()}"
    earned = answer(write(w, "pos_key", EARN, {"member_id": member_id, "order": pos_sale(order_no, 45000)}))
    reward = earned["reward_coupon"]
    refund = {"channel": "pos", "order_no": order_no, "refund_no": "R1", "amount_fen": 5000}
    part = answer(write(w, "pos_key", "/api/v1/points/refund", refund))
    assert (part["order_status"], "reward_coupon" in part) == ("completed", False)  # a part: kept
    assert [c.status for c in w.coupons_of(member_id)] == ["issued"]
    before = w.counts()
    rest = refund | {"refund_no": "R2", "amount_fen": 40000}
    full = answer(write(w, "pos_key", "/api/v1/points/refund", rest, key=f"refund-{order_no}"))
    assert (full["order_status"], full["reward_coupon"]) == ("refunded", reward | {"status": "void"})
    assert changes(before, w.counts(), "coupon_issued", "coupon_void", "coupon") == {
        "coupon_issued": -1,
        "coupon_void": 1,
        "coupon": 0,
    }
    assert w.audit_actions(w.b1.tenant_id, reward["id"]) == ["coupon.spend_reward_void"]
    # The same refund again: the same answer, nothing more.
    done = w.counts()
    again = answer(write(w, "pos_key", "/api/v1/points/refund", rest, key=f"refund-{order_no}"))
    assert again == full
    assert w.counts() == done
