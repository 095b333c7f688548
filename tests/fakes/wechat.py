"""A local WeChat official-account API behind an httpx ``MockTransport``, speaking WeChat's documented JSON.

Usage::

    clock = FakeClock()
    fake = FakeWeChat(clock=clock)            # appid APPID, secret SECRET
    client = WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=clock)

Endpoints (every answer is HTTP 200 with WeChat's JSON, errors as ``{"errcode", "errmsg"}``):

- ``POST /cgi-bin/stable_token`` — ``{grant_type, appid, secret, force_refresh}``. Normal mode returns the
  current token while more than 300 s remain, else issues a new one valid ``TOKEN_SECONDS`` (the old one
  stays valid until its own expiry, as WeChat overlaps them). ``force_refresh`` issues a new one and
  invalidates the old. Errors: 40002 grant_type, 40013 appid, 40125 secret.
- API calls check ``access_token``: 41001 missing, 40001 unknown or revoked, 42001 expired (by ``clock``).
- ``POST /cgi-bin/qrcode/create`` — 40052 for an unknown ``action_name``; 40053 for a bad ``action_info``
  (``scene_str`` not 1..64 characters, ``scene_id`` not 32-bit non-zero, or not 1..100000 when permanent).
  Temporary codes default to 60 s and are capped at 30 days (unconfirmed: WeChat may refuse instead).
  Permanent codes count against ``permanent_quota`` (``permanent_used`` is settable): past it, 45029.
  Asking again for a permanent scene returns the same ticket without counting (unconfirmed).
- ``POST /cgi-bin/message/template/send`` — 40003 empty ``touser``, 43004 ``touser`` in ``unsubscribed``,
  40037 ``template_id`` not in ``templates`` (when that set is given), 47001 a ``data`` that is not
  ``{keyword: {"value": str}}``. The same ``touser`` + ``client_msg_id`` within 10 minutes returns the
  first ``msgid`` and sends nothing (unconfirmed what WeChat answers). Sent bodies are in ``messages``.
- ``GET /cgi-bin/user/info`` — the record in ``users[openid]``, else 40003.

Levers: ``expire_token()`` (next API call 42001 once; a refresh gets a new token), ``revoke_token()``
(40001, as after a force refresh elsewhere), ``fail_next(kind)`` with kind ``"http_502"``, ``"connect"``
or ``"busy"`` (errcode -1) for the next request of any kind, ``answer_next(errcode, errmsg)`` for the
next API call that passes the token check, ``token_gate`` (a ``threading.Event`` stable_token waits on),
and ``calls`` (every request in order: method, path, query, parsed body, raw bytes) with ``count(path)``.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.fakes.clock import FakeClock

TOKEN_SECONDS = 7200
OVERLAP = timedelta(seconds=300)
TEMPORARY_MAX_SECONDS = 2_592_000
DEDUPE_WINDOW = timedelta(minutes=10)
QR_KINDS = {"QR_SCENE": False, "QR_STR_SCENE": False, "QR_LIMIT_SCENE": True, "QR_LIMIT_STR_SCENE": True}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    content: bytes


@dataclass
class QrCode:
    action_name: str
    scene: str | int
    ticket: str
    url: str
    expire_seconds: int | None


@dataclass
class FakeWeChat:
    appid: str = "wx0123456789abcdef"
    secret: str = "SECRET-0123456789abcdef0123456789"
    clock: FakeClock = field(default_factory=FakeClock)
    permanent_quota: int = 100_000
    permanent_used: int = 0
    templates: set[str] | None = None
    unsubscribed: set[str] = field(default_factory=set)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_gate: threading.Event | None = None
    calls: list[Call] = field(default_factory=list)
    codes: list[QrCode] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._tokens: dict[str, datetime] = {}
        self._current: str | None = None
        self._faults: list[str] = []
        self._answers: list[tuple[int, str]] = []
        self._permanent: dict[tuple[str, str | int], QrCode] = {}
        self._sent: dict[tuple[str, str], tuple[datetime, int]] = {}
        self._next_msgid = 200228332
        self.transport = httpx.MockTransport(self._handle)

    # --- levers ----------------------------------------------------------------------------------

    def expire_token(self) -> None:
        with self._lock:
            if self._current is not None:
                self._tokens[self._current] = self.clock()

    def revoke_token(self) -> None:
        with self._lock:
            if self._current is not None:
                self._tokens.pop(self._current, None)
                self._current = None

    def fail_next(self, kind: str) -> None:
        assert kind in {"http_502", "connect", "busy"}
        with self._lock:
            self._faults.append(kind)

    def answer_next(self, errcode: int, errmsg: str) -> None:
        with self._lock:
            self._answers.append((errcode, errmsg))

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.path == path)

    @property
    def current_token(self) -> str | None:
        return self._current

    # --- the transport ---------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        params = dict(request.url.params)
        with self._lock:
            self.calls.append(Call(request.method, request.url.path, params, body, request.content))
            fault = self._faults.pop(0) if self._faults else None
        if fault == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "http_502":
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        if fault == "busy":
            return _error(-1, "system error")
        path = request.url.path
        if path == "/cgi-bin/stable_token" and request.method == "POST":
            if self.token_gate is not None:
                self.token_gate.wait(timeout=10)
            return self._stable_token(body or {})
        routes = {
            ("POST", "/cgi-bin/qrcode/create"): self._qrcode_create,
            ("POST", "/cgi-bin/message/template/send"): self._template_send,
            ("GET", "/cgi-bin/user/info"): self._user_info,
        }
        handler = routes.get((request.method, path))
        if handler is None:
            return httpx.Response(404, text="not found")
        with self._lock:
            refused = self._check_token(params.get("access_token"))
            if refused is not None:
                return refused
            if self._answers:
                return _error(*self._answers.pop(0))
            return handler(body or {}, params)

    def _stable_token(self, body: dict[str, Any]) -> httpx.Response:
        if body.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if body.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if body.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        with self._lock:
            now = self.clock()
            current = self._current
            if body.get("force_refresh"):
                if current is not None:
                    self._tokens.pop(current, None)
            elif current is not None and self._tokens.get(current, now) - now > OVERLAP:
                remaining = int((self._tokens[current] - now).total_seconds())
                return _ok({"access_token": current, "expires_in": remaining})
            token = f"ACCESS_TOKEN_{len(self.issued_tokens) + 1:04d}"
            self._tokens[token] = now + timedelta(seconds=TOKEN_SECONDS)
            self._current = token
            self.issued_tokens.append(token)
            return _ok({"access_token": token, "expires_in": TOKEN_SECONDS})

    def _check_token(self, token: str | None) -> httpx.Response | None:
        if not token:
            return _error(41001, "access_token missing")
        expires_at = self._tokens.get(token)
        if expires_at is None:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self.clock() >= expires_at:
            return _error(42001, "access_token expired")
        return None

    def _qrcode_create(self, body: dict[str, Any], _: dict[str, str]) -> httpx.Response:
        action = body.get("action_name")
        if action not in QR_KINDS:
            return _error(40052, "invalid action name")
        permanent = QR_KINDS[action]
        info = body.get("action_info")
        scene_info = info.get("scene") if isinstance(info, dict) else None
        if not isinstance(scene_info, dict):
            return _error(40053, "invalid action info")
        scene: str | int
        if action.endswith("STR_SCENE"):
            scene = scene_info.get("scene_str")  # type: ignore[assignment]
            if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
                return _error(40053, "invalid action info")
        else:
            scene = scene_info.get("scene_id")  # type: ignore[assignment]
            top = 100_000 if permanent else 2**32 - 1
            if isinstance(scene, bool) or not isinstance(scene, int) or not 1 <= scene <= top:
                return _error(40053, "invalid action info")
        if permanent:
            known = self._permanent.get((action, scene))
            if known is None:
                if self.permanent_used >= self.permanent_quota:
                    return _error(45029, "qrcode count out of limit")
                self.permanent_used += 1
                known = self._permanent[(action, scene)] = self._new_code(action, scene, None)
            return _ok({"ticket": known.ticket, "url": known.url})
        seconds = body.get("expire_seconds", 60)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
            return _error(40053, "invalid action info")
        code = self._new_code(action, scene, min(seconds, TEMPORARY_MAX_SECONDS))
        return _ok({"ticket": code.ticket, "expire_seconds": code.expire_seconds, "url": code.url})

    def _new_code(self, action: str, scene: str | int, seconds: int | None) -> QrCode:
        url = f"http://weixin.qq.com/q/fake{len(self.codes) + 1:04d}"
        # Like WeChat's, the ticket is base64 (with +, / and =, which need URL-encoding).
        ticket = base64.b64encode(b"\xfb\xff\xbf" + url.encode()).decode("ascii")
        code = QrCode(action, scene, ticket, url, seconds)
        self.codes.append(code)
        return code

    def _template_send(self, body: dict[str, Any], _: dict[str, str]) -> httpx.Response:
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            return _error(40003, "invalid openid")
        if touser in self.unsubscribed:
            return _error(43004, "require subscribe")
        if self.templates is not None and body.get("template_id") not in self.templates:
            return _error(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()
        ):
            return _error(47001, "data format error")
        now = self.clock()
        client_msg_id = body.get("client_msg_id")
        if isinstance(client_msg_id, str):
            first = self._sent.get((touser, client_msg_id))
            if first is not None and now - first[0] < DEDUPE_WINDOW:
                return _ok({"errcode": 0, "errmsg": "ok", "msgid": first[1]})
        msgid = self._next_msgid
        self._next_msgid += 1
        if isinstance(client_msg_id, str):
            self._sent[(touser, client_msg_id)] = (now, msgid)
        self.messages.append({**body, "msgid": msgid})
        return _ok({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    def _user_info(self, _: dict[str, Any], params: dict[str, str]) -> httpx.Response:
        user = self.users.get(params.get("openid", ""))
        if user is None:
            return _error(40003, "invalid openid")
        return _ok(user)


def _ok(data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=data)


def _error(errcode: int, errmsg: str) -> httpx.Response:
    # WeChat appends a request id to every error message.
    return httpx.Response(
        200, json={"errcode": errcode, "errmsg": f"{errmsg} rid: 6630a1b2-0f1e2d3c-4b5a6978"}
    )
