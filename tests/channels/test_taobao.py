"""The Tmall/Taobao order report importer, on files written the way the platform writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from datong.channels.records import NICK, OMID, OUID, FieldError, IdentityKey, OrderLineFields
from datong.channels.taobao import parse_tmall_orders
from datong.coupons.codes import display_code, new_code

CLASSIC = [
    "订单编号",
    "买家会员名",
    "买家支付宝账号",
    "买家应付货款",
    "买家应付邮费",
    "买家支付积分",
    "总金额",
    "返点积分",
    "买家实际支付金额",
    "买家实际支付积分",
    "订单状态",
    "买家留言",
    "收货人姓名",
    "收货地址",
    "运送方式",
    "联系电话",
    "联系手机",
    "订单创建时间",
    "订单付款时间",
    "宝贝标题",
    "宝贝种类",
    "物流单号",
    "物流公司",
    "订单备注",
    "宝贝总数量",
    "店铺Id",
    "店铺名称",
    "订单关闭原因",
    "卖家服务费",
    "买家服务费",
    "发票抬头",
    "是否手机订单",
    "分阶段订单信息",
    "特权订金订单id",
    "是否上传合同照片",
    "是否上传小票",
    "是否代付",
    "定金排名",
    "修改后的sku",
    "修改后的收货地址",
    "异常信息",
    "天猫卡券抵扣",
    "集分宝抵扣",
    "是否是O2O交易",
]


def order_row(**cells: str) -> dict[str, str]:
    base = {
        "订单编号": '="2890123456789"',
        "买家会员名": "tb_alice",
        "买家支付宝账号": "a***@example.com",
        "买家应付货款": "118.00",
        "买家应付邮费": "10.00",
        "买家支付积分": "0",
        "总金额": "128.00",
        "返点积分": "0",
        "买家实际支付金额": "118.00",
        "买家实际支付积分": "0",
        "订单状态": "交易成功",
        "收货人姓名": "张三",
        "收货地址": "浙江省 杭州市 西湖区 文三路90号(310000)",
        "运送方式": "快递",
        "联系电话": "",
        "联系手机": "'13812345678",
        "订单创建时间": "2024-03-01 10:15:00",
        "订单付款时间": "2024-03-01 10:16:30",
        "宝贝标题": "纯棉T恤 白色 L",
        "宝贝种类": "1",
        "宝贝总数量": "2",
        "店铺Id": "57301234",
        "店铺名称": "大同旗舰店",
        "是否手机订单": "手机订单",
        "是否是O2O交易": "否",
    }
    base.update(cells)
    return base


def write_report(path: Path, rows: list[dict[str, str]], encoding: str, headers: list[str] = CLASSIC) -> Path:
    # Written by hand, not with the csv module: the platform leaves ="…" guards unquoted.
    lines = [",".join(headers)]
    lines += [",".join(row.get(header, "") for header in headers) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def test_classic_gbk_report(tmp_path: Path) -> None:
    rows = [
        order_row(),
        order_row(
            **{
                "订单编号": '="2890123456790"',
                "联系手机": "138****1234",
                "订单状态": "买家已付款，等待卖家发货",
            }
        ),
        # A gift: bob buys, li si receives at her own phone and address.
        order_row(
            **{
                "订单编号": '="2890123456791"',
                "买家会员名": "tb_bob",
                "收货人姓名": "李四",
                "联系手机": "13900001111",
                "收货地址": "广东省 深圳市 南山区 科技园南区8栋",
                "订单状态": "等待买家付款",
                "订单付款时间": "",
            }
        ),
        order_row(**{"订单编号": '="2890123456792"', "买家实际支付金额": "12.3.4"}),
        order_row(**{"订单编号": '="2890123456793"', "订单状态": "卖家已发货，等待买家确认"}),
    ]
    path = write_report(tmp_path / "ExportOrderList202403.csv", rows, "gbk")
    records = list(parse_tmall_orders(path))
    assert [r.row_no for r in records] == [1, 2, 3, 4, 5]
    assert [r.ok for r in records] == [True, True, True, False, True]

    first = records[0]
    assert first.raw["订单编号"] == '="2890123456789"'  # raw is kept exactly as read
    assert first.raw["联系手机"] == "'13812345678"
    assert first.identities == [IdentityKey(NICK, "tb_alice")]
    assert first.person.name is None and first.person.nickname is None
    order = first.order
    assert order is not None
    assert (order.order_no, order.status, order.status_raw) == ("2890123456789", "completed", "交易成功")
    assert (order.total_fen, order.paid_fen, order.postage_fen) == (12800, 11800, 1000)
    assert order.created_at == datetime(2024, 3, 1, 2, 15, tzinfo=UTC)
    assert order.paid_at == datetime(2024, 3, 1, 2, 16, 30, tzinfo=UTC)
    assert (order.shop_id, order.shop_name) == ("57301234", "大同旗舰店")
    assert order.lines == [OrderLineFields(title="纯棉T恤 白色 L", quantity=2)]
    weak = first.weak
    assert (weak.receiver_name, weak.receiver_name_pinyin) == ("张三", "zhangsan")
    assert (weak.receiver_phone, weak.masked_phone) == ("13812345678", None)
    assert (weak.receiver_province, weak.receiver_city, weak.receiver_district, weak.receiver_address) == (
        "浙江省",
        "杭州市",
        "西湖区",
        "文三路90号",
    )

    masked = records[1]
    assert (masked.weak.masked_phone, masked.weak.receiver_phone) == ("138****1234", None)
    assert masked.order is not None and masked.order.status == "paid"

    gift = records[2]
    assert gift.identities == [IdentityKey(NICK, "tb_bob")]  # the receiver's phone is not the buyer's key
    assert (gift.weak.receiver_name, gift.weak.receiver_phone) == ("李四", "13900001111")
    assert gift.weak.receiver_city == "深圳市"
    assert gift.order is not None
    assert (gift.order.status, gift.order.paid_at) == ("created", None)

    failed = records[3]
    assert failed.errors == [FieldError("买家实际支付金额", "not an amount of money: '12.3.4'")]
    assert failed.order is not None and failed.order.order_no == "2890123456792"
    assert records[4].order is not None and records[4].order.status == "shipped"


def test_row_errors_name_the_column_and_keep_the_row(tmp_path: Path) -> None:
    rows = [
        order_row(**{"订单编号": "", "买家会员名": ""}),
        order_row(**{"订单创建时间": "2024-02-30 10:00:00", "宝贝总数量": "two"}),
        order_row(**{"买家会员名": "t**1", "订单状态": "部分发货"}),
    ]
    records = list(parse_tmall_orders(write_report(tmp_path / "r.csv", rows, "gbk")))
    assert records[0].errors == [FieldError("买家会员名", "is missing"), FieldError("订单编号", "is missing")]
    assert records[0].order is None
    assert [e.field for e in records[1].errors] == ["订单创建时间", "宝贝总数量"]
    masked_nick = records[2]
    assert masked_nick.identities == []
    assert masked_nick.errors == [FieldError("买家会员名", "is masked and the row has no ouid or omid")]
    assert masked_nick.order is not None
    assert (masked_nick.order.status, masked_nick.order.status_raw) == ("unknown", "部分发货")


def test_gb18030_report_with_characters_beyond_gbk(tmp_path: Path) -> None:
    rows = [order_row(**{"宝贝标题": "𠀀字款 卫衣 😀", "收货人姓名": "䶮"})]
    path = write_report(tmp_path / "r.csv", rows, "gb18030")
    (record,) = parse_tmall_orders(path)
    assert record.order is not None
    assert record.order.lines[0].title == "𠀀字款 卫衣 😀"


def test_utf8_bom_report(tmp_path: Path) -> None:
    path = write_report(tmp_path / "r.csv", [order_row()], "utf-8-sig")
    (record,) = parse_tmall_orders(path)
    assert "订单编号" in record.raw  # the BOM is not part of the first header
    assert record.ok and record.order is not None and record.order.order_no == "2890123456789"


def test_newer_column_names_and_member_ids(tmp_path: Path) -> None:
    headers = [
        "订单编号",
        "买家会员名",
        "ouid",
        "会员通ID",
        "买家实付金额",
        "买家应付邮费",
        "总金额",
        "订单状态",
        "买家下单时间",
        "买家付款时间",
        "店铺Id",
        "店铺名称",
        "宝贝标题",
        "宝贝总数量",
    ]
    row = {
        "订单编号": "3001",
        "买家会员名": "tb_carol",
        "ouid": "AAHm5d-EzZ3Q",
        "会员通ID": "OM_9f8e7d",
        "买家实付金额": "¥1299.50",
        "买家应付邮费": "0",
        "总金额": "1299.50",
        "订单状态": "交易关闭",
        "买家下单时间": "2024/05/20 23:59:59",
        "买家付款时间": "",
        "店铺Id": "57301234",
        "店铺名称": "大同旗舰店",
        "宝贝标题": "羊毛大衣",
        "宝贝总数量": "",
    }
    no_shop = dict(row, **{"订单编号": "3002", "店铺Id": ""})
    records = list(parse_tmall_orders(write_report(tmp_path / "n.csv", [row, no_shop], "utf-8", headers)))
    first, second = records
    assert first.identities == [
        IdentityKey(NICK, "tb_carol"),
        IdentityKey(OUID, "AAHm5d-EzZ3Q", namespace="57301234"),
        IdentityKey(OMID, "OM_9f8e7d"),
    ]
    assert first.order is not None
    assert (first.order.paid_fen, first.order.total_fen, first.order.status) == (129950, 129950, "closed")
    assert first.order.created_at == datetime(2024, 5, 20, 15, 59, 59, tzinfo=UTC)
    assert first.order.lines == [OrderLineFields(title="羊毛大衣", quantity=1)]
    # ouid is per shop: without the shop id it cannot be namespaced, so it is left out.
    assert second.identities == [IdentityKey(NICK, "tb_carol"), IdentityKey(OMID, "OM_9f8e7d")]


def test_brand_coupon_codes_in_the_column_the_brand_adds(tmp_path: Path) -> None:
    a, b, c = new_code(), new_code(), new_code()
    many = " ".join(new_code() for _ in range(21))
    cells = [
        f'"{a}, {display_code(b).lower()}，{a}"',  # commas of both widths; a code repeated counts once
        f"{a} {b}",  # spaces between whole codes
        display_code(c).replace("-", " "),  # one code, printed in groups
        f"{a}、{a[:-1]}",  # the second is a character short
        many,
        "",
    ]
    rows = [order_row(**{"订单编号": str(n), "商家优惠券码": cell}) for n, cell in enumerate(cells, start=1)]
    records = list(
        parse_tmall_orders(write_report(tmp_path / "c.csv", rows, "gbk", [*CLASSIC, "商家优惠券码"]))
    )
    assert [r.order.coupon_codes if r.order else None for r in records] == [[a, b], [a, b], [c], [a], [], []]
    assert [r.errors for r in records] == [
        [],
        [],
        [],
        [FieldError("商家优惠券码", "code 2 of 2: a coupon code has 13 characters")],
        [FieldError("商家优惠券码", "21 coupon codes on one order; at most 20")],
        [],
    ]
    (plain,) = parse_tmall_orders(write_report(tmp_path / "p.csv", [order_row()], "gbk"))
    assert plain.order is not None and plain.order.coupon_codes == []  # the column is optional


def test_a_file_that_is_not_an_order_report_is_refused_before_any_row(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_text("卡号,姓名\nA1,张三\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"Tmall/Taobao order report: no column 订单编号 \(headers found: 卡号, 姓名\)"
    ):
        parse_tmall_orders(path)
