"""Writes for orders: upsert by (channel, order number), so a later export that shows the order completed
updates it instead of adding a second one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields, OrderLineFields
from datong.core.clock import utcnow
from datong.core.db import is_sqlite, upsert_insert
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.orders.models import PENDING, REFUSED, Order, OrderCoupon, OrderLine, OrderRefund
from datong.org.models import Store

# Channels whose systems send their sales to the API; Tmall and JD orders arrive as imports.
API_CHANNELS = ("pos", "miniprogram", "eshop")


@dataclass(frozen=True)
class IncomingOrder:
    channel: str
    fields: OrderFields
    member_id: str | None
    buyer_kind: str | None
    buyer_lookup: str | None
    source_record_id: str | None


def upsert_orders(session: Session, *, tenant_id: str, incoming: Sequence[IncomingOrder]) -> int:
    """Returns how many orders were created or changed."""
    if not incoming:
        return 0
    numbers = sorted({(o.channel, o.fields.order_no) for o in incoming})
    existing: dict[tuple[str, str], Order] = {}
    for start in range(0, len(numbers), 500):
        part = numbers[start : start + 500]
        for order in session.scalars(
            select(Order).where(
                Order.tenant_id == tenant_id,
                Order.order_no.in_([n for _, n in part]),
                Order.channel.in_(sorted({c for c, _ in part})),
            )
        ):
            existing[(order.channel, order.order_no)] = order
    codes = sorted({o.fields.store_code for o in incoming if o.fields.store_code})
    stores = (
        dict(
            session.execute(
                select(Store.code, Store.id).where(Store.tenant_id == tenant_id, Store.code.in_(codes))
            ).all()
        )
        if codes
        else {}
    )
    changed = 0
    fresh: dict[str, set[tuple[str | None, str]]] = {}  # orders created in this call, with their lines
    coupon_codes: list[tuple[str, str]] = []  # (order id, code)
    for item in incoming:
        f = item.fields
        found = existing.get((item.channel, f.order_no))
        if found is not None:
            order = found
        else:
            order = Order(id=new_id("ord"), tenant_id=tenant_id, channel=item.channel, order_no=f.order_no)
            session.add(order)
            existing[(item.channel, f.order_no)] = order
            fresh[order.id] = set()
        order.member_id = item.member_id or order.member_id
        order.buyer_kind, order.buyer_lookup = item.buyer_kind, item.buyer_lookup
        order.status, order.status_raw = f.status, f.status_raw
        order.total_fen, order.paid_fen, order.postage_fen = f.total_fen, f.paid_fen, f.postage_fen
        order.ordered_at = f.created_at or order.ordered_at
        order.paid_at = f.paid_at or order.paid_at
        order.completed_at = f.completed_at or order.completed_at
        order.shop_external_id = f.shop_id or order.shop_external_id
        order.store_id = stores.get(f.store_code or "", order.store_id)
        order.source_record_id = order.source_record_id or item.source_record_id
        _add_lines(session, tenant_id, order, f, fresh)
        coupon_codes += [(order.id, code) for code in f.coupon_codes]
        changed += 1
    _add_coupon_codes(session, tenant_id, coupon_codes)
    return changed


def _add_coupon_codes(session: Session, tenant_id: str, codes: list[tuple[str, str]]) -> None:
    """The coupon codes an export wrote on its orders, each kept once per order (JD repeats them on every
    line's row; a later export of the order repeats them again), pending for the coupon job."""
    if not codes:
        return
    session.flush()  # the orders first: the codes refer to them
    now = utcnow()
    rows = [
        {
            "id": new_id("ocp"),
            "tenant_id": tenant_id,
            "order_id": order_id,
            "code": code,
            "status": PENDING,
            "reasons": [],
            "created_at": now,
        }
        for order_id, code in dict.fromkeys(codes)
    ]
    for start in range(0, len(rows), 500):
        session.execute(
            upsert_insert(session, OrderCoupon)
            .values(rows[start : start + 500])
            .on_conflict_do_nothing(index_elements=["tenant_id", "order_id", "code"])
        )


def _add_lines(
    session: Session,
    tenant_id: str,
    order: Order,
    fields: OrderFields,
    fresh: dict[str, set[tuple[str | None, str]]],
) -> None:
    """JD writes one row per line; a line already on the order (same SKU and title) is not added twice."""
    if order.id in fresh:
        present = fresh[order.id]
        next_no = len(present) + 1
    else:
        session.flush()
        present = set(
            session.execute(
                select(OrderLine.sku, OrderLine.title).where(OrderLine.order_id == order.id)
            ).all()
        )
        next_no = (
            session.scalar(select(func.max(OrderLine.line_no)).where(OrderLine.order_id == order.id)) or 0
        ) + 1
        fresh[order.id] = present
    for line in fields.lines:
        if (line.sku, line.title) in present:
            continue
        session.add(_line(tenant_id, order.id, next_no, line))
        present.add((line.sku, line.title))
        next_no += 1


def retry_refused_coupon_codes(session: Session, *, tenant_id: str) -> int:
    """Put every refused coupon code of the brand's orders back to pending, for a coupon run after the CRM
    team fixed what was wrong (merged the buyer with the coupon's holder, corrected a template).
    Returns how many."""
    rows = session.scalars(
        select(OrderCoupon).where(OrderCoupon.tenant_id == tenant_id, OrderCoupon.status == REFUSED)
    ).all()
    for row in rows:
        row.status, row.coupon_id = PENDING, None
    session.flush()
    return len(rows)


def record_order(
    session: Session,
    *,
    tenant_id: str,
    channel: str,
    fields: OrderFields,
    member_id: str,
    store_id: str | None,
) -> Order:
    """A sale sent by a POS, the mini-program or the e-shop. Sending the same order again (a status
    change) updates it; the same number for another member is a conflict."""
    if channel not in API_CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(API_CHANNELS)}", field="order.channel")
    if channel == "pos" and not store_id:
        raise ValidationFailed("a POS sale names its store", field="order.store_code")
    if fields.paid_fen > fields.total_fen:
        raise ValidationFailed("paid_fen cannot exceed total_fen", field="order.paid_fen")
    # Insert-or-nothing, then read the row under a lock: two sends of one new sale at once (a till's
    # retry under a new key) record it once, and the second sees the first's row instead of failing.
    created = session.execute(
        upsert_insert(session, Order)
        .values(
            id=new_id("ord"),
            tenant_id=tenant_id,
            channel=channel,
            order_no=fields.order_no,
            member_id=member_id,
            status=fields.status,
            status_raw=fields.status_raw,
            total_fen=fields.total_fen,
            paid_fen=fields.paid_fen,
            postage_fen=fields.postage_fen,
            ordered_at=fields.created_at,
            paid_at=fields.paid_at,
            completed_at=fields.completed_at,
            store_id=store_id,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "order_no"])
        .returning(Order.id)
    ).scalar_one_or_none()
    query = select(Order).where(
        Order.tenant_id == tenant_id, Order.channel == channel, Order.order_no == fields.order_no
    )
    if not is_sqlite(session):
        query = query.with_for_update()
    order = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    if created is not None:
        for line_no, line in enumerate(fields.lines, start=1):
            session.add(_line(tenant_id, order.id, line_no, line))
        return order
    if order.member_id != member_id or order.total_fen != fields.total_fen:
        raise Conflict(
            f"order {fields.order_no} was sent before with another member or total", field="order.order_no"
        )
    if order.status not in ("completed", "refunded"):  # a status never goes back
        order.status, order.status_raw = fields.status, fields.status_raw
        order.completed_at = order.completed_at or fields.completed_at
        order.paid_fen = fields.paid_fen
    return order


def _line(tenant_id: str, order_id: str, line_no: int, line: OrderLineFields) -> OrderLine:
    return OrderLine(
        tenant_id=tenant_id,
        order_id=order_id,
        line_no=line_no,
        sku=line.sku,
        title=line.title,
        category=line.category,
        size=line.size,
        colour=line.colour,
        quantity=line.quantity,
        unit_price_fen=line.unit_price_fen,
    )


def get_order(session: Session, *, tenant_id: str, channel: str, order_no: str) -> Order:
    order = session.scalar(
        select(Order).where(
            Order.tenant_id == tenant_id, Order.channel == channel, Order.order_no == order_no
        )
    )
    if order is None:
        raise NotFound(f"no {channel} order {order_no}", field="order_no")
    return order


def refunded_fen(session: Session, *, order_id: str) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(OrderRefund.amount_fen), 0)).where(OrderRefund.order_id == order_id)
        )
        or 0
    )


def record_refund(
    session: Session,
    *,
    tenant_id: str,
    order: Order,
    refund_no: str,
    amount_fen: int,
    lines: Sequence[tuple[int, int]] = (),
    reason: str | None = None,
    at: datetime | None = None,
) -> tuple[OrderRefund, bool]:
    """Record a refund of part or all of an order's total. Returns (refund, created); the same refund
    number sent again returns the first one, and with another amount it is a conflict."""
    if not refund_no.strip():
        raise ValidationFailed("a refund has a number", field="refund_no")
    found = session.scalar(
        select(OrderRefund).where(
            OrderRefund.tenant_id == tenant_id,
            OrderRefund.order_id == order.id,
            OrderRefund.refund_no == refund_no,
        )
    )
    if found is not None:
        if found.amount_fen != amount_fen:
            raise Conflict(f"refund {refund_no} was recorded with {found.amount_fen} fen", field="amount_fen")
        return found, False
    if amount_fen <= 0:
        raise ValidationFailed("a refund is a positive amount of fen", field="amount_fen")
    already = refunded_fen(session, order_id=order.id)
    if already + amount_fen > order.total_fen:
        raise ValidationFailed(
            f"refunds would exceed the order's total: {already} of {order.total_fen} fen already refunded",
            field="amount_fen",
        )
    _check_refund_lines(session, order, lines)
    refund = OrderRefund(
        id=new_id("rfd"),
        tenant_id=tenant_id,
        order_id=order.id,
        refund_no=refund_no,
        amount_fen=amount_fen,
        lines=[{"line_no": n, "quantity": q} for n, q in lines],
        reason=reason,
        refunded_at=at or utcnow(),
    )
    session.add(refund)
    if already + amount_fen == order.total_fen:
        order.status = "refunded"
    session.flush()
    return refund, True


def _check_refund_lines(session: Session, order: Order, lines: Sequence[tuple[int, int]]) -> None:
    if not lines:
        return
    quantities = dict(
        session.execute(
            select(OrderLine.line_no, OrderLine.quantity).where(OrderLine.order_id == order.id)
        ).all()
    )
    returned: dict[int, int] = {}
    for refund in session.scalars(select(OrderRefund).where(OrderRefund.order_id == order.id)):
        for item in refund.lines:
            returned[item["line_no"]] = returned.get(item["line_no"], 0) + item["quantity"]
    for index, (line_no, quantity) in enumerate(lines):
        if line_no not in quantities:
            raise ValidationFailed(f"the order has no line {line_no}", field=f"lines[{index}].line_no")
        if quantity <= 0 or returned.get(line_no, 0) + quantity > quantities[line_no]:
            raise ValidationFailed(
                f"line {line_no} had {quantities[line_no]}, {returned.get(line_no, 0)} already returned",
                field=f"lines[{index}].quantity",
            )
        returned[line_no] = returned.get(line_no, 0) + quantity
