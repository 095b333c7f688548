"""The written guide rules, each with the exact answer: binding policies and attribution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datong.core.errors import ValidationFailed
from datong.guides.rules import Binding, Policy, TouchView, check_scene, credit_for, parse_policy, scan_binds

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def touch(
    n: int, days_before: float, guide: str | None, store: str | None = "S1", window: int | None = None
) -> TouchView:
    return TouchView(f"t{n}", T0 - days_before * DAY, guide, store, window)


def test_policy_defaults_and_errors() -> None:
    assert parse_policy(None) == Policy("first_protected", 90, 15)
    assert parse_policy({"binding": "last_scan", "window_days": 30}) == Policy("last_scan", 90, 30)
    for raw, field in (
        ({"binding": "first"}, "guides.binding"),
        ({"window_days": 0}, "guides.window_days"),
        ({"window_days": "15"}, "guides.window_days"),
        ({"protection_days": True}, "guides.protection_days"),
        ({"protection_days": 366}, "guides.protection_days"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            parse_policy(raw)
        assert caught.value.field == field


def test_scenes_fit_a_wecom_state() -> None:
    assert check_scene("g_7KQ2M9XD4HTP") == "g_7KQ2M9XD4HTP"
    assert check_scene("x" * 30) == "x" * 30
    for bad in ("", "x" * 31, "有中文", "a b", "a/b"):
        with pytest.raises(ValidationFailed):
            check_scene(bad)


def test_first_guide_keeps_the_member_while_protected() -> None:
    policy = Policy("first_protected", 90, 15)
    assert scan_binds(policy, Binding(None, None), "G2", T0) is True
    held = Binding("G1", T0 + DAY)
    assert scan_binds(policy, held, "G2", T0) is False
    assert scan_binds(policy, held, "G2", T0 + DAY) is True  # protection ends at protected_until
    assert scan_binds(policy, held, "G1", T0 + 2 * DAY) is False  # the same guide: nothing to change
    assert scan_binds(policy, Binding("G1", T0 + DAY, guide_active=False), "G2", T0) is True  # G1 left


def test_a_binding_made_under_another_policy_is_not_protected() -> None:
    # Bound under last_scan or hq_assigns (no protected_until), then the brand moved to first_protected:
    # no protection was promised, so the next guide's scan takes the member.
    policy = Policy("first_protected", 90, 15)
    assert scan_binds(policy, Binding("G1", None), "G2", T0) is True
    assert scan_binds(policy, Binding("G1", None), "G1", T0) is False  # the same guide: nothing to change
    assert scan_binds(Policy("hq_assigns"), Binding("G1", None), "G2", T0) is False


def test_last_scan_wins_and_hq_assigns_never_binds() -> None:
    held = Binding("G1", T0 + 30 * DAY)
    assert scan_binds(Policy("last_scan"), held, "G2", T0) is True
    assert scan_binds(Policy("hq_assigns"), Binding(None, None), "G2", T0) is False


def test_window_is_inclusive_of_the_last_day() -> None:
    assert credit_for([touch(1, 10, "G1")], T0, default_days=15, exclusive_guide_id=None) is not None
    exactly = credit_for([touch(1, 15, "G1")], T0, default_days=15, exclusive_guide_id=None)
    assert exactly is not None and exactly.touch.id == "t1"
    assert credit_for([touch(1, 15.0001, "G1")], T0, default_days=15, exclusive_guide_id=None) is None
    assert credit_for([touch(1, 16, "G1")], T0, default_days=15, exclusive_guide_id=None) is None
    day16 = credit_for([touch(1, 16, "G1")], T0, default_days=30, exclusive_guide_id=None)
    assert day16 is not None and (day16.rule, day16.window_days) == ("last_guide_touch", 30)
    # A touch after the order never counts.
    assert credit_for([touch(1, -1, "G1")], T0, default_days=15, exclusive_guide_id=None) is None


def test_a_campaign_window_overrides_the_brands() -> None:
    long = credit_for([touch(1, 20, "G1", window=30)], T0, default_days=15, exclusive_guide_id=None)
    assert long is not None and long.window_days == 30
    short = credit_for([touch(1, 5, "G1", window=3)], T0, default_days=15, exclusive_guide_id=None)
    assert short is None


def test_conflicts_follow_the_written_rules() -> None:
    # Rule 2: a guide's touch beats a later store-only touch.
    credit = credit_for([touch(1, 9, "G1"), touch(2, 1, None)], T0, default_days=15, exclusive_guide_id=None)
    assert credit is not None and (credit.touch.id, credit.rule) == ("t1", "last_guide_touch")
    # Rule 3: the most recent guide touch wins over the exclusive guide's older one.
    credit = credit_for([touch(1, 9, "G1"), touch(2, 2, "G2")], T0, default_days=15, exclusive_guide_id="G1")
    assert credit is not None and credit.touch.guide_id == "G2"
    # Same instant: the exclusive guide, then the earliest recorded.
    same = [touch(1, 2, "G2"), touch(2, 2, "G1"), touch(3, 2, "G3")]
    credit = credit_for(same, T0, default_days=15, exclusive_guide_id="G1")
    assert credit is not None and credit.touch.id == "t2"
    credit = credit_for(same, T0, default_days=15, exclusive_guide_id=None)
    assert credit is not None and credit.touch.id == "t1"
    # Rule 4: only stores: the latest store.
    credit = credit_for(
        [touch(1, 9, None, "S1"), touch(2, 3, None, "S2")], T0, default_days=15, exclusive_guide_id=None
    )
    assert credit is not None and (credit.touch.store_id, credit.rule) == ("S2", "store_touch")
    # Rule 5: nothing qualifies.
    assert credit_for([], T0, default_days=15, exclusive_guide_id=None) is None


@given(
    st.lists(
        st.tuples(
            st.floats(0, 40, allow_nan=False),
            st.sampled_from(["G1", "G2", None]),
            st.sampled_from([None, 5, 30]),
        ),
        max_size=8,
    ),
    st.integers(1, 60),
)
def test_the_credited_touch_always_qualifies_and_is_the_latest_of_its_kind(
    raw: list[tuple[float, str | None, int | None]], window: int
) -> None:
    touches = [touch(n, days, guide, "S1", w) for n, (days, guide, w) in enumerate(raw)]
    credit = credit_for(touches, T0, default_days=window, exclusive_guide_id="G1")
    live = [t for t in touches if t.at <= T0 <= t.at + timedelta(days=t.window_days or window)]
    if not live:
        assert credit is None
        return
    assert credit is not None and credit.touch in live
    guided = [t for t in live if t.guide_id]
    pool = guided or live
    assert credit.touch.at == max(t.at for t in pool)
    assert (credit.rule == "last_guide_touch") == bool(guided)
