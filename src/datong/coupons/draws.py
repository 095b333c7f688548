"""Lucky draws whose every outcome an auditor can recompute.

Before a draw opens, datong draws a secret seed and publishes only its commitment, ``sha256(seed)``.
Entries are numbered in the order they are taken (1, 2, 3 … under the draw's lock). The outcome of entry
``n`` follows from the seed, the draw id, ``n`` and the prizes still in stock at that moment:

    roll = HMAC-SHA256(seed, "<draw id>:<n>:<attempt>") read as a 64-bit number, attempt 0, 1, …
    (a roll at or above the largest multiple of the total weight is thrown away, so every
    weight gets exactly its share), then the prize whose weight band holds ``roll mod total``.

"No prize" is a prize like the others (its stock unlimited). A prize whose stock is gone drops out of the
bands, so stock is never oversold. After the draw, the seed is revealed: anyone holding the prize table
and the entry log checks the commitment and replays every entry with :func:`replay`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SPACE = 2**64


@dataclass(frozen=True)
class Prize:
    code: str
    weight: int  # the odds: weight / sum of the weights still in stock
    stock: int | None = None  # None: unlimited (e.g. "no prize")


def new_seed() -> bytes:
    return secrets.token_bytes(32)


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def check_prizes(prizes: Sequence[Prize]) -> None:
    codes = [p.code for p in prizes]
    if len(set(codes)) != len(codes):
        raise ValueError("two prizes share a code")
    if any(p.weight <= 0 for p in prizes):
        raise ValueError("every prize has a positive weight")
    if any(p.stock is not None and p.stock < 0 for p in prizes):
        raise ValueError("a stock is not negative")
    if not any(p.stock is None for p in prizes):
        raise ValueError("one prize (no prize, at least) has unlimited stock, so every entry has an outcome")


def outcome(
    seed: bytes, draw_id: str, entry_no: int, prizes: Sequence[Prize], remaining: Mapping[str, int]
) -> str:
    """The prize code entry ``entry_no`` wins, given what is still in stock (``remaining``; prizes with
    unlimited stock are not in it)."""
    bands = [p for p in prizes if p.stock is None or remaining.get(p.code, 0) > 0]
    total = sum(p.weight for p in bands)
    limit = _SPACE - _SPACE % total
    attempt = 0
    while True:
        digest = hmac.new(seed, f"{draw_id}:{entry_no}:{attempt}".encode(), hashlib.sha256).digest()
        roll = int.from_bytes(digest[:8], "big")
        if roll < limit:
            break
        attempt += 1  # about once in 2**40 draws for any realistic total: never in practice
    point = roll % total
    for prize in bands:
        if point < prize.weight:
            return prize.code
        point -= prize.weight
    raise AssertionError("the bands cover the total")


def initial_stock(prizes: Sequence[Prize]) -> dict[str, int]:
    return {p.code: p.stock for p in prizes if p.stock is not None}


def run(seed: bytes, draw_id: str, prizes: Sequence[Prize], entries: int) -> list[str]:
    """Outcomes of entries 1..``entries`` in order, taking stock as it goes (a simulation, and the
    reference for :func:`replay`)."""
    check_prizes(prizes)
    remaining = initial_stock(prizes)
    won = []
    for entry_no in range(1, entries + 1):
        code = outcome(seed, draw_id, entry_no, prizes, remaining)
        if code in remaining:
            remaining[code] -= 1
        won.append(code)
    return won


@dataclass(frozen=True)
class Mismatch:
    entry_no: int
    recorded: str
    recomputed: str


def replay(
    seed: bytes,
    published_commitment: str,
    draw_id: str,
    prizes: Sequence[Prize],
    log: Sequence[tuple[int, str]],
) -> list[Mismatch]:
    """An auditor's check of a draw log ``[(entry number, recorded prize), …]``: the seed must match the
    commitment published before the draw, the entries must be numbered 1, 2, 3 … and every recorded
    prize must be the one recomputed. Returns the entries that disagree (none means the draw was fair)."""
    if commitment(seed) != published_commitment:
        raise ValueError("the seed does not match the commitment published before the draw")
    numbers = [n for n, _ in log]
    if numbers != list(range(1, len(log) + 1)):
        raise ValueError("the log's entries are not numbered 1, 2, 3 … in order")
    expected = run(seed, draw_id, prizes, len(log))
    return [Mismatch(n, code, again) for (n, code), again in zip(log, expected, strict=True) if code != again]


def replay_published(published: Mapping[str, Any]) -> list[Mismatch]:
    """:func:`replay` on a closed draw's audit as datong publishes it (``GET /api/v1/draws/{code}/audit``,
    or ``datong draws audit CODE --json FILE``): ``draw_id``, ``commitment``, ``seed`` (hex), ``prizes``
    (``position``, ``code``, ``weight``, ``stock``) and ``log`` (``[entry number, prize code]`` pairs).
    Needs nothing but this file: an auditor runs it away from datong's database and keys."""
    try:
        seed_hex = published["seed"]
        if not seed_hex:
            raise ValueError("the seed is revealed when the draw closes: this draw is not closed yet")
        prizes = [
            Prize(str(p["code"]), int(p["weight"]), None if p["stock"] is None else int(p["stock"]))
            for p in sorted(published["prizes"], key=lambda p: int(p["position"]))
        ]
        log = [(int(n), str(code)) for n, code in published["log"]]
        return replay(
            bytes.fromhex(seed_hex), str(published["commitment"]), str(published["draw_id"]), prizes, log
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a draw's published audit: {exc!r} is missing or malformed") from None
