"""What a coupon is worth on a basket, as pure functions: the discount in fen, or every reason it does
not apply. The POS asks this before it redeems (核销); the same answer is recomputed at redemption.

Kinds of coupon (face values in fen):

- ``cash_off`` (立减): ``amount_fen`` off the eligible lines, never more than they cost.
- ``threshold`` (满减): spend at least ``threshold_fen`` on eligible lines, ``amount_fen`` off.
- ``discount`` (折扣): the eligible lines at ``rate_pct`` of their price (80 = 8折), at most ``cap_fen``
  off when a cap is set. Fractions of a fen are rounded in the shop's favour.
- ``exchange`` (兑换券): one unit of ``sku`` free; the basket must hold it.
- ``pickup`` (到店自提, e.g. a one-yuan trial): one unit of ``sku`` for ``price_fen``; only in store.

Where it applies: online or offline channels; in store, at any of ``store_ids``, or any store of
``region_ids``, or any store of ``agent_ids`` (all three empty: every store; the basket carries its
store's region and agent); and products (SKUs or categories; none listed means every line).
Stacking: an ``exclusive`` coupon is the only coupon on the order; ``with_points=False`` refuses an
order paid partly in points; ``one_per_category`` allows at most one such coupon per category in the
order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

KINDS = ("cash_off", "threshold", "discount", "exchange", "pickup")
ONLINE_CHANNELS = frozenset({"tmall", "jd", "miniprogram", "eshop", "wechat"})
OFFLINE_CHANNELS = frozenset({"pos"})


@dataclass(frozen=True)
class Template:
    kind: str
    amount_fen: int = 0
    threshold_fen: int = 0
    rate_pct: int = 100
    cap_fen: int | None = None
    sku: str | None = None
    price_fen: int = 0
    online: bool = True
    offline: bool = True
    store_ids: frozenset[str] = frozenset()  # with region_ids and agent_ids all empty: every store
    region_ids: frozenset[str] = frozenset()
    agent_ids: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()  # empty with no categories: every product
    categories: frozenset[str] = frozenset()
    exclusive: bool = False
    with_points: bool = True
    one_per_category: bool = False
    valid_from: datetime | None = None  # fixed dates, or
    valid_until: datetime | None = None
    valid_days: int | None = None  # N days from issue


def validity(template: Template, issued_at: datetime) -> tuple[datetime, datetime | None]:
    """When a coupon issued at ``issued_at`` may be used: [start, end)."""
    if template.valid_days is not None:
        return issued_at, issued_at + timedelta(days=template.valid_days)
    return max(template.valid_from or issued_at, issued_at), template.valid_until


@dataclass(frozen=True)
class Line:
    sku: str | None
    category: str | None
    quantity: int
    unit_price_fen: int

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(frozen=True)
class OtherCoupon:
    """A coupon already on the same order."""

    exclusive: bool
    one_per_category: bool
    categories: frozenset[str]


@dataclass(frozen=True)
class Basket:
    channel: str
    store_id: str | None
    at: datetime
    lines: Sequence[Line]
    points_used: int = 0
    others: Sequence[OtherCoupon] = ()
    # The store's region and agent (franchisee), for templates scoped to regions or agents.
    region_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class Decision:
    discount_fen: int
    reasons: list[Reason] = field(default_factory=list)

    @property
    def applies(self) -> bool:
        return not self.reasons


def _eligible(template: Template, line: Line) -> bool:
    if not template.skus and not template.categories:
        return True
    return (line.sku is not None and line.sku in template.skus) or (
        line.category is not None and line.category in template.categories
    )


def scoped(template: Template) -> bool:
    """Whether the template names where in store it may be used (else: every store)."""
    return bool(template.store_ids or template.region_ids or template.agent_ids)


def in_scope(template: Template, basket: Basket) -> bool:
    """In store, the coupon may be used at a store listed, or of a region or an agent listed."""
    if not scoped(template):
        return True
    return (
        (basket.store_id is not None and basket.store_id in template.store_ids)
        or (basket.region_id is not None and basket.region_id in template.region_ids)
        or (basket.agent_id is not None and basket.agent_id in template.agent_ids)
    )


def evaluate(
    template: Template, basket: Basket, *, starts_at: datetime, ends_at: datetime | None
) -> Decision:
    """The discount this coupon gives on this basket, or every reason it does not apply."""
    reasons: list[Reason] = []
    if basket.at < starts_at:
        reasons.append(Reason("not_yet_valid", f"valid from {starts_at.isoformat()}"))
    if ends_at is not None and basket.at >= ends_at:
        reasons.append(Reason("expired", f"expired at {ends_at.isoformat()}"))
    online = basket.channel in ONLINE_CHANNELS
    if (online and not template.online) or (not online and not template.offline):
        reasons.append(Reason("channel", f"not for {'online' if online else 'in-store'} orders"))
    if template.kind == "pickup" and online:
        reasons.append(Reason("channel", "collected in store only"))
    if not online and not in_scope(template, basket):
        reasons.append(Reason("store", "not for this store"))
    if basket.points_used and not template.with_points:
        reasons.append(Reason("stacking_points", "not with points paid on the same order"))
    if template.exclusive and basket.others:
        reasons.append(Reason("stacking_exclusive", "the only coupon allowed on an order"))
    if any(other.exclusive for other in basket.others):
        reasons.append(
            Reason("stacking_exclusive", "the order already carries a coupon that allows no other")
        )
    if template.one_per_category:
        clash = sorted(
            template.categories
            & frozenset().union(*(o.categories for o in basket.others if o.one_per_category))
        )
        if clash:
            reasons.append(Reason("stacking_category", f"one coupon per category: {', '.join(clash)}"))
    eligible = [line for line in basket.lines if _eligible(template, line) and line.quantity > 0]
    eligible_fen = sum(line.amount_fen for line in eligible)
    discount, reason = _value(template, eligible, eligible_fen)
    if reason is not None:
        reasons.append(reason)
    return Decision(0, reasons) if reasons else Decision(discount)


def _value(template: Template, eligible: list[Line], eligible_fen: int) -> tuple[int, Reason | None]:
    if template.kind in ("exchange", "pickup"):
        wanted = [line for line in eligible if line.sku == template.sku]
        if not wanted:
            return 0, Reason("product", f"the order holds no {template.sku}")
        unit = max(line.unit_price_fen for line in wanted)
        if template.kind == "exchange":
            return unit, None
        return max(unit - template.price_fen, 0), None
    if eligible_fen <= 0:
        return 0, Reason("product", "no line of the order is one this coupon covers")
    if template.kind == "cash_off":
        return min(template.amount_fen, eligible_fen), None
    if template.kind == "threshold":
        if eligible_fen < template.threshold_fen:
            short = template.threshold_fen - eligible_fen
            return 0, Reason("threshold", f"spend {short} fen more on eligible lines")
        return min(template.amount_fen, eligible_fen), None
    if template.kind == "discount":
        off = eligible_fen - (eligible_fen * template.rate_pct + 99) // 100  # the shop keeps the fraction
        return (off if template.cap_fen is None else min(off, template.cap_fen)), None
    raise ValueError(f"unknown coupon kind {template.kind!r}")
