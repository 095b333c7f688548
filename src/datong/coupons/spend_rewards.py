"""Rewards that grow with the basket: after a purchase, a coupon by amount band (≥ 199 yuan → a 20-yuan
coupon, ≥ 399 → 50), once per order. The bands are brand policy: ``Tenant.settings["spend_rewards"]``,
a list of ``{"min_fen": 19900, "template": "T20"}``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from datong.core.errors import ValidationFailed
from datong.coupons.models import Coupon
from datong.coupons.service import issue_coupon
from datong.orders.models import Order
from datong.tenancy.models import Tenant

REWARDED_STATUSES = ("paid", "shipped", "completed")


@dataclass(frozen=True)
class Band:
    min_fen: int
    template: str


def parse_bands(raw: Any) -> list[Band]:
    """The brand's bands, checked: each names a template and a positive minimum, no minimum twice."""
    if not isinstance(raw, list):
        raise ValidationFailed("spend_rewards is a list of {min_fen, template}", field="spend_rewards")
    bands = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("min_fen"), int) or item["min_fen"] <= 0:
            raise ValidationFailed(
                "min_fen is a positive number of fen", field=f"spend_rewards.{index}.min_fen"
            )
        if not isinstance(item.get("template"), str) or not item["template"]:
            raise ValidationFailed(
                "template names a coupon template", field=f"spend_rewards.{index}.template"
            )
        bands.append(Band(item["min_fen"], item["template"]))
    if len({b.min_fen for b in bands}) != len(bands):
        raise ValidationFailed("two bands share a minimum", field="spend_rewards")
    return sorted(bands, key=lambda b: b.min_fen)


def band_for(amount_fen: int, bands: Sequence[Band]) -> Band | None:
    """The highest band the amount reaches (only that one: rewards do not add up)."""
    reached = [band for band in bands if amount_fen >= band.min_fen]
    return reached[-1] if reached else None


def reward_order(session: Session, *, order: Order, at: datetime) -> Coupon | None:
    """The coupon this order earns by its amount, issued once per order (asking again returns it)."""
    if order.member_id is None or order.status not in REWARDED_STATUSES:
        return None
    tenant = session.get(Tenant, order.tenant_id)
    assert tenant is not None
    band = band_for(order.paid_fen, parse_bands((tenant.settings or {}).get("spend_rewards", [])))
    if band is None:
        return None
    coupon, _created = issue_coupon(
        session,
        tenant_id=order.tenant_id,
        template_code=band.template,
        member_id=order.member_id,
        issue_key=f"spend:{order.id}",
        source="reward",
        at=at,
    )
    return coupon
