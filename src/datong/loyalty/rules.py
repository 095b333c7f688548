"""The points rules, as pure functions: what a sale earns, when a lot expires, which tier a member
qualifies for, how much of an order's points a refund takes back, and who owns a store's points.

How a sale earns (written down in docs/points.md):

1. The money paid (``paid_fen``, not points spent, not postage) is spread over the order's lines in
   proportion to each line's price × quantity. An order without lines is one line without a category.
2. Each line earns ``points_per_yuan`` per yuan of its share, times the highest multiplier among
   the active rules that match it (channel, store, category, promotion window, the order's minimum
   spend), times the member's tier multiplier. Multipliers do not compound with each other; the tier's
   applies on top. Fractions of a point are dropped once, on the order's total.
3. Every matching rule's ``bonus_points`` are added once per order (an ``earn_bonus`` transfer).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from datong.core.clock import CHINA_TZ

HQ = "hq"


def owner_party(*, store_id: str | None, store_kind: str | None, agent_id: str | None) -> str:
    """Who owns the points a store issues, and who is owed for the points it honours: the agent for a
    franchisee's store, the store itself for a franchise store without an agent, HQ otherwise (direct
    stores, counters, online channels)."""
    if store_id is None:
        return HQ
    if agent_id:
        return f"agent:{agent_id}"
    if store_kind == "franchise":
        return f"store:{store_id}"
    return HQ


@dataclass(frozen=True)
class RuleSpec:
    code: str
    channels: Sequence[str] = ()
    store_ids: Sequence[str] = ()
    categories: Sequence[str] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    min_spend_fen: int = 0
    multiplier_pct: int = 100
    bonus_points: int = 0


@dataclass(frozen=True)
class SaleLine:
    category: str | None
    amount_fen: int  # price × quantity


@dataclass(frozen=True)
class Sale:
    channel: str
    store_id: str | None
    at: datetime
    paid_fen: int
    lines: Sequence[SaleLine] = ()


@dataclass(frozen=True)
class Earning:
    purchase_points: int
    bonus_points: int
    rules: tuple[str, ...] = field(default_factory=tuple)


def _order_matches(rule: RuleSpec, sale: Sale) -> bool:
    return (
        (not rule.channels or sale.channel in rule.channels)
        and (not rule.store_ids or (sale.store_id or "") in rule.store_ids)
        and (rule.starts_at is None or sale.at >= rule.starts_at)
        and (rule.ends_at is None or sale.at < rule.ends_at)
        and sale.paid_fen >= rule.min_spend_fen
    )


def compute_earning(
    sale: Sale, *, points_per_yuan: int, rules: Sequence[RuleSpec], tier_multiplier_pct: int = 100
) -> Earning:
    if sale.paid_fen <= 0:
        return Earning(0, 0)
    lines = [line for line in sale.lines if line.amount_fen > 0] or [SaleLine(None, sale.paid_fen)]
    matching = [rule for rule in rules if _order_matches(rule, sale)]
    listed_fen = sum(line.amount_fen for line in lines)
    applied: set[str] = set()
    # Work in hundredths of a point times hundredths of multipliers, in integers, and round once.
    scaled = 0
    for line in lines:
        share_fen = sale.paid_fen * line.amount_fen // listed_fen
        best = 100
        for rule in matching:
            if rule.categories and line.category not in rule.categories:
                continue
            if rule.multiplier_pct > best:
                best = rule.multiplier_pct
        for rule in matching:
            if rule.multiplier_pct == best and best != 100 and _category_ok(rule, line):
                applied.add(rule.code)
        scaled += share_fen * points_per_yuan * best
    purchase = scaled * tier_multiplier_pct // (100 * 100 * 100)
    bonus = 0
    for rule in matching:
        if rule.bonus_points > 0 and (
            not rule.categories or any(line.category in rule.categories for line in lines)
        ):
            bonus += rule.bonus_points
            applied.add(rule.code)
    return Earning(purchase, bonus, tuple(sorted(applied)))


def _category_ok(rule: RuleSpec, line: SaleLine) -> bool:
    return not rule.categories or line.category in rule.categories


def expires_at(earned_at: datetime, *, policy: str, months: int | None) -> datetime | None:
    """The moment a lot earned at ``earned_at`` expires: the end of the day (China time) N months on,
    or the end of the year after the earning, or never."""
    local = earned_at.astimezone(CHINA_TZ)
    if policy == "never":
        return None
    if policy == "end_of_next_year":
        end = datetime(local.year + 2, 1, 1, tzinfo=CHINA_TZ)
        return end.astimezone(earned_at.tzinfo)
    if policy != "rolling_months" or not months or months <= 0:
        raise ValueError(f"unknown expiry policy {policy!r} / {months!r}")
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    end = datetime.combine(datetime(year, month, day).date() + timedelta(days=1), time(), tzinfo=CHINA_TZ)
    return end.astimezone(earned_at.tzinfo)


@dataclass(frozen=True)
class TierSpec:
    code: str
    rank: int
    threshold: int
    earn_multiplier_pct: int = 100
    birthday_bonus_points: int = 0


def qualifying_tier(tiers: Sequence[TierSpec], value: int) -> TierSpec | None:
    """The highest tier whose threshold the 12-month value reaches."""
    reached = [tier for tier in tiers if value >= tier.threshold]
    return max(reached, key=lambda tier: tier.rank) if reached else None


def proportional_target(total: int, refunded_fen: int, order_total_fen: int) -> int:
    """How much of ``total`` (points earned on, or spent on, an order) the refunds so far take back.
    Cumulative, so partial refunds add up to exactly the whole on a full refund."""
    if order_total_fen <= 0 or refunded_fen >= order_total_fen:
        return total
    return total * refunded_fen // order_total_fen
