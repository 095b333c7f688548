"""Lucky draws: outcomes follow the odds, stock is never oversold, and an auditor recomputes every one."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from datong.coupons.draws import Mismatch, Prize, check_prizes, commitment, replay, run

SEED = bytes(range(32))  # fixed, so every run of this test sees the same 100,000 outcomes
PRIZES = [
    Prize("grand", 1, None),
    Prize("coupon-50", 9, None),
    Prize("coupon-20", 90, None),
    Prize("none", 900, None),
]


def test_100000_draws_match_the_odds_within_five_standard_deviations() -> None:
    entries = 100_000
    counts = Counter(run(SEED, "draw-1", PRIZES, entries))
    total = sum(p.weight for p in PRIZES)
    for prize in PRIZES:
        p = prize.weight / total
        expected, sigma = entries * p, math.sqrt(entries * p * (1 - p))
        assert abs(counts[prize.code] - expected) <= 5 * sigma, (prize.code, counts[prize.code], expected)
    assert sum(counts.values()) == entries


def test_stock_is_never_oversold_and_its_odds_go_to_the_rest() -> None:
    prizes = [Prize("bag", 100, 10), Prize("lipstick", 100, 250), Prize("none", 800, None)]
    counts = Counter(run(SEED, "draw-2", prizes, 100_000))
    assert (counts["bag"], counts["lipstick"]) == (10, 250)
    assert counts["none"] == 100_000 - 260


def test_the_auditor_recomputes_every_outcome_and_finds_a_changed_one() -> None:
    published = commitment(SEED)
    won = run(SEED, "draw-3", PRIZES, 2_000)
    log = list(enumerate(won, start=1))
    assert replay(SEED, published, "draw-3", PRIZES, log) == []
    position = next(i for i, code in enumerate(won) if code == "none")
    tampered = [*log[:position], (position + 1, "grand"), *log[position + 1 :]]
    assert replay(SEED, published, "draw-3", PRIZES, tampered) == [Mismatch(position + 1, "grand", "none")]
    with pytest.raises(ValueError, match="does not match the commitment"):
        replay(bytes(32), published, "draw-3", PRIZES, log)
    with pytest.raises(ValueError, match="numbered 1, 2, 3"):
        replay(SEED, published, "draw-3", PRIZES, [log[1], log[0], *log[2:]])


def test_another_draw_or_seed_gives_other_outcomes() -> None:
    assert run(SEED, "draw-4", PRIZES, 200) != run(SEED, "draw-5", PRIZES, 200)
    assert run(SEED, "draw-4", PRIZES, 200) != run(bytes(32), "draw-4", PRIZES, 200)


@pytest.mark.parametrize(
    ("prizes", "reason"),
    [
        ([Prize("a", 1, None), Prize("a", 2, None)], "share a code"),
        ([Prize("a", 0, None)], "positive weight"),
        ([Prize("a", 1, 5)], "unlimited stock"),
        ([Prize("a", 1, -1), Prize("none", 1, None)], "not negative"),
    ],
)
def test_a_bad_prize_table_says_why(prizes: list[Prize], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_prizes(prizes)
