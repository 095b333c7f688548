"""Spend-reward claims on SQLite and PostgreSQL: an order number checked by its rule (rewarded, under
every band, rejected with the reason, or pending until the order is imported), a receipt photo reviewed
by staff, once per purchase whatever the path, and the recheck from the command line."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons import claims, service
from datong.coupons.models import Coupon, CouponTemplate, SpendClaim
from datong.coupons.spend_rewards import reward_order
from datong.members.models import Member
from datong.orders.models import Order
from datong.orders.service import IncomingOrder, record_order, upsert_orders
from datong.org.models import Store
from datong.org.service import load_org
from datong.tenancy.models import AuditEntry
from datong.tenancy.service import create_tenant
from tests.loyalty.test_concurrency import _together
from tests.test_cli import _ok, cli_env

__all__ = ["cli_env"]  # the fixture, used by name

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
STAFF = "user:usr_staff"
BANDS = [{"min_fen": 19900, "template": "C20"}, {"min_fen": 39900, "template": "C50"}]
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff\xe0"


@dataclass
class Brand:
    tenant_id: str
    members: list[str]
    stores: dict[str, str]


def _brand(s: Session, *, budget: int | None = None, code: str = "beauty") -> Brand:
    """A brand giving C20 from 199 yuan and C50 from 399, with stores D1 and F1 and two members."""
    tenant = create_tenant(s, code=code, name="美妆")
    tenant.settings = {**(tenant.settings or {}), "spend_rewards": BANDS}
    for template, amount in (("C20", 2000), ("C50", 5000)):
        service.create_template(
            s,
            tenant_id=tenant.id,
            actor=STAFF,
            code=template,
            name=template,
            kind="cash_off",
            amount_fen=amount,
            valid_days=30,
            total_quantity=budget,
        )
    load_org(
        s,
        tenant_id=tenant.id,
        actor=STAFF,
        data={"stores": [{"code": code, "name": f"{code} 店", "kind": "direct"} for code in ("D1", "F1")]},
    )
    members = [Member(tenant_id=tenant.id, name=name) for name in ("王芳", "李娜")]
    s.add_all(members)
    s.flush()
    stores = dict(s.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant.id)).all())
    return Brand(tenant.id, [m.id for m in members], stores)


def _order(
    s: Session, brand: Brand, order_no: str, paid_fen: int, *, member: int = 0, status: str = "completed"
) -> Order:
    fields = OrderFields(order_no, status, status, paid_fen, paid_fen, created_at=NOW, completed_at=NOW)
    return record_order(
        s,
        tenant_id=brand.tenant_id,
        channel="miniprogram",
        fields=fields,
        member_id=brand.members[member],
        store_id=None,
    )


def _claim(
    s: Session,
    brand: Brand,
    order_no: str,
    *,
    member: int = 0,
    at: datetime = NOW,
    channel: str = "miniprogram",
) -> SpendClaim:
    return claims.submit_order_claim(
        s,
        tenant_id=brand.tenant_id,
        member_id=brand.members[member],
        channel=channel,
        order_no=order_no,
        at=at,
    )


def _photo(kind: bytes = PNG) -> bytes:
    return kind + os.urandom(64)


def _state(db: Database) -> dict[str, Any]:
    """Every claim (status and reason), the coupons by issue key, the templates' spent budgets, audits."""
    with db.reading() as s:
        return {
            "claims": sorted(s.execute(select(SpendClaim.id, SpendClaim.status, SpendClaim.reason)).all()),
            "coupons": sorted(s.execute(select(Coupon.issue_key, Coupon.member_id)).all()),
            "issued": sorted(s.execute(select(CouponTemplate.code, CouponTemplate.issued_count)).all()),
            "audits": s.scalar(select(func.count()).select_from(AuditEntry)),
        }


def _view(c: SpendClaim) -> tuple[Any, ...]:
    return (c.status, c.reason, c.amount_fen, c.reviewed_by, c.reviewed_at)


def _template_of(s: Session, coupon_id: str | None) -> tuple[str, str]:
    coupon = s.get(Coupon, coupon_id)
    assert coupon is not None
    template = s.get(CouponTemplate, coupon.template_id)
    assert template is not None
    return template.code, coupon.issue_key


# --- order numbers ------------------------------------------------------------------------------------


def test_an_order_claim_is_rewarded_at_once_and_only_once_whatever_the_path(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        order = _order(s, brand, "MP-1", 45000)
        claim = _claim(s, brand, " MP-1 ")
        assert (claim.order_no, claim.order_id, *_view(claim)) == (
            "MP-1",
            order.id,
            "rewarded",
            None,
            45000,
            claims.RULE,
            NOW,
        )
        assert _template_of(s, claim.coupon_id) == ("C50", f"spend:{order.id}")
        # The POS sending the same sale, and the member claiming again: the one coupon.
        pos = reward_order(s, order=order, at=NOW)
        assert pos is not None and pos.id == claim.coupon_id
        again = _claim(s, brand, "MP-1")
        assert _view(again) == ("rejected", "already rewarded", None, claims.RULE, NOW)
        assert again.coupon_id is None
    assert _state(database)["coupons"] == [(f"spend:{order.id}", brand.members[0])]


def test_a_purchase_rewarded_at_the_pos_is_not_rewarded_again_by_a_claim(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        order = _order(s, brand, "MP-2", 20000)
        pos = reward_order(s, order=order, at=NOW)
        claim = _claim(s, brand, "MP-2")
        assert pos is not None and _view(claim) == ("rejected", "already rewarded", None, claims.RULE, NOW)
    assert len(_state(database)["coupons"]) == 1


def test_under_every_band_there_is_no_reward_and_a_second_claim_is_turned_down(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        _order(s, brand, "MP-3", 19899)
        first = _claim(s, brand, "MP-3")
        second = _claim(s, brand, "MP-3")
        assert _view(first) == ("no_reward", "under every band", 19899, claims.RULE, NOW)
        assert _view(second) == ("rejected", "already claimed", None, claims.RULE, NOW)
    assert _state(database)["coupons"] == []


def test_another_members_or_a_refunded_order_is_rejected_with_the_reason(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        _order(s, brand, "MP-4", 50000, member=1)
        _order(s, brand, "MP-5", 50000, status="refunded")
        _order(s, brand, "MP-6", 50000, status="closed")
        got = [_view(_claim(s, brand, number))[:2] for number in ("MP-4", "MP-5", "MP-6")]
    assert got == [
        ("rejected", "belongs to another member"),
        ("rejected", "order refunded"),
        ("rejected", "order closed"),
    ]
    assert _state(database)["coupons"] == []


def test_an_order_not_imported_yet_waits_and_is_checked_again(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        waiting = _claim(s, brand, "T-100", channel="tmall")
        never = _claim(s, brand, "T-404", channel="tmall")
        unpaid = _claim(s, brand, "MP-7")  # sent by the mini-program as created: not paid yet
        _order(s, brand, "MP-7", 50000, status="created")
        assert [_view(c)[:2] for c in (waiting, never)] == [("pending", "order not found")] * 2
    before = _state(database)
    with pytest.raises(Conflict) as err, database.unit_of_work() as s:
        _claim(s, brand, "T-100", channel="tmall")
    assert err.value.field == "order_no"
    assert _state(database) == before

    # The Tmall report arrives: the order is imported (linked to the member by unification).
    with database.unit_of_work() as s:
        fields = OrderFields("T-100", "completed", "交易成功", 26000, 25000, created_at=NOW, completed_at=NOW)
        upsert_orders(
            s,
            tenant_id=brand.tenant_id,
            incoming=[IncomingOrder("tmall", fields, brand.members[0], "nick", "x", None)],
        )
        later = NOW + timedelta(days=1)
        done = claims.recheck_claims(s, tenant_id=brand.tenant_id, at=later)
        assert (done.checked, done.rewarded, done.pending, done.rejected) == (3, 1, 2, 0)
        rewarded = s.get(SpendClaim, waiting.id)
        assert rewarded is not None and _view(rewarded) == ("rewarded", None, 25000, claims.RULE, later)
        assert _template_of(s, rewarded.coupon_id)[0] == "C20"  # the amount paid, not the total
        # A week after the claim, what never came is turned down, with the same reason.
        week = NOW + claims.ORDER_WAIT
        done = claims.recheck_claims(s, tenant_id=brand.tenant_id, at=week)
        assert (done.checked, done.rejected, done.last_id) == (2, 2, max(never.id, unpaid.id))
        found = {c.id: _view(c)[:2] for c in s.scalars(select(SpendClaim))}
        assert [found[never.id], found[unpaid.id]] == [
            ("rejected", "order not found"),
            ("rejected", "order not paid"),
        ]


def test_an_order_not_linked_to_a_member_waits_for_unification(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        fields = OrderFields("J-1", "completed", "完成", 40000, 40000, created_at=NOW, completed_at=NOW)
        upsert_orders(
            s, tenant_id=brand.tenant_id, incoming=[IncomingOrder("jd", fields, None, "pin", "x", None)]
        )
        claim = _claim(s, brand, "J-1", channel="jd")
        assert _view(claim)[:2] == ("pending", "order not linked to a member")


def test_a_reward_that_cannot_be_issued_turns_the_claim_down_with_why(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s, budget=0)
        _order(s, brand, "MP-8", 45000)
        claim = _claim(s, brand, "MP-8")
        assert _view(claim)[:2] == ("rejected", "no reward could be given: the budget of 'C50' is spent")
    assert _state(database)["coupons"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "weibo"}, "channel"),
        ({"order_no": "   "}, "order_no"),
        ({"order_no": "X" * 65}, "order_no"),
        ({"member_id": "mem_00000000000000000000000000"}, "member_id"),
    ],
)
def test_a_bad_order_claim_names_its_field_and_changes_nothing(
    database: Database, changes: dict[str, str], field: str
) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
    before = _state(database)
    given = {"member_id": brand.members[0], "channel": "tmall", "order_no": "T-1", **changes}
    with pytest.raises((ValidationFailed, NotFound)) as err, database.unit_of_work() as s:
        claims.submit_order_claim(s, tenant_id=brand.tenant_id, at=NOW, **given)
    assert err.value.field == field
    assert _state(database) == before


def test_claims_and_the_pos_at_the_same_moment_reward_an_order_once(database: Database) -> None:
    """Three claims of one order and three sends of it by the POS, released together: one coupon, one
    claim rewarded with it (or none, when a send of the POS came first), the others already rewarded."""
    with database.unit_of_work() as s:
        brand = _brand(s)
        order_id = _order(s, brand, "MP-20", 45000).id

    def work(index: int) -> str | None:
        with database.unit_of_work() as s:
            if index % 2:
                order = s.get(Order, order_id)
                assert order is not None
                coupon = reward_order(s, order=order, at=NOW)
                return coupon.id if coupon else None
            return _claim(s, brand, "MP-20").coupon_id

    outcomes = _together(6, work)
    assert [kind for kind, _ in outcomes] == ["ok"] * 6
    with database.reading() as s:
        [coupon_id] = s.scalars(select(Coupon.id))
        statuses = sorted((c.status, c.reason) for c in s.scalars(select(SpendClaim)))
    assert {value for index, (_, value) in enumerate(outcomes) if index % 2} == {coupon_id}
    rewarded = [value for index, (_, value) in enumerate(outcomes) if not index % 2 and value]
    assert rewarded in ([], [coupon_id])
    lost = [("rejected", "already rewarded")] * (3 - len(rewarded))
    assert statuses == sorted(lost + [("rewarded", None)] * len(rewarded))


# --- receipt photos -----------------------------------------------------------------------------------


KEYRING = Keyring(master=os.urandom(32))


def _receipt(s: Session, brand: Brand, photo: bytes, *, store: str | None = "D1") -> SpendClaim:
    return claims.submit_receipt_claim(
        s,
        tenant_id=brand.tenant_id,
        keyring=KEYRING,
        member_id=brand.members[0],
        photo=photo,
        store_id=brand.stores[store] if store else None,
        at=NOW,
    )


def test_a_receipt_is_reviewed_by_staff_and_rewarded_once_per_store_and_number(database: Database) -> None:
    photo, other = _photo(PNG), _photo(JPEG)
    with database.unit_of_work() as s:
        brand = _brand(s)
        claim = _receipt(s, brand, photo)
        assert (claim.status, claim.photo_type, claim.photo_sha256, claim.store_id) == (
            "pending",
            "image/png",
            hashlib.sha256(photo).hexdigest(),
            brand.stores["D1"],
        )
        copy = _receipt(s, brand, other, store=None)
        assert copy.photo_type == "image/jpeg"
        later = NOW + timedelta(hours=2)
        approved = claims.approve_receipt(
            s,
            tenant_id=brand.tenant_id,
            claim_id=claim.id,
            store_id=brand.stores["D1"],
            receipt_no=" ｄ1-0042 ",
            amount_fen=25000,
            actor=STAFF,
            at=later,
        )
        assert (approved.receipt_no, *_view(approved)) == ("D1-0042", "rewarded", None, 25000, STAFF, later)
        assert _template_of(s, approved.coupon_id) == ("C20", f"spend:receipt:{brand.stores['D1']}:D1-0042")
    # A second photo of the same receipt, however typed: a conflict, and the claim waits for a rejection.
    before = _state(database)
    with pytest.raises(Conflict) as err, database.unit_of_work() as s:
        claims.approve_receipt(
            s,
            tenant_id=brand.tenant_id,
            claim_id=copy.id,
            store_id=brand.stores["D1"],
            receipt_no="d1-0042",
            amount_fen=25000,
            actor=STAFF,
            at=later,
        )
    assert (err.value.field, err.value.detail) == ("receipt_no", {"claim_id": claim.id})
    assert _state(database) == before
    with database.unit_of_work() as s:
        rejected = claims.reject_claim(
            s, tenant_id=brand.tenant_id, claim_id=copy.id, reason=" 重复的小票 ", actor=STAFF, at=later
        )
        assert _view(rejected) == ("rejected", "重复的小票", None, STAFF, later)
        audits = s.execute(
            select(AuditEntry.action, AuditEntry.object_id, AuditEntry.actor_id, AuditEntry.detail)
            .where(AuditEntry.object_type == "spend_claim")
            .order_by(AuditEntry.at, AuditEntry.action)
        ).all()
    assert [tuple(a[:3]) for a in audits] == [
        ("spend_claim.approve", claim.id, "usr_staff"),
        ("spend_claim.reject", copy.id, "usr_staff"),
    ]
    assert audits[0][3] == {
        "status": "rewarded",
        "kind": "receipt",
        "reason": None,
        "store_id": brand.stores["D1"],
        "receipt_no": "D1-0042",
        "amount_fen": 25000,
        "coupon_id": approved.coupon_id,
    }
    assert len(_state(database)["coupons"]) == 1


def test_a_receipt_under_every_band_is_no_reward(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        claim = _receipt(s, brand, _photo())
        claims.approve_receipt(
            s,
            tenant_id=brand.tenant_id,
            claim_id=claim.id,
            store_id=brand.stores["F1"],
            receipt_no="F1-7",
            amount_fen=9900,
            actor=STAFF,
            at=NOW,
        )
        assert (claim.store_id, *_view(claim)) == (
            brand.stores["F1"],
            "no_reward",
            "under every band",
            9900,
            STAFF,
            NOW,
        )


def _approve(db: Database, brand: Brand, claim_id: str, **changes: Any) -> None:
    given = {"store_id": brand.stores["D1"], "receipt_no": "R1", "amount_fen": 25000, **changes}
    with db.unit_of_work() as s:
        claims.approve_receipt(s, tenant_id=brand.tenant_id, claim_id=claim_id, actor=STAFF, at=NOW, **given)


def test_a_refused_review_names_its_field_and_changes_nothing(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        photo = _receipt(s, brand, _photo()).id
        decided = _receipt(s, brand, _photo()).id
        claims.reject_claim(
            s, tenant_id=brand.tenant_id, claim_id=decided, reason="模糊", actor=STAFF, at=NOW
        )
        _order(s, brand, "MP-9", 100, status="created")
        by_order = _claim(s, brand, "MP-9").id
    before = _state(database)
    cases: list[tuple[str, dict[str, Any], type[Exception], str]] = [
        (photo, {"amount_fen": 0}, ValidationFailed, "amount_fen"),
        (photo, {"receipt_no": "小票 1"}, ValidationFailed, "receipt_no"),
        (photo, {"receipt_no": " "}, ValidationFailed, "receipt_no"),
        (decided, {}, Conflict, "claim_id"),
        (by_order, {}, Conflict, "claim_id"),
        ("scl_00000000000000000000000000", {}, NotFound, "claim_id"),
    ]
    for claim_id, changes, error, field in cases:
        with pytest.raises(error) as err:
            _approve(database, brand, claim_id, **changes)
        assert getattr(err.value, "field", None) == field, (claim_id, changes)
    with pytest.raises(ValidationFailed) as refused, database.unit_of_work() as s:
        claims.reject_claim(s, tenant_id=brand.tenant_id, claim_id=photo, reason="  ", actor=STAFF, at=NOW)
    assert refused.value.field == "reason"
    assert _state(database) == before


def test_a_receipt_whose_reward_cannot_be_issued_stays_pending(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s, budget=0)
        claim_id = _receipt(s, brand, _photo()).id
    before = _state(database)
    with pytest.raises(Conflict) as err:
        _approve(database, brand, claim_id)
    assert (err.value.field, err.value.message) == ("template", "the budget of 'C20' is spent")
    assert _state(database) == before


def test_two_photos_of_one_receipt_approved_at_the_same_moment_are_rewarded_once(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        ids = [_receipt(s, brand, _photo()).id for _ in range(4)]

    def work(index: int) -> str:
        _approve(database, brand, ids[index], receipt_no="R-77")
        return ids[index]

    outcomes = _together(4, work)
    won = [value for kind, value in outcomes if kind == "ok"]
    lost = [value for kind, value in outcomes if kind == "error"]
    assert len(won) == 1
    assert [(type(e), e.field) for e in lost] == [(Conflict, "receipt_no")] * 3
    with database.reading() as s:
        statuses = {c.id: c.status for c in s.scalars(select(SpendClaim))}
        issued = list(s.scalars(select(Coupon.issue_key)))
    assert statuses == {claim_id: "rewarded" if claim_id in won else "pending" for claim_id in ids}
    assert issued == [f"spend:receipt:{brand.stores['D1']}:R-77"]


@pytest.mark.parametrize(
    ("photo", "message"),
    [
        (b"", "the photo is empty"),
        (b"GIF89a" + bytes(10), "a receipt photo is a JPEG or a PNG"),
        (PNG + bytes(claims.MAX_PHOTO_BYTES), "a photo is at most 5 MB"),
    ],
    ids=["empty", "gif", "too-big"],
)
def test_only_a_jpeg_or_png_of_at_most_5_mb_is_taken(database: Database, photo: bytes, message: str) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
    before = _state(database)
    with pytest.raises(ValidationFailed) as err, database.unit_of_work() as s:
        _receipt(s, brand, photo)
    assert (err.value.field, err.value.message) == ("photo", message)
    assert _state(database) == before


def test_the_photo_is_kept_encrypted_and_opened_as_sent(database: Database) -> None:
    sent = _photo()
    with database.unit_of_work() as s:
        claim_id = _receipt(s, _brand(s), sent).id
    with database.reading() as s:
        claim = s.get(SpendClaim, claim_id)
        assert claim is not None and claim.photo is not None
        assert sent not in claim.photo and sent[4:] not in claim.photo
        assert claims.receipt_photo(KEYRING, claim) == sent


def test_the_same_photo_twice_is_refused(database: Database) -> None:
    photo = _photo(JPEG)
    with database.unit_of_work() as s:
        brand = _brand(s)
        _receipt(s, brand, photo)
    before = _state(database)
    with pytest.raises(Conflict) as err, database.unit_of_work() as s:
        _receipt(s, brand, photo, store="F1")
    assert err.value.field == "photo"
    assert _state(database) == before


# --- the command line ---------------------------------------------------------------------------------


def test_recheck_from_the_command_line(cli_env: Database) -> None:
    with cli_env.unit_of_work() as s:
        brand = _brand(s, code="acme")
        at = datetime.now(UTC)
        claims.submit_order_claim(
            s,
            tenant_id=brand.tenant_id,
            member_id=brand.members[0],
            channel="miniprogram",
            order_no="MP-10",
            at=at,
        )
        claims.submit_order_claim(
            s,
            tenant_id=brand.tenant_id,
            member_id=brand.members[0],
            channel="miniprogram",
            order_no="MP-11",
            at=at,
        )
        _order(s, brand, "MP-10", 40000)
    out = _ok(["spend-claims", "recheck", "--tenant", "acme"])
    assert "2 claims checked: 1 rewarded, 0 under every band, 0 rejected, 1 still pending" in out
    # The one brand is found by itself; the claim still waiting is checked again.
    again = _ok(["spend-claims", "recheck"])
    assert "1 claims checked: 0 rewarded, 0 under every band, 0 rejected, 1 still pending" in again
