"""An independent implementation of WeChat's callback scheme, written from channels.md for the tests.

It shares no code with ``datong.channels.wechat.callback``: AES comes from pycryptodome (datong uses
``cryptography``), the XML is written by hand with CDATA as WeChat writes it, and the signatures are
computed here. Tests use it to play WeChat (messages datong must open) and to check datong's replies.
The ``pad`` and ``length`` hooks build the malformed ciphertexts the negative tests need.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from xml.sax.saxutils import escape

from Crypto.Cipher import AES

TOKEN = "AAAAA"
APPID = "wx5823bf96d3bd56c7"
ACCOUNT = "gh_0123456789ab"  # the official account's original id (ToUserName)
# EncodingAESKey settings as the WeChat console shows them: 43 letters and digits.
KEY_CURRENT = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
KEY_PREVIOUS = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def sha1_signature(*parts: str) -> str:
    """channels.md: sort the strings, join them, SHA-1, hex."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def pkcs7_32(data: bytes) -> bytes:
    """PKCS#7 to a multiple of 32 bytes: 1 to 32 bytes, each holding the count."""
    count = 32 - len(data) % 32
    return data + chr(count).encode("latin-1") * count


class WeChatScheme:
    """One account's safe mode as WeChat runs it (channels.md, "Safe mode")."""

    def __init__(self, encoding_aes_key: str, appid: str = APPID) -> None:
        self.key = base64.b64decode(encoding_aes_key + "=")
        assert len(self.key) == 32
        self.appid = appid.encode()

    def encrypt(
        self,
        xml: bytes,
        random16: bytes = b"0123456789abcdef",
        *,
        pad: Callable[[bytes], bytes] = pkcs7_32,
        length: int | None = None,
    ) -> str:
        size = len(xml) if length is None else length
        plain = random16 + size.to_bytes(4, "big") + xml + self.appid
        sealed = AES.new(self.key, AES.MODE_CBC, iv=self.key[:16]).encrypt(pad(plain))
        return base64.b64encode(sealed).decode()

    def decrypt(self, encrypt: str) -> tuple[bytes, bytes]:
        """(the 16 random bytes, the XML) of an Encrypt text, checking padding, length and appid."""
        plain = AES.new(self.key, AES.MODE_CBC, iv=self.key[:16]).decrypt(base64.b64decode(encrypt))
        count = plain[-1]
        assert 1 <= count <= 32 and plain[-count:] == bytes([count]) * count, "bad padding"
        plain = plain[:-count]
        size = int.from_bytes(plain[16:20], "big")
        assert plain[20 + size :] == self.appid, "another appid"
        return plain[:16], plain[20 : 20 + size]


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml_message(fields: Mapping[str, str | int], *, use_cdata: bool = True) -> bytes:
    """``<xml>`` with one child per field, text in CDATA (as WeChat sends) or escaped; numbers bare."""
    parts = []
    for name, value in fields.items():
        text = str(value) if isinstance(value, int) else cdata(value) if use_cdata else escape(value)
        parts.append(f"<{name}>{text}</{name}>")
    return ("<xml>" + "".join(parts) + "</xml>").encode()


def signed_params(
    timestamp: str = "1714036504", nonce: str = "1514711492", token: str = TOKEN
) -> dict[str, str]:
    """The query string of a plain-mode POST (or the GET check, with echostr added)."""
    return {
        "signature": sha1_signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": "oUser",
    }


def safe_request(
    scheme: WeChatScheme,
    xml: bytes,
    *,
    random16: bytes = b"0123456789abcdef",
    timestamp: str = "1714036504",
    nonce: str = "1514711492",
    token: str = TOKEN,
    plaintext_too: Mapping[str, str | int] | None = None,
) -> tuple[dict[str, str], bytes]:
    """(query, body) of a safe-mode POST; ``plaintext_too`` makes it compatible mode."""
    encrypt = scheme.encrypt(xml, random16)
    params = signed_params(timestamp, nonce, token) | {
        "encrypt_type": "aes",
        "msg_signature": sha1_signature(token, timestamp, nonce, encrypt),
    }
    envelope = {**(plaintext_too or {"ToUserName": ACCOUNT}), "Encrypt": encrypt}
    return params, xml_message(envelope)
