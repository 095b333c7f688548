"""Coupon codes a cashier can read out and type: 12 random characters and a check character.

The alphabet is Crockford's base32 (digits and letters without I, L, O and U), so a code has no
characters that look alike, and what a person types is read leniently: lower case, spaces and hyphens
are fine, O is read as 0 and I or L as 1. Twelve characters carry 60 random bits: with 16 million live
coupons a guess hits one about once in 70 billion tries. The check character (Luhn mod 32) catches
every mistyped character, and every swap of two neighbours but 0 with Z, before the database is asked.
"""

from __future__ import annotations

import secrets

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
