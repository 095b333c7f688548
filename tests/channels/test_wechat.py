"""The WeChat fan dump importer (user/info records as JSON lines or a JSON array)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datong.channels.records import OPENID, UNIONID, FieldError, IdentityKey
from datong.channels.wechat import parse_wechat_fans

APPID = "wx1234567890abcdef"

FAN = {
    "subscribe": 1,
    "openid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
    "nickname": "小明🌟",
    "sex": 1,
    "language": "zh_CN",
    "city": "深圳",
    "province": "广东",
    "country": "中国",
    "subscribe_time": 1714036504,
    "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL",
    "remark": "老客户",
    "groupid": 0,
    "tagid_list": [128, 2],
    "subscribe_scene": "ADD_SCENE_QR_CODE",
    "qr_scene": 98765,
    "qr_scene_str": "guide_0042",
}
ENGLISH = {
    "subscribe": 1,
    "openid": "oEnglish",
    "nickname": "Amy",
    "sex": 2,
    "city": "Shenzhen",
    "province": "Guangdong",
    "country": "China",
    "subscribe_time": 1700000000,
}
GONE = {"subscribe": 0, "openid": "oGone"}


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "fans.jsonl"
    path.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in (FAN, ENGLISH, GONE)), "utf-8")
    fan, english, gone = parse_wechat_fans(path, appid=APPID)
    assert fan.ok and fan.row_no == 1
    assert fan.identities == [
        IdentityKey(OPENID, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", namespace=APPID),
        IdentityKey(UNIONID, "o6_bmasdasdsad6_2sgVt7hMZOPfL"),
    ]
    person = fan.person
    assert (person.nickname, person.gender, person.province, person.city) == (
        "小明🌟",
        "M",
        "广东省",
        "深圳市",
    )
    assert person.registered_at == datetime(2024, 4, 25, 9, 15, 4, tzinfo=UTC)
    assert person.extra == {
        "subscribe": "1",
        "remark": "老客户",
        "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": "98765",
        "qr_scene_str": "guide_0042",
        "tagid_list": "128,2",
        "groupid": "0",
        "language": "zh_CN",
        "country": "中国",
    }
    assert fan.raw["tagid_list"] == "[128,2]" and fan.raw["nickname"] == "小明🌟"
    # English place names are kept as WeChat gives them.
    assert (english.person.gender, english.person.province, english.person.city) == (
        "F",
        "Guangdong",
        "Shenzhen",
    )
    # An unsubscribed fan is still a record; the pipeline decides what to do with it.
    assert gone.ok and gone.identities == [IdentityKey(OPENID, "oGone", namespace=APPID)]
    assert gone.person.extra == {"subscribe": "0"} and gone.person.registered_at is None


def test_json_array_with_a_malformed_element(tmp_path: Path) -> None:
    good = json.dumps(FAN, ensure_ascii=False)
    path = tmp_path / "fans.json"
    path.write_text(
        f'[\n{good},\n{{"openid": "oBroken", "sex": 1,,}},\n{{"nickname": "无名", "sex": 3}},\n[1, 2]\n]',
        "utf-8",
    )
    records = list(parse_wechat_fans(path, appid=APPID))
    assert [r.row_no for r in records] == [1, 2, 3, 4]
    assert records[0].ok
    broken = records[1]
    assert broken.raw == {"_text": '{"openid": "oBroken", "sex": 1,,}'}
    assert [e.field for e in broken.errors] == ["_row"]
    assert broken.errors[0].reason.startswith("not valid JSON")
    assert records[2].errors == [
        FieldError("openid", "is missing"),
        FieldError("sex", "is '3'; expected 0 (unknown), 1 (male) or 2 (female)"),
    ]
    assert records[2].person.nickname == "无名"  # a nickname is a person field, never an identity
    assert records[3].errors == [FieldError("_row", "is not a JSON object")]


def test_bad_subscribe_time(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"openid": "o1", "subscribe_time": "yesterday"}), "utf-8")
    (record,) = parse_wechat_fans(path, appid=APPID)
    assert record.errors == [FieldError("subscribe_time", "is 'yesterday'; expected seconds since 1970")]


def test_appid_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appid is required"):
        parse_wechat_fans(tmp_path / "none.json", appid=" ")
