"""Coupon reports, per template and per store, for a period: issued, redeemed, expired, the redemption
rate, the GMV of the orders that used a coupon, and the average order with and without one.

A redemption counts unless it was reversed. GMV and the average "with" count each order once, however
many coupons of the template it carried (an order is its channel and order number). "Without" is every
order of the period (at that store, for a store row) that carries no counted redemption of any coupon.

Per store, "issued" and "expired" are the coupons given out through the store (``Coupon.store_id``: by
its guides, at its counter, from its allocation) and "redeemed" the redemptions made at the store, so the
rate of a store that honours coupons given out elsewhere can pass 1. A period left open (``None``) has
no bound on that side.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.coupons.models import ISSUED, Coupon, CouponRedemption, CouponTemplate
from datong.orders.models import Order


@dataclass(frozen=True)
class Figures:
    key: str  # the template's code, or the store id
    issued: int
    redeemed: int
    expired: int
    gmv_fen: int
    average_with_fen: int | None
    average_without_fen: int | None

    @property
    def redemption_rate(self) -> float:
        return self.redeemed / self.issued if self.issued else 0.0


def _within(column: Any, since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    return and_(
        column >= since if since is not None else true(),
        column < until if until is not None else true(),
    )


def _counted(tenant_id: str, since: datetime | None, until: datetime | None) -> ColumnElement[bool]:
    return and_(
        CouponRedemption.tenant_id == tenant_id,
        CouponRedemption.reversed_at.is_(None),
        _within(CouponRedemption.at, since, until),
    )


def _average_without(
    session: Session,
    tenant_id: str,
    since: datetime | None,
    until: datetime | None,
    store_id: str | None = None,
) -> int | None:
    used = (
        select(CouponRedemption.id)
        .where(
            _counted(tenant_id, since, until),
            CouponRedemption.channel == Order.channel,
            CouponRedemption.order_no == Order.order_no,
        )
        .exists()
    )
    query = select(func.avg(Order.total_fen)).where(
        Order.tenant_id == tenant_id,
        _within(Order.ordered_at, since, until),
        Order.status.in_(("paid", "shipped", "completed")),
        ~used,
    )
    if store_id is not None:
        query = query.where(Order.store_id == store_id)
    value = session.scalar(query)
    return None if value is None else round(value)


def _coupons(
    session: Session, key: Any, conditions: list[ColumnElement[bool]], at: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """(issued, expired unused as of ``at``) by ``key``."""
    issued = session.execute(select(key, func.count()).where(*conditions).group_by(key)).all()
    expired = session.execute(
        select(key, func.count())
        .where(*conditions, Coupon.status == ISSUED, Coupon.valid_until <= at)
        .group_by(key)
    ).all()
    return {str(k): int(n) for k, n in issued}, {str(k): int(n) for k, n in expired}


def _used(
    session: Session, key: Any, conditions: list[ColumnElement[bool]]
) -> dict[str, tuple[int, int, int]]:
    """(redemptions, GMV of their orders, orders) by ``key``: an order counts once per key."""
    per_order = (
        select(
            key.label("key"),
            func.count().label("redemptions"),
            func.max(CouponRedemption.order_fen).label("order_fen"),
        )
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .where(*conditions)
        .group_by(key, CouponRedemption.channel, CouponRedemption.order_no)
        .subquery()
    )
    rows = session.execute(
        select(
            per_order.c.key,
            func.sum(per_order.c.redemptions),
            func.sum(per_order.c.order_fen),
            func.count(),
        ).group_by(per_order.c.key)
    ).all()
    return {str(k): (int(n), int(gmv or 0), int(orders)) for k, n, gmv, orders in rows}


def _figures(
    key: str,
    label: str,
    issued: dict[str, int],
    expired: dict[str, int],
    used: dict[str, tuple[int, int, int]],
    without: int | None,
) -> Figures:
    redeemed, gmv, orders = used.get(key, (0, 0, 0))
    average_with = round(gmv / orders) if orders else None
    return Figures(label, issued.get(key, 0), redeemed, expired.get(key, 0), gmv, average_with, without)


def template_report(
    session: Session,
    *,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    at: datetime | None = None,
    template_id: str | None = None,
) -> list[Figures]:
    """One row per template with coupons issued or redeemed in [since, until), or the one template
    asked for (always, even with no activity); expiry as of ``at`` (now)."""
    at = at or utcnow()
    coupons = [Coupon.tenant_id == tenant_id, _within(Coupon.issued_at, since, until)]
    redemptions = [_counted(tenant_id, since, until)]
    if template_id is not None:
        coupons.append(Coupon.template_id == template_id)
        redemptions.append(Coupon.template_id == template_id)
    issued, expired = _coupons(session, Coupon.template_id, coupons, at)
    used = _used(session, Coupon.template_id, redemptions)
    codes = dict(
        session.execute(
            select(CouponTemplate.id, CouponTemplate.code).where(CouponTemplate.tenant_id == tenant_id)
        ).all()
    )
    keys = {template_id} if template_id is not None else set(issued) | set(used)
    without = _average_without(session, tenant_id, since, until)
    return [
        _figures(key, codes[key], issued, expired, used, without)
        for key in sorted(keys, key=lambda t: codes[t])
    ]


def store_report(
    session: Session,
    *,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    at: datetime | None = None,
    template_id: str | None = None,
    store_ids: Collection[str] | None = None,
) -> list[Figures]:
    """One row per store (of ``store_ids``, if given) that gave out or honoured coupons (of the
    template, if given) in [since, until), by store id; expiry as of ``at`` (now)."""
    at = at or utcnow()
    coupons = [
        Coupon.tenant_id == tenant_id,
        Coupon.store_id.is_not(None),
        _within(Coupon.issued_at, since, until),
    ]
    redemptions = [_counted(tenant_id, since, until), CouponRedemption.store_id.is_not(None)]
    if template_id is not None:
        coupons.append(Coupon.template_id == template_id)
        redemptions.append(Coupon.template_id == template_id)
    if store_ids is not None:
        coupons.append(Coupon.store_id.in_(sorted(store_ids)))
        redemptions.append(CouponRedemption.store_id.in_(sorted(store_ids)))
    issued, expired = _coupons(session, Coupon.store_id, coupons, at)
    used = _used(session, CouponRedemption.store_id, redemptions)
    return [
        _figures(
            store_id,
            store_id,
            issued,
            expired,
            used,
            _average_without(session, tenant_id, since, until, store_id),
        )
        for store_id in sorted(set(issued) | set(used))
    ]
