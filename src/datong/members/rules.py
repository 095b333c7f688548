"""Survivorship: which source wins each attribute of the golden record. Pure logic.

A member's own declarations outrank what a platform infers: a store card filled in at the counter
(``members``) or a registration through the API outranks the mini-program, which outranks a WeChat
profile; orders never speak for the person (the receiver may be someone else). Within one rank the
newest record wins, because people correct their data over time. ``registered_at`` is the earliest
of all, and the home store is the store of the earliest card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNEL_RANK: dict[str, int] = {
    "members": 40,
    "api": 35,
    "miniprogram-members": 30,
    "wechat-fans": 20,
    "tmall-orders": 0,
    "jd-orders": 0,
}
DECLARED_ATTRIBUTES = ("name", "gender", "birthday", "province", "city", "district", "nickname")


@dataclass(frozen=True)
class Fact:
    """One source record's view of the person."""

    record_id: str
    channel: str
    person: dict[str, Any]
    seen_at: str  # ISO time the record was stored: orders "newest"

    @property
    def rank(self) -> int:
        return CHANNEL_RANK.get(self.channel, 10)


@dataclass(frozen=True)
class Choice:
    value: Any
    record_id: str


def _best(facts: list[Fact], attribute: str) -> Choice | None:
    present = [f for f in facts if f.person.get(attribute) not in (None, "")]
    if not present:
        return None
    winner = max(present, key=lambda f: (f.rank, f.seen_at, f.record_id))
    return Choice(winner.person[attribute], winner.record_id)


def choose_golden(facts: list[Fact]) -> dict[str, Choice]:
    """The winning value and its record for every attribute that any fact gives."""
    out: dict[str, Choice] = {}
    declared = [f for f in facts if f.rank > 0]
    for attribute in DECLARED_ATTRIBUTES:
        choice = _best(declared, attribute)
        if choice is not None:
            out[attribute] = choice
    if "name" in out:
        out["name_pinyin"] = Choice(
            next(f.person.get("name_pinyin") for f in declared if f.record_id == out["name"].record_id),
            out["name"].record_id,
        )
    registered = [f for f in facts if f.person.get("registered_at")]
    if registered:
        first = min(registered, key=lambda f: (f.person["registered_at"], f.record_id))
        out["registered_at"] = Choice(first.person["registered_at"], first.record_id)
    carded = [f for f in declared if f.person.get("store_code")]
    if carded:
        first = min(carded, key=lambda f: (f.person.get("registered_at") or "9999", f.record_id))
        out["store_code"] = Choice(first.person["store_code"], first.record_id)
    for attribute in ("address", "id_number"):
        holders = [f for f in declared if f.person.get(f"has_{attribute}")]
        if holders:
            winner = max(holders, key=lambda f: (f.rank, f.seen_at, f.record_id))
            out[attribute] = Choice(None, winner.record_id)  # the value is decrypted by the caller
    return out


def choose_phone(phones: list[tuple[str, str, str]]) -> str | None:
    """``phones`` are (identity id, channel that brought it, created ISO time); returns the winner's id."""
    if not phones:
        return None
    return max(phones, key=lambda p: (CHANNEL_RANK.get(p[1], 10), p[2], p[0]))[0]


def name_keys(facts: list[Fact]) -> list[str]:
    return sorted({f.person["name_pinyin"] for f in facts if f.rank > 0 and f.person.get("name_pinyin")})
