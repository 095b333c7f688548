"""The JD POP order export importer."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datong.channels.jd import parse_jd_orders
from datong.channels.records import PIN, FieldError, IdentityKey, OrderLineFields

HEADERS = [
    "订单号",
    "商品ID",
    "商品名称",
    "订购数量",
    "支付方式",
    "下单时间",
    "京东价",
    "订单金额",
    "结算金额",
    "余额支付",
    "应付金额",
    "订单状态",
    "订单类型",
    "下单帐号",
    "客户姓名",
    "客户地址",
    "联系电话",
    "订单备注",
    "发票类型",
    "发票抬头",
    "发票内容",
    "商家备注",
    "订单完成时间",
    "订单来源",
    "订单渠道",
]


def line(**cells: str) -> dict[str, str]:
    base = {
        "订单号": "281234567890",
        "商品ID": "100012345678",
        "商品名称": "男士纯棉衬衫 蓝色 XL",
        "订购数量": "1",
        "支付方式": "在线支付",
        "下单时间": "2024-06-18 00:05:12",
        "京东价": "59.00",
        "订单金额": "167.00",
        "结算金额": "157.00",
        "余额支付": "0.00",
        "应付金额": "157.00",
        "订单状态": "完成",
        "订单类型": "SOP",
        "下单帐号": "jd_4f2a9c",
        "客户姓名": "王五",
        "客户地址": "北京 北京市 朝阳区 建国路88号",
        "联系电话": "13700001234",
        "订单完成时间": "2024-06-21 18:00:00",
        "订单来源": "移动端",
    }
    base.update(cells)
    return base


def write_export(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="gbk", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=HEADERS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_two_lines_of_one_order_are_two_records_of_the_same_order(tmp_path: Path) -> None:
    rows = [
        line(),
        line(**{"商品ID": "100098765432", "商品名称": "休闲裤 卡其 32", "订购数量": "2", "京东价": "54.00"}),
        line(
            **{
                "订单号": "281234567999",
                "订单状态": "等待出库",
                "订单完成时间": "",
                "联系电话": "139****5678",
            }
        ),
    ]
    records = list(parse_jd_orders(write_export(tmp_path / "jd.csv", rows)))
    assert [r.ok for r in records] == [True, True, True]
    first, second, third = records
    assert first.identities == [IdentityKey(PIN, "jd_4f2a9c")]
    assert first.order is not None and second.order is not None
    assert first.order.order_no == second.order.order_no == "281234567890"
    assert (first.order.status, first.order.total_fen, first.order.paid_fen) == ("completed", 16700, 15700)
    assert first.order.created_at == datetime(2024, 6, 17, 16, 5, 12, tzinfo=UTC)
    assert first.order.completed_at == datetime(2024, 6, 21, 10, 0, tzinfo=UTC)
    assert first.order.lines == [
        OrderLineFields(title="男士纯棉衬衫 蓝色 XL", quantity=1, sku="100012345678", unit_price_fen=5900)
    ]
    assert second.order.lines == [
        OrderLineFields(title="休闲裤 卡其 32", quantity=2, sku="100098765432", unit_price_fen=5400)
    ]
    # The customer is the receiver: weak evidence, never a key.
    assert (first.weak.receiver_name, first.weak.receiver_phone) == ("王五", "13700001234")
    assert (first.weak.receiver_province, first.weak.receiver_district) == ("北京市", "朝阳区")
    assert third.order is not None
    assert (third.order.status, third.order.completed_at) == ("paid", None)
    assert (third.weak.masked_phone, third.weak.receiver_phone) == ("139****5678", None)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("等待发货", "paid"),
        ("已取消", "closed"),
        ("锁定", "closed"),
        ("等待确认收货", "shipped"),
        ("退款中", "unknown"),
    ],
)
def test_statuses(tmp_path: Path, raw: str, status: str) -> None:
    (record,) = parse_jd_orders(write_export(tmp_path / "jd.csv", [line(**{"订单状态": raw})]))
    assert record.order is not None
    assert (record.order.status, record.order.status_raw) == (status, raw)
    assert record.ok


def test_bad_rows_are_failed_with_named_fields(tmp_path: Path) -> None:
    rows = [line(**{"下单帐号": "", "应付金额": "免费"}), line(**{"订购数量": "1.5", "下单时间": "昨天"})]
    first, second = parse_jd_orders(write_export(tmp_path / "jd.csv", rows))
    assert first.errors == [
        FieldError("下单帐号", "is missing"),
        FieldError("应付金额", "not an amount of money: '免费'"),
    ]
    assert [(e.field, second.row_no) for e in second.errors] == [("下单时间", 2), ("订购数量", 2)]


def test_a_file_without_order_number_or_pin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("订单号,商品名称\n1,衬衫\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no column 下单帐号"):
        parse_jd_orders(path)
