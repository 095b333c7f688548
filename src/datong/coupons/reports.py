"""Coupon reports, per template and per store, for a period: issued, redeemed, expired, the redemption
rate, the GMV of the orders that used a coupon, and the average order with and without one.

A redemption counts unless it was reversed. "Without" is every order of the period (at that store, for
the store report) that carries no counted redemption; an order is matched to a redemption by channel and
order number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

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


def _counted(tenant_id: str, since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(
        CouponRedemption.tenant_id == tenant_id,
        CouponRedemption.reversed_at.is_(None),
        CouponRedemption.at >= since,
        CouponRedemption.at < until,
    )


def _average_without(
    session: Session, tenant_id: str, since: datetime, until: datetime, store_id: str | None = None
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
        Order.ordered_at >= since,
        Order.ordered_at < until,
        Order.status.in_(("paid", "shipped", "completed")),
        ~used,
    )
    if store_id is not None:
        query = query.where(Order.store_id == store_id)
    value = session.scalar(query)
    return None if value is None else round(value)


def template_report(
    session: Session, *, tenant_id: str, since: datetime, until: datetime, at: datetime
) -> list[Figures]:
    """One row per template with coupons issued or redeemed in [since, until); expiry as of ``at``."""
    issued = dict(
        session.execute(
            select(Coupon.template_id, func.count())
            .where(Coupon.tenant_id == tenant_id, Coupon.issued_at >= since, Coupon.issued_at < until)
            .group_by(Coupon.template_id)
        ).all()
    )
    expired = dict(
        session.execute(
            select(Coupon.template_id, func.count())
            .where(
                Coupon.tenant_id == tenant_id,
                Coupon.issued_at >= since,
                Coupon.issued_at < until,
                Coupon.status == ISSUED,
                Coupon.valid_until <= at,
            )
            .group_by(Coupon.template_id)
        ).all()
    )
    used = {
        template_id: (int(count), int(gmv or 0))
        for template_id, count, gmv in session.execute(
            select(Coupon.template_id, func.count(), func.sum(CouponRedemption.order_fen))
            .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
            .where(_counted(tenant_id, since, until))
            .group_by(Coupon.template_id)
        )
    }
    codes = dict(
        session.execute(
            select(CouponTemplate.id, CouponTemplate.code).where(CouponTemplate.tenant_id == tenant_id)
        ).all()
    )
    without = _average_without(session, tenant_id, since, until)
    rows = []
    for template_id in sorted(set(issued) | set(used), key=lambda t: codes[t]):
        redeemed, gmv = used.get(template_id, (0, 0))
        rows.append(
            Figures(
                codes[template_id],
                int(issued.get(template_id, 0)),
                redeemed,
                int(expired.get(template_id, 0)),
                gmv,
                round(gmv / redeemed) if redeemed else None,
                without,
            )
        )
    return rows


def store_report(session: Session, *, tenant_id: str, since: datetime, until: datetime) -> list[Figures]:
    """One row per store where coupons were redeemed in [since, until). (Issuing and expiry belong to
    templates, not stores: those columns are 0 here.)"""
    rows = []
    for store_id, count, gmv in session.execute(
        select(CouponRedemption.store_id, func.count(), func.sum(CouponRedemption.order_fen))
        .where(_counted(tenant_id, since, until), CouponRedemption.store_id.is_not(None))
        .group_by(CouponRedemption.store_id)
        .order_by(CouponRedemption.store_id)
    ):
        rows.append(
            Figures(
                str(store_id),
                0,
                int(count),
                0,
                int(gmv or 0),
                round(int(gmv or 0) / int(count)),
                _average_without(session, tenant_id, since, until, store_id),
            )
        )
    return rows
