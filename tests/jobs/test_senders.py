"""The outbox worker's senders as a deployment configures them: the brand's WeChat account (from the
database) and WeChat Pay (from ``DATONG_WECHATPAY_*`` and key files), against the local fakes; and
``datong outbox deliver`` with nothing configured, which leaves every message pending."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.wechat import service as wechat
from datong.channels.wechat.senders import TEMPLATE
from datong.core.clock import utcnow
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import ConfigurationError
from datong.guides.splits import RETURN, SPLIT
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import deliver_due, enqueue
from datong.jobs.senders import configured_senders, profit_sharing_client
from datong.tenancy.service import create_tenant
from tests.fakes.clock import FakeClock
from tests.fakes.wechat import FakeWeChat
from tests.fakes.wechatpay import FakeWeChatPay
from tests.test_cli import _ok, cli_env

__all__ = ["cli_env"]


def pay_settings(database: Database, fake: FakeWeChatPay, tmp_path: Path) -> Settings:
    key = tmp_path / "apiclient_key.pem"
    key.write_bytes(
        fake.merchant_private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    platform = tmp_path / "pub_key.pem"
    platform.write_bytes(
        fake.platform_public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Settings(
        database_url=database.url,
        wechatpay_mchid=fake.mchid,
        wechatpay_appid="wx5823bf96d3bd56c7",
        wechatpay_serial_no=fake.merchant_serial_no,
        wechatpay_key_file=key,
        wechatpay_platform_keys=f"{fake.platform_key_id}={platform}",
    )


def test_the_brands_account_and_the_deployments_wechat_pay_make_the_senders(
    database: Database, tmp_path: Path
) -> None:
    keyring = Keyring(master=os.urandom(32))
    wx, pay = FakeWeChat(), FakeWeChatPay(clock=FakeClock(start=utcnow()))  # the clients use the real clock
    with database.unit_of_work() as s:
        tenant_id = create_tenant(s, code="acme", name="Acme").id
        wechat.add_account(
            s,
            tenant_id=tenant_id,
            keyring=keyring,
            actor="system:test",
            appid=wx.appid,
            name="服务号",
            token="T",
            secret=wx.secret,
        )
        enqueue(
            s,
            tenant_id=tenant_id,
            kind=TEMPLATE,
            key="k1",
            payload={"touser": "oA", "template_id": "TPL", "data": {"first": "你好"}},
        )
    rt = Runtime(settings=pay_settings(database, pay, tmp_path), db=database, keyring=keyring)
    with ExitStack() as stack:
        senders = configured_senders(
            rt, tenant_id, stack, wechat_transport=wx.transport, pay_transport=pay.transport
        )
        assert sorted(senders) == sorted([TEMPLATE, SPLIT, RETURN])
        assert deliver_due(database, senders) == {"done": 0, "sent": 1, "retry": 0, "failed": 0}
        sharing = profit_sharing_client(rt.settings, stack, transport=pay.transport)
        assert sharing is not None and sharing.query_max_ratio_bp("1900000109") == pay.max_ratio_bp == 3000
    assert [m["touser"] for m in wx.messages] == ["oA"]


def test_half_a_wechat_pay_configuration_is_refused_by_name(database: Database) -> None:
    with pytest.raises(ConfigurationError) as caught, ExitStack() as stack:
        profit_sharing_client(Settings(database_url=database.url, wechatpay_mchid="1900000100"), stack)
    assert caught.value.field == "DATONG_WECHATPAY_MCHID"


def test_deliver_with_nothing_configured_leaves_messages_pending(cli_env: Database) -> None:
    _ok(["tenant", "create", "acme", "Acme"])
    with cli_env.unit_of_work() as s:
        from datong.tenancy.models import Tenant

        tenant_id = s.scalar(select(Tenant.id))
        assert tenant_id is not None
        enqueue(
            s,
            tenant_id=tenant_id,
            kind=TEMPLATE,
            key="k2",
            payload={"touser": "oB", "template_id": "T", "data": {}},
        )
    out = _ok(["outbox", "deliver"])
    assert "没有配置任何发送通道" in out
    with cli_env.reading() as s:
        assert s.execute(select(OutboxMessage.status, OutboxMessage.attempts)).one() == ("pending", 0)


def test_a_brands_senders_never_see_another_brands_messages(database: Database) -> None:
    from datong.jobs.outbox import Outcome

    with database.unit_of_work() as s:
        brands = [create_tenant(s, code=code, name=code).id for code in ("acme", "bolt")]
        for tenant_id in brands:
            enqueue(s, tenant_id=tenant_id, kind=TEMPLATE, key="k", payload={"touser": f"o-{tenant_id}"})
    seen: list[str] = []

    def sender(session: Session, message: OutboxMessage) -> Outcome:
        seen.append(message.tenant_id)
        return Outcome("done")

    assert deliver_due(database, {TEMPLATE: sender}, tenant_id=brands[0]) == {
        "done": 1,
        "sent": 0,
        "retry": 0,
        "failed": 0,
    }
    assert seen == [brands[0]]
    with database.reading() as s:
        left = s.execute(
            select(OutboxMessage.tenant_id, OutboxMessage.status).order_by(OutboxMessage.tenant_id)
        ).all()
    assert sorted(left) == sorted([(brands[0], "done"), (brands[1], "pending")])
