"""Reads for coupons: a template and a coupon as the API shows them, a member's coupons, the coupons
already redeemed on an order (for stacking), and a redemption with what scopes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.errors import NotFound
from datong.coupons.codes import display_code
from datong.coupons.models import Coupon, CouponRedemption, CouponTemplate
from datong.coupons.rules import OtherCoupon
from datong.org.models import Store


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def template_view(session: Session, row: CouponTemplate) -> dict[str, Any]:
    stores = dict(session.execute(select(Store.id, Store.code).where(Store.id.in_(row.store_ids))).all())
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "kind": row.kind,
        "amount_fen": row.amount_fen,
        "threshold_fen": row.threshold_fen,
        "rate_pct": row.rate_pct,
        "cap_fen": row.cap_fen,
        "sku": row.sku,
        "price_fen": row.price_fen,
        "online": row.online,
        "offline": row.offline,
        "store_codes": sorted(stores[i] for i in row.store_ids if i in stores),
        "skus": sorted(row.skus),
        "categories": sorted(row.categories),
        "exclusive": row.exclusive,
        "with_points": row.with_points,
        "one_per_category": row.one_per_category,
        "valid_from": _iso(row.valid_from),
        "valid_until": _iso(row.valid_until),
        "valid_days": row.valid_days,
        "total_quantity": row.total_quantity,
        "issued_count": row.issued_count,
        "per_member_limit": row.per_member_limit,
        "restore_on_refund": row.restore_on_refund,
        "active": row.active,
    }


def coupon_view(coupon: Coupon, template: CouponTemplate) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "code": coupon.code,
        "display_code": display_code(coupon.code),
        "template": template.code,
        "name": template.name,
        "kind": template.kind,
        "member_id": coupon.member_id,
        "status": coupon.status,
        "issued_at": _iso(coupon.issued_at),
        "valid_from": _iso(coupon.valid_from),
        "valid_until": _iso(coupon.valid_until),
        "redeemed_at": _iso(coupon.redeemed_at),
    }


def member_coupons(session: Session, *, tenant_id: str, member_id: str) -> list[dict[str, Any]]:
    """Every coupon the member was given, oldest first, whatever its status."""
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.tenant_id == tenant_id, Coupon.member_id == member_id)
        .order_by(Coupon.issued_at, Coupon.id)
    ).all()
    return [coupon_view(coupon, template) for coupon, template in rows]


def coupons_on_order(session: Session, *, tenant_id: str, channel: str, order_no: str) -> list[OtherCoupon]:
    """The coupons redeemed on an order and not reversed: what a further coupon is stacked with."""
    rows = session.scalars(
        select(CouponTemplate)
        .join(Coupon, Coupon.template_id == CouponTemplate.id)
        .join(CouponRedemption, CouponRedemption.coupon_id == Coupon.id)
        .where(
            CouponRedemption.tenant_id == tenant_id,
            CouponRedemption.channel == channel,
            CouponRedemption.order_no == order_no,
            CouponRedemption.reversed_at.is_(None),
        )
        .order_by(CouponRedemption.at, CouponRedemption.id)
    ).all()
    return [
        OtherCoupon(
            exclusive=t.exclusive, one_per_category=t.one_per_category, categories=frozenset(t.categories)
        )
        for t in rows
    ]


def get_redemption(session: Session, *, tenant_id: str, redemption_id: str) -> CouponRedemption:
    row = session.get(CouponRedemption, redemption_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no redemption {redemption_id}", field="redemption_id")
    return row
