"""Lucky draws: outcomes follow the odds, stock is never oversold, and an auditor recomputes every one."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from datong.coupons.draws import Mismatch, Prize, check_prizes, commitment, replay, replay_published, run

SEED = bytes(range(32))  # fixed, so every run of this test sees the same 100,000 outcomes
PRIZES = [
    Prize("grand", 1, None),
    Prize("coupon-50", 9, None),
    Prize("coupon-20", 90, None),
    Prize("none", 900, None),
]


ENTRIES = 100_000


@pytest.fixture(scope="module")
def counts() -> Counter[str]:
    """The outcomes of 100,000 entries on PRIZES (unlimited stock), counted once for the module."""
    return Counter(run(SEED, "draw-1", PRIZES, ENTRIES))


def test_100000_draws_match_the_odds_within_five_standard_deviations(counts: Counter[str]) -> None:
    """The bound, per prize: its count is within 5 standard deviations of the binomial expectation,
    |count - n p| <= 5 sqrt(n p (1 - p)) with n = 100,000 and p = weight / total weight. A fair scheme
    with a random seed breaks it for a given prize with probability about 5.7e-7 (normal approximation;
    the rarest prize, p = 1/1000, expects 100 wins, where it holds well), so below 2.3e-6 for the four.
    The seed is fixed, so the test is deterministic."""
    entries = ENTRIES
    total = sum(p.weight for p in PRIZES)
    for prize in PRIZES:
        p = prize.weight / total
        expected, sigma = entries * p, math.sqrt(entries * p * (1 - p))
        assert abs(counts[prize.code] - expected) <= 5 * sigma, (prize.code, counts[prize.code], expected)
    assert sum(counts.values()) == entries


def test_100000_draws_pass_a_chi_square_test_at_one_in_a_million(counts: Counter[str]) -> None:
    """The bound, over all prizes at once: Pearson's chi-square statistic of the four counts against
    n p, with 3 degrees of freedom, has a p-value above 1e-6 (the statistic below about 30.7). A fair
    scheme with a random seed fails this once in a million runs; the seed is fixed, so it never does."""
    total = sum(p.weight for p in PRIZES)
    expected = {p.code: ENTRIES * p.weight / total for p in PRIZES}
    statistic = sum((counts[code] - e) ** 2 / e for code, e in expected.items())
    # The chi-square survival function for 3 degrees of freedom, in closed form.
    p_value = math.erfc(math.sqrt(statistic / 2)) + math.sqrt(2 * statistic / math.pi) * math.exp(
        -statistic / 2
    )
    assert p_value > 1e-6, (statistic, p_value)


def test_stock_is_never_oversold_and_its_odds_go_to_the_rest() -> None:
    """100,000 entries on prizes of small stock: each prize is won exactly its stock, never more, and
    once a prize is gone no entry wins it again (its weight goes to the prizes left)."""
    prizes = [Prize("bag", 100, 10), Prize("lipstick", 100, 250), Prize("none", 800, None)]
    won = run(SEED, "draw-2", prizes, 100_000)
    counts = Counter(won)
    assert (counts["bag"], counts["lipstick"]) == (10, 250)
    assert counts["none"] == 100_000 - 260
    last_stocked = max(i for i, code in enumerate(won) if code != "none")
    assert set(won[last_stocked + 1 :]) == {"none"} and last_stocked < 5000


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


def test_a_published_audit_replays_from_the_file_alone() -> None:
    won = run(SEED, "drw_x", PRIZES, 500)
    published = {
        "draw_id": "drw_x",
        "commitment": commitment(SEED),
        "seed": SEED.hex(),
        # Listed out of order on purpose: the position fixes the bands.
        "prizes": [{"position": 3 - i, "code": p.code, "weight": p.weight, "stock": p.stock}
                   for i, p in enumerate(reversed(PRIZES))],
        "log": [[n, code] for n, code in enumerate(won, start=1)],
    }  # fmt: skip
    assert replay_published(published) == []
    assert won[0] == "none"  # under SEED; the tampered log below claims the grand prize for entry 1
    assert replay_published(published | {"log": [[1, "grand"], *published["log"][1:]]}) == [
        Mismatch(1, "grand", "none")
    ]
    with pytest.raises(ValueError, match="not closed yet"):
        replay_published(published | {"seed": None})
    with pytest.raises(ValueError, match="not a draw's published audit"):
        replay_published({"seed": SEED.hex()})


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
