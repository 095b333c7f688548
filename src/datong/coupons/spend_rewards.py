"""Rewards that grow with the basket: after a purchase, a coupon by amount band (≥ 199 yuan → a 20-yuan
coupon, ≥ 399 → 50), once per order. The bands are brand policy: ``Tenant.settings["spend_rewards"]``,
a list of ``{"min_fen": 19900, "template": "T20"}``.

A purchase is rewarded once whatever the path it comes by (a POS sale, a member's claim by order number,
a receipt photo staff approved) and whatever the bands say later: the reward's issue key names the
purchase (``spend:<order id>``, ``spend:receipt:<store id>:<receipt no>``), and before issuing, the
purchase's key is held and every template is searched for a coupon under it. Claims are in ``claims.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from datong.core.db import advisory_lock_id, is_sqlite
from datong.core.errors import DatongError, ValidationFailed
from datong.coupons.models import Coupon
from datong.coupons.service import issue_coupon
from datong.orders.models import Order
from datong.tenancy.models import Tenant
from datong.tenancy.service import audit

REWARDED_STATUSES = ("paid", "shipped", "completed")
SOURCE = "reward"


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


def brand_bands(session: Session, *, tenant_id: str) -> list[Band]:
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    return parse_bands((tenant.settings or {}).get("spend_rewards", []))


def order_issue_key(order_id: str) -> str:
    return f"spend:{order_id}"


def receipt_issue_key(store_id: str, receipt_no: str) -> str:
    return f"spend:receipt:{store_id}:{receipt_no}"


def hold_purchase(session: Session, *, tenant_id: str, issue_key: str) -> None:
    """Take the purchase's lock until the transaction ends, so two paths rewarding one purchase at the
    same moment (a POS retry and a claim, two staff approving two photos of one receipt) take turns and
    the second finds the first's coupon. (SQLite's writers take turns already.)"""
    if not is_sqlite(session):
        lock_id = advisory_lock_id(f"spend-reward|{tenant_id}|{issue_key}")
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def earlier_reward(session: Session, *, tenant_id: str, issue_key: str) -> Coupon | None:
    """The coupon a purchase already earned, under whichever template its band named then."""
    return session.scalar(
        select(Coupon)
        .where(Coupon.tenant_id == tenant_id, Coupon.issue_key == issue_key, Coupon.source == SOURCE)
        .order_by(Coupon.issued_at, Coupon.id)
        .limit(1)
    )


def reward_purchase(
    session: Session, *, tenant_id: str, member_id: str, amount_fen: int, issue_key: str, at: datetime
) -> tuple[Coupon | None, bool]:
    """The band's coupon for a purchase of ``amount_fen``, once per ``issue_key``: (coupon, created).
    ``(None, False)`` when the amount is under every band. Raises the issuing's refusal (a template
    switched off or spent: a :class:`~datong.core.errors.Conflict`) having changed nothing."""
    hold_purchase(session, tenant_id=tenant_id, issue_key=issue_key)
    earlier = earlier_reward(session, tenant_id=tenant_id, issue_key=issue_key)
    if earlier is not None:
        return earlier, False
    band = band_for(amount_fen, brand_bands(session, tenant_id=tenant_id))
    if band is None:
        return None, False
    return issue_coupon(
        session,
        tenant_id=tenant_id,
        template_code=band.template,
        member_id=member_id,
        issue_key=issue_key,
        source=SOURCE,
        at=at,
    )


def reward_order(session: Session, *, order: Order, at: datetime) -> Coupon | None:
    """The coupon this order earns by its amount, issued once per order (asking again returns it)."""
    if order.member_id is None or order.status not in REWARDED_STATUSES:
        return None
    coupon, _created = reward_purchase(
        session,
        tenant_id=order.tenant_id,
        member_id=order.member_id,
        amount_fen=order.paid_fen,
        issue_key=order_issue_key(order.id),
        at=at,
    )
    return coupon


def reward_sale(session: Session, *, order: Order, actor: str, at: datetime) -> Coupon | None:
    """A sale's reward, given at once in the sale's own transaction when the brand has bands. A reward
    that cannot be given (its budget spent, its template switched off, the bands mistyped) must not
    lose the sale: it is left out, and the audit log says which order missed it and why."""
    if order.member_id is None or order.status not in REWARDED_STATUSES:
        return None
    try:
        if not brand_bands(session, tenant_id=order.tenant_id):
            return None
        with session.begin_nested():  # a refusal rolls back to here, and the sale stands
            return reward_order(session, order=order, at=at)
    except DatongError as exc:
        audit(
            session,
            tenant_id=order.tenant_id,
            actor=actor,
            action="coupon.spend_reward_missed",
            object_type="sales_order",
            object_id=order.id,
            detail={"reason": exc.message, "field": exc.field},
        )
        return None
