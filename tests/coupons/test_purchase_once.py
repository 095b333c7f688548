"""A purchase earns its spend reward once whatever the path (a POS sale is also its printed receipt), and
loses it when it is refunded in full or closed: on SQLite and PostgreSQL.

The brand of ``test_claims._brand``: C20 from 199 yuan, C50 from 399, stores D1 and F1, two members.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields
from datong.core.db import Database
from datong.core.errors import Conflict
from datong.coupons import claims
from datong.coupons.models import Coupon, SpendClaim
from datong.coupons.orders import run_order_coupons
from datong.coupons.rules import Basket, Line
from datong.coupons.service import redeem_coupon
from datong.coupons.spend_rewards import reward_order, reward_sale, void_order_reward
from datong.orders.models import Order
from datong.orders.service import IncomingOrder, record_order, record_refund, upsert_orders
from datong.tenancy.models import AuditEntry
from tests.coupons.test_claims import NOW, STAFF, Brand, _brand, _claim, _photo, _receipt, _state
from tests.loyalty.test_concurrency import _together

LATER = NOW + timedelta(hours=3)


def _sale(
    s: Session, brand: Brand, receipt_no: str, paid_fen: int, *, store: str = "D1", member: int = 0
) -> Order:
    """A POS sale at ``store``: the till's order number is the number printed on the receipt."""
    fields = OrderFields(receipt_no, "completed", "completed", paid_fen, paid_fen, created_at=NOW)
    return record_order(
        s,
        tenant_id=brand.tenant_id,
        channel="pos",
        fields=fields,
        member_id=brand.members[member],
        store_id=brand.stores[store],
    )


def _approve(s: Session, brand: Brand, claim_id: str, receipt_no: str, amount_fen: int) -> SpendClaim:
    return claims.approve_receipt(
        s,
        tenant_id=brand.tenant_id,
        claim_id=claim_id,
        store_id=brand.stores["D1"],
        receipt_no=receipt_no,
        amount_fen=amount_fen,
        actor=STAFF,
        at=LATER,
    )


def _coupons(db: Database) -> list[tuple[str, str]]:
    with db.reading() as s:
        return sorted((c.issue_key, c.status) for c in s.scalars(select(Coupon)))


# --- a POS sale and a photo of its receipt ------------------------------------------------------------


def test_a_receipt_of_a_sale_rewarded_at_the_till_is_not_rewarded_again(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        sale = _sale(s, brand, "D1-0042", 45000)
        at_till = reward_sale(s, order=sale, actor=STAFF, at=NOW)
        assert at_till is not None
        photo = _receipt(s, brand, _photo()).id
    before = _state(database)
    # However the number is typed, the receipt is that sale, rewarded already.
    for typed in ("D1-0042", " ｄ1-0042 "):
        with pytest.raises(Conflict) as err, database.unit_of_work() as s:
            _approve(s, brand, photo, typed, 45000)
        assert (err.value.field, err.value.message) == ("receipt_no", "this receipt was rewarded already")
    assert _state(database) == before
    assert _coupons(database) == [(f"spend:{sale.id}", "issued")]


def test_a_receipt_approved_before_its_sale_reached_datong_is_the_sales_reward(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        photo = _receipt(s, brand, _photo()).id
        approved = _approve(s, brand, photo, "d1-0043", 45000)
        assert (approved.status, approved.order_id) == ("rewarded", None)
    receipt_key = f"spend:receipt:{brand.stores['D1']}:D1-0043"
    with database.unit_of_work() as s:
        # The till sends the sale later (it was offline): its reward is the receipt's coupon.
        sale = _sale(s, brand, "D1-0043", 45000)
        again = reward_sale(s, order=sale, actor=STAFF, at=LATER)
        assert again is not None and again.id == approved.coupon_id
        claim = _claim(s, brand, "D1-0043", channel="pos")
        assert (claim.status, claim.reason, claim.coupon_id) == ("rejected", "already rewarded", None)
    assert _coupons(database) == [(receipt_key, "issued")]


def test_a_receipt_of_a_sale_not_rewarded_yet_is_rewarded_as_that_sale(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        sale = _sale(s, brand, "D1-0044", 45000)  # recorded, but its reward never asked for
        photo = _receipt(s, brand, _photo()).id
        approved = _approve(s, brand, photo, "D1-0044", 45000)
        assert (approved.status, approved.order_id, approved.receipt_no) == ("rewarded", sale.id, "D1-0044")
        coupon = s.get(Coupon, approved.coupon_id)
        assert coupon is not None and coupon.issue_key == f"spend:{sale.id}"
        # Asked again by the till, or claimed by its order number: the same coupon, nothing more.
        till = reward_order(s, order=sale, at=LATER)
        assert till is not None and till.id == coupon.id
        claim = _claim(s, brand, "D1-0044", channel="pos")
        assert (claim.status, claim.reason) == ("rejected", "already rewarded")
    assert _coupons(database) == [(f"spend:{sale.id}", "issued")]


def test_a_receipt_under_every_band_is_its_sales_one_decision(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        photo = _receipt(s, brand, _photo()).id
        assert _approve(s, brand, photo, "D1-0045", 9900).status == "no_reward"
        _sale(s, brand, "D1-0045", 9900)
        claim = _claim(s, brand, "D1-0045", channel="pos")
        assert (claim.status, claim.reason) == ("rejected", "already claimed")
    assert _coupons(database) == []


@pytest.mark.parametrize(
    ("member", "refunded", "message"),
    [
        (1, False, "the sale on this receipt is another member's"),
        (0, True, "the sale on this receipt was refunded"),
    ],
    ids=["another-member", "refunded"],
)
def test_a_receipt_of_a_sale_refunded_or_of_another_member_is_refused(
    database: Database, member: int, refunded: bool, message: str
) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        sale = _sale(s, brand, "D1-0046", 45000, member=member)
        if refunded:
            record_refund(s, tenant_id=brand.tenant_id, order=sale, refund_no="R1", amount_fen=45000)
        photo = _receipt(s, brand, _photo()).id
    before = _state(database)
    with pytest.raises(Conflict) as err, database.unit_of_work() as s:
        _approve(s, brand, photo, "D1-0046", 45000)
    assert (err.value.field, err.value.message, err.value.detail) == (
        "receipt_no",
        message,
        {"order_id": sale.id},
    )
    assert _state(database) == before


def test_a_sale_from_the_till_and_photos_of_its_receipt_at_the_same_moment_give_one_coupon(
    database: Database,
) -> None:
    """Three sends of a sale by the till and three photos of its receipt approved, released together: one
    coupon, under the key of whichever came first; every till send answers it, and every photo but the
    first to win (and all of them, when the till came first) is refused as rewarded already."""
    with database.unit_of_work() as s:
        brand = _brand(s)
        photos = [_receipt(s, brand, _photo()).id for _ in range(3)]

    def work(index: int) -> str | None:
        with database.unit_of_work() as s:
            if index % 2:
                coupon = reward_sale(s, order=_sale(s, brand, "D1-0099", 45000), actor=STAFF, at=NOW)
                return coupon.id if coupon else None
            return _approve(s, brand, photos[index // 2], "D1-0099", 45000).coupon_id

    outcomes = _together(6, work)
    with database.reading() as s:
        [coupon] = s.scalars(select(Coupon))
        order_id = s.scalar(select(Order.id).where(Order.order_no == "D1-0099"))
    assert {value for index, (_, value) in enumerate(outcomes) if index % 2} == {coupon.id}
    approved = [value for index, (kind, value) in enumerate(outcomes) if not index % 2 and kind == "ok"]
    refused = [value for index, (kind, value) in enumerate(outcomes) if not index % 2 and kind == "error"]
    assert approved in ([], [coupon.id])
    assert [(type(e), e.field) for e in refused] == [(Conflict, "receipt_no")] * (3 - len(approved))
    receipt_key = f"spend:receipt:{brand.stores['D1']}:D1-0099"
    assert coupon.issue_key == (receipt_key if approved else f"spend:{order_id}")


# --- refunds and closed orders take the reward back -------------------------------------------------------


def _tmall(s: Session, brand: Brand, order_no: str, paid_fen: int, status: str, raw: str) -> None:
    fields = OrderFields(order_no, status, raw, paid_fen, paid_fen, created_at=NOW, paid_at=NOW)
    upsert_orders(
        s,
        tenant_id=brand.tenant_id,
        incoming=[IncomingOrder("tmall", fields, brand.members[0], "nick", "x", None)],
    )


def _void_audits(db: Database) -> list[tuple[str, dict[str, Any]]]:
    with db.reading() as s:
        rows = s.execute(
            select(AuditEntry.object_id, AuditEntry.detail)
            .where(AuditEntry.action == "coupon.spend_reward_void")
            .order_by(AuditEntry.at, AuditEntry.id)
        ).all()
    return [(row[0], row[1]) for row in rows]


def test_an_order_closed_after_its_claim_loses_its_unused_reward_once(database: Database) -> None:
    """Pay 399 on Tmall, claim by order number, cancel (交易关闭): the coupon is void, and a claim
    again is turned down. A reward the member used already stays used."""
    with database.unit_of_work() as s:
        brand = _brand(s)
        _tmall(s, brand, "T-1", 39900, "paid", "买家已付款，等待卖家发货")
        _tmall(s, brand, "T-2", 19900, "paid", "买家已付款，等待卖家发货")
        kept = _claim(s, brand, "T-1", channel="tmall").coupon_id
        used = _claim(s, brand, "T-2", channel="tmall").coupon_id
        assert kept is not None and used is not None
        # The second reward paid for another purchase already.
        used_coupon = s.get(Coupon, used)
        assert used_coupon is not None
        basket = Basket("miniprogram", None, NOW, [Line(None, None, 1, 30000)])
        redeem_coupon(s, coupon=used_coupon, basket=basket, order_no="MP-77", actor=STAFF)
    with database.unit_of_work() as s:  # the next export: both closed
        _tmall(s, brand, "T-1", 39900, "closed", "交易关闭")
        _tmall(s, brand, "T-2", 19900, "closed", "交易关闭")
    totals = run_order_coupons(database, tenant_id=brand.tenant_id, actor=STAFF, at=LATER)
    assert (totals.voided, totals.reversed, totals.redeemed) == (1, 0, 0)
    with database.reading() as s:
        statuses = {c.id: c.status for c in s.scalars(select(Coupon))}
        t1 = s.scalar(select(Order.id).where(Order.order_no == "T-1"))
    assert statuses == {kept: "void", used: "redeemed"}
    assert _void_audits(database) == [(kept, {"order_id": t1, "order_status": "closed"})]
    # Run again: nothing more. Claim again: turned down, and no new coupon.
    again = run_order_coupons(database, tenant_id=brand.tenant_id, actor=STAFF, at=LATER)
    assert again.voided == 0
    with database.unit_of_work() as s:
        claim = _claim(s, brand, "T-1", channel="tmall", at=LATER)
        assert (claim.status, claim.reason) == ("rejected", "order closed")
    assert len(_void_audits(database)) == 1
    assert len(_coupons(database)) == 2


def test_only_a_refund_in_full_takes_the_reward_back(database: Database) -> None:
    with database.unit_of_work() as s:
        brand = _brand(s)
        sale = _sale(s, brand, "D1-0050", 45000)
        reward = reward_sale(s, order=sale, actor=STAFF, at=NOW)
        assert reward is not None
        record_refund(s, tenant_id=brand.tenant_id, order=sale, refund_no="R1", amount_fen=5000)
        assert void_order_reward(s, order=sale, actor=STAFF) == (None, False)
        assert reward.status == "issued"
        record_refund(s, tenant_id=brand.tenant_id, order=sale, refund_no="R2", amount_fen=40000)
        assert void_order_reward(s, order=sale, actor=STAFF) == (reward, True)
        assert (sale.status, reward.status) == ("refunded", "void")
        assert void_order_reward(s, order=sale, actor=STAFF) == (reward, False)
    assert _void_audits(database) == [(reward.id, {"order_id": sale.id, "order_status": "refunded"})]
