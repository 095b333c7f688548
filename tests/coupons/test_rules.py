"""Every coupon rule with the exact discount in fen, and every reason a coupon does not apply."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from datong.coupons.rules import Basket, Line, OtherCoupon, Template, evaluate, validity

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
SHOES = Line("SH-1", "shoes", 1, 59900)
SOCKS = Line("SO-1", "socks", 3, 1990)
TEE = Line("TE-1", "tops", 2, 9900)


def _basket(*lines: Line, channel: str = "pos", store: str | None = "S1", **kw: object) -> Basket:
    return Basket(channel=channel, store_id=store, at=NOW, lines=lines, **kw)  # type: ignore[arg-type]


def _value(template: Template, basket: Basket) -> tuple[int, list[str]]:
    start, end = validity(template, NOW - timedelta(days=1))
    decision = evaluate(template, basket, starts_at=start, ends_at=end)
    return decision.discount_fen, [r.code for r in decision.reasons]


@pytest.mark.parametrize(
    ("template", "lines", "expected"),
    [
        (Template("cash_off", amount_fen=2000), (SHOES,), (2000, [])),
        (Template("cash_off", amount_fen=2000), (Line("X", None, 1, 1500),), (1500, [])),  # never below 0
        (Template("threshold", threshold_fen=19900, amount_fen=2000), (TEE,), (0, ["threshold"])),
        (Template("threshold", threshold_fen=19800, amount_fen=2000), (TEE,), (2000, [])),
        (Template("discount", rate_pct=80), (TEE,), (3960, [])),  # 19800 at 8折 pays 15840
        (Template("discount", rate_pct=85), (SOCKS,), (895, [])),  # 5970 × 0.85 = 5074.5: pays 5075
        (Template("discount", rate_pct=50, cap_fen=10000), (SHOES,), (10000, [])),
        (Template("exchange", sku="SO-1"), (SHOES, SOCKS), (1990, [])),
        (Template("exchange", sku="SO-1"), (SHOES,), (0, ["product"])),
        (Template("pickup", sku="TE-1", price_fen=100, online=False), (TEE,), (9800, [])),
    ],
)
def test_each_kind_gives_its_exact_discount(
    template: Template, lines: tuple[Line, ...], expected: tuple[int, list[str]]
) -> None:
    assert _value(template, _basket(*lines)) == expected


def test_products_and_categories_limit_the_eligible_lines() -> None:
    shoes_only = Template("discount", rate_pct=90, categories=frozenset({"shoes"}))
    assert _value(shoes_only, _basket(SHOES, TEE)) == (5990, [])
    by_sku = Template("threshold", threshold_fen=10000, amount_fen=1000, skus=frozenset({"TE-1"}))
    assert _value(by_sku, _basket(SHOES, TEE)) == (1000, [])
    assert _value(by_sku, _basket(SHOES)) == (0, ["product"])


def test_where_a_coupon_may_be_used() -> None:
    offline_only = Template("cash_off", amount_fen=500, online=False)
    assert _value(offline_only, _basket(TEE, channel="tmall", store=None)) == (0, ["channel"])
    pickup = Template("pickup", sku="TE-1", price_fen=100)
    assert _value(pickup, _basket(TEE, channel="miniprogram", store=None)) == (0, ["channel"])
    listed = Template("cash_off", amount_fen=500, store_ids=frozenset({"S2"}))
    assert _value(listed, _basket(TEE, store="S1")) == (0, ["store"])
    assert _value(listed, _basket(TEE, store="S2")) == (500, [])
    assert _value(listed, _basket(TEE, channel="tmall", store=None)) == (500, [])  # stores bind offline only


def test_validity_fixed_dates_or_days_from_issue() -> None:
    issued = NOW - timedelta(days=10)
    assert validity(Template("cash_off", valid_days=7), issued) == (issued, issued + timedelta(days=7))
    window = Template("cash_off", valid_from=NOW + timedelta(days=1), valid_until=NOW + timedelta(days=5))
    assert validity(window, issued) == (NOW + timedelta(days=1), NOW + timedelta(days=5))
    expired = evaluate(Template("cash_off", amount_fen=100), _basket(TEE), starts_at=issued, ends_at=NOW)
    early = evaluate(
        Template("cash_off", amount_fen=100), _basket(TEE), starts_at=NOW + timedelta(seconds=1), ends_at=None
    )
    assert ([r.code for r in expired.reasons], expired.discount_fen) == (["expired"], 0)
    assert [r.code for r in early.reasons] == ["not_yet_valid"]


def test_stacking_rules_and_every_reason_at_once() -> None:
    cash = Template("cash_off", amount_fen=500)
    other = OtherCoupon(exclusive=False, one_per_category=False, categories=frozenset())
    sole = OtherCoupon(exclusive=True, one_per_category=False, categories=frozenset())
    assert _value(replace(cash, exclusive=True), _basket(TEE, others=[other])) == (0, ["stacking_exclusive"])
    assert _value(cash, _basket(TEE, others=[sole])) == (0, ["stacking_exclusive"])
    assert _value(cash, _basket(TEE, others=[other])) == (500, [])
    assert _value(replace(cash, with_points=False), _basket(TEE, points_used=100)) == (0, ["stacking_points"])
    per_category = replace(cash, one_per_category=True, categories=frozenset({"tops"}))
    tops = OtherCoupon(exclusive=False, one_per_category=True, categories=frozenset({"tops"}))
    assert _value(per_category, _basket(TEE, others=[tops])) == (0, ["stacking_category"])
    everything = replace(per_category, online=False, with_points=False, exclusive=True)
    basket = _basket(SHOES, channel="jd", store=None, points_used=5, others=[tops])
    assert _value(everything, basket) == (
        0,
        ["channel", "stacking_points", "stacking_exclusive", "stacking_category", "product"],
    )


def test_in_store_at_a_listed_store_or_any_store_of_a_listed_region_or_agent() -> None:
    east = Template("cash_off", amount_fen=500, region_ids=frozenset({"R-EAST"}))
    agent_a = Template("cash_off", amount_fen=500, agent_ids=frozenset({"AG-A"}))
    either = Template("cash_off", amount_fen=500, store_ids=frozenset({"S9"}), agent_ids=frozenset({"AG-A"}))

    def at(store: str, region: str | None, agent: str | None, channel: str = "pos") -> Basket:
        online = channel != "pos"
        return replace(
            _basket(TEE, channel=channel, store=None if online else store),
            region_id=None if online else region,
            agent_id=None if online else agent,
        )

    assert _value(east, at("S1", "R-EAST", None)) == (500, [])
    assert _value(east, at("S2", "R-SOUTH", "AG-A")) == (0, ["store"])
    assert _value(east, at("S3", None, None)) == (0, ["store"])  # a store in no region
    assert _value(agent_a, at("S2", "R-SOUTH", "AG-A")) == (500, [])
    assert _value(agent_a, at("S1", "R-EAST", "AG-B")) == (0, ["store"])
    assert _value(either, at("S9", "R-SOUTH", None)) == (500, [])  # the listed store
    assert _value(either, at("S4", "R-EAST", "AG-A")) == (500, [])  # a store of the listed agent
    assert _value(either, at("S5", "R-EAST", "AG-B")) == (0, ["store"])
    # Online, where no store is, the scopes do not bind (as for a list of stores).
    assert _value(east, at("S2", None, None, channel="tmall")) == (500, [])
    everywhere = Template("cash_off", amount_fen=500)
    assert _value(everywhere, at("S3", None, None)) == (500, [])
