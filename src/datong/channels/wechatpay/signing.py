"""WeChat Pay API v3 signatures and sensitive-field encryption (pure functions over ``cryptography``).

- A request is signed with the merchant's RSA private key, SHA256withRSA (PKCS#1 v1.5), over
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` where URL is the absolute path with its query string and
  BODY is the exact bytes sent (empty for a GET). The signature goes, base64, into ``Authorization:
  WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"``
  (``serial_no`` is the merchant API certificate's serial number).
- A response is signed by WeChat Pay over ``TIMESTAMP\\nNONCE\\nBODY\\n`` from the headers
  ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Signature`` with the key named by
  ``Wechatpay-Serial`` (a platform certificate serial, or a ``PUB_KEY_ID_…`` WeChat Pay public key id).
- Sensitive fields (a receiver's name) are RSAES-OAEP encrypted (SHA-1 and MGF1 with SHA-1) with the
  platform public key, base64, and the request carries ``Wechatpay-Serial`` naming that key.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from datong.core.errors import ConfigurationError

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
# Reject a response whose timestamp is further than this from our clock (replays). WeChat Pay's guides
# suggest five minutes (unconfirmed as a hard rule).
MAX_CLOCK_SKEW_SECONDS = 300


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def request_message(method: str, url: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign(private_key: RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(public_key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    method: str,
    url: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    """The ``Authorization`` header value for one request."""
    signature = sign(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def encrypt_sensitive(public_key: RSAPublicKey, plaintext: str) -> str:
    """A sensitive field as WeChat Pay expects it: RSAES-OAEP (SHA-1, MGF1/SHA-1), base64."""
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return base64.b64encode(public_key.encrypt(plaintext.encode("utf-8"), oaep)).decode("ascii")


def load_merchant_key(pem: bytes) -> RSAPrivateKey:
    """The merchant API private key (``apiclient_key.pem``)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("the merchant key is not a PEM private key", field="merchant_key") from exc
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError("the merchant key must be an RSA key", field="merchant_key")
    return key


def load_platform_key(pem: bytes) -> RSAPublicKey:
    """A WeChat Pay public key (``pub_key.pem``) or a platform certificate's key."""
    try:
        key: object = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"BEGIN CERTIFICATE" in pem
            else serialization.load_pem_public_key(pem)
        )
    except ValueError as exc:
        raise ConfigurationError(
            "the platform key is neither a PEM public key nor a certificate", field="platform_key"
        ) from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError("the platform key must be an RSA key", field="platform_key")
    return key
