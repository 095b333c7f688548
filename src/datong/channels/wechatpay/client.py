"""A signed WeChat Pay API v3 JSON client: every request signed, every answer verified before use.

Database-free and synchronous (httpx). One instance per merchant (``mchid``); thread-safe. The platform
keys are configured, not downloaded: ``platform_keys`` maps each ``Wechatpay-Serial`` the merchant
accepts (a ``PUB_KEY_ID_…`` WeChat Pay public key id, or platform certificate serials during a rotation)
to its RSA public key. Sensitive fields are encrypted with ``encrypt_key_id``'s key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from datong.channels.wechatpay import signing
from datong.channels.wechatpay.errors import (
    WeChatPayBadSignature,
    WeChatPayError,
    WeChatPayNotEnough,
    WeChatPayNotFound,
    WeChatPayRejected,
    WeChatPayUnavailable,
)
from datong.core.clock import utcnow
from datong.core.errors import ConfigurationError

API_BASE_URL = "https://api.mch.weixin.qq.com"
# 429 and these codes mean "later", whatever the status says.
_BUSY_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "RATELIMIT_EXCEED", "RATELIMIT_EXCEEDED"})


class WeChatPayClient:
    def __init__(
        self,
        mchid: str,
        *,
        merchant_serial_no: str,
        merchant_private_key: RSAPrivateKey,
        platform_keys: Mapping[str, RSAPublicKey],
        encrypt_key_id: str | None = None,
        base_url: str = API_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
        nonce: Callable[[], str] = signing.new_nonce,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not mchid or not merchant_serial_no:
            raise ConfigurationError(
                "WeChat Pay needs the mchid and the merchant certificate serial", field="mchid"
            )
        if not platform_keys:
            raise ConfigurationError("WeChat Pay needs at least one platform key", field="platform_keys")
        if encrypt_key_id is None and len(platform_keys) == 1:
            encrypt_key_id = next(iter(platform_keys))
        if encrypt_key_id is None or encrypt_key_id not in platform_keys:
            raise ConfigurationError(
                "encrypt_key_id must name one of the platform keys (required when there are several)",
                field="encrypt_key_id",
            )
        self.mchid = mchid
        self._serial_no = merchant_serial_no
        self._private_key = merchant_private_key
        self._platform_keys = dict(platform_keys)
        self.encrypt_key_id: str = encrypt_key_id
        self._clock = clock
        self._nonce = nonce
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout_seconds)

    def __repr__(self) -> str:
        return f"WeChatPayClient(mchid={self.mchid!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WeChatPayClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def encrypt(self, plaintext: str) -> str:
        return signing.encrypt_sensitive(self._platform_keys[self.encrypt_key_id], plaintext)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        encrypted: bool = False,
    ) -> dict[str, Any]:
        """Send one signed request; the verified JSON answer, or a ``WeChatPayError``.

        ``path`` must already be percent-encoded; ``encrypted`` says the body holds encrypted fields
        (the request then names the key in ``Wechatpay-Serial``)."""
        url = path + (f"?{urlencode(params)}" if params else "")
        content = (
            b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        headers = {
            "Accept": "application/json",
            "Authorization": signing.authorization(
                mchid=self.mchid,
                serial_no=self._serial_no,
                private_key=self._private_key,
                method=method,
                url=url,
                body=content,
                timestamp=int(self._clock().timestamp()),
                nonce=self._nonce(),
            ),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if encrypted:
            headers["Wechatpay-Serial"] = self.encrypt_key_id
        try:
            response = self._http.request(method, url, content=content or None, headers=headers)
        except httpx.HTTPError as exc:
            raise WeChatPayUnavailable(f"WeChat Pay is unavailable: {type(exc).__name__}: {exc}") from exc
        success = 200 <= response.status_code < 300
        # Every success must be signed. Whether error answers always are is unconfirmed: one that is
        # signed is checked; an unsigned one is believed only as far as "it did not happen".
        if success or "Wechatpay-Signature" in response.headers:
            self._verify(response)
        if not success:
            raise _error(response)
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise WeChatPayUnavailable(f"the answer to {method} {path} is not JSON") from None
        if not isinstance(data, dict):
            raise WeChatPayUnavailable(f"the answer to {method} {path} is not a JSON object")
        return data

    def _verify(self, response: httpx.Response) -> None:
        timestamp = response.headers.get("Wechatpay-Timestamp", "")
        nonce = response.headers.get("Wechatpay-Nonce", "")
        signature = response.headers.get("Wechatpay-Signature", "")
        serial = response.headers.get("Wechatpay-Serial", "")
        status = response.status_code
        if not (timestamp and nonce and signature and serial):
            raise WeChatPayBadSignature("the answer is not signed", status=status)
        key = self._platform_keys.get(serial)
        if key is None:
            raise WeChatPayBadSignature(
                f"the answer is signed with key {serial!r}, which is not configured", status=status
            )
        if (
            not timestamp.isdigit()
            or abs(self._clock().timestamp() - int(timestamp)) > signing.MAX_CLOCK_SKEW_SECONDS
        ):
            raise WeChatPayBadSignature(
                f"the answer's timestamp {timestamp!r} is over {signing.MAX_CLOCK_SKEW_SECONDS} s from now",
                status=status,
            )
        if not signing.verify(key, signing.response_message(timestamp, nonce, response.content), signature):
            raise WeChatPayBadSignature("the answer's signature does not verify", status=status)


def _error(response: httpx.Response) -> WeChatPayError:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = data.get("code") if isinstance(data.get("code"), str) else None
    message = f"WeChat Pay {status} {code or ''}: {data.get('message') or response.reason_phrase}".replace(
        " :", ":"
    )
    kind: type[WeChatPayError]
    if status >= 500 or status == 429 or code in _BUSY_CODES:
        kind = WeChatPayUnavailable
    elif code == "NOT_ENOUGH":
        kind = WeChatPayNotEnough
    elif status == 404 or code == "RESOURCE_NOT_EXISTS":
        kind = WeChatPayNotFound
    elif 400 <= status < 500:
        kind = WeChatPayRejected
    else:
        kind = WeChatPayUnavailable  # 1xx/3xx: not an answer we understand
    return kind(message, status=status, wechatpay_code=code)
