"""WeChat official-account API client: access token, parametric QR tickets, template messages, user info.

Database-free and synchronous (httpx). The token comes from ``cgi-bin/stable_token`` in normal mode, not
``cgi-bin/token``: the secret travels in the body, not the URL (so never in access logs); a fetch never
invalidates the token another process holds; and WeChat hands out the next token in the last five minutes,
so refreshing ``REFRESH_MARGIN`` early is safe. Force-refresh mode (20 a day) is never used. Errors are
``WeChatError`` subclasses (docs/wechat-api.md); no message carries the secret or a token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

import httpx

from datong.core.clock import utcnow
from datong.core.errors import ConfigurationError, DatongError, ValidationFailed

API_BASE_URL = "https://api.weixin.qq.com"
SHOWQRCODE_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode"
REFRESH_MARGIN = timedelta(minutes=5)
TEMPORARY_MAX_SECONDS = 2_592_000  # 30 days
PERMANENT_SCENE_ID_MAX = 100_000
PERMANENT_QR_LIMIT = 100_000  # per account; the caller's table tracks usage, WeChat answers 45029 past it
SCENE_STR_MAX = 64
# "32-bit non-zero": kept to positive signed 32-bit (unconfirmed whether WeChat takes larger unsigned ids).
SCENE_ID_MAX = 2**31 - 1
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
BUSY_ERRCODES = frozenset({-1, 45009})  # system busy, API call quota reached: try again later


class WeChatError(DatongError):
    """WeChat refused a call: ``errcode`` and ``errmsg`` as WeChat sent them (secrets scrubbed).

    ``errcode`` is None when WeChat never answered. ``retryable`` says whether the same call may succeed
    later unchanged (the outbox retries those and gives up on the rest)."""

    code = "wechat"
    retryable = False

    def __init__(self, errcode: int | None, errmsg: str, *, field: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        head = "WeChat is unavailable" if errcode is None else f"WeChat error {errcode}"
        super().__init__(f"{head}: {errmsg}", field=field, errcode=errcode)


class WeChatUnavailable(WeChatError):
    """Network or HTTP failure, an answer that is not WeChat's JSON, system busy (-1) or quota (45009)."""

    retryable = True


class WeChatCredentialError(WeChatError):
    """``stable_token`` refused the appid, the secret or this server's IP (40013, 40125, 40164, ...)."""


class WeChatTokenError(WeChatError):
    """The access token was refused (40001, 40014, 42001) even after one refresh and one retry."""


class WeChatInvalidActionName(WeChatError):
    """40052: ``action_name`` is not one of the four QR code kinds."""


class WeChatInvalidActionInfo(WeChatError):
    """40053: ``action_info`` is wrong (a ``scene_str`` too long, a ``scene_id`` out of range, ...)."""


class WeChatQrQuotaExceeded(WeChatError):
    """45029: the account has made its 100,000 permanent QR codes."""


_ERRORS: dict[int, type[WeChatError]] = {
    40052: WeChatInvalidActionName,
    40053: WeChatInvalidActionInfo,
    45029: WeChatQrQuotaExceeded,
    **dict.fromkeys(TOKEN_ERRCODES, WeChatTokenError),
    **dict.fromkeys(BUSY_ERRCODES, WeChatUnavailable),
}


def error_for(errcode: int, errmsg: str) -> WeChatError:
    return _ERRORS.get(errcode, WeChatError)(errcode, errmsg)


class CachedToken(NamedTuple):
    value: str
    expires_at: datetime  # WeChat's expiry (tz-aware UTC); the client refreshes REFRESH_MARGIN earlier


class TokenCache(Protocol):
    """Where access tokens live between calls, keyed by appid. It may return an expired token: the
    client compares ``expires_at`` with its own clock."""

    def get(self, key: str) -> CachedToken | None: ...

    def set(self, key: str, value: str, *, expires_at: datetime) -> None: ...


class MemoryTokenCache:
    """A process-local, thread-safe ``TokenCache``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, CachedToken] = {}

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            return self._tokens.get(key)

    def set(self, key: str, value: str, *, expires_at: datetime) -> None:
        with self._lock:
            self._tokens[key] = CachedToken(value, expires_at)


# One refresh at a time per appid in this process, even across client instances sharing a cache.
_REFRESH_LOCKS: dict[str, threading.Lock] = {}
_REFRESH_LOCKS_GUARD = threading.Lock()


def _refresh_lock(appid: str) -> threading.Lock:
    with _REFRESH_LOCKS_GUARD:
        return _REFRESH_LOCKS.setdefault(appid, threading.Lock())


@dataclass(frozen=True)
class QrTicket:
    """A parametric QR code: ``url`` is what the code encodes (render it locally), ``image_url`` is
    WeChat's own rendering. ``expire_seconds`` is None for a permanent code."""

    scene: str | int
    permanent: bool
    ticket: str
    url: str
    expire_seconds: int | None
    image_url: str


@dataclass(frozen=True)
class MiniProgramPage:
    """Where a template message opens in a mini-program (wins over ``url`` where WeChat can open it)."""

    appid: str
    pagepath: str


@dataclass(frozen=True)
class WeChatUser:
    """The documented ``user/info`` fields; ``raw`` keeps the whole answer (nothing is dropped)."""

    openid: str
    subscribed: bool
    unionid: str | None
    subscribe_time: datetime | None
    subscribe_scene: str | None
    qr_scene: int | None
    qr_scene_str: str | None
    remark: str | None
    tagid_list: tuple[int, ...]
    language: str | None
    raw: Mapping[str, Any]


def qr_ticket_body(scene: str | int, *, permanent: bool, expire_seconds: int | None) -> dict[str, Any]:
    """The ``qrcode/create`` body, or ValidationFailed naming the field (nothing is sent then)."""
    if isinstance(scene, bool) or not isinstance(scene, str | int):
        raise ValidationFailed("scene must be a string (scene_str) or an integer (scene_id)", field="scene")
    if isinstance(scene, str):
        if not 1 <= len(scene) <= SCENE_STR_MAX:
            raise ValidationFailed(
                f"scene_str must be 1 to {SCENE_STR_MAX} characters, got {len(scene)}", field="scene"
            )
        info: dict[str, Any] = {"scene_str": scene}
        action = "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE"
    else:
        top = PERMANENT_SCENE_ID_MAX if permanent else SCENE_ID_MAX
        if not 1 <= scene <= top:
            kind = "permanent" if permanent else "temporary"
            raise ValidationFailed(f"a {kind} scene_id must be 1 to {top}, got {scene}", field="scene")
        info = {"scene_id": scene}
        action = "QR_LIMIT_SCENE" if permanent else "QR_SCENE"
    body: dict[str, Any] = {"action_name": action, "action_info": {"scene": info}}
    if permanent:
        if expire_seconds is not None:
            raise ValidationFailed(
                "a permanent QR code does not expire: leave it None", field="expire_seconds"
            )
    elif expire_seconds is not None:
        if isinstance(expire_seconds, bool) or not isinstance(expire_seconds, int):
            raise ValidationFailed("expire_seconds must be an integer", field="expire_seconds")
        if not 1 <= expire_seconds <= TEMPORARY_MAX_SECONDS:
            raise ValidationFailed(
                f"a temporary QR code lasts 1 to {TEMPORARY_MAX_SECONDS} seconds (30 days), "
                f"got {expire_seconds}",
                field="expire_seconds",
            )
        body["expire_seconds"] = expire_seconds
    # Temporary without expire_seconds: WeChat's default of 60 seconds applies.
    return body


def template_body(
    touser: str,
    template_id: str,
    data: Mapping[str, str],
    *,
    url: str | None,
    miniprogram: MiniProgramPage | None,
    client_msg_id: str | None,
) -> dict[str, Any]:
    """The ``message/template/send`` body, or ValidationFailed naming the field."""
    _require_text(touser, "touser")
    _require_text(template_id, "template_id")
    if not data:
        raise ValidationFailed("data must hold at least one keyword", field="data")
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise ValidationFailed("every data keyword must be a non-empty string", field="data")
        if not isinstance(value, str):
            raise ValidationFailed(f"the value of {key!r} must be a string", field=f"data.{key}")
    body: dict[str, Any] = {
        "touser": touser,
        "template_id": template_id,
        "data": {key: {"value": value} for key, value in data.items()},
    }
    if url is not None:
        _require_text(url, "url")
        body["url"] = url
    if miniprogram is not None:
        _require_text(miniprogram.appid, "miniprogram.appid")
        _require_text(miniprogram.pagepath, "miniprogram.pagepath")
        body["miniprogram"] = {"appid": miniprogram.appid, "pagepath": miniprogram.pagepath}
    if client_msg_id is not None:
        _require_text(client_msg_id, "client_msg_id")
        body["client_msg_id"] = client_msg_id
    return body


def _require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{field} must be a non-empty string", field=field)


class WeChatClient:
    """One official account (appid). Thread-safe; close it (or use ``with``) to release connections."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        base_url: str = API_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        token_cache: TokenCache | None = None,
        clock: Callable[[], datetime] = utcnow,
        timeout_seconds: float = 10.0,
        showqrcode_url: str = SHOWQRCODE_URL,
    ) -> None:
        if not appid or not secret:
            raise ConfigurationError("a WeChat client needs the account's appid and secret", field="appid")
        self.appid = appid
        self._secret = secret
        self._cache: TokenCache = token_cache if token_cache is not None else MemoryTokenCache()
        self._clock = clock
        self._showqrcode_url = showqrcode_url
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout_seconds)

    def __repr__(self) -> str:
        return f"WeChatClient(appid={self.appid!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WeChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the access token ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A token valid for at least ``REFRESH_MARGIN`` (from the cache, or fetched once)."""
        return self._token().value

    def _token(self) -> CachedToken:
        cached = self._cache.get(self.appid)
        if cached is not None and self._fresh(cached):
            return cached
        return self._refresh(stale=cached)

    def _fresh(self, token: CachedToken) -> bool:
        return self._clock() < token.expires_at - REFRESH_MARGIN

    def _refresh(self, *, stale: CachedToken | None) -> CachedToken:
        """Fetch a token unless another thread replaced ``stale`` while this one waited for the lock."""
        with _refresh_lock(self.appid):
            cached = self._cache.get(self.appid)
            if cached is not None and cached != stale and self._fresh(cached):
                return cached
            body = {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret}
            data = self._send("POST", "/cgi-bin/stable_token", body=body, params={})
            errcode, errmsg = _errcode(data), self._scrub(str(data.get("errmsg", "")))
            if errcode in BUSY_ERRCODES:
                raise WeChatUnavailable(errcode, errmsg)
            if errcode:
                raise WeChatCredentialError(errcode, errmsg)
            value, expires_in = data.get("access_token"), data.get("expires_in")
            if not isinstance(value, str) or not value or not isinstance(expires_in, int) or expires_in <= 0:
                raise WeChatUnavailable(None, "stable_token answered without access_token and expires_in")
            token = CachedToken(value, self._clock() + timedelta(seconds=expires_in))
            self._cache.set(self.appid, token.value, expires_at=token.expires_at)
            return token

    # --- calls -----------------------------------------------------------------------------------

    def create_qr_ticket(
        self, scene: str | int, *, permanent: bool, expire_seconds: int | None = None
    ) -> QrTicket:
        """A parametric QR ticket (``cgi-bin/qrcode/create``); validated before anything is sent."""
        body = qr_ticket_body(scene, permanent=permanent, expire_seconds=expire_seconds)
        data = self._call("POST", "/cgi-bin/qrcode/create", body=body)
        ticket, url = data.get("ticket"), data.get("url")
        if not isinstance(ticket, str) or not ticket or not isinstance(url, str):
            raise WeChatUnavailable(None, "qrcode/create answered without ticket and url")
        expires = data.get("expire_seconds")
        return QrTicket(
            scene=scene,
            permanent=permanent,
            ticket=ticket,
            url=url,
            expire_seconds=None if permanent or not isinstance(expires, int) else expires,
            image_url=f"{self._showqrcode_url}?ticket={quote(ticket, safe='')}",
        )

    def send_template(
        self,
        touser: str,
        template_id: str,
        data: Mapping[str, str],
        *,
        url: str | None = None,
        miniprogram: MiniProgramPage | None = None,
        client_msg_id: str | None = None,
    ) -> int:
        """Send a template message; returns WeChat's ``msgid``. ``data`` maps keyword → value.

        ``client_msg_id`` makes a resend within 10 minutes to the same openid a no-op at WeChat."""
        body = template_body(
            touser, template_id, data, url=url, miniprogram=miniprogram, client_msg_id=client_msg_id
        )
        answer = self._call("POST", "/cgi-bin/message/template/send", body=body)
        msgid = answer.get("msgid")
        if isinstance(msgid, bool) or not isinstance(msgid, int):
            raise WeChatUnavailable(None, "template/send answered without msgid")
        return msgid

    def user_info(self, openid: str, *, lang: str = "zh_CN") -> WeChatUser:
        """``cgi-bin/user/info`` for one follower (or a former one: ``subscribed`` is then False)."""
        _require_text(openid, "openid")
        data = self._call("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": lang})
        seconds = data.get("subscribe_time")
        tags = data.get("tagid_list")
        return WeChatUser(
            openid=str(data.get("openid", openid)),
            subscribed=data.get("subscribe") == 1,
            unionid=_text(data.get("unionid")),
            subscribe_time=datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, int) else None,
            subscribe_scene=_text(data.get("subscribe_scene")),
            qr_scene=data.get("qr_scene") if isinstance(data.get("qr_scene"), int) else None,
            qr_scene_str=_text(data.get("qr_scene_str")),
            remark=_text(data.get("remark")),
            tagid_list=tuple(tag for tag in tags if isinstance(tag, int)) if isinstance(tags, list) else (),
            language=_text(data.get("language")),
            raw=data,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call with the token; on a token error, refresh once and retry once."""
        token = self._token()
        data = self._send(method, path, body=body, params={**(params or {}), "access_token": token.value})
        if _errcode(data) in TOKEN_ERRCODES:
            token = self._refresh(stale=token)
            data = self._send(method, path, body=body, params={**(params or {}), "access_token": token.value})
        errcode = _errcode(data)
        if errcode:
            raise error_for(errcode, self._scrub(str(data.get("errmsg", "")), token.value))
        return data

    def _send(
        self, method: str, path: str, *, body: dict[str, Any] | None, params: dict[str, str]
    ) -> dict[str, Any]:
        token = params.get("access_token", "")
        # Serialised here, not by httpx, so Chinese text goes as UTF-8 rather than \\u escapes.
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if content is not None else {}
        try:
            response = self._http.request(method, path, params=params, content=content, headers=headers)
        except httpx.HTTPError as exc:
            # Not chained (``from None``): the cause carries the request URL, and so the token.
            raise WeChatUnavailable(None, self._scrub(f"{type(exc).__name__}: {exc}", token)) from None
        if response.status_code != 200:
            raise WeChatUnavailable(None, f"HTTP {response.status_code} from {path}")
        try:
            data = response.json()
        except ValueError:
            raise WeChatUnavailable(None, f"the answer from {path} is not JSON") from None
        if not isinstance(data, dict):
            raise WeChatUnavailable(None, f"the answer from {path} is not a JSON object")
        return data

    def _scrub(self, text: str, *tokens: str) -> str:
        for secret in (self._secret, *tokens):
            if secret:
                text = text.replace(secret, "***")
        return text


def _errcode(data: Mapping[str, Any]) -> int:
    code = data.get("errcode", 0)
    return code if isinstance(code, int) and not isinstance(code, bool) else -1


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
