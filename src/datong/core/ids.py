"""Opaque, roughly time-ordered ids.

Ids never reveal volume (no sequences) but keep B-tree inserts local: 48 bits of milliseconds then 80
random bits, written in Crockford base32, behind a short prefix that tells a person what kind of object
an id names (``mem_``, ``src_`` ...).
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
