"""What a guide earns on an order, as pure functions.

The brand's plan is ``Tenant.settings["commission"]``::

    {"rules": [
        {"code": "shoes-vip", "categories": ["shoes"], "guide_levels": ["senior"], "rate_bp": 500},
        {"code": "tee", "skus": ["TEE-01"], "fen_per_item": 300},
        {"code": "franchise", "store_kinds": ["franchise"], "rate_bp": 200},
        {"code": "base", "rate_bp": 100}
    ]}

Each order line takes the **first** rule that matches it (list the specific rules before the general
ones). A rule matches when every condition it states holds: the line's category or SKU, the credited
store's kind, the guide's level. It pays ``rate_bp`` basis points (100 = 1%) of what the member paid
for the line, or ``fen_per_item`` for each unit. What the member paid for a line is its list amount
scaled to the order's paid amount (discounts and coupons shared in proportion); fractions of a fen go to
the brand. A line no rule matches earns nothing.

A refund takes back the same share of the commission as of the order (cumulatively): after refunds of
``r`` fen on an order paid ``p``, the guide keeps ``commission × (p − r) / p``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datong.core.errors import ValidationFailed

_LISTS = ("categories", "skus", "store_kinds", "guide_levels")


@dataclass(frozen=True)
class CommissionRule:
    code: str
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    store_kinds: frozenset[str] = frozenset()
    guide_levels: frozenset[str] = frozenset()
    rate_bp: int | None = None
    fen_per_item: int | None = None


def parse_plan(raw: Mapping[str, Any] | None) -> list[CommissionRule]:
    """The brand's commission rules, each field checked and named (``commission.rules.2.rate_bp``)."""
    items = (raw or {}).get("rules", [])
    if not isinstance(items, list):
        raise ValidationFailed("rules is a list", field="commission.rules")
    plan: list[CommissionRule] = []
    for index, item in enumerate(items):
        where = f"commission.rules.{index}"
        if not isinstance(item, dict):
            raise ValidationFailed("a rule is an object", field=where)
        unknown = sorted(set(item) - {"code", "rate_bp", "fen_per_item", *_LISTS})
        if unknown:
            raise ValidationFailed(f"unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
        code = item.get("code")
        if not isinstance(code, str) or not code:
            raise ValidationFailed("a rule has a code", field=f"{where}.code")
        lists: dict[str, frozenset[str]] = {}
        for name in _LISTS:
            value = item.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValidationFailed("a list of names", field=f"{where}.{name}")
            lists[name] = frozenset(value)
        rate, per_item = item.get("rate_bp"), item.get("fen_per_item")
        if (rate is None) == (per_item is None):
            raise ValidationFailed("give rate_bp or fen_per_item, one of them", field=f"{where}.rate_bp")
        if rate is not None and (not _whole(rate) or not 0 <= rate <= 10000):
            raise ValidationFailed("rate_bp is 0 to 10000 basis points (100 = 1%)", field=f"{where}.rate_bp")
        if per_item is not None and (not _whole(per_item) or per_item <= 0):
            raise ValidationFailed("fen_per_item is a positive number of fen", field=f"{where}.fen_per_item")
        plan.append(CommissionRule(code, rate_bp=rate, fen_per_item=per_item, **lists))
    if len({r.code for r in plan}) != len(plan):
        raise ValidationFailed("two rules share a code", field="commission.rules")
    return plan


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SaleLine:
    line_no: int
    sku: str | None
    category: str | None
    quantity: int
    amount_fen: int  # list amount: quantity × unit price


@dataclass(frozen=True)
class LineCommission:
    line_no: int
    rule: str
    base_fen: int  # what the member paid for the line
    commission_fen: int


def _matches(rule: CommissionRule, line: SaleLine, store_kind: str | None, guide_level: str | None) -> bool:
    if rule.categories and line.category not in rule.categories:
        return False
    if rule.skus and line.sku not in rule.skus:
        return False
    if rule.store_kinds and store_kind not in rule.store_kinds:
        return False
    return not (rule.guide_levels and guide_level not in rule.guide_levels)


def paid_shares(lines: Sequence[SaleLine], paid_fen: int) -> list[int]:
    """Each line's share of ``paid_fen``, in proportion to its list amount, summing to ``paid_fen``
    exactly (the remainder goes to the largest lines first)."""
    total = sum(line.amount_fen for line in lines)
    if total <= 0:
        return [0 for _ in lines]
    shares = [line.amount_fen * paid_fen // total for line in lines]
    leftover = paid_fen - sum(shares)
    for index in sorted(range(len(lines)), key=lambda i: -lines[i].amount_fen)[:leftover]:
        shares[index] += 1
    return shares


def commission_for(
    plan: Sequence[CommissionRule],
    lines: Sequence[SaleLine],
    *,
    paid_fen: int,
    store_kind: str | None,
    guide_level: str | None,
) -> list[LineCommission]:
    """The commission of each line some rule matches."""
    out = []
    for line, base in zip(lines, paid_shares(lines, paid_fen), strict=True):
        rule = next((r for r in plan if _matches(r, line, store_kind, guide_level)), None)
        if rule is None:
            continue
        if rule.rate_bp is not None:
            amount = base * rule.rate_bp // 10000
        else:
            assert rule.fen_per_item is not None
            amount = rule.fen_per_item * line.quantity
        out.append(LineCommission(line.line_no, rule.code, base, amount))
    return out


def kept_after_refunds(commission_fen: int, *, paid_fen: int, refunded_fen: int) -> int:
    """What the guide keeps of ``commission_fen`` once ``refunded_fen`` of ``paid_fen`` was refunded."""
    if paid_fen <= 0:
        return 0
    remaining = max(paid_fen - refunded_fen, 0)
    return commission_fen * remaining // paid_fen
