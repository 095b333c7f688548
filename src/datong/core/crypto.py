"""Encryption at rest and blind indexes for personal data.

Phones, ID numbers and addresses are stored as AES-GCM ciphertext whose associated data binds them to
their tenant, table, row and column: a value copied to another row no longer decrypts. Exact lookups go
through a keyed HMAC (a blind index) so that the database never holds the plaintext.

Both keys are derived per tenant (HKDF) from one master key that lives outside the database
(``DATONG_MASTER_KEY`` or ``DATONG_KEY_FILE``). After a rotation the previous master key is still
tried for reading; blind indexes always use the current key (re-index after a rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from datong.core.config import Settings
from datong.core.errors import ConfigurationError

_VERSION = 1
_NONCE_BYTES = 12


def generate_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def _decode_key(text: str, origin: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError(f"{origin} is not valid base64", field=origin) from exc
    if len(raw) != 32:
        raise ConfigurationError(f"{origin} must decode to 32 bytes, got {len(raw)}", field=origin)
    return raw


def _derive(master: bytes, purpose: str, tenant_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"datong:{purpose}:{tenant_id}".encode()
    ).derive(master)


@dataclass
class Keyring:
    """The master keys and the per-tenant keys derived from them (cached: HKDF per value is wasteful)."""

    master: bytes
    previous: bytes | None = None
    _aead: dict[tuple[bytes, str], AESGCM] = field(default_factory=dict, repr=False)
    _index: dict[str, bytes] = field(default_factory=dict, repr=False)
    _macs: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if settings.master_key:
            master = _decode_key(settings.master_key, "DATONG_MASTER_KEY")
        elif settings.key_file:
            if not settings.key_file.exists():
                raise ConfigurationError(
                    f"key file {settings.key_file} does not exist; create one with `datong keys generate`",
                    field="DATONG_KEY_FILE",
                )
            master = _decode_key(settings.key_file.read_text(), "DATONG_KEY_FILE")
        else:
            raise ConfigurationError(
                "no encryption key: set DATONG_MASTER_KEY or DATONG_KEY_FILE "
                "(create one with `datong keys generate --out FILE`)",
                field="DATONG_MASTER_KEY",
            )
        previous = (
            _decode_key(settings.previous_master_key, "DATONG_PREVIOUS_MASTER_KEY")
            if settings.previous_master_key
            else None
        )
        return cls(master=master, previous=previous)

    @staticmethod
    def _fingerprint(master: bytes) -> bytes:
        return hashlib.sha256(b"datong-key-id" + master).digest()[:4]

    def _cipher(self, master: bytes, tenant_id: str) -> AESGCM:
        key = (master, tenant_id)
        cipher = self._aead.get(key)
        if cipher is None:
            cipher = self._aead[key] = AESGCM(_derive(master, "data", tenant_id))
        return cipher

    @staticmethod
    def _aad(tenant_id: str, table: str, row_id: str, column: str) -> bytes:
        return f"{tenant_id}|{table}|{row_id}|{column}".encode()

    def encrypt(self, plaintext: str, *, tenant_id: str, table: str, row_id: str, column: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher(self.master, tenant_id).encrypt(
            nonce, plaintext.encode("utf-8"), self._aad(tenant_id, table, row_id, column)
        )
        return bytes([_VERSION]) + self._fingerprint(self.master) + nonce + sealed

    def decrypt(self, blob: bytes, *, tenant_id: str, table: str, row_id: str, column: str) -> str:
        if not blob or blob[0] != _VERSION:
            raise ConfigurationError("ciphertext of an unknown version")
        key_id, nonce, sealed = blob[1:5], blob[5 : 5 + _NONCE_BYTES], blob[5 + _NONCE_BYTES :]
        for master in (self.master, self.previous):
            if master is not None and self._fingerprint(master) == key_id:
                plain = self._cipher(master, tenant_id).decrypt(
                    nonce, sealed, self._aad(tenant_id, table, row_id, column)
                )
                return plain.decode("utf-8")
        raise ConfigurationError("ciphertext was sealed with a key this deployment does not have")

    def sign(self, text: str, *, tenant_id: str, purpose: str) -> str:
        """A keyed MAC (hex) of ``text`` for one purpose, e.g. a coupon's short-lived code: each purpose
        and brand has its own key, so one signature is never valid for another use."""
        key = self._macs.get((purpose, tenant_id))
        if key is None:
            key = self._macs[(purpose, tenant_id)] = _derive(self.master, f"mac:{purpose}", tenant_id)
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def blind_index(self, value: str, *, tenant_id: str, kind: str) -> str:
        """A keyed hash for exact lookup. ``kind`` keeps a phone and an ID number with equal digits apart."""
        key = self._index.get(tenant_id)
        if key is None:
            key = self._index[tenant_id] = _derive(self.master, "index", tenant_id)
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def write_key_file(path: Path) -> str:
    """Create a new key file readable by its owner only. Refuses to overwrite an existing key."""
    if path.exists():
        raise ConfigurationError(f"{path} exists; refusing to overwrite a key", field="out")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_master_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
