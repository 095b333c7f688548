"""Rewards that grow with the basket: after a purchase, a coupon by amount band (≥ 199 yuan → a 20-yuan
coupon, ≥ 399 → 50), once per order. The bands are brand policy: ``Tenant.settings["spend_rewards"]``,
a list of ``{"min_fen": 19900, "template": "T20"}``.

A purchase is rewarded once whatever the path it comes by (a POS sale, a member's claim by order number,
a receipt photo staff approved) and whatever the bands say later: the reward's issue key names the
purchase (``spend:<order id>``, ``spend:receipt:<store id>:<receipt no>``). A POS sale at a store has both
keys (the till's order number is the number printed on its receipt): before issuing, the purchase's lock
is held and every template is searched for a coupon under either key. An order refunded in full or
closed loses its reward (:func:`void_order_reward`). Claims are in ``claims.py``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, literal, select, update
from sqlalchemy.orm import Session

from datong.core.db import hold_named_lock, rowcount
from datong.core.errors import DatongError, ValidationFailed
from datong.coupons.models import ISSUED, VOID, Coupon
from datong.coupons.service import issue_coupon
from datong.orders.models import Order
from datong.tenancy.models import Tenant
from datong.tenancy.service import audit

REWARDED_STATUSES = ("paid", "shipped", "completed")
UNDONE_STATUSES = ("closed", "refunded")  # refunded in full, or closed: the reward is taken back
SOURCE = "reward"
POS = "pos"
_RECEIPT_NO = re.compile(r"^[A-Z0-9][A-Z0-9_/.-]{0,63}$")


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


def normalize_receipt_no(value: str) -> str:
    """A receipt number as kept: full-width characters folded, spaces dropped, upper case, so one
    receipt typed two ways is still one receipt."""
    folded = "".join(unicodedata.normalize("NFKC", value).split()).upper()
    if not _RECEIPT_NO.match(folded):
        raise ValidationFailed(
            "a receipt number has 1 to 64 letters, digits, '-', '_', '/' or '.'", field="receipt_no"
        )
    return folded


def sale_receipt(order: Order) -> tuple[str, str] | None:
    """(store id, receipt number) of a POS sale at a store: the till's order number is the number on
    its receipt. None for any other order (or a number no receipt could carry)."""
    if order.channel != POS or order.store_id is None:
        return None
    try:
        return order.store_id, normalize_receipt_no(order.order_no)
    except ValidationFailed:
        return None


def purchase_keys(order: Order) -> tuple[str, ...]:
    """Every key a reward of this order may have been issued under, its own first: a POS sale's
    receipt may have been rewarded from a photo before the sale reached datong."""
    receipt = sale_receipt(order)
    own = order_issue_key(order.id)
    return (own, receipt_issue_key(*receipt)) if receipt else (own,)


def hold_purchase(session: Session, *, tenant_id: str, issue_keys: Sequence[str]) -> None:
    """Take the purchase's lock until the transaction ends, so two paths rewarding one purchase at the
    same moment (a POS retry and a claim, two staff approving two photos of one receipt, a photo and the
    sale it is of) take turns and the second finds the first's coupon. One lock per purchase: the last
    key's, which for a POS sale is its receipt's, the one key a receipt's approval knows before it has
    found the sale. (SQLite's writers take turns already.)"""
    hold_named_lock(session, f"spend-reward|{tenant_id}|{issue_keys[-1]}")


def _rewards(tenant_id: str, issue_keys: Sequence[str]) -> Select[Coupon]:
    return (
        select(Coupon)
        .where(Coupon.tenant_id == tenant_id, Coupon.issue_key.in_(issue_keys), Coupon.source == SOURCE)
        .order_by(Coupon.issued_at, Coupon.id)
    )


def earlier_reward(session: Session, *, tenant_id: str, issue_keys: Sequence[str]) -> Coupon | None:
    """The coupon a purchase already earned under any of its keys, whichever template its band named
    then, and whatever became of it since (used or void, it was the reward)."""
    return session.scalar(_rewards(tenant_id, issue_keys).limit(1))


def reward_purchase(
    session: Session,
    *,
    tenant_id: str,
    member_id: str,
    amount_fen: int,
    issue_keys: Sequence[str],
    at: datetime,
) -> tuple[Coupon | None, bool]:
    """The band's coupon for a purchase of ``amount_fen``, once whichever of the purchase's
    ``issue_keys`` an earlier reward has (a new one is issued under the first): (coupon, created).
    ``(None, False)`` when the amount is under every band. Raises the issuing's refusal (a template
    switched off or spent: a :class:`~datong.core.errors.Conflict`) having changed nothing."""
    hold_purchase(session, tenant_id=tenant_id, issue_keys=issue_keys)
    earlier = earlier_reward(session, tenant_id=tenant_id, issue_keys=issue_keys)
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
        issue_key=issue_keys[0],
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
        issue_keys=purchase_keys(order),
        at=at,
    )
    return coupon


def void_order_reward(session: Session, *, order: Order, actor: str) -> tuple[Coupon | None, bool]:
    """Take back the reward of an order refunded in full or closed: its coupon, while unused, becomes
    void (audited ``coupon.spend_reward_void``). A coupon used already stays used: it paid for another
    purchase, which stands. Returns (the order's reward as it is now, whether this call voided it);
    (None, False) for an order not undone, or that earned nothing. Calling again changes nothing."""
    if order.status not in UNDONE_STATUSES:
        return None, False
    keys = purchase_keys(order)
    hold_purchase(session, tenant_id=order.tenant_id, issue_keys=keys)
    rewards = list(session.scalars(_rewards(order.tenant_id, keys)))
    voided = False
    for coupon in rewards:  # one, unless two paths rewarded the purchase before that was refused
        # The same guard as a redemption's: whichever statement comes second finds no issued coupon.
        done = session.execute(
            update(Coupon).where(Coupon.id == coupon.id, Coupon.status == ISSUED).values(status=VOID)
        )
        if rowcount(done) != 1:
            continue
        session.refresh(coupon)
        voided = True
        audit(
            session,
            tenant_id=order.tenant_id,
            actor=actor,
            action="coupon.spend_reward_void",
            object_type="coupon",
            object_id=coupon.id,
            detail={"order_id": order.id, "order_status": order.status},
        )
    return (rewards[0] if rewards else None), voided


def undone_rewarded_orders(tenant_id: str, after_id: str) -> Select[str]:
    """A query of the ids of orders after ``after_id`` refunded in full or closed whose reward (under
    the order's own key) is still unused: what :func:`void_order_reward` has left to do."""
    key: ColumnElement[str] = literal(order_issue_key(""), String) + Order.id
    return (
        select(Order.id)
        .join(Coupon, (Coupon.tenant_id == Order.tenant_id) & (Coupon.issue_key == key))
        .where(
            Order.tenant_id == tenant_id,
            Order.id > after_id,
            Order.status.in_(UNDONE_STATUSES),
            Coupon.source == SOURCE,
            Coupon.status == ISSUED,
        )
    )


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
