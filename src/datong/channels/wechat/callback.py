"""WeChat official-account server callback: signatures, safe mode (AES) and safe XML parsing.

Pure code, no database and no I/O: the endpoint hands it the query parameters and the body, and gets a
:class:`Message` back or one :class:`CallbackError`. The facts come from ``channels.md`` ("WeChat
official account: server callback"); ``docs/wechat-callback.md`` explains the choices.

- :func:`verify_url` answers WeChat's GET check (``echostr``).
- :func:`unwrap` authenticates and opens a POST in plain, compatible or safe mode, then parses it.
- :func:`dedupe_key` names a message so that WeChat's retries (same push up to three times) collapse.
- :func:`encrypted_reply` wraps a passive reply for safe mode; otherwise answer :data:`SUCCESS`.

Errors (all subclasses of :class:`CallbackError`, itself a datong domain error with ``field``):
:class:`BadSignature` (not from WeChat: answer 401/403), :class:`BadMessage` (hostile or malformed
XML, a missing field: 400), :class:`DecryptError` (safe-mode ciphertext that no configured key opens).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import defusedxml
import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from datong.core.errors import ConfigurationError, DatongError, Unauthenticated, ValidationFailed

# WeChat's pushes are a few hundred bytes; 64 KiB leaves room for long texts and bounds parsing work.
MAX_BODY_BYTES: Final = 64 * 1024
# What ends WeChat's retries when there is no passive reply (an empty body does too).
SUCCESS: Final = b"success"

# Event names as ``Message.event`` holds them: WeChat mixes cases (``subscribe``, ``SCAN``), so lower.
SUBSCRIBE: Final = "subscribe"
UNSUBSCRIBE: Final = "unsubscribe"
SCAN: Final = "scan"
LOCATION: Final = "location"
CLICK: Final = "click"
VIEW: Final = "view"
TEMPLATE_SEND_JOB_FINISH: Final = "templatesendjobfinish"
QR_SCENE_PREFIX: Final = "qrscene_"

_KEY_CHARS = re.compile(r"[A-Za-z0-9+/]{43}")
_UINT = re.compile(r"[0-9]{1,10}")  # ASCII seconds (to 2286); int() would take any script's digits
_DECIMAL = re.compile(r"-?[0-9]{1,4}(\.[0-9]{1,20})?")  # float() would also take nan, 1e9, 1_0
_BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
_HEADER = 20  # 16 random bytes + 4-byte big-endian length


class CallbackError(DatongError):
    """A callback request that must not be acted on; ``message`` says why, ``field`` names what."""


class BadSignature(CallbackError, Unauthenticated):
    """``signature`` or ``msg_signature`` is missing or wrong: the request is not from WeChat."""


class BadMessage(CallbackError, ValidationFailed):
    """The body is not the flat ``<xml>`` WeChat sends: too big, malformed, a DTD or entity (hostile
    XML), nested or repeated elements, or a required field missing or malformed."""


class DecryptError(CallbackError, ValidationFailed):
    """Safe-mode ciphertext that no configured EncodingAESKey opens: not base64, bad length or padding,
    a length field past the end, or another account's appid."""


def _sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, timestamp: str, nonce: str, signature: str) -> bool:
    """Whether ``signature`` is SHA-1 hex of the sorted, joined token, timestamp and nonce (the GET
    check and every POST), compared in constant time."""
    expected = _sha1_sorted(token, timestamp, nonce).encode("ascii")
    return hmac.compare_digest(expected, signature.lower().encode("utf-8"))


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """Safe mode's ``msg_signature``: SHA-1 hex of the sorted, joined token, timestamp, nonce and the
    ``Encrypt`` text."""
    return _sha1_sorted(token, timestamp, nonce, encrypt)


class SafeModeCipher:
    """WeChat's safe-mode scheme for one account: AES-256-CBC, IV = the key's first 16 bytes, PKCS#7
    padding to 32 bytes, plaintext = 16 random bytes + 4-byte big-endian length + XML + appid.

    ``encoding_aes_keys`` are the account's EncodingAESKey settings (43 characters each), the current
    one first, then the previous one: after a rotation in the WeChat console, messages already under
    way still open. Replies are always encrypted with the current key.
    """

    def __init__(self, encoding_aes_keys: Sequence[str], appid: str) -> None:
        if isinstance(encoding_aes_keys, str):
            raise ConfigurationError(
                "EncodingAESKey: give a list of keys (the current one first), not one string",
                field="encoding_aes_keys",
            )
        if not encoding_aes_keys:
            raise ConfigurationError("EncodingAESKey: no key is configured", field="encoding_aes_keys")
        if not appid.strip():
            raise ConfigurationError("the account's appid is empty", field="appid")
        self._keys = tuple(_aes_key(key, index) for index, key in enumerate(encoding_aes_keys))
        self._appid = appid.encode("utf-8")

    def decrypt(self, encrypt_b64: str) -> bytes:
        """The XML inside an ``Encrypt`` text; each key is tried in order. Raises :class:`DecryptError`."""
        try:
            data = base64.b64decode(encrypt_b64.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptError("Encrypt is not base64", field="Encrypt") from exc
        if not data or len(data) % _BLOCK:
            raise DecryptError(
                f"Encrypt holds {len(data)} bytes; expected a non-zero multiple of {_BLOCK}", field="Encrypt"
            )
        reasons = []
        for index, key in enumerate(self._keys):
            decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
            opened = self._open(decryptor.update(data) + decryptor.finalize())
            if isinstance(opened, bytes):
                return opened
            reasons.append(f"{_which(index)} key: {opened}")
        raise DecryptError(f"no EncodingAESKey opens Encrypt ({'; '.join(reasons)})", field="Encrypt")

    def _open(self, padded: bytes) -> bytes | str:
        """The XML, or why this key does not open the message (as text, to try the next key)."""
        pad = padded[-1]
        if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
            return "bad padding"
        plain = padded[:-pad]
        if len(plain) < _HEADER:
            return "too short"
        (length,) = struct.unpack(">I", plain[16:_HEADER])
        if _HEADER + length > len(plain):
            return f"length field {length} runs past the end"
        if plain[_HEADER + length :] != self._appid:
            return "another appid"
        return plain[_HEADER : _HEADER + length]

    def encrypt(self, xml: bytes, *, random16: bytes | None = None) -> str:
        """``xml`` as an ``Encrypt`` text under the current key. ``random16`` (16 bytes) is for tests;
        by default it comes from the OS."""
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise ValueError(f"random16 must be 16 bytes, got {len(prefix)}")
        plain = prefix + struct.pack(">I", len(xml)) + xml + self._appid
        pad = _BLOCK - len(plain) % _BLOCK
        key = self._keys[0]
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        data = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(data).decode("ascii")


def _which(index: int) -> str:
    return "current" if index == 0 else "previous" if index == 1 else f"previous #{index}"


def _aes_key(key: str, index: int) -> bytes:
    setting = f"encoding_aes_keys[{index}]"
    if not _KEY_CHARS.fullmatch(key):
        raise ConfigurationError(
            f"the {_which(index)} EncodingAESKey must be 43 letters and digits as the WeChat console "
            f"shows it; got {len(key)} characters{'' if key.isascii() else ', not all ASCII'}",
            field=setting,
        )
    return base64.b64decode(key + "=")  # 43 characters + "=" is always 32 bytes


@dataclass(frozen=True, slots=True)
class Message:
    """One pushed message or event, typed. Identifiers and the event are stripped of surrounding
    blanks; ``raw`` keeps every field exactly as sent (unknown ones too)."""

    to_user: str  # the account's original id (gh_…)
    from_user: str  # the user's openid
    create_time: int  # seconds since 1970, UTC
    msg_type: str  # lower case: "event", "text", …
    event: str | None  # lower case (SUBSCRIBE, SCAN, …) for msg_type "event"
    event_key: str | None  # qrscene_<scene> (subscribe), scene (SCAN), menu key (CLICK), URL (VIEW)
    ticket: str | None  # the parametric QR code's ticket
    latitude: float | None
    longitude: float | None
    precision: float | None
    msg_id: str | None  # MsgId (ordinary messages) or MsgID (TEMPLATESENDJOBFINISH), opaque
    status: str | None  # TEMPLATESENDJOBFINISH: "success", "failed:user block", "failed: system failed"
    menu_id: str | None  # VIEW
    scene: str | None  # the QR scene: EventKey less "qrscene_" (subscribe), bare EventKey (SCAN)
    raw: Mapping[str, str] = field(hash=False)  # read-only; left out of the hash (a mapping has none)

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.create_time, UTC)


def _fields(body: bytes) -> dict[str, str]:
    """The children of a flat ``<xml>`` as name → text. Anything else is a :class:`BadMessage`."""
    if not body.strip():
        raise BadMessage("the body is empty", field="body")
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES}", field="body")
    try:
        # No DTD at all: that also stops every entity (billion laughs) and external reference.
        root: Any = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        reason = f"a DTD, entity or external reference is refused ({type(exc).__name__})"
        raise BadMessage(reason, field="body") from exc
    except (ET.ParseError, ValueError) as exc:  # ValueError: e.g. an unknown encoding
        raise BadMessage(f"the body is not well-formed XML: {exc}", field="body") from exc
    if root.tag != "xml" or root.attrib or (root.text or "").strip():
        raise BadMessage("expected <xml> without attributes or text around its fields", field="body")
    out: dict[str, str] = {}
    for child in root:
        name = child.tag if isinstance(child.tag, str) else ""
        if not name or "{" in name or child.attrib or len(child) or (child.tail or "").strip():
            raise BadMessage(f"field <{name}> must be a plain element holding only text", field=name)
        if name in out:
            raise BadMessage(f"field <{name}> appears twice", field=name)
        out[name] = child.text or ""
    return out


def _opt(raw: Mapping[str, str], name: str) -> str | None:
    value = raw.get(name, "").strip()
    return value or None


def _required(raw: Mapping[str, str], name: str) -> str:
    value = _opt(raw, name)
    if value is None:
        raise BadMessage(f"<{name}> is missing or empty", field=name)
    return value


def _coordinate(raw: Mapping[str, str], name: str, limit: float) -> float | None:
    text = _opt(raw, name)
    if text is None:
        return None
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not -limit <= value <= limit:
        raise BadMessage(f"<{name}> is {text!r}; expected a decimal number within ±{limit:g}", field=name)
    return value


def _msg_id(raw: Mapping[str, str]) -> str | None:
    lower, upper = _opt(raw, "MsgId"), _opt(raw, "MsgID")
    if lower is not None and upper is not None and lower != upper:
        raise BadMessage(f"<MsgId> {lower!r} and <MsgID> {upper!r} disagree", field="MsgId")
    return lower or upper


def _scene(event: str | None, event_key: str | None) -> str | None:
    if event_key is None:
        return None
    if event == SUBSCRIBE and event_key.startswith(QR_SCENE_PREFIX):
        return event_key[len(QR_SCENE_PREFIX) :] or None
    return event_key if event == SCAN else None


def _message(raw: Mapping[str, str]) -> Message:
    to_user, from_user = _required(raw, "ToUserName"), _required(raw, "FromUserName")
    create_time = _required(raw, "CreateTime")
    if not _UINT.fullmatch(create_time):
        raise BadMessage(f"<CreateTime> is {create_time!r}; expected whole seconds", field="CreateTime")
    msg_type = _required(raw, "MsgType").lower()
    event = (_required(raw, "Event") if msg_type == "event" else _opt(raw, "Event") or "").lower() or None
    event_key = _opt(raw, "EventKey")
    return Message(
        to_user=to_user,
        from_user=from_user,
        create_time=int(create_time),
        msg_type=msg_type,
        event=event,
        event_key=event_key,
        ticket=_opt(raw, "Ticket"),
        latitude=_coordinate(raw, "Latitude", 90),
        longitude=_coordinate(raw, "Longitude", 180),
        precision=_coordinate(raw, "Precision", 1e6),
        msg_id=_msg_id(raw),
        status=_opt(raw, "Status"),
        menu_id=_opt(raw, "MenuId"),
        scene=_scene(event, event_key),
        raw=MappingProxyType(dict(raw)),
    )


def message_from_fields(raw: Mapping[str, str]) -> Message:
    """A :class:`Message` again from the fields kept of one (``Message.raw``), e.g. in the inbox."""
    return _message(raw)


def parse_message(body: bytes) -> Message:
    """A plain (already decrypted) message body as a :class:`Message`. Raises :class:`BadMessage`
    for anything but a flat ``<xml>`` of at most :data:`MAX_BODY_BYTES` without DTD or entities."""
    return _message(_fields(body))


def dedupe_key(message: Message) -> str:
    """A fixed-length key that is the same for WeChat's retries of one push and differs between pushes.

    Events: account, FromUserName and CreateTime (channels.md), plus the event name and MsgID, so two
    different events of one user in the same second (a LOCATION report and a menu CLICK, two template
    sends finishing together) stay two; a retry repeats every one of these fields. Ordinary messages:
    account and MsgId (without one: sender, CreateTime and MsgType). Hashed, so it fits an index.
    """
    parts: list[str | int | None]
    if message.msg_type == "event":
        kind = "event"
        parts = [message.to_user, message.from_user, message.create_time, message.event, message.msg_id]
    elif message.msg_id is not None:
        kind, parts = "msg", [message.to_user, message.msg_id]
    else:
        kind, parts = "msg", [message.to_user, message.from_user, message.create_time, message.msg_type]
    digest = hashlib.sha256(json.dumps([kind, *parts]).encode("utf-8")).hexdigest()
    return f"{kind}:{digest}"


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BadSignature(f"the query parameter {name} is missing", field=name)
    return value


def _check_request(params: Mapping[str, str], token: str) -> tuple[str, str]:
    """Timestamp and nonce of a request whose ``signature`` is right; else :class:`BadSignature`."""
    if not token:
        raise ConfigurationError("the account's callback Token is empty", field="token")
    signature, timestamp, nonce = (_param(params, name) for name in ("signature", "timestamp", "nonce"))
    if not check_signature(token, timestamp, nonce, signature):
        raise BadSignature("signature does not match the Token", field="signature")
    return timestamp, nonce


def verify_url(params: Mapping[str, str], token: str) -> str:
    """WeChat's URL check (GET): ``echostr`` to answer as is, if ``signature`` is right."""
    _check_request(params, token)
    echostr = params.get("echostr")
    if echostr is None:
        raise BadMessage("the query parameter echostr is missing", field="echostr")
    return echostr


def is_safe_mode(params: Mapping[str, str]) -> bool:
    """Whether the request is encrypted (``encrypt_type=aes``), so a passive reply must be too."""
    return params.get("encrypt_type", "raw").lower() == "aes"


def unwrap(
    params: Mapping[str, str], body: bytes, *, token: str, cipher: SafeModeCipher | None = None
) -> Message:
    """The message of a POST, authenticated. Plain mode: ``signature`` over token, timestamp and nonce.
    Safe and compatible modes (``encrypt_type=aes``): that too, and ``msg_signature`` over ``Encrypt``,
    which is then decrypted with ``cipher`` (the plaintext fields of compatible mode are not trusted).
    The signatures are checked before any XML is parsed or decrypted."""
    timestamp, nonce = _check_request(params, token)
    encrypt_type = params.get("encrypt_type", "raw").lower()
    if encrypt_type not in ("raw", "aes"):
        raise BadMessage(f"encrypt_type {encrypt_type!r} is neither raw nor aes", field="encrypt_type")
    if not is_safe_mode(params):
        return parse_message(body)
    signature = params.get("msg_signature")
    if not signature:
        raise BadSignature("the query parameter msg_signature is missing", field="msg_signature")
    encrypt = _fields(body).get("Encrypt", "")
    if not encrypt.strip():
        raise BadMessage("<Encrypt> is missing or empty", field="Encrypt")
    expected = msg_signature(token, timestamp, nonce, encrypt).encode("ascii")
    if not hmac.compare_digest(expected, signature.lower().encode("utf-8")):
        raise BadSignature("msg_signature does not match the Token and Encrypt", field="msg_signature")
    if cipher is None:
        raise DecryptError("a safe-mode message came but no EncodingAESKey is configured", field="Encrypt")
    return parse_message(cipher.decrypt(encrypt))


def encrypted_reply(xml: bytes, *, token: str, cipher: SafeModeCipher, timestamp: str, nonce: str) -> bytes:
    """A safe-mode passive reply: ``xml`` encrypted, with MsgSignature, TimeStamp and Nonce."""
    if not _UINT.fullmatch(timestamp):
        raise ValueError(f"timestamp must be whole seconds, got {timestamp!r}")
    if not nonce:
        raise ValueError("nonce must not be empty")
    encrypt = cipher.encrypt(xml)
    root = ET.Element("xml")
    for name, text in (
        ("Encrypt", encrypt),
        ("MsgSignature", msg_signature(token, timestamp, nonce, encrypt)),
        ("TimeStamp", timestamp),
        ("Nonce", nonce),
    ):
        ET.SubElement(root, name).text = text
    return ET.tostring(root, encoding="unicode").encode("utf-8")
