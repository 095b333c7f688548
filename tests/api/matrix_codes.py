"""Route matrix rows: a coupon's code as pictures, and the member page's dynamic code. The targets are the
world's unused coupons of each member (``Brand.coupons``): a coupon is seen by whoever sees its member."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from datong.coupons import images
from datong.coupons.codes import DYNAMIC_STEP_SECONDS as STEP
from datong.coupons.codes import dynamic_signer, read_dynamic
from tests.api.conftest import World, instant
from tests.api.matrix import (
    COUPON_READERS,
    MEMBER_TARGETS,
    SEES_MEMBERS,
    Endpoint,
    brand_and_label,
)

UNKNOWN_COUPON = "cpn_00000000000000000000000000"
PICTURES: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "qr.svg": ("image/svg+xml", images.qr_svg),
    "qr.png": ("image/png", images.qr_png),
    "barcode.svg": ("image/svg+xml", images.barcode_svg),
}


def target_coupon(w: World, target: str) -> tuple[str, str]:
    """The target member's unused coupon in the world: (id, code); an id no coupon has for "unknown"."""
    if target == "unknown":
        return UNKNOWN_COUPON, ""
    brand, label = brand_and_label(w, target)
    coupon = w.coupon_by_code(brand, brand.coupons[label])
    return coupon.id, coupon.code


def call_picture(name: str) -> Callable[[World, str, str, bool], httpx.Response]:
    media_type, draw = PICTURES[name]

    def call(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
        coupon_id, code = target_coupon(w, target)
        response: httpx.Response = w.client.get(
            f"/api/v1/coupons/codes/{coupon_id}/{name}", headers=w.auth(caller)
        )
        if ok:
            assert response.headers["content-type"].split(";")[0] == media_type
            assert response.content == draw(code)
        return response

    return call


def call_dynamic(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    coupon_id, code = target_coupon(w, target)
    asked = time.time()
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/codes/{coupon_id}/dynamic", headers=w.auth(caller)
    )
    answered = time.time()
    if ok:
        body = response.json()
        assert sorted(body) == ["expires_at", "payload", "qr_svg", "refresh_after_seconds"]
        # <coupon id>.<the minute it was made>.<MAC>: made during the call, scanned fine in its minute and
        # the next, signed with the brand's key for this purpose; never the printed code.
        shown, minute, _ = body["payload"].split(".")
        assert (shown, asked // STEP <= int(minute) <= answered // STEP) == (coupon_id, True)
        assert code not in body["payload"]
        sign = dynamic_signer(w.keyring, w.brand_of(caller).tenant_id)
        assert read_dynamic(body["payload"], at_epoch=(int(minute) + 1) * STEP, sign=sign) == coupon_id
        assert instant(body["expires_at"]).timestamp() == (int(minute) + 2) * STEP
        assert 1 <= body["refresh_after_seconds"] <= STEP
        assert body["qr_svg"] == images.qr_svg(body["payload"]).decode()
        assert response.headers["cache-control"] == "no-store"
    return response


ENDPOINTS = [
    *(
        Endpoint(
            "GET",
            f"/api/v1/coupons/codes/{{coupon_id}}/{name}",
            COUPON_READERS,
            200,
            call_picture(name),
            MEMBER_TARGETS,
            SEES_MEMBERS,
        )
        for name in PICTURES
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/codes/{coupon_id}/dynamic",
        COUPON_READERS,
        200,
        call_dynamic,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
]
