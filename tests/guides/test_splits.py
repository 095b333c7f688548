"""Split settlement against the local WeChat Pay fake (tests/fakes/wechatpay.py), through the outbox, on
SQLite and PostgreSQL: a franchise store's order pays its agent and its guide, under the merchant's cap;
requests are written once and retried safely; results come back; returns only from merchant receivers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from datong.channels.wechatpay.client import WeChatPayClient
from datong.channels.wechatpay.profit_sharing import ProfitSharingClient
from datong.cli import app
from datong.core.clock import utcnow
from datong.core.db import Database
from datong.core.errors import Conflict, ValidationFailed
from datong.guides import queries, splits
from datong.guides.models import ProfitShare, ProfitShareReturn
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import MAX_ATTEMPTS, deliver_due
from datong.orders.models import Order
from datong.org.models import Guide
from datong.tenancy.models import Tenant
from tests.fakes.clock import FakeClock
from tests.fakes.wechatpay import FakeWeChatPay
from tests.guides.test_commissions import post
from tests.guides.test_service import World, guide_code, make, scan
from tests.loyalty.helpers import ACTOR, T0, pos_order
from tests.test_cli import _ok, cli_env

__all__ = ["cli_env"]  # the fixture, used by name

TXN = "4200000000000000000000000001"
AGENT_MCHID = "1900000201"
GUIDE_OPENID = "oGuide3_openid"
DAY = timedelta(days=1)


@pytest.fixture
def fake() -> FakeWeChatPay:
    fake = FakeWeChatPay(clock=FakeClock())
    fake.add_transaction(TXN, amount_fen=20_000)
    return fake


@pytest.fixture
def sharing(fake: FakeWeChatPay) -> Iterator[ProfitSharingClient]:
    pay = WeChatPayClient(
        fake.mchid,
        merchant_serial_no=fake.merchant_serial_no,
        merchant_private_key=fake.merchant_private_key,
        platform_keys={fake.platform_key_id: fake.platform_public_key},
        transport=fake.transport,
        clock=fake.clock,
    )
    with pay:
        client = ProfitSharingClient(pay, appid="wx5823bf96d3bd56c7")
        client.add_receiver(
            receiver_type="MERCHANT_ID",
            account=AGENT_MCHID,
            relation_type="DISTRIBUTOR",
            name="厦门代理有限公司",
        )
        client.add_receiver(receiver_type="PERSONAL_OPENID", account=GUIDE_OPENID, relation_type="STAFF")
        yield client


def franchise_order(
    database: Database, *, share_bp: int = 2000, max_ratio_bp: int = 3000
) -> tuple[World, str]:
    """Guide G3 of franchise store F1 (agent AG1) brought the member; a 200-yuan e-shop order follows."""
    w = make(database)
    with database.unit_of_work() as s:
        tenant = s.get(Tenant, w.tenant_id)
        assert tenant is not None
        tenant.settings = {
            **tenant.settings,
            "commission": {"rules": [{"code": "all", "rate_bp": 500}]},
            "profit_sharing": {
                "max_ratio_bp": max_ratio_bp,
                "agents": {"AG1": {"account": AGENT_MCHID, "share_bp": share_bp}},
                "pay_guides": True,
            },
        }
        guide = s.get(Guide, w.guides["G3"])
        assert guide is not None
        guide.wechat_openid = GUIDE_OPENID
    scan(w, 0, guide_code(w, "G3"), T0)
    with database.unit_of_work() as s:
        order_id = pos_order(
            s, w.points, w.points.members[0], "ES-PS", 20000, store=None, channel="eshop", at=T0 + DAY
        ).id
    assert post(w, order_id, T0 + 2 * DAY) == 1000
    return w, order_id


def request(w: World, order_id: str) -> list[tuple[str, list[tuple[str, str, int]]]]:
    with w.db.unit_of_work() as s:
        shares = splits.request_profit_sharing(
            s, tenant_id=w.tenant_id, order_id=order_id, transaction_id=TXN, actor=ACTOR
        )
        return [
            (p.out_order_no, [(r["party"], r["account"], r["amount_fen"]) for r in p.receivers])
            for p in shares
        ]


def test_the_agent_and_the_guide_are_paid_through_the_outbox(
    database: Database, fake: FakeWeChatPay, sharing: ProfitSharingClient
) -> None:
    w, order_id = franchise_order(database)
    expected = [(f"ps-{order_id}-1", [("agent:AG1", AGENT_MCHID, 4000), ("guide:G3", GUIDE_OPENID, 1000)])]
    assert request(w, order_id) == expected
    assert request(w, order_id) == expected  # asked again: the same request, one outbox message
    sender = splits.SplitSender(sharing)
    now = utcnow()  # the outbox's clock, passed explicitly: no dependence on how long a step takes
    fake.fail_next("http_500")
    assert deliver_due(database, {splits.SPLIT: sender}, now=now) == {
        "done": 0,
        "sent": 0,
        "retry": 1,
        "failed": 0,
    }
    not_yet = now + timedelta(seconds=29)  # the first pause is 30 s
    assert deliver_due(database, {splits.SPLIT: sender}, now=not_yet) == {
        "done": 0,
        "sent": 0,
        "retry": 0,
        "failed": 0,
    }
    due = now + timedelta(seconds=30)
    assert deliver_due(database, {splits.SPLIT: sender}, now=due) == {
        "done": 0,
        "sent": 1,
        "retry": 0,
        "failed": 0,
    }
    with database.reading() as s:
        [share] = s.scalars(select(ProfitShare)).all()
        assert share.status == "processing"
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    fake.finish(share.out_order_no)
    with database.unit_of_work() as s:
        done = splits.refresh_profit_share(s, client=sharing, profit_share_id=share.id)
        assert done.status == "finished"
        assert [(r["account"], r["amount_fen"], r["result"]) for r in done.results] == [
            (AGENT_MCHID, 4000, "SUCCESS"),
            (GUIDE_OPENID, 1000, "SUCCESS"),
        ]
    # The guide was paid by WeChat Pay: the statement shows it paid, nothing more due.
    with database.reading() as s:
        rows, _ = queries.commission_statement(s, tenant_id=w.tenant_id, period=utcnow().strftime("%Y-%m"))
    assert [(r.guide_code, r.paid_out_fen, r.net_fen) for r in rows] == [("G3", 1000, -1000)]
    # (the commission itself was posted in March, the payout this month: March shows 1,000 due, paid now.)
    # The order is refunded: take the agent's share back (a guide's openid cannot be asked).
    with pytest.raises(ValidationFailed) as caught, database.unit_of_work() as s:
        splits.request_return(
            s,
            tenant_id=w.tenant_id,
            profit_share_id=share.id,
            return_mchid=GUIDE_OPENID,
            amount_fen=100,
            reason="退款",
            actor=ACTOR,
        )
    assert caught.value.field == "return_mchid"
    with pytest.raises(ValidationFailed) as caught, database.unit_of_work() as s:
        splits.request_return(
            s,
            tenant_id=w.tenant_id,
            profit_share_id=share.id,
            return_mchid=AGENT_MCHID,
            amount_fen=4001,
            reason="退款",
            actor=ACTOR,
        )
    assert caught.value.field == "amount_fen"
    with database.unit_of_work() as s:
        back = splits.request_return(
            s,
            tenant_id=w.tenant_id,
            profit_share_id=share.id,
            return_mchid=AGENT_MCHID,
            amount_fen=4000,
            reason="订单退款",
            actor=ACTOR,
        )
        assert back.out_return_no == f"{share.out_order_no}-r1"
    assert deliver_due(database, {splits.RETURN: sender}) == {"done": 1, "sent": 0, "retry": 0, "failed": 0}
    with database.reading() as s:
        assert s.execute(select(ProfitShareReturn.status, ProfitShareReturn.amount_fen)).all() == [
            ("success", 4000)
        ]
        before = s.scalar(select(func.count()).select_from(OutboxMessage))
    with pytest.raises(ValidationFailed) as caught, database.unit_of_work() as s:  # all taken back already
        splits.request_return(
            s,
            tenant_id=w.tenant_id,
            profit_share_id=share.id,
            return_mchid=AGENT_MCHID,
            amount_fen=1,
            reason="再退",
            actor=ACTOR,
        )
    assert caught.value.field == "amount_fen"
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == before
        assert s.scalar(select(func.count()).select_from(ProfitShareReturn)) == 1


def test_one_payment_is_split_for_one_order_only(database: Database) -> None:
    w, order_id = franchise_order(database)
    request(w, order_id)
    with database.unit_of_work() as s:
        other = pos_order(
            s, w.points, w.points.members[0], "ES-PS2", 20000, store=None, channel="eshop", at=T0 + DAY
        ).id
    with pytest.raises(Conflict) as caught:
        request(w, other)
    assert caught.value.field == "transaction_id"
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(ProfitShare)) == 1


def test_a_request_that_timed_out_for_good_is_unknown_until_asked_then_sent_again(
    database: Database, fake: FakeWeChatPay, sharing: ProfitSharingClient
) -> None:
    w, order_id = franchise_order(database)
    request(w, order_id)
    sender = splits.SplitSender(sharing)
    now = utcnow()
    for attempt in range(MAX_ATTEMPTS):
        fake.fail_next("connect")
        deliver_due(database, {splits.SPLIT: sender}, now=now + timedelta(days=attempt + 1))
    with database.reading() as s:
        share = s.scalar(select(ProfitShare))
        assert share is not None and share.status == "unknown"
        assert s.execute(select(OutboxMessage.status, OutboxMessage.attempts)).one() == (
            "failed",
            MAX_ATTEMPTS,
        )
    with database.unit_of_work() as s:  # WeChat Pay never got it
        assert splits.refresh_profit_share(s, client=sharing, profit_share_id=share.id).status == "failed"
    with database.unit_of_work() as s:
        splits.resend_profit_share(s, tenant_id=w.tenant_id, profit_share_id=share.id, actor=ACTOR)
    assert deliver_due(database, {splits.SPLIT: sender}, now=now + timedelta(days=30)) == {
        "done": 0,
        "sent": 1,
        "retry": 0,
        "failed": 0,
    }
    with database.reading() as s:
        assert s.scalar(select(ProfitShare.status)) == "processing"


def test_above_the_merchants_cap_nothing_is_written(database: Database) -> None:
    w, order_id = franchise_order(database, share_bp=2600)  # 5,200 + 1,000 > 30% of 20,000
    with pytest.raises(Conflict) as caught:
        request(w, order_id)
    assert caught.value.field == "max_ratio_bp"
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(ProfitShare)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_refused_split_is_failed_with_the_reason(
    database: Database, fake: FakeWeChatPay, sharing: ProfitSharingClient
) -> None:
    w, order_id = franchise_order(database)
    with database.unit_of_work() as s:
        splits.request_profit_sharing(
            s,
            tenant_id=w.tenant_id,
            order_id=order_id,
            transaction_id="4200000000000000000000000999",
            actor=ACTOR,
        )
    assert deliver_due(database, {splits.SPLIT: splits.SplitSender(sharing)}) == {
        "done": 0,
        "sent": 0,
        "retry": 0,
        "failed": 1,
    }
    with database.reading() as s:
        share = s.scalar(select(ProfitShare))
        assert share is not None and share.status == "failed" and share.error
        assert s.scalar(select(OutboxMessage.status)) == "failed"


def test_the_split_commands(cli_env: Database) -> None:
    from tests.test_cli import runner

    _w, order_id = franchise_order(cli_env)
    with cli_env.reading() as s:
        order_no = s.scalar(select(Order.order_no).where(Order.id == order_id))
    out = _ok(["guides", "split", "eshop", str(order_no), "--transaction-id", TXN])
    assert f"ps-{order_id}-1  agent:AG1  40.00 元" in out and "guide:G3  10.00 元" in out
    refused = runner.invoke(app, ["guides", "split", "eshop", "NOPE", "--transaction-id", TXN])
    assert (refused.exit_code, getattr(refused.exception, "field", None)) == (1, "order_no")
    with cli_env.reading() as s:
        assert s.scalar(select(func.count()).select_from(ProfitShare)) == 1
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1
