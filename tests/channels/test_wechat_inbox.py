"""The WeChat callback end to end, through HTTP, on SQLite and PostgreSQL: WeChat is played by the
independent implementation in ``wechat_safe_mode.py``. A follow through a guide's code binds the member;
retries change nothing; an unfollow forgets the WeChat identity and keeps the rest; location needs
consent; clicks are behaviour events; delivery reports reach the outbox; bad calls change nothing."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from datong.api.app import create_app
from datong.channels.wechat import service as wechat
from datong.channels.wechat.models import WechatInbox
from datong.core.clock import utcnow
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Base, Database
from datong.events.models import BehaviourEvent
from datong.guides.models import Touch
from datong.jobs.models import OutboxMessage
from datong.jobs.wechat import process_pending
from datong.members.models import Identity, Member
from datong.members.service import record_consent
from tests.channels.hostile_xml import hostile_payloads
from tests.channels.wechat_safe_mode import (
    ACCOUNT,
    APPID,
    KEY_CURRENT,
    KEY_PREVIOUS,
    TOKEN,
    WeChatScheme,
    safe_request,
    sha1_signature,
    xml_message,
)
from tests.guides.test_service import World, guide_code, make
from tests.loyalty.helpers import ACTOR, T0

URL = f"/wechat/callback/{APPID}"


@dataclass
class Callback:
    w: World
    client: TestClient
    keyring: Keyring
    scene: str

    def params(self, **extra: str) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex  # WeChat signs each push anew
        return {
            "signature": sha1_signature(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            **extra,
        }

    def post(self, fields: dict[str, Any], *, safe: bool = False, key: str = KEY_CURRENT) -> Any:
        xml = xml_message(fields)
        if safe:
            params, body = safe_request(
                WeChatScheme(key), xml, timestamp=str(int(time.time())), nonce=uuid.uuid4().hex
            )
            return self.client.post(URL, params=params, content=body)
        return self.client.post(URL, params=self.params(), content=xml)

    def counts(self) -> dict[str, int]:
        with self.w.db.reading() as s:
            return {t: s.scalar(text(f"SELECT count(*) FROM {t}")) or 0 for t in sorted(Base.metadata.tables)}


def event(openid: str, name: str, at: int = int(T0.timestamp()), **extra: str | int) -> dict[str, Any]:
    return {
        "ToUserName": ACCOUNT,
        "FromUserName": openid,
        "CreateTime": at,
        "MsgType": "event",
        "Event": name,
        **extra,
    }


@pytest.fixture
def cb(database: Database) -> Iterator[Callback]:
    w = make(database)
    keyring = Keyring(master=os.urandom(32))
    with database.unit_of_work() as s:
        wechat.add_account(
            s,
            tenant_id=w.tenant_id,
            keyring=keyring,
            actor=ACTOR,
            appid=APPID,
            name="品牌服务号",
            token=TOKEN,
        )  # plain mode; the safe-mode test gives it keys
    scene = guide_code(w, "G1")
    runtime = Runtime(settings=Settings(database_url=database.url), db=database, keyring=keyring)
    with TestClient(create_app(runtime)) as client:
        yield Callback(w, client, keyring, scene)


def member_of(cb: Callback, openid: str) -> Member | None:
    with cb.w.db.reading() as s:
        member_id = s.scalar(
            select(Identity.member_id).where(Identity.kind == "openid", Identity.lookup == openid)
        )
        return s.get(Member, member_id) if member_id else None


def test_the_url_check_answers_echostr_only_when_signed(cb: Callback) -> None:
    assert cb.client.get(URL, params=cb.params(echostr="e1")).text == "e1"
    bad = cb.params(echostr="e1") | {"signature": "0" * 40}
    assert cb.client.get(URL, params=bad).status_code == 401
    assert cb.client.get("/wechat/callback/wx_unknown", params=cb.params(echostr="e1")).status_code == 404


def test_a_follow_through_a_guides_code_binds_and_retries_change_nothing(cb: Callback) -> None:
    follow = event("oFan1", "subscribe", EventKey=f"qrscene_{cb.scene}", Ticket="t1")
    for _ in range(3):  # WeChat's three tries
        response = cb.post(follow)
        assert (response.status_code, response.content) == (200, b"success")
    member = member_of(cb, "oFan1")
    assert member is not None and (member.guide_id, member.home_store_id) == (
        cb.w.guides["G1"],
        cb.w.points.stores["D1"],
    )
    with cb.w.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(WechatInbox)) == 1
        touches = s.execute(select(Touch.kind, Touch.at, Touch.guide_id)).all()
        assert touches == [("subscribe", T0, cb.w.guides["G1"])]


def test_safe_mode_with_the_current_and_the_previous_key(cb: Callback) -> None:
    for key in (KEY_CURRENT, KEY_PREVIOUS):
        with cb.w.db.unit_of_work() as s:
            wechat.rotate_aes_key(
                s, tenant_id=cb.w.tenant_id, keyring=cb.keyring, actor=ACTOR, appid=APPID, aes_key=key
            )
    # After the rotation KEY_PREVIOUS is current and KEY_CURRENT the previous one: both open.
    assert (
        cb.post(event("oFan2", "SCAN", EventKey=cb.scene, Ticket="t"), safe=True, key=KEY_CURRENT).status_code
        == 200
    )
    assert (
        cb.post(
            event("oFan3", "SCAN", EventKey=cb.scene, Ticket="t"), safe=True, key=KEY_PREVIOUS
        ).status_code
        == 200
    )
    assert member_of(cb, "oFan2") is not None and member_of(cb, "oFan3") is not None
    before = cb.counts()
    other = "Zz" * 21 + "Z"
    assert cb.post(event("oFan4", "SCAN", EventKey=cb.scene), safe=True, key=other).status_code == 422
    # An account with keys takes encrypted messages only: plain mode signs the URL, not the body.
    plain = cb.post(event("oFan4", "SCAN", EventKey=cb.scene))
    assert (plain.status_code, plain.json()["field"]) == (401, "encrypt_type")
    assert cb.counts() == before


def test_a_signed_request_replayed_with_another_body_is_refused(cb: Callback) -> None:
    params = cb.params()
    first = xml_message(event("oFan12", "SCAN", EventKey=cb.scene))
    assert cb.client.post(URL, params=params, content=first).content == b"success"
    assert cb.client.post(URL, params=params, content=first).content == b"success"  # a retry: same message
    before = cb.counts()
    forged = xml_message(event("oForged", "SCAN", EventKey=cb.scene))
    response = cb.client.post(URL, params=params, content=forged)
    assert (response.status_code, response.json()["field"]) == (401, "nonce")
    assert cb.counts() == before
    assert member_of(cb, "oForged") is None


def test_bad_signatures_hostile_xml_and_stale_timestamps_change_nothing(cb: Callback, tmp_path: Any) -> None:
    before = cb.counts()
    xml = xml_message(event("oFan5", "subscribe"))
    assert cb.client.post(URL, params=cb.params() | {"signature": "f" * 40}, content=xml).status_code == 401
    stale = {"signature": sha1_signature(TOKEN, "1714036504", "1"), "timestamp": "1714036504", "nonce": "1"}
    assert cb.client.post(URL, params=stale, content=xml).status_code == 401
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    for name, body in hostile_payloads(str(secret)).items():
        response = cb.client.post(URL, params=cb.params(), content=body)
        assert response.status_code in (413, 422), name
        assert "SECRET" not in response.text
    assert cb.counts() == before


def test_unfollow_forgets_the_wechat_identity_and_keeps_the_member(cb: Callback) -> None:
    cb.post(event("oFan6", "subscribe", EventKey=f"qrscene_{cb.scene}"))
    member = member_of(cb, "oFan6")
    assert member is not None
    with cb.w.db.unit_of_work() as s:
        s.add(
            Identity(
                tenant_id=cb.w.tenant_id,
                member_id=member.id,
                kind="card_no",
                namespace="pos",
                lookup="C-1",
                is_exclusive=True,
                value="C-1",
                source="pos",
                rule="test",
                evidence={},
            )
        )
    cb.post(event("oFan6", "CLICK", at=int(T0.timestamp()) + 5, EventKey="MENU_NEW"))
    with cb.w.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(BehaviourEvent)) == 1
    cb.post(event("oFan6", "unsubscribe", at=int(T0.timestamp()) + 60))
    assert member_of(cb, "oFan6") is None
    with cb.w.db.reading() as s:
        kept = s.get(Member, member.id)
        assert kept is not None and kept.status == "active" and kept.guide_id == cb.w.guides["G1"]
        assert s.scalars(select(Identity.kind).where(Identity.member_id == member.id)).all() == ["card_no"]
        assert s.scalar(select(func.count()).select_from(BehaviourEvent)) == 0
        rows = s.execute(select(WechatInbox.message, WechatInbox.openid)).all()
        assert rows == [({}, None)] * 3
    # A retry of the unfollow, or of the old follow, is still recognised and changes nothing.
    before = cb.counts()
    cb.post(event("oFan6", "unsubscribe", at=int(T0.timestamp()) + 60))
    assert cb.counts() == before


def test_location_is_kept_only_with_consent(cb: Callback) -> None:
    cb.post(event("oFan7", "subscribe"))
    where = {"Latitude": "24.479833", "Longitude": "118.089425", "Precision": "30.0"}
    cb.post(event("oFan7", "LOCATION", at=int(T0.timestamp()) + 1, **where))
    with cb.w.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(BehaviourEvent)) == 0
        stored = s.scalar(select(WechatInbox.message).where(WechatInbox.event == "location"))
        assert stored is not None and "Latitude" not in stored
    member = member_of(cb, "oFan7")
    assert member is not None
    with cb.w.db.unit_of_work() as s:
        record_consent(
            s,
            tenant_id=cb.w.tenant_id,
            member_id=member.id,
            purpose="location",
            granted=True,
            channel="wechat",
            text_version="2026-01",
            actor=ACTOR,
        )
    cb.post(event("oFan7", "LOCATION", at=int(T0.timestamp()) + 2, **where))
    with cb.w.db.reading() as s:
        [detail] = s.scalars(select(BehaviourEvent.detail).where(BehaviourEvent.kind == "location")).all()
        assert detail == {"latitude": 24.479833, "longitude": 118.089425, "precision": 30.0}


def test_a_delivery_report_reaches_its_outbox_row(cb: Callback) -> None:
    with cb.w.db.unit_of_work() as s:
        for key, msgid in (("a", "1001"), ("b", "1002")):
            s.add(
                OutboxMessage(
                    tenant_id=cb.w.tenant_id,
                    kind="wechat.template",
                    key=key,
                    payload={},
                    status="sent",
                    next_attempt_at=utcnow(),
                    external_id=msgid,
                )
            )
    cb.post(event("oFan8", "TEMPLATESENDJOBFINISH", MsgID="1001", Status="success"))
    cb.post(
        event(
            "oFan8",
            "TEMPLATESENDJOBFINISH",
            at=int(T0.timestamp()) + 1,
            MsgID="1002",
            Status="failed:user block",
        )
    )
    with cb.w.db.reading() as s:
        got = s.execute(
            select(OutboxMessage.key, OutboxMessage.status, OutboxMessage.result).order_by(OutboxMessage.key)
        ).all()
    assert got == [("a", "done", {"delivery": "success"}), ("b", "failed", {"delivery": "failed:user block"})]


def test_an_unknown_scene_is_noted_and_the_follow_still_counts(cb: Callback) -> None:
    cb.post(event("oFan9", "subscribe", EventKey="qrscene_g_NOSUCHSCENE0"))
    assert member_of(cb, "oFan9") is not None
    with cb.w.db.reading() as s:
        status, error = s.execute(select(WechatInbox.status, WechatInbox.error)).one()
    assert status == "done" and error is not None and "g_NOSUCHSCENE0" in error


def test_a_message_left_pending_by_a_crash_is_handled_by_the_sweep(cb: Callback) -> None:
    from datong.channels.wechat.callback import parse_message

    message = parse_message(xml_message(event("oFan10", "SCAN", EventKey=cb.scene)))
    with cb.w.db.unit_of_work() as s:
        account = wechat.get_account(s, appid=APPID)
        wechat.receive(s, account=account, message=message)
    assert member_of(cb, "oFan10") is None
    assert process_pending(cb.w.db, cb.keyring) == {"done": 1, "failed": 0}
    member = member_of(cb, "oFan10")
    assert member is not None and member.guide_id == cb.w.guides["G1"]
    assert process_pending(cb.w.db, cb.keyring) == {"done": 0, "failed": 0}


def test_a_template_message_goes_out_through_the_outbox_and_its_delivery_comes_back(cb: Callback) -> None:
    from datong.channels.wechat.client import WeChatClient
    from datong.channels.wechat.senders import TEMPLATE, TemplateSender
    from datong.jobs.outbox import deliver_due, enqueue
    from tests.fakes.wechat import FakeWeChat

    fake = FakeWeChat()
    with cb.w.db.unit_of_work() as s:
        enqueue(
            s,
            tenant_id=cb.w.tenant_id,
            kind=TEMPLATE,
            key="xm-event-oFan11",
            payload={"touser": "oFan11", "template_id": "TPL1", "data": {"first": "厦门活动邀请"}},
        )
    with WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=fake.clock) as client:
        sent = deliver_due(cb.w.db, {TEMPLATE: TemplateSender(client)})
    assert sent == {"done": 0, "sent": 1, "retry": 0, "failed": 0}
    with cb.w.db.reading() as s:
        msgid = s.scalar(select(OutboxMessage.external_id))
    assert msgid is not None and [m["touser"] for m in fake.messages] == ["oFan11"]
    cb.post(event("oFan11", "TEMPLATESENDJOBFINISH", MsgID=msgid, Status="success"))
    with cb.w.db.reading() as s:
        assert s.execute(select(OutboxMessage.status, OutboxMessage.result)).one() == (
            "done",
            {"delivery": "success"},
        )


def test_one_message_handled_by_two_workers_at_once_takes_effect_once(cb: Callback) -> None:
    import threading

    from datong.channels.wechat.callback import parse_message
    from datong.channels.wechat.handlers import process_message

    message = parse_message(xml_message(event("oFan13", "SCAN", EventKey=cb.scene)))
    with cb.w.db.unit_of_work() as s:
        row, _ = wechat.receive(s, account=wechat.get_account(s, appid=APPID), message=message)
    barrier = threading.Barrier(4)
    seen: list[object] = []

    def worker() -> None:
        barrier.wait()
        try:
            with cb.w.db.unit_of_work() as s:
                seen.append(process_message(s, keyring=cb.keyring, inbox_id=row.id))
        except Exception as exc:  # recorded, then asserted below
            seen.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, seen)) == ["done"] * 4
    with cb.w.db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Touch)) == 1
        assert s.execute(select(WechatInbox.status, WechatInbox.attempts)).one() == ("done", 1)


def test_a_failed_message_is_kept_with_its_reason_and_tried_again(cb: Callback) -> None:
    from datong.channels.wechat.callback import parse_message

    good = parse_message(xml_message(event("oFan14", "SCAN", EventKey=cb.scene)))
    with cb.w.db.unit_of_work() as s:
        account = wechat.get_account(s, appid=APPID)
        broken, _ = wechat.receive(s, account=account, message=good)
        broken.message = {"MsgType": "event"}  # cannot be rebuilt: a required field is missing
    assert process_pending(cb.w.db, cb.keyring) == {"done": 0, "failed": 1}
    with cb.w.db.reading() as s:
        status, error, attempts = s.execute(
            select(WechatInbox.status, WechatInbox.error, WechatInbox.attempts)
        ).one()
    assert (status, attempts) == ("failed", 1) and error is not None and error.startswith("BadMessage")
    assert member_of(cb, "oFan14") is None
    with cb.w.db.unit_of_work() as s:
        s.execute(update(WechatInbox).values(message=dict(good.raw)))  # the operator fixed it
    assert process_pending(cb.w.db, cb.keyring) == {"done": 1, "failed": 0}
    assert member_of(cb, "oFan14") is not None
