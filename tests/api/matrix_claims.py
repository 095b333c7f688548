"""Route matrix rows: spend-reward claims. The world's brands give no spend rewards (no bands), so a claim
that passes its checks ends ``no_reward``: these rows are about who may do what to which claim.

A claim target is a receipt claim of the target member, sent to its home store (none for "online"): a
caller sees it exactly when it sees the member (``SEES_MEMBERS``). The world has no claims, so every
cell makes the claim it names. A refused cell must leave the world as it found it: its claim is made
before the call, checked unchanged after it, and removed, so the matrix's before-and-after counts
compare only what the call did.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import delete

from datong.core.clock import utcnow
from datong.coupons import claims
from datong.coupons.models import SpendClaim
from tests.api.conftest import MEMBERS, Brand, World, instant
from tests.api.matrix import (
    COUPON_READERS,
    COUPON_WRITERS,
    MEMBER_TARGETS,
    SEES_MEMBERS,
    Endpoint,
    brand_and_label,
    fresh_like,
    label,
    target_member_id,
    write,
)

UNKNOWN_CLAIM = "scl_00000000000000000000000000"
CLAIM_TARGETS = MEMBER_TARGETS
PENDING_VIEW = {"status": "pending", "reason": None, "receipt_no": None, "amount_fen": None}


def _home(w: World, target: str) -> tuple[Brand, str | None]:
    """The target's brand and home store code (None for "online", registered in the mini-program)."""
    brand, name = brand_and_label(w, target)
    return brand, MEMBERS[name][0]


def photo() -> bytes:
    """A new JPEG each time (only its first bytes are checked): one photo is taken once per brand."""
    return b"\xff\xd8\xff\xe0" + os.urandom(32)


def _receipt(w: World, target: str, member_id: str) -> SpendClaim:
    brand, home = _home(w, target)
    with w.db.unit_of_work() as s:
        return claims.submit_receipt_claim(
            s,
            tenant_id=brand.tenant_id,
            keyring=w.keyring,
            member_id=member_id,
            photo=photo(),
            store_id=brand.stores[home] if home else None,
            at=utcnow(),
        )


def _snapshot(w: World, claim_id: str) -> tuple[Any, ...]:
    with w.db.reading() as s:
        c = s.get(SpendClaim, claim_id)
        assert c is not None
        return (c.status, c.reason, c.store_id, c.receipt_no, c.amount_fen, c.coupon_id, c.reviewed_by)


@contextmanager
def cell_claim(w: World, target: str, ok: bool) -> Iterator[tuple[str, str | None]]:
    """(claim id, member id) of a receipt claim of the target, made for this cell: of a new member like
    the target when the call should succeed, of the target member otherwise, and then removed."""
    if target == "unknown":
        yield UNKNOWN_CLAIM, None
        return
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    claim = _receipt(w, target, member_id)
    yield claim.id, member_id
    if not ok:
        assert _snapshot(w, claim.id)[:2] == ("pending", None)
        with w.db.unit_of_work() as s:
            s.execute(delete(SpendClaim).where(SpendClaim.id == claim.id))


def expected_view(w: World, target: str, claim_id: str, member_id: str | None) -> dict[str, Any]:
    brand, home = _home(w, target)
    with w.db.reading() as s:
        c = s.get(SpendClaim, claim_id)
        assert c is not None
        return {
            "id": claim_id,
            "member_id": member_id,
            "kind": "receipt",
            "channel": None,
            "order_no": None,
            "order_id": None,
            "store_id": brand.stores[home] if home else None,
            "store_code": home,
            "photo_type": "image/jpeg",
            "photo_sha256": c.photo_sha256,
            "coupon": None,
            "status": c.status,
            "reason": c.reason,
            "receipt_no": c.receipt_no,
            "amount_fen": c.amount_fen,
            "reviewed_by": c.reviewed_by,
        }


def _times(body: dict[str, Any]) -> dict[str, Any]:
    """The view less its times, which must be times with a zone."""
    instant(body.pop("created_at"))
    reviewed = body.pop("reviewed_at")
    if reviewed is not None:
        instant(reviewed)
    return body


# --- submitting ---------------------------------------------------------------------------------------


def call_submit_order(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand, home = _home(w, target) if target != "unknown" else (w.b1, "A1")
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    order_no = f"CL-{w.fresh_card()}"
    if ok:  # the member bought for 250 yuan at home (the mini-program for "online")
        w.earn(brand, member_id, order_no, 25000, store=home)
    channel = "pos" if home else "miniprogram"
    body = {"member_id": member_id, "channel": channel, "order_no": order_no}
    response: httpx.Response = w.client.post(
        "/api/v1/spend-claims/orders", json=body, headers=write(w, caller)
    )
    if ok:
        answer = _times(response.json())
        order = w.order(brand, channel, order_no)
        assert answer == {
            "id": answer["id"],
            "member_id": member_id,
            "kind": "order_no",
            "status": "no_reward",
            "reason": "under every band",
            "channel": channel,
            "order_no": order_no,
            "order_id": order.id,
            "store_id": None,
            "store_code": None,
            "receipt_no": None,
            "amount_fen": 25000,
            "photo_type": None,
            "photo_sha256": None,
            "coupon": None,
            "reviewed_by": claims.RULE,
        }
    return response


def call_submit_receipt(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand, home = _home(w, target) if target != "unknown" else (w.b1, "A1")
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    sent = photo()
    form = {"member_id": member_id, **({"store_code": home} if home else {})}
    response: httpx.Response = w.client.post(
        "/api/v1/spend-claims/receipts",
        data=form,
        files={"photo": ("receipt.jpg", sent, "image/jpeg")},
        headers=write(w, caller),
    )
    if ok:
        answer = _times(response.json())
        assert answer == {
            "id": answer["id"],
            "member_id": member_id,
            "kind": "receipt",
            "status": "pending",
            "reason": None,
            "channel": None,
            "order_no": None,
            "order_id": None,
            "store_id": brand.stores[home] if home else None,
            "store_code": home,
            "receipt_no": None,
            "amount_fen": None,
            "photo_type": "image/jpeg",
            "photo_sha256": hashlib.sha256(sent).hexdigest(),
            "coupon": None,
            "reviewed_by": None,
        }
    return response


# --- reading ------------------------------------------------------------------------------------------


def call_list(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    """A pending receipt of every member target, then the queue: those the caller sees, and no other."""
    made: dict[str, str] = {}
    if ok:
        for target in CLAIM_TARGETS:
            if target != "unknown":
                made[_receipt(w, target, target_member_id(w, target)).id] = target
    response: httpx.Response = w.client.get(
        "/api/v1/spend-claims", params={"limit": 500}, headers=w.auth(caller)
    )
    if ok:
        listed = [c["id"] for c in response.json()["claims"]]
        assert len(listed) < 500, "the world holds too many pending claims for this check"
        seen = SEES_MEMBERS[caller]
        assert sorted(i for i in listed if i in made) == sorted(i for i, t in made.items() if t in seen)
    return response


def call_get(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    with cell_claim(w, target, ok) as (claim_id, member_id):
        response: httpx.Response = w.client.get(f"/api/v1/spend-claims/{claim_id}", headers=w.auth(caller))
        if ok:
            assert _times(response.json()) == expected_view(w, target, claim_id, member_id)
    return response


def call_photo(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    with cell_claim(w, target, ok) as (claim_id, _):
        response: httpx.Response = w.client.get(
            f"/api/v1/spend-claims/{claim_id}/photo", headers=w.auth(caller)
        )
        if ok:
            with w.db.reading() as s:
                kept = s.get(SpendClaim, claim_id)
                assert kept is not None
                assert response.content == claims.receipt_photo(w.keyring, kept)  # kept encrypted
            assert response.headers["content-type"] == "image/jpeg"
            brand, _home_store = _home(w, target)
            assert w.audit_actions(brand.tenant_id, claim_id) == ["spend_claim.photo_view"]
    return response


# --- reviewing ----------------------------------------------------------------------------------------


def call_review(action: str) -> Callable[[World, str, str, bool], httpx.Response]:
    def call(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
        brand, home = _home(w, target) if target != "unknown" else (w.b1, "A1")
        receipt_no = f"R-{w.fresh_card()}"
        body: dict[str, Any] = (
            {"store_code": home or "D1", "receipt_no": receipt_no, "amount_fen": 25000}
            if action == "approve"
            else {"reason": "小票模糊，请重新拍照"}
        )
        with cell_claim(w, target, ok) as (claim_id, member_id):
            response: httpx.Response = w.client.post(
                f"/api/v1/spend-claims/{claim_id}/{action}", json=body, headers=write(w, caller)
            )
            if ok:
                answer = _times(response.json())
                view = expected_view(w, target, claim_id, member_id)
                decided = (
                    {"status": "no_reward", "reason": "under every band", "receipt_no": receipt_no}
                    | {
                        "amount_fen": 25000,
                        "store_code": home or "D1",
                        "store_id": brand.stores[home or "D1"],
                    }
                    if action == "approve"
                    else {"status": "rejected", "reason": body["reason"]}
                )
                assert answer == view | decided | {"reviewed_by": label(w, caller)}
                assert w.audit_actions(brand.tenant_id, claim_id) == [f"spend_claim.{action}"]
        return response

    return call


ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/v1/spend-claims/orders",
        COUPON_WRITERS,
        201,
        call_submit_order,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/spend-claims/receipts",
        COUPON_WRITERS,
        201,
        call_submit_receipt,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("GET", "/api/v1/spend-claims", COUPON_READERS, 200, call_list, filters=True),
    Endpoint(
        "GET", "/api/v1/spend-claims/{claim_id}", COUPON_READERS, 200, call_get, CLAIM_TARGETS, SEES_MEMBERS
    ),
    Endpoint(
        "GET",
        "/api/v1/spend-claims/{claim_id}/photo",
        COUPON_READERS,
        200,
        call_photo,
        CLAIM_TARGETS,
        SEES_MEMBERS,
    ),
    *(
        Endpoint(
            "POST",
            f"/api/v1/spend-claims/{{claim_id}}/{action}",
            COUPON_WRITERS,
            200,
            call_review(action),
            CLAIM_TARGETS,
            SEES_MEMBERS,
        )
        for action in ("approve", "reject")
    ),
]
