"""Route matrix rows: the WeChat server callback. WeChat authenticates by signature, not by a datong
token, so every caller gets the same answer: a bearer token neither helps nor hurts. (Bad signatures,
hostile bodies and stale timestamps are refused in tests/channels/test_wechat_inbox.py.)"""

from __future__ import annotations

import time
import uuid

import httpx
from sqlalchemy import select

from datong.channels.wechat import service as wechat
from datong.channels.wechat.models import WechatAccount
from tests.api.conftest import World
from tests.api.matrix import EVERYONE, Endpoint
from tests.channels.wechat_safe_mode import ACCOUNT, APPID, TOKEN, sha1_signature, xml_message


def _account(w: World) -> None:
    """Brand 1's official account, registered the first time a callback cell runs."""
    with w.db.unit_of_work() as s:
        if s.scalar(select(WechatAccount.id).where(WechatAccount.appid == APPID)) is None:
            wechat.add_account(
                s,
                tenant_id=w.b1.tenant_id,
                keyring=w.keyring,
                actor="system:test",
                appid=APPID,
                name="服务号",
                token=TOKEN,
            )


def _signed(**extra: str) -> dict[str, str]:
    # One signed request per message (WeChat's nonces differ): a reused one is refused as a replay.
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    return {
        "signature": sha1_signature(TOKEN, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }


def call_callback_check(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    _account(w)
    response: httpx.Response = w.client.get(
        f"/wechat/callback/{APPID}", params=_signed(echostr="ok-1"), headers=w.auth(caller)
    )
    if ok:
        assert response.text == "ok-1"
    return response


def call_callback(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    _account(w)
    body = xml_message(
        {
            "ToUserName": ACCOUNT,
            "FromUserName": f"o-{caller}",
            "CreateTime": int(time.time()),
            "MsgType": "event",
            "Event": "VIEW",
            "EventKey": "https://example.com/",
            "MenuId": "1",
        }
    )
    response: httpx.Response = w.client.post(
        f"/wechat/callback/{APPID}", params=_signed(), content=body, headers=w.auth(caller)
    )
    if ok:
        assert response.content == b"success"
    return response


ENDPOINTS = [
    Endpoint("GET", "/wechat/callback/{appid}", EVERYONE, 200, call_callback_check, public=True),
    Endpoint("POST", "/wechat/callback/{appid}", EVERYONE, 200, call_callback, public=True),
]
