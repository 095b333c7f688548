"""WeChat tickets for QR codes, against the local fake of WeChat's API (tests/fakes/wechat.py), with the
access token shared through the database: temporary and permanent tickets, the permanent quota counted
before asking, WeChat's errors (40053, an expired token), and one token for every client of an account."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from datong.channels.wechat import service as wechat
from datong.channels.wechat.client import WeChatInvalidActionInfo
from datong.channels.wechat.models import WechatToken
from datong.channels.wechat.tokens import client_for
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict, ValidationFailed
from datong.guides import service, wechat_codes
from datong.guides.models import QrCode
from tests.fakes.wechat import FakeWeChat
from tests.guides.test_service import World, make
from tests.loyalty.helpers import ACTOR, T0


def setup(database: Database) -> tuple[World, Keyring, FakeWeChat]:
    w = make(database)
    keyring = Keyring(master=os.urandom(32))
    fake = FakeWeChat()
    with database.unit_of_work() as s:
        wechat.add_account(
            s,
            tenant_id=w.tenant_id,
            keyring=keyring,
            actor=ACTOR,
            appid=fake.appid,
            name="服务号",
            token="TOKEN",
            secret=fake.secret,
        )
    return w, keyring, fake


def new_code(w: World, *, permanent: bool) -> str:
    with w.db.unit_of_work() as s:
        return service.create_qr_code(
            s,
            tenant_id=w.tenant_id,
            actor=ACTOR,
            kind="guide",
            name="名片",
            guide_id=w.guides["G1"],
            permanent=permanent,
        ).id


def ticket(w: World, keyring: Keyring, fake: FakeWeChat, code_id: str, **kwargs: int) -> QrCode:
    with w.db.reading() as s:
        account = wechat.get_account(s, appid=fake.appid)
    client = client_for(w.db, keyring, account, transport=fake.transport)
    return wechat_codes.issue_wechat_ticket(
        w.db, tenant_id=w.tenant_id, qr_code_id=code_id, client=client, actor=ACTOR, at=T0, **kwargs
    )


def test_temporary_and_permanent_tickets_carry_the_scene(database: Database) -> None:
    w, keyring, fake = setup(database)
    temporary = ticket(w, keyring, fake, new_code(w, permanent=False), expire_seconds=7 * 86400)
    assert (temporary.wechat_appid, temporary.expires_at) == (fake.appid, T0 + timedelta(days=7))
    assert [(c.action_name, c.scene) for c in fake.codes] == [("QR_STR_SCENE", temporary.scene)]
    permanent_id = new_code(w, permanent=True)
    first = ticket(w, keyring, fake, permanent_id)
    again = ticket(w, keyring, fake, permanent_id)  # kept: no second permanent ticket is spent
    assert first.wechat_ticket == again.wechat_ticket and first.expires_at is None
    assert fake.count("/cgi-bin/qrcode/create") == 2
    assert fake.count("/cgi-bin/stable_token") == 1  # one token, shared through the database
    with database.reading() as s:
        assert s.scalar(select(func.count()).select_from(WechatToken)) == 1
        assert wechat_codes.permanent_codes_used(s, appid=fake.appid) == 1


def test_the_permanent_quota_is_counted_before_asking(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, keyring, fake = setup(database)
    ticket(w, keyring, fake, new_code(w, permanent=True))
    monkeypatch.setattr(wechat_codes, "PERMANENT_LIMIT", 1)
    code_id = new_code(w, permanent=True)
    with pytest.raises(Conflict) as caught:
        ticket(w, keyring, fake, code_id)
    assert caught.value.field == "permanent"
    assert fake.count("/cgi-bin/qrcode/create") == 1
    with database.reading() as s:
        code = s.get(QrCode, code_id)
        assert code is not None and code.wechat_ticket is None


def test_wechat_errors_and_an_expired_token(database: Database) -> None:
    w, keyring, fake = setup(database)
    code_id = new_code(w, permanent=False)
    with pytest.raises(ValidationFailed):
        ticket(w, keyring, fake, code_id, expire_seconds=31 * 86400)
    fake.answer_next(40053, "invalid action info")
    with pytest.raises(WeChatInvalidActionInfo):
        ticket(w, keyring, fake, code_id)
    with database.reading() as s:
        code = s.get(QrCode, code_id)
        assert code is not None and code.wechat_ticket is None
    fake.expire_token()  # the cached token is refused once; the client refreshes and retries
    done = ticket(w, keyring, fake, code_id)
    assert done.wechat_ticket is not None
    assert fake.count("/cgi-bin/stable_token") == 2
