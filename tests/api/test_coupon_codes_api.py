"""A coupon's code as pictures and the member page's dynamic code over HTTP, on both backends: the exact
pictures, a dynamic code the POS reads for two minutes with the brand's key and no other, no dynamic code
for a coupon that cannot be used, and a coupon the caller may not see answering like none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from datong.core.clock import utcnow
from datong.coupons import images
from datong.coupons import service as coupons_service
from datong.coupons.codes import DYNAMIC_STEP_SECONDS as STEP
from datong.coupons.codes import BadCode, dynamic_signer, read_dynamic
from tests.api.calls import answer
from tests.api.conftest import World, instant

CODES = "/api/v1/coupons/codes"


def _template(w: World, **fields: object) -> str:
    code = f"T-{w.fresh_card()}"
    with w.db.unit_of_work() as s:
        coupons_service.create_template(
            s,
            tenant_id=w.b1.tenant_id,
            actor="system:test",
            code=code,
            name="立减10元",
            kind="cash_off",
            amount_fen=1000,
            **{"valid_days": 30, **fields},
        )
    return code


def test_the_pictures_of_a_members_coupon_are_its_code(world: World) -> None:
    w = world
    coupon = w.issue_coupon(w.b1, w.fresh_member(w.b1, store="A1"))
    for name, media_type, drawn in (
        ("qr.svg", "image/svg+xml", images.qr_svg(coupon.code)),
        ("qr.png", "image/png", images.qr_png(coupon.code)),
        ("barcode.svg", "image/svg+xml", images.barcode_svg(coupon.code)),
    ):
        response = w.client.get(f"{CODES}/{coupon.id}/{name}", headers=w.auth("store_manager"))
        assert response.status_code == 200, response.text
        assert (response.headers["content-type"].split(";")[0], response.content) == (media_type, drawn)
        assert response.headers["cache-control"] == "private, max-age=3600"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_dynamic_code_is_read_with_the_brands_key_for_two_minutes(world: World) -> None:
    w = world
    coupon = w.issue_coupon(w.b1, w.fresh_member(w.b1, store="A1"))
    before = w.counts()
    shown = answer(w.client.get(f"{CODES}/{coupon.id}/dynamic", headers=w.auth("pos_key")))
    named, minute_text, _ = shown["payload"].split(".")
    minute = int(minute_text)
    # The coupon's id: a screenshot gives away nothing the POS takes once the minutes are over.
    assert named == coupon.id and coupon.code not in shown["payload"]
    assert instant(shown["expires_at"]).timestamp() == (minute + 2) * STEP
    sign = dynamic_signer(w.keyring, w.b1.tenant_id)
    for moment in (minute * STEP, (minute + 2) * STEP - 0.001):
        assert read_dynamic(shown["payload"], at_epoch=moment, sign=sign) == coupon.id
    with pytest.raises(BadCode, match="expired"):
        read_dynamic(shown["payload"], at_epoch=(minute + 2) * STEP, sign=sign)
    with pytest.raises(BadCode, match="not a coupon's dynamic code"):  # another brand's key
        read_dynamic(shown["payload"], at_epoch=minute * STEP, sign=dynamic_signer(w.keyring, w.b2.tenant_id))
    assert shown["qr_svg"] == images.qr_svg(shown["payload"]).decode()
    assert w.counts() == before  # showing a code writes nothing


def test_a_coupon_that_cannot_be_used_has_no_dynamic_code_but_keeps_its_pictures(world: World) -> None:
    w = world
    member = w.fresh_member(w.b1, store="A1")
    redeemed = w.issue_coupon(w.b1, member)
    w.redeem_coupon(w.b1, redeemed.code, store="A1")
    void = w.issue_coupon(w.b1, member, template=_template(w, restore_on_refund=False))
    reversed_ = w.redeem_coupon(w.b1, void.code, store="A1")
    with w.db.unit_of_work() as s:
        coupons_service.reverse_redemption(
            s, tenant_id=w.b1.tenant_id, redemption_id=reversed_.id, actor="system:test"
        )
    with w.db.unit_of_work() as s:  # issued three days ago for a day
        expired, _ = coupons_service.issue_coupon(
            s,
            tenant_id=w.b1.tenant_id,
            template_code=_template(w, valid_days=1),
            member_id=member,
            issue_key=f"old-{w.fresh_card()}",
            source="api",
            at=utcnow() - timedelta(days=3),
        )
    before = w.counts()
    for coupon, status in ((redeemed, "redeemed"), (void, "void"), (expired, "expired")):
        response = w.client.get(f"{CODES}/{coupon.id}/dynamic", headers=w.auth("pos_key"))
        wording = "has expired" if status == "expired" else f"is {status}"
        assert (response.status_code, response.json()) == (
            409,
            {
                "code": "conflict",
                "message": f"this coupon {wording}: it has no dynamic code",
                "field": "coupon_id",
                "detail": {"status": status},
            },
        )
        picture = w.client.get(f"{CODES}/{coupon.id}/qr.svg", headers=w.auth("pos_key"))
        assert (picture.status_code, picture.content) == (200, images.qr_svg(coupon.code))
    assert w.counts() == before


def test_a_coupon_the_caller_may_not_see_answers_like_one_that_does_not_exist(world: World) -> None:
    w = world
    theirs = w.issue_coupon(w.b1, w.fresh_member(w.b1, store="B1"))  # agent B's store
    unknown = "cpn_00000000000000000000000000"
    for caller, coupon_id in (
        ("store_manager", theirs.id),
        ("other_brand_admin", theirs.id),
        ("hq_admin", unknown),
    ):
        for name in ("qr.svg", "qr.png", "barcode.svg", "dynamic"):
            response = w.client.get(f"{CODES}/{coupon_id}/{name}", headers=w.auth(caller))
            assert (response.status_code, response.json()) == (
                404,
                {"code": "not_found", "message": f"no coupon {coupon_id}", "field": "coupon_id"},
            ), (caller, name)
