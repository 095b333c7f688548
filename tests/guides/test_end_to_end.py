"""Issue 5's whole path, on SQLite and PostgreSQL: a guide's code → a follow through WeChat's callback →
the member bound to the guide → a Tmall order imported 10 days later → credited to the guide →
commission posted → the order closed (refunded) in a later export → the commission taken back. With the
brand's 15-day window an order on day 16 is not credited; with the window set to 30 it is."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from datong.api.app import create_app
from datong.channels.registration import Registration, register_member
from datong.channels.wechat import service as wechat
from datong.core.clock import CHINA_TZ
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.guides import commissions, queries, service
from datong.jobs.imports import ImportRequest, run_import
from datong.members.models import Member
from datong.orders.models import Order
from datong.tenancy.models import Tenant
from tests.channels.test_taobao import order_row, write_report
from tests.channels.wechat_safe_mode import ACCOUNT, APPID, TOKEN, sha1_signature, xml_message
from tests.guides.test_service import guide_code, make
from tests.loyalty.helpers import ACTOR

FOLLOWED = datetime(2026, 4, 1, 10, 0, tzinfo=CHINA_TZ)
PHONE = "13812345678"


def follow_and_buy(
    database: Database, tmp_path: Path, *, window_days: int, day: int
) -> tuple[Order, Keyring]:
    w = make(database, window_days=window_days)
    with database.unit_of_work() as s:
        tenant = s.get(Tenant, w.tenant_id)
        assert tenant is not None
        tenant.settings = {**tenant.settings, "commission": {"rules": [{"code": "all", "rate_bp": 500}]}}
    keyring = Keyring(master=os.urandom(32))
    with database.unit_of_work() as s:
        wechat.add_account(
            s, tenant_id=w.tenant_id, keyring=keyring, actor=ACTOR, appid=APPID, name="服务号", token=TOKEN
        )
        # The shopper joined in the mini-program with her name and phone: one member with the phone and the
        # openid, whom the Tmall order (same phone, same receiver name) resolves to.
        member_id, _ = register_member(
            s,
            tenant_id=w.tenant_id,
            keyring=keyring,
            actor=ACTOR,
            registration=Registration(
                source="miniprogram", phone=PHONE, name="张三", openid="oShopper", appid=APPID
            ),
        )
    scene = guide_code(w, "G1")
    runtime = Runtime(settings=Settings(database_url=database.url), db=database, keyring=keyring)
    with TestClient(create_app(runtime)) as client:
        timestamp = str(int(time.time()))
        params = {"signature": sha1_signature(TOKEN, timestamp, "n"), "timestamp": timestamp, "nonce": "n"}
        body = xml_message(
            {
                "ToUserName": ACCOUNT,
                "FromUserName": "oShopper",
                "CreateTime": int(FOLLOWED.timestamp()),
                "MsgType": "event",
                "Event": "subscribe",
                "EventKey": f"qrscene_{scene}",
                "Ticket": "tk",
            }
        )
        assert client.post(f"/wechat/callback/{APPID}", params=params, content=body).text == "success"
    with database.reading() as s:
        member = s.get(Member, member_id)
        assert member is not None and member.guide_id == w.guides["G1"]
    bought = (FOLLOWED + timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S")
    row = order_row(
        **{
            "订单编号": '="3001"',
            "联系手机": f"'{PHONE}",
            "订单创建时间": bought,
            "订单付款时间": bought,
            "买家实际支付金额": "200.00",
            "买家应付货款": "200.00",
            "总金额": "210.00",
        }
    )
    report = write_report(tmp_path / f"orders-{day}.csv", [row], "gbk")
    run_import(
        database,
        keyring,
        ImportRequest(tenant_id=w.tenant_id, kind="tmall-orders", path=report, source="tmall"),
    )
    with database.unit_of_work() as s:
        order = s.scalar(select(Order).where(Order.tenant_id == w.tenant_id, Order.order_no == "3001"))
        assert order is not None and order.member_id == member_id and order.status == "completed"
        service.attribute_order(s, tenant_id=w.tenant_id, order_id=order.id)
        commissions.post_commission(
            s, tenant_id=w.tenant_id, order_id=order.id, actor=ACTOR, at=FOLLOWED + timedelta(days=day + 1)
        )
    return order, keyring


@pytest.mark.parametrize(("window", "day", "credited"), [(15, 10, True), (15, 16, False), (30, 16, True)])
def test_guide_code_to_commission_and_back(
    database: Database, tmp_path: Path, window: int, day: int, credited: bool
) -> None:
    order, keyring = follow_and_buy(database, tmp_path, window_days=window, day=day)
    period = (FOLLOWED + timedelta(days=day + 1)).strftime("%Y-%m")
    with database.reading() as s:
        rows, _ = queries.commission_statement(s, tenant_id=order.tenant_id, period=period)
    if not credited:
        assert rows == []
        return
    assert [(r.guide_code, r.orders, r.earned_fen) for r in rows] == [("G1", 1, 1000)]  # 5% of 200 yuan
    # A later export says the trade was closed: the buyer got the money back.
    closed = order_row(**{"订单编号": '="3001"', "订单状态": "交易关闭", "联系手机": f"'{PHONE}"})
    report = write_report(tmp_path / "closed.csv", [closed], "gbk")
    closing = ImportRequest(tenant_id=order.tenant_id, kind="tmall-orders", path=report, source="tmall")
    run_import(database, keyring, closing)
    later = FOLLOWED + timedelta(days=45)
    with database.unit_of_work() as s:
        assert (
            commissions.claw_back_commission(
                s, tenant_id=order.tenant_id, order_id=order.id, actor=ACTOR, at=later
            )
            == 1000
        )
    with database.reading() as s:
        back, _ = queries.commission_statement(s, tenant_id=order.tenant_id, period=later.strftime("%Y-%m"))
    assert [(r.guide_code, r.clawed_back_fen, r.net_fen) for r in back] == [("G1", 1000, -1000)]
