"""Coupons on imported channel orders (the codes in a Tmall or JD export, redeemed once by the coupon
job) and refunds that reverse coupon redemptions (a later export saying 交易关闭, a full or partial refund
of a sale): on SQLite and PostgreSQL, through the real import pipeline."""

from __future__ import annotations

import csv
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from datong.channels.models import ImportBatch
from datong.channels.records import OrderFields, OrderLineFields
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.coupons import service
from datong.coupons.codes import display_code, new_code
from datong.coupons.models import Coupon, CouponRedemption
from datong.coupons.orders import (
    order_basket,
    reverse_order_coupons,
    run_order_coupons,
)
from datong.jobs.imports import ImportRequest, run_import
from datong.loyalty.programs import get_program, load_program
from datong.loyalty.refunds import refund_closed_orders
from datong.loyalty.service import earn_completed_orders
from datong.members.models import SourceRecord
from datong.members.service import delete_member, merge_members
from datong.orders.models import Order, OrderCoupon
from datong.orders.queries import order_coupon_problems
from datong.orders.service import IncomingOrder, record_order, record_refund, upsert_orders
from datong.tenancy.service import create_tenant
from tests.loyalty.helpers import PROGRAM
from tests.test_cli import _ok, cli_env

__all__ = ["cli_env"]  # the fixture, used by name

ACTOR = "system:test"
ISSUED_AT = datetime(2026, 11, 1, 2, tzinfo=UTC)
PAID_AT = datetime(2026, 11, 11, 12, tzinfo=UTC)  # 20:00 in China, as the export writes it
NOW = datetime(2026, 11, 20, 4, tzinfo=UTC)  # when the coupon job runs
PAID_TEXT = "2026-11-11 20:00:00"

TMALL_HEADERS = [
    "订单编号",
    "买家会员名",
    "总金额",
    "买家应付邮费",
    "买家实际支付金额",
    "订单状态",
    "订单创建时间",
    "订单付款时间",
    "宝贝标题",
    "宝贝总数量",
    "店铺Id",
    "店铺名称",
    "商家优惠券码",
]


# --- helpers --------------------------------------------------------------------------------------


def tmall_row(
    order_no: str,
    nick: str,
    *,
    total: str = "258.00",
    status: str = "买家已付款，等待卖家发货",
    paid_at: str = PAID_TEXT,
    codes: str = "",
) -> dict[str, str]:
    return {
        "订单编号": f'="{order_no}"',
        "买家会员名": nick,
        "总金额": total,
        "买家应付邮费": "0.00",
        "买家实际支付金额": total,
        "订单状态": status,
        "订单创建时间": "2026-11-11 19:58:00",
        "订单付款时间": paid_at,
        "宝贝标题": "羊毛大衣 驼色 M",
        "宝贝总数量": "1",
        "店铺Id": "57301234",
        "店铺名称": "大同旗舰店",
        "商家优惠券码": codes,
    }


def write_csv(path: Path, headers: list[str], rows: list[dict[str, str]]) -> Path:
    lines = [",".join(headers)] + [",".join(row.get(h, "") for h in headers) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return path


def import_file(
    db: Database, keyring: Keyring, tenant_id: str, path: Path, kind: str = "tmall-orders"
) -> ImportBatch:
    return run_import(db, keyring, ImportRequest(tenant_id=tenant_id, kind=kind, path=path), chunk_rows=50)


def run(db: Database, tenant_id: str, **options: Any) -> dict[str, Any]:
    totals = run_order_coupons(db, tenant_id=tenant_id, actor=ACTOR, at=options.pop("at", NOW), **options)
    counts = asdict(totals)
    del counts["last_id"]
    return counts


class Brand:
    """A brand with coupon templates, whose members tb_alice and tb_bob came from a first Tmall export."""

    def __init__(self, db: Database, keyring: Keyring, tmp_path: Path, **template: Any) -> None:
        self.db, self.keyring, self.tmp = db, keyring, tmp_path
        with db.unit_of_work() as s:
            self.tenant_id = create_tenant(s, code="coats", name="大衣").id
            base: dict[str, Any] = {"kind": "threshold", "threshold_fen": 19800, "amount_fen": 2000}
            for code, fields in (
                ("T20", base | {"name": "满198减20", "valid_days": 30} | template),
                ("SHORT", base | {"name": "五天有效", "valid_days": 5}),
                ("CASH10", {"name": "立减10元", "kind": "cash_off", "amount_fen": 1000, "valid_days": 30}),
            ):
                service.create_template(s, tenant_id=self.tenant_id, actor=ACTOR, code=code, **fields)
        self.imports = 0
        self.import_rows([tmall_row("T-0001", "tb_alice"), tmall_row("T-0002", "tb_bob")])
        self.alice = self.order("T-0001").member_id or ""
        self.bob = self.order("T-0002").member_id or ""
        assert self.alice and self.bob and self.alice != self.bob

    def import_rows(self, rows: list[dict[str, str]]) -> ImportBatch:
        self.imports += 1
        path = write_csv(self.tmp / f"ExportOrderList{self.imports}.csv", TMALL_HEADERS, rows)
        return import_file(self.db, self.keyring, self.tenant_id, path)

    def issue(self, member_id: str, template: str = "T20") -> str:
        with self.db.unit_of_work() as s:
            coupon, _ = service.issue_coupon(
                s,
                tenant_id=self.tenant_id,
                template_code=template,
                member_id=member_id,
                issue_key=f"k-{new_code()}",
                source="api",
                at=ISSUED_AT,
            )
            return coupon.code

    def order(self, order_no: str, channel: str = "tmall") -> Order:
        with self.db.reading() as s:
            found = s.scalar(select(Order).where(Order.channel == channel, Order.order_no == order_no))
            assert found is not None, order_no
            return found

    def coupon(self, code: str) -> Coupon:
        with self.db.reading() as s:
            found = s.scalar(select(Coupon).where(Coupon.code == code))
            assert found is not None
            return found

    def redemptions(self, code: str) -> list[CouponRedemption]:
        with self.db.reading() as s:
            return list(
                s.scalars(
                    select(CouponRedemption)
                    .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
                    .where(Coupon.code == code)
                    .order_by(CouponRedemption.at, CouponRedemption.id)
                )
            )

    def state(self) -> dict[str, Any]:
        """Every coupon's state, every redemption and every code on an order: what a run may change."""
        with self.db.reading() as s:
            return {
                "coupons": sorted((c.code, c.status, c.redeemed_at) for c in s.scalars(select(Coupon)).all()),
                "redemptions": sorted(
                    (r.id, r.coupon_id, r.order_no, r.reversed_at, r.reversed_by)
                    for r in s.scalars(select(CouponRedemption)).all()
                ),
                "order_codes": sorted(
                    (c.order_id, c.code, c.status, tuple(c.reasons), c.reason, c.redemption_id)
                    for c in s.scalars(select(OrderCoupon)).all()
                ),
            }

    def problems(self) -> list[tuple[str, str, str, str, str]]:
        with self.db.reading() as s:
            rows = order_coupon_problems(s, tenant_id=self.tenant_id)
        return [(r["order_no"], r["code"], r["status"], r["reasons"], r["reason"]) for r in rows]


def totals(**changed: int) -> dict[str, int]:
    return {"redeemed": 0, "refused": 0, "waiting": 0, "reversed": 0, "voided": 0, "retried": 0} | changed


# --- redeeming ------------------------------------------------------------------------------------


def test_a_tmall_order_redeems_its_code_exactly_once(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    code = brand.issue(brand.alice)
    # Written as a person would copy it from the member page: grouped, lower case.
    batch = brand.import_rows([tmall_row("T-1001", "tb_alice", codes=display_code(code).lower())])
    assert (batch.rows_ok, batch.rows_failed) == (1, 0)
    order = brand.order("T-1001")
    assert brand.state()["order_codes"] == [(order.id, code, "pending", (), None, None)]

    assert run(database, brand.tenant_id) == totals(redeemed=1)
    coupon = brand.coupon(code)
    assert (coupon.status, coupon.redeemed_at) == ("redeemed", PAID_AT)
    (redemption,) = brand.redemptions(code)
    assert (
        redemption.channel,
        redemption.order_no,
        redemption.store_id,
        redemption.member_id,
        redemption.discount_fen,
        redemption.order_fen,
        redemption.at,
        redemption.actor,
        redemption.reversed_at,
    ) == ("tmall", "T-1001", None, brand.alice, 2000, 25800, PAID_AT, ACTOR, None)
    assert brand.state()["order_codes"] == [(order.id, code, "redeemed", (), None, redemption.id)]
    assert brand.problems() == []

    # Run again, import the same file again, and a later export of the order (now 交易成功) with its
    # code again: the coupon stays redeemed once.
    done = brand.state()
    assert run(database, brand.tenant_id) == totals()
    brand.imports -= 1
    assert brand.import_rows([tmall_row("T-1001", "tb_alice", codes=display_code(code).lower())]).rows_ok == 1
    brand.import_rows([tmall_row("T-1001", "tb_alice", status="交易成功", codes=code)])
    assert brand.order("T-1001").status == "completed"
    assert run(database, brand.tenant_id) == totals()
    assert brand.state() == done


def test_codes_that_cannot_be_redeemed_are_listed_with_why_and_change_nothing(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    bobs = brand.issue(brand.bob)
    expired = brand.issue(brand.alice, "SHORT")  # valid until 6 November: the order was paid on the 11th
    small, used, waiting, unpaid = (brand.issue(brand.alice) for _ in range(4))
    nowhere = new_code()  # a well-formed code no coupon has
    brand.import_rows(
        [
            tmall_row("T-2001", "tb_alice", codes=bobs),
            tmall_row("T-2002", "tb_alice", codes=nowhere),
            tmall_row("T-2003", "tb_alice", codes=expired),
            tmall_row("T-2004", "tb_alice", total="100.00", codes=small),
            tmall_row("T-2005", "tb_alice", codes=used),
            tmall_row("T-2006", "tb_alice", status="等待买家付款", paid_at="", codes=waiting),
            tmall_row("T-2007", "tb_alice", status="交易关闭", paid_at="", codes=unpaid),
        ]
    )
    before = brand.state()
    assert run(database, brand.tenant_id) == totals(redeemed=1, refused=5, waiting=1)
    assert [brand.coupon(c).status for c in (bobs, expired, small, used, waiting, unpaid)] == [
        "issued",
        "issued",
        "issued",
        "redeemed",
        "issued",
        "issued",
    ]
    assert [len(brand.redemptions(c)) for c in (bobs, expired, small, used, waiting, unpaid)] == [
        0,
        0,
        0,
        1,
        0,
        0,
    ]
    others = [c for c in brand.state()["coupons"] if c[0] != used]
    assert others == [c for c in before["coupons"] if c[0] != used]
    expected = [
        ("T-2001", bobs, "refused", "member", "this coupon belongs to another member"),
        ("T-2002", nowhere, "refused", "not_found", "no coupon of this brand has this code"),
        ("T-2003", expired, "refused", "expired", "expired at 2026-11-06T02:00:00+00:00"),
        ("T-2004", small, "refused", "threshold", "spend 9800 fen more on eligible lines"),
        (
            "T-2006",
            waiting,
            "pending",
            "not_paid",
            "waiting for the order to be paid (its status is '等待买家付款')",
        ),
        (
            "T-2007",
            unpaid,
            "refused",
            "unpaid",
            "the order was closed before it was paid: the coupon was not used",
        ),
    ]
    assert brand.problems() == [(o, display_code(c), s, r, m) for o, c, s, r, m in expected]

    # The same coupon on a second order: refused, saying where it was used.
    brand.import_rows([tmall_row("T-2008", "tb_alice", codes=used)])
    assert run(database, brand.tenant_id) == totals(refused=1, waiting=1)
    assert brand.problems()[-1] == (
        "T-2008",
        display_code(used),
        "refused",
        "redeemed",
        "used on tmall order T-2005 at 2026-11-11T12:00:00+00:00",
    )
    assert [r.order_no for r in brand.redemptions(used)] == ["T-2005"]

    # Refused codes stay refused on later runs; after the CRM team merges bob into alice (one person),
    # a retry redeems bob's old coupon on alice's order, and the rest are refused again for the same reasons.
    settled = brand.state()
    assert run(database, brand.tenant_id) == totals(waiting=1)
    assert brand.state() == settled
    with database.unit_of_work() as s:
        merge_members(
            s,
            tenant_id=brand.tenant_id,
            survivor_id=brand.alice,
            absorbed_id=brand.bob,
            rule="manual",
            evidence={"reason": "the same person"},
            actor=ACTOR,
        )
    assert run(database, brand.tenant_id, retry_refused=True) == totals(
        retried=6, redeemed=1, refused=5, waiting=1
    )
    assert (brand.coupon(bobs).status, [r.order_no for r in brand.redemptions(bobs)]) == (
        "redeemed",
        ["T-2001"],
    )
    assert [p[0] for p in brand.problems()] == ["T-2002", "T-2003", "T-2004", "T-2006", "T-2007", "T-2008"]


def test_a_malformed_code_fails_its_row_which_is_kept_with_the_error(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    good = brand.issue(brand.alice)
    typo = good[:-1] + ("0" if good[-1] != "0" else "1")  # the check character catches it
    batch = brand.import_rows([tmall_row("T-3001", "tb_alice", codes=f"{good}，{typo}")])
    assert (batch.rows_ok, batch.rows_failed) == (0, 1)
    with database.reading() as s:
        record = s.scalar(select(SourceRecord).where(SourceRecord.batch_id == batch.id))
        assert record is not None
        assert (record.status, record.errors) == (
            "failed",
            [
                {
                    "field": "商家优惠券码",
                    "reason": "code 2 of 2: this is not a valid coupon code: "
                    "a character is wrong or two are swapped",
                }
            ],
        )
        assert s.scalar(select(Order.id).where(Order.order_no == "T-3001")) is None
        assert s.scalars(select(OrderCoupon)).all() == []
    assert run(database, brand.tenant_id) == totals()
    assert brand.coupon(good).status == "issued"


def test_a_jd_order_redeems_on_its_priced_lines_once_whatever_the_rows(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    headers = ["订单号", "下单帐号", "商品ID", "商品名称", "订购数量", "京东价", "订单金额", "应付金额"]
    headers += ["订单状态", "下单时间", "付款确认时间", "券码"]
    first = {"订单号": "J-1", "下单帐号": "jd_carol", "商品ID": "SKU-A", "商品名称": "羊毛大衣"}
    first |= {"订购数量": "1", "京东价": "150.00", "订单金额": "210.00", "应付金额": "210.00"}
    first |= {"订单状态": "等待出库", "下单时间": "2026-11-11 19:58:00", "付款确认时间": PAID_TEXT}
    second = first | {"商品ID": "SKU-B", "商品名称": "围巾", "京东价": "60.00"}
    path = write_csv(tmp_path / "jd.csv", headers, [first, second])
    batch = import_file(database, keyring, brand.tenant_id, path, kind="jd-orders")
    carol = brand.order("J-1", "jd").member_id
    assert batch.rows_ok == 2 and carol is not None
    code = brand.issue(carol)
    path = write_csv(tmp_path / "jd2.csv", headers, [first | {"券码": code}, second | {"券码": code}])
    import_file(database, keyring, brand.tenant_id, path, kind="jd-orders")
    assert len(brand.state()["order_codes"]) == 1
    assert run(database, brand.tenant_id) == totals(redeemed=1)
    (redemption,) = brand.redemptions(code)
    assert (redemption.channel, redemption.order_no, redemption.order_fen, redemption.discount_fen) == (
        "jd",
        "J-1",
        21000,
        2000,
    )


def test_an_order_not_linked_to_a_member_yet_keeps_its_code_waiting_until_it_is(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    code = brand.issue(brand.alice)
    fields = OrderFields(
        "T-7001", "paid", "买家已付款，等待卖家发货", 25800, 25800, paid_at=PAID_AT, coupon_codes=[code]
    )
    with database.unit_of_work() as s:  # imported before unification linked its buyer
        upsert_orders(
            s, tenant_id=brand.tenant_id, incoming=[IncomingOrder("tmall", fields, None, "nick", "x", None)]
        )
    before = brand.state()
    assert run(database, brand.tenant_id) == totals(waiting=1)
    assert brand.problems() == [
        ("T-7001", display_code(code), "pending", "no_member", "not linked to a member")
    ]
    assert brand.state()["coupons"] == before["coupons"]
    assert brand.redemptions(code) == []
    # Linked now (the next export, or unification): the next run redeems the code, once.
    with database.unit_of_work() as s:
        upsert_orders(
            s,
            tenant_id=brand.tenant_id,
            incoming=[IncomingOrder("tmall", fields, brand.alice, "nick", "x", None)],
        )
    assert run(database, brand.tenant_id) == totals(redeemed=1)
    assert brand.coupon(code).status == "redeemed"
    assert [(r.order_no, r.at) for r in brand.redemptions(code)] == [("T-7001", PAID_AT)]
    assert brand.problems() == []


def test_the_code_of_an_order_whose_buyer_was_erased_is_refused(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    code = brand.issue(brand.alice)
    brand.import_rows([tmall_row("T-7101", "tb_bob", codes=code)])
    with database.unit_of_work() as s:
        delete_member(
            s,
            tenant_id=brand.tenant_id,
            keyring=keyring,
            member_id=brand.bob,
            actor=ACTOR,
            reason="本人要求删除",
        )
    assert brand.order("T-7101").member_id is None
    assert run(database, brand.tenant_id) == totals(refused=1)
    assert brand.problems() == [
        ("T-7101", display_code(code), "refused", "no_member", "the order's buyer was erased")
    ]
    assert brand.coupon(code).status == "issued"


# --- refunds of imported orders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restore", "at", "status"),
    [
        (True, NOW, "issued"),  # the template gives it back, and it is still valid
        (False, NOW, "void"),  # the template keeps it
        (True, datetime(2026, 12, 2, tzinfo=UTC), "void"),  # gone past its validity before the refund
    ],
)
def test_a_later_export_closing_the_order_reverses_its_coupon_once(
    database: Database, keyring: Keyring, tmp_path: Path, restore: bool, at: datetime, status: str
) -> None:
    brand = Brand(database, keyring, tmp_path, restore_on_refund=restore)
    code = brand.issue(brand.alice)
    brand.import_rows([tmall_row("T-4001", "tb_alice", codes=code)])
    assert run(database, brand.tenant_id) == totals(redeemed=1)
    brand.import_rows([tmall_row("T-4001", "tb_alice", status="交易关闭", codes=code)])
    assert run(database, brand.tenant_id, at=at) == totals(reversed=1)
    coupon = brand.coupon(code)
    assert (coupon.status, coupon.redeemed_at) == (status, None if status == "issued" else PAID_AT)
    (redemption,) = brand.redemptions(code)
    assert (redemption.reversed_at, redemption.reversed_by) == (at, ACTOR)
    # A second message of the same refund (the job again, the points path) changes nothing.
    done = brand.state()
    assert run(database, brand.tenant_id, at=at + timedelta(days=1)) == totals()
    with database.unit_of_work() as s:
        order = s.get(Order, brand.order("T-4001").id)
        assert order is not None
        again = reverse_order_coupons(s, tenant_id=brand.tenant_id, order=order, actor=ACTOR)
    assert [(c.code, c.status, c.reversed) for c in again] == [(code, status, True)]
    assert brand.state() == done


def test_an_order_first_seen_closed_after_payment_used_its_coupon_and_returns_it(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path, restore_on_refund=False)
    code = brand.issue(brand.alice)
    brand.import_rows([tmall_row("T-4101", "tb_alice", status="交易关闭", codes=code)])
    assert run(database, brand.tenant_id) == totals(redeemed=1, reversed=1)
    assert brand.coupon(code).status == "void"  # used, and its template does not give it back
    assert [(r.order_no, r.at, r.reversed_at) for r in brand.redemptions(code)] == [("T-4101", PAID_AT, NOW)]


def test_the_points_refund_of_a_closed_order_reverses_its_coupons_too(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = Brand(database, keyring, tmp_path)
    with database.unit_of_work() as s:
        load_program(s, tenant_id=brand.tenant_id, data=PROGRAM, actor=ACTOR)
    code = brand.issue(brand.alice)
    brand.import_rows([tmall_row("T-5001", "tb_alice", status="交易成功", codes=code)])
    assert run(database, brand.tenant_id) == totals(redeemed=1)
    with database.unit_of_work() as s:
        program = get_program(s, tenant_id=brand.tenant_id)
        earn_completed_orders(s, program=program, actor=ACTOR, at=NOW)
    brand.import_rows([tmall_row("T-5001", "tb_alice", status="交易关闭", codes=code)])
    with database.unit_of_work() as s:
        program = get_program(s, tenant_id=brand.tenant_id)
        _last, refunded, _clawed = refund_closed_orders(s, program=program, actor=ACTOR, at=NOW)
    assert refunded == 1
    assert brand.coupon(code).status == "issued"
    assert [(r.reversed_at, r.reversed_by) for r in brand.redemptions(code)] == [(NOW, ACTOR)]
    done = brand.state()
    assert run(database, brand.tenant_id) == totals()  # the coupon job finds it done
    assert brand.state() == done


# --- partial refunds of a sale ------------------------------------------------------------------------


def _sale(db: Database, tenant_id: str, member_id: str, order_no: str, lines: list[tuple[int, int]]) -> str:
    """A mini-program sale of ``lines`` (quantity, unit price in fen) with line numbers 1, 2 …"""
    with db.unit_of_work() as s:
        total = sum(q * p for q, p in lines)
        order = record_order(
            s,
            tenant_id=tenant_id,
            channel="miniprogram",
            fields=OrderFields(
                order_no,
                "completed",
                "completed",
                total,
                total,
                created_at=PAID_AT,
                paid_at=PAID_AT,
                completed_at=PAID_AT,
                lines=[
                    OrderLineFields(f"item {n}", q, sku=f"SKU-{n}", unit_price_fen=p)
                    for n, (q, p) in enumerate(lines, start=1)
                ],
            ),
            member_id=member_id,
            store_id=None,
        )
        return order.id


def _redeem_on(db: Database, tenant_id: str, order_id: str, code: str) -> None:
    with db.unit_of_work() as s:
        order = s.get(Order, order_id)
        assert order is not None
        coupon = service.find_coupon(s, tenant_id=tenant_id, code=code)
        basket = order_basket(s, order=order, at=PAID_AT)
        service.redeem_coupon(s, coupon=coupon, basket=basket, order_no=order.order_no, actor=ACTOR)


def _refund(
    db: Database, tenant_id: str, order_id: str, refund_no: str, amount_fen: int, lines: list[tuple[int, int]]
) -> dict[str, tuple[str, bool]]:
    """Record a refund and reverse what it undoes: each coupon on the order → (status, reversed)."""
    with db.unit_of_work() as s:
        order = s.get(Order, order_id)
        assert order is not None
        record_refund(
            s, tenant_id=tenant_id, order=order, refund_no=refund_no, amount_fen=amount_fen, lines=lines
        )
        result = reverse_order_coupons(s, tenant_id=tenant_id, order=order, actor=ACTOR, at=NOW)
        return {c.code: (c.status, c.reversed) for c in result}


@pytest.mark.parametrize(
    ("lines", "refunds", "after"),
    [
        # 2 coats at 120 yuan with 满198减20 and 立减10: one returned leaves 120, below 198: the 满减
        # coupon comes back; 立减 stays used while anything is kept, and comes back with the last coat.
        (
            [(2, 12000)],
            [(12000, [(1, 1)]), (12000, [(1, 1)])],
            [("issued", "redeemed"), ("issued", "issued")],
        ),
        # 3 coats: one returned leaves 240, still over 198: both stay used; a second leaves 120.
        (
            [(3, 12000)],
            [(12000, [(1, 1)]), (12000, [(1, 1)])],
            [("redeemed", "redeemed"), ("issued", "redeemed")],
        ),
        # Refunds that name no lines take the same share off every line: 240 less 30 keeps 210 (over
        # 198), less 30 again keeps 180 (under).
        ([(2, 12000)], [(3000, []), (3000, [])], [("redeemed", "redeemed"), ("issued", "redeemed")]),
    ],
)
def test_a_partial_refund_reverses_a_coupon_only_when_the_rest_no_longer_qualifies(
    database: Database,
    keyring: Keyring,
    tmp_path: Path,
    lines: list[tuple[int, int]],
    refunds: list[tuple[int, list[tuple[int, int]]]],
    after: list[tuple[str, str]],
) -> None:
    brand = Brand(database, keyring, tmp_path)
    threshold, cash = brand.issue(brand.alice), brand.issue(brand.alice, "CASH10")
    order_id = _sale(database, brand.tenant_id, brand.alice, "M-1", lines)
    _redeem_on(database, brand.tenant_id, order_id, threshold)
    _redeem_on(database, brand.tenant_id, order_id, cash)
    for n, ((amount, returned), (threshold_status, cash_status)) in enumerate(
        zip(refunds, after, strict=True)
    ):
        result = _refund(database, brand.tenant_id, order_id, f"R{n}", amount, returned)
        assert result == {
            threshold: (threshold_status, threshold_status == "issued"),
            cash: (cash_status, cash_status == "issued"),
        }
        # The same refund sent again changes nothing.
        done = brand.state()
        with database.unit_of_work() as s:
            order = s.get(Order, order_id)
            assert order is not None
            again = reverse_order_coupons(s, tenant_id=brand.tenant_id, order=order, actor=ACTOR)
        assert {c.code: (c.status, c.reversed) for c in again} == result
        assert brand.state() == done


# --- the commands -----------------------------------------------------------------------------------


def test_the_commands_redeem_and_list_what_was_not_redeemed(cli_env: Database, tmp_path: Path) -> None:
    _ok(["tenant", "create", "coats", "大衣"])
    first = write_csv(tmp_path / "o1.csv", TMALL_HEADERS, [tmall_row("T-6001", "tb_alice")])
    _ok(["import", "tmall-orders", str(first)])
    with cli_env.unit_of_work() as s:
        order = s.scalar(select(Order).where(Order.order_no == "T-6001"))
        assert order is not None and order.member_id is not None
        service.create_template(
            s,
            tenant_id=order.tenant_id,
            actor=ACTOR,
            code="CASH10",
            name="立减10元",
            kind="cash_off",
            amount_fen=1000,
            valid_days=3650,
        )
        code = service.issue_coupon(
            s,
            tenant_id=order.tenant_id,
            template_code="CASH10",
            member_id=order.member_id,
            issue_key="k1",
            source="api",
            at=ISSUED_AT,
        )[0].code
    nowhere = new_code()
    rows = [tmall_row("T-6002", "tb_alice", codes=code), tmall_row("T-6003", "tb_alice", codes=nowhere)]
    _ok(["import", "tmall-orders", str(write_csv(tmp_path / "o2.csv", TMALL_HEADERS, rows))])
    out = _ok(["coupon-orders", "redeem"])
    assert "1 coupons redeemed on imported orders, 1 refused, 0 waiting" in out
    assert "0 redemptions reversed" in out
    problems = tmp_path / "problems.csv"
    assert "1 codes not redeemed written to" in _ok(["coupon-orders", "problems", "--csv", str(problems)])
    with problems.open(encoding="utf-8-sig") as handle:
        listed = list(csv.DictReader(handle))
    assert [(r["order_no"], r["code"], r["status"], r["reasons"]) for r in listed] == [
        ("T-6003", display_code(nowhere), "refused", "not_found")
    ]
    assert "0 coupons redeemed on imported orders, 0 refused" in _ok(["coupon-orders", "redeem"])
