"""Reads for orders: the coupon codes written on imported orders that were not redeemed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.coupons.codes import display_code
from datong.orders.models import PENDING, REFUSED, Order, OrderCoupon


def order_coupon_problems(session: Session, *, tenant_id: str) -> list[dict[str, Any]]:
    """Every coupon code on an imported order that is not redeemed: refused ones with their reasons, and
    those still waiting (or not looked at yet), by channel and order number. What the CRM team works
    through (``datong coupon-orders problems``)."""
    rows = session.execute(
        select(OrderCoupon, Order)
        .join(Order, Order.id == OrderCoupon.order_id)
        .where(OrderCoupon.tenant_id == tenant_id, OrderCoupon.status.in_((PENDING, REFUSED)))
        .order_by(Order.channel, Order.order_no, OrderCoupon.code)
    ).all()
    return [
        {
            "channel": order.channel,
            "order_no": order.order_no,
            "order_status": order.status_raw,
            "member_id": order.member_id or "",
            "code": display_code(row.code),
            "status": row.status,
            "reasons": ",".join(row.reasons),
            "reason": row.reason or "",
            "checked_at": row.checked_at.isoformat() if row.checked_at else "",
        }
        for row, order in rows
    ]
