"""The POS/CRM member export importer: header detection, mappings, .xlsx, file-level errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from datong.channels.pos import parse_member_export
from datong.channels.records import CARD_NO, EMAIL, PHONE, FieldError, IdentityKey

CHINESE = (
    "会员卡号,姓名,手机号,性别,生日,开卡门店,开卡时间,积分余额,身份证号,地址,邮箱,备注\n"
    "'8800012345,张三,13812345678,男,1990-03-07,SZ001,2023/05/01 09:30,1,280,,"
    "广东省深圳市南山区科技园南区8栋,ZhangSan@Example.COM,老会员\n"
    "8800012346,李四,139****5678,,,SZ002,,0,11010519491231002X,,,\n"
    "8800012347,王五,13700001234,未说,1990-02-30,SZ001,2023-06-01 10:00:00,十,"
    "110105194912310021,,not-an-email,\n"
    ",赵六,13600001234,,,,,,,,,\n"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_chinese_headers_gbk(tmp_path: Path) -> None:
    # The points cell "1,280" has a comma: quote it as a real export would.
    text = CHINESE.replace(",1,280,", ',"1,280",')
    records = list(parse_member_export(write(tmp_path / "pos.csv", text, "gbk"), source="pos-legacy"))
    assert [r.ok for r in records] == [True, True, False, False]
    first = records[0]
    assert first.identities == [
        IdentityKey(CARD_NO, "8800012345", namespace="pos-legacy"),
        IdentityKey(PHONE, "13812345678"),
        IdentityKey(EMAIL, "ZhangSan@example.com"),
    ]
    person = first.person
    assert (person.name, person.name_pinyin, person.gender, person.birthday) == (
        "张三",
        "zhangsan",
        "M",
        date(1990, 3, 7),
    )
    assert (person.province, person.city, person.district, person.address) == (
        "广东省",
        "深圳市",
        "南山区",
        "科技园南区8栋",
    )
    assert (person.store_code, person.points_balance) == ("SZ001", 1280)
    assert person.registered_at == datetime(2023, 5, 1, 1, 30, tzinfo=UTC)
    assert person.extra == {"备注": "老会员"}

    second = records[1]
    assert second.identities == [IdentityKey(CARD_NO, "8800012346", namespace="pos-legacy")]
    assert second.weak.masked_phone == "139****5678"
    # Birth date and sex come from the ID number when the file has no value for them.
    assert (second.person.id_number, second.person.birthday, second.person.gender) == (
        "11010519491231002X",
        date(1949, 12, 31),
        "F",
    )

    third = records[2]
    assert third.row_no == 3
    assert [e.field for e in third.errors] == ["邮箱", "性别", "生日", "身份证号", "积分余额"]
    assert FieldError("身份证号", "bad check character in the ID number") in third.errors
    assert records[3].errors == [FieldError("会员卡号", "is missing")]


def test_english_headers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "crm.csv",
        "Card No,Name,Mobile,Gender,Birthday,Store,Registered_At,Points,Email,Tier\n"
        "C-1001,Wang Fang,13900001111,F,1988-08-08,BJ01,2022-01-01T12:00:00+08:00,50,fang@example.cn,gold\n",
    )
    (record,) = parse_member_export(path, source="crm")
    assert record.ok
    assert record.identities == [
        IdentityKey(CARD_NO, "C-1001", "crm"),
        IdentityKey(PHONE, "13900001111"),
        IdentityKey(EMAIL, "fang@example.cn"),
    ]
    assert (record.person.store_code, record.person.points_balance) == ("BJ01", 50)
    assert record.person.registered_at == datetime(2022, 1, 1, 4, 0, tzinfo=UTC)
    assert record.person.extra == {"Tier": "gold"}


def test_xlsx_export(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["卡号", "会员姓名", "手机", "出生日期", "注册时间", "积分", "所属门店"])
    sheet.append(
        [880001, "陈七", 13812345678, datetime(1990, 3, 7), datetime(2023, 5, 1, 9, 30), 120.0, "GZ03"]
    )
    path = tmp_path / "members.xlsx"
    workbook.save(path)
    (record,) = parse_member_export(path, source="pos")
    assert record.ok
    assert record.raw["卡号"] == "880001" and record.raw["手机"] == "13812345678"
    assert record.identities == [IdentityKey(CARD_NO, "880001", "pos"), IdentityKey(PHONE, "13812345678")]
    assert record.person.birthday == date(1990, 3, 7)
    assert record.person.registered_at == datetime(2023, 5, 1, 1, 30, tzinfo=UTC)
    assert (record.person.points_balance, record.person.store_code) == (120, "GZ03")


def test_mapping_overrides_and_extends_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "VIP编号,客户手机,手机,称呼\nV01,13812345678,13900001111,老王\n")
    mapping = {"VIP编号": "card_no", "客户手机": "phone", "称呼": "nickname"}
    (record,) = parse_member_export(path, source="erp", mapping=mapping)
    assert record.identities == [IdentityKey(CARD_NO, "V01", "erp"), IdentityKey(PHONE, "13812345678")]
    assert record.person.nickname == "老王"
    assert record.person.extra == {"手机": "13900001111"}  # the mapped column won; the other is kept


def test_mapping_errors_are_clear(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "卡号,手机\nA,13812345678\n")
    with pytest.raises(ValueError, match="unknown field 'mobile_no' for column '手机'"):
        parse_member_export(path, source="pos", mapping={"手机": "mobile_no"})
    with pytest.raises(ValueError, match=r"column '客户手机' .* is not in the file"):
        parse_member_export(path, source="pos", mapping={"客户手机": "phone"})


def test_a_file_without_card_column_is_refused_before_any_row(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "姓名,手机号\n张三,13812345678\n")
    with pytest.raises(ValueError) as caught:
        parse_member_export(path, source="pos")
    message = str(caught.value)
    assert "headers found: 姓名, 手机号" in message
    assert "expected one of: 会员卡号, 卡号" in message


def test_source_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source is required"):
        parse_member_export(tmp_path / "m.csv", source="")
