"""Writes for orders: upsert by (channel, order number), so a later export that shows the order completed
updates it instead of adding a second one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields
from datong.core.ids import new_id
from datong.orders.models import Order, OrderLine
from datong.org.models import Store


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
        changed += 1
    return changed


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
        session.add(
            OrderLine(
                tenant_id=tenant_id,
                order_id=order.id,
                line_no=next_no,
                sku=line.sku,
                title=line.title,
                category=line.category,
                size=line.size,
                colour=line.colour,
                quantity=line.quantity,
                unit_price_fen=line.unit_price_fen,
            )
        )
        present.add((line.sku, line.title))
        next_no += 1
