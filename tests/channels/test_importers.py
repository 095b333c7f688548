"""The importer registry: one call for every kind, clear errors for wrong use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datong.channels.importers import IMPORT_KINDS, open_importer
from datong.channels.records import CARD_NO, NICK, OPENID, IdentityKey


def test_kinds_and_their_defaults() -> None:
    assert {kind: (spec.default_source, spec.carries_orders) for kind, spec in IMPORT_KINDS.items()} == {
        "tmall-orders": ("tmall", True),
        "jd-orders": ("jd", True),
        "wechat-fans": ("wechat", False),
        "miniprogram-members": ("miniprogram", False),
        "members": (None, False),
    }


def test_open_importer_dispatches(tmp_path: Path) -> None:
    orders = tmp_path / "o.csv"
    orders.write_text("订单编号,买家会员名,买家实际支付金额\n1,tb_a,1.00\n", encoding="utf-8")
    (order,) = open_importer("tmall-orders", orders)
    assert order.identities == [IdentityKey(NICK, "tb_a")] and order.ok

    fans = tmp_path / "f.jsonl"
    fans.write_text(json.dumps({"openid": "o1"}), encoding="utf-8")
    (fan,) = open_importer("wechat-fans", fans, appid="wxA")
    assert fan.identities == [IdentityKey(OPENID, "o1", "wxA")]

    members = tmp_path / "m.csv"
    members.write_text("编号,姓名\n7,张三\n", encoding="utf-8")
    (member,) = open_importer("members", members, source="pos", mapping={"编号": "card_no"})
    assert member.identities == [IdentityKey(CARD_NO, "7", "pos")]


def test_wrong_use_is_a_clear_value_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("卡号\n1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown import kind 'taobao'; expected one of: tmall-orders"):
        open_importer("taobao", path)
    with pytest.raises(ValueError, match="a source is required for members imports"):
        open_importer("members", path)
    with pytest.raises(ValueError, match="an appid is required for wechat-fans"):
        open_importer("wechat-fans", path)
    with pytest.raises(ValueError, match="mapping applies only to member imports"):
        open_importer("jd-orders", path, mapping={"卡号": "card_no"})
