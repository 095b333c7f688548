"""Coupon codes a cashier can read out and type: 12 random characters and a check character.

The alphabet is Crockford's base32 (digits and letters without I, L, O and U), so a code has no
characters that look alike, and what a person types is read leniently: lower case, spaces and hyphens
are fine, O is read as 0 and I or L as 1. Twelve characters carry 60 random bits: with 16 million live
coupons a guess hits one about once in 70 billion tries. The check character (Luhn mod 32) catches
every mistyped character, and every swap of two neighbours but 0 with Z, before the database is asked.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datong.core.crypto import Keyring

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY_LENGTH = 12
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
_LENIENT = str.maketrans({"O": "0", "I": "1", "L": "1"})


class BadCode(ValueError):
    """Not a coupon code: the message says why, without repeating the code."""


def _check_character(body: str) -> str:
    """Luhn mod N over the alphabet (N = 32), from the rightmost character."""
    n = len(ALPHABET)
    total = 0
    factor = 2
    for char in reversed(body):
        addend = factor * _VALUE[char]
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return body + _check_character(body)


def normalize_code(text: str) -> str:
    """The code as stored, from what a person typed or a scanner read; raises :class:`BadCode`."""
    code = text.strip().upper().replace("-", "").replace(" ", "").translate(_LENIENT)
    if len(code) != BODY_LENGTH + 1:
        raise BadCode(f"a coupon code has {BODY_LENGTH + 1} characters")
    if any(char not in _VALUE for char in code):
        raise BadCode("a coupon code has only digits and the letters A-Z without I, L, O and U")
    if _check_character(code[:-1]) != code[-1]:
        raise BadCode("this is not a valid coupon code: a character is wrong or two are swapped")
    return code


def display_code(code: str) -> str:
    """In groups of four, as printed and read out: ``7KQ2-M9XD-4HTP-R``."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


# --- the member page's short-lived code ----------------------------------------------------------------
# A screenshot of a coupon's code must not work for long: the member page shows a QR code of
# ``<coupon id>.<window>.<mac>``, where the window is the minute it was made and the MAC binds both to the
# brand's key. It names the coupon by its id, never by its printed code, which the POS would take for as
# long as the coupon lives. The POS may scan it for DYNAMIC_STEP_SECONDS, plus one step of clock difference.
DYNAMIC_STEP_SECONDS = 60
DYNAMIC_PURPOSE = "coupon-dynamic"


def dynamic_signer(keyring: Keyring, tenant_id: str) -> Callable[[str], str]:
    """The brand's ``sign`` for :func:`dynamic_payload` and :func:`read_dynamic`: one key for making the
    member page's code and for reading it at the POS, and no other use."""

    def sign(text: str) -> str:
        return keyring.sign(text, tenant_id=tenant_id, purpose=DYNAMIC_PURPOSE)

    return sign


def dynamic_payload(coupon_id: str, *, at_epoch: float, sign: Callable[[str], str]) -> str:
    """What the member page encodes in its QR code now, for the coupon ``coupon_id`` (its id, not its
    code). ``sign`` is the brand's keyed MAC (hex)."""
    window = int(at_epoch // DYNAMIC_STEP_SECONDS)
    return f"{coupon_id}.{window}.{sign(f'{coupon_id}.{window}')[:16]}"


def read_dynamic(payload: str, *, at_epoch: float, sign: Callable[[str], str]) -> str:
    """The coupon id in a scanned dynamic payload, if it is genuine and fresh; raises :class:`BadCode`."""
    parts = payload.strip().split(".")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise BadCode("not a coupon's dynamic code")
    coupon_id, window_text, mac = parts
    expected = sign(f"{coupon_id}.{window_text}")[:16]
    # As bytes: a scanner may send anything, and comparing text refuses what is not ASCII.
    if not hmac.compare_digest(mac.encode("utf-8"), expected.encode("utf-8")):
        raise BadCode("not a coupon's dynamic code")
    now = int(at_epoch // DYNAMIC_STEP_SECONDS)
    if not now - 1 <= int(window_text) <= now:
        raise BadCode("this dynamic code has expired: refresh the member page")
    return coupon_id
