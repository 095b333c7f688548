"""The mini-program member export importer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from datong.channels.miniprogram import parse_miniprogram_members
from datong.channels.records import OPENID, PHONE, UNIONID, FieldError, IdentityKey


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


CHINESE = (
    "openid,unionid,手机号,昵称,姓名,性别,生日,注册时间,城市\n"
    "oMp_001,oUn_001,+86 138-1234-5678,小明,張三,男,1990/3/7,2024-01-02 08:00:00,深圳\n"
    ",,138****5678,无名,,,,,\n"
    "oMp_003,,12345,,,,,,\n"
)


def test_chinese_headers(tmp_path: Path) -> None:
    path = write(tmp_path / "mp.csv", CHINESE)
    first, masked, bad = parse_miniprogram_members(path, appid="wxmini0001")
    assert first.ok
    assert first.identities == [
        IdentityKey(OPENID, "oMp_001", namespace="wxmini0001"),
        IdentityKey(UNIONID, "oUn_001"),
        IdentityKey(PHONE, "13812345678"),  # verified in the mini-program: the member's own
    ]
    person = first.person
    assert (person.name, person.name_pinyin, person.gender, person.nickname) == (
        "张三",
        "zhangsan",
        "M",
        "小明",
    )
    assert person.birthday == date(1990, 3, 7)
    assert person.registered_at == datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert person.extra == {"城市": "深圳"}
    # A masked phone is evidence, not a key; with nothing else the row has no identity.
    assert masked.identities == [] and masked.weak.masked_phone == "138****5678"
    assert masked.errors == [FieldError("openid", "is missing, and the row has no unionid or phone either")]
    assert bad.row_no == 3
    assert bad.errors == [FieldError("手机号", "not a mainland mobile or international number (5 digits)")]


def test_english_headers_and_default_namespace(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mp.csv",
        "OpenID,UnionID,Phone,Nickname,Birthday,Registered At,Name,Gender\n"
        "oMp_9,,13900001111,Amy,1995-12-01,2023-11-11 11:11:11,Li Na,female\n",
    )
    (record,) = parse_miniprogram_members(path)
    assert record.ok
    assert record.identities == [
        IdentityKey(OPENID, "oMp_9", "miniprogram"),
        IdentityKey(PHONE, "13900001111"),
    ]
    assert (record.person.name, record.person.gender, record.person.birthday) == (
        "Li Na",
        "F",
        date(1995, 12, 1),
    )


def test_a_file_without_identity_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no openid, unionid or phone column"):
        parse_miniprogram_members(write(tmp_path / "x.csv", "昵称,生日\n小明,1990-01-01\n"))
