"""Coupons on imported channel orders, and what a refund does to the coupons redeemed on an order
(docs/coupon-orders.md). An imported order's codes are redeemed once per (coupon, order), on a basket of
its lines, on its channel, at its paid time; a code that cannot be is refused with every reason, never
dropped, and never stops the batch. A full refund reverses every redemption on the order; a partial one
only those the kept part of the order no longer qualifies for. An order closed or refunded in full also
loses its unused spend reward (``spend_rewards.void_order_reward``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.db import Database
from datong.core.errors import Conflict, DatongError
from datong.coupons.models import ISSUED, Coupon, CouponRedemption, CouponTemplate
from datong.coupons.queries import coupons_on_order
from datong.coupons.rules import Basket, Line, OtherCoupon, Reason, evaluate
from datong.coupons.service import (
    find_coupon,
    hold_order,
    redeem_coupon,
    reverse_redemption,
    template_rules,
    validate_coupon,
    with_store_scope,
)
from datong.coupons.spend_rewards import undone_rewarded_orders, void_order_reward
from datong.members.models import Member, SourceRecord
from datong.orders.models import PENDING, REDEEMED, REFUSED, Order, OrderCoupon, OrderLine, OrderRefund
from datong.orders.service import refunded_fen, retry_refused_coupon_codes

PAID = ("paid", "shipped", "completed")  # redeemed at the paid time
REFUNDED = ("closed", "refunded")  # refunded in full: a coupon used on it is reversed


@dataclass
class OrderCouponCounts:
    """What one batch (or a whole run) did; ``last_id`` is where the next batch starts (None: done)."""

    redeemed: int = 0
    refused: int = 0
    waiting: int = 0
    reversed: int = 0
    voided: int = 0  # spend rewards taken back from closed or refunded orders
    retried: int = 0
    last_id: str | None = None

    def add(self, other: OrderCouponCounts) -> None:
        for f in fields(self):
            if f.name != "last_id":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class CouponOnOrder:
    """A coupon redeemed on an order, as it stands after a refund."""

    redemption_id: str
    coupon_id: str
    code: str
    status: str  # the coupon's: redeemed (kept), issued (came back) or void
    reversed: bool


# --- baskets ---------------------------------------------------------------------------------------


def _lines(session: Session, order: Order) -> list[OrderLine]:
    return list(
        session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no))
    )


def _basket_lines(
    order: Order, lines: Sequence[OrderLine], refunds: Sequence[OrderRefund] = ()
) -> list[Line]:
    """The order as coupon rules see it, less what ``refunds`` took back. Lines with prices (JD, a POS)
    are used as they are; an order without a price on every line (Tmall's report has one row per order)
    is one line of its goods (total less postage). A refund naming lines returns those quantities; the
    rest of the refunds take the same share off every line's price."""
    priced = bool(lines) and all(line.unit_price_fen is not None for line in lines)
    returned: dict[int, int] = {}
    share_off = 0
    for refund in refunds:
        if priced and refund.lines:
            for item in refund.lines:
                returned[item["line_no"]] = returned.get(item["line_no"], 0) + item["quantity"]
        else:
            share_off += refund.amount_fen
    kept_num, kept_den = max(order.total_fen - share_off, 0), max(order.total_fen, 1)
    if priced:
        return [
            Line(
                line.sku,
                line.category,
                max(line.quantity - returned.get(line.line_no, 0), 0),
                (line.unit_price_fen or 0) * kept_num // kept_den,
            )
            for line in lines
        ]
    sku, category = (lines[0].sku, lines[0].category) if len(lines) == 1 else (None, None)
    return [Line(sku, category, 1, max(order.total_fen - order.postage_fen, 0) * kept_num // kept_den)]


def order_basket(
    session: Session, *, order: Order, at: datetime, others: Sequence[OtherCoupon] = ()
) -> Basket:
    """The basket a coupon is redeemed on for a stored order (see ``_basket_lines``)."""
    return Basket(
        channel=order.channel,
        store_id=order.store_id,
        at=at,
        lines=_basket_lines(order, _lines(session, order)),
        others=others,
    )


# --- redeeming the codes of imported orders ------------------------------------------------------------


def _holder(session: Session, member_id: str) -> str:
    """The member who is this person now: a coupon's holder may since have been merged into another."""
    for _ in range(16):  # merges chain rarely; a bound keeps a bad row from looping
        member = session.get(Member, member_id)
        if member is None or member.merged_into_id is None:
            break
        member_id = member.merged_into_id
    return member_id


def _settle(row: OrderCoupon, status: str, at: datetime, reasons: Sequence[Reason] = ()) -> None:
    row.status = status
    row.reasons = [r.code for r in reasons]
    row.reason = "; ".join(r.message for r in reasons)[:300] or None
    row.checked_at = at


def _where_used(session: Session, coupon: Coupon) -> Reason:
    used = session.scalar(
        select(CouponRedemption)
        .where(CouponRedemption.coupon_id == coupon.id, CouponRedemption.reversed_at.is_(None))
        .order_by(CouponRedemption.at.desc())
        .limit(1)
    )
    if used is None:
        return Reason(coupon.status, f"this coupon is {coupon.status}")
    return Reason(coupon.status, f"used on {used.channel} order {used.order_no} at {used.at.isoformat()}")


def _redeem_code(
    session: Session, order: Order, row: OrderCoupon, at: datetime, actor: str, now: datetime
) -> bool:
    """Redeem one code on its order; False (and the row refused, with why) when it cannot be."""
    try:
        coupon = find_coupon(session, tenant_id=order.tenant_id, code=row.code)
    except DatongError:
        _settle(row, REFUSED, now, [Reason("not_found", "no coupon of this brand has this code")])
        return False
    row.coupon_id = coupon.id
    earlier = session.scalar(
        select(CouponRedemption.id).where(
            CouponRedemption.coupon_id == coupon.id,
            CouponRedemption.channel == order.channel,
            CouponRedemption.order_no == order.order_no,
        )
    )
    if earlier is not None:  # redeemed on this very order already (at a till, through the API): once
        row.redemption_id = earlier
        _settle(row, REDEEMED, now)
        return True
    others = coupons_on_order(
        session, tenant_id=order.tenant_id, channel=order.channel, order_no=order.order_no
    )
    basket = order_basket(session, order=order, at=at, others=others)
    assert order.member_id is not None
    same = _holder(session, coupon.member_id) == _holder(session, order.member_id)
    member_id = coupon.member_id if same else order.member_id
    decision = validate_coupon(session, coupon=coupon, basket=basket, member_id=member_id)
    if not decision.applies:
        reasons = [_where_used(session, coupon) if r.code == coupon.status else r for r in decision.reasons]
        _settle(row, REFUSED, now, reasons)
        return False
    try:
        done = redeem_coupon(
            session, coupon=coupon, basket=basket, order_no=order.order_no, actor=actor, member_id=member_id
        )
    except DatongError as exc:  # lost a race with a till: the coupon was redeemed a moment ago
        session.refresh(coupon)
        why = _where_used(session, coupon) if coupon.status != ISSUED else Reason(exc.code, exc.message)
        _settle(row, REFUSED, now, [why])
        return False
    row.redemption_id = done.redemption.id
    _settle(row, REDEEMED, now)
    return True


def _blocked(session: Session, order: Order) -> tuple[str, Reason] | None:
    """Why an order's codes cannot be redeemed now: (status the codes take, reason), or None."""
    if order.member_id is None:
        # Erasing a member unlinks its orders and erases their source records: that is for good.
        # Otherwise unification (or the next export) may yet link the order, and the codes wait.
        record = session.get(SourceRecord, order.source_record_id) if order.source_record_id else None
        if record is not None and record.status == "erased":
            return REFUSED, Reason("no_member", "the order's buyer was erased")
        return PENDING, Reason("no_member", "not linked to a member")
    if order.status in REFUNDED and order.paid_at is None:
        return REFUSED, Reason("unpaid", "the order was closed before it was paid: the coupon was not used")
    if order.status not in PAID + REFUNDED:
        return PENDING, Reason(
            "not_paid", f"waiting for the order to be paid (its status is {order.status_raw!r})"
        )
    if order.paid_at is None and order.ordered_at is None:
        return REFUSED, Reason("no_time", "the order has no paid or order time to redeem at")
    return None


def redeem_order_coupons(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    after_id: str = "",
    limit: int = 200,
    at: datetime | None = None,
) -> OrderCouponCounts:
    """One batch: the orders after ``after_id`` (in id order, up to ``limit``) with pending codes. A
    closed order that was paid has its codes redeemed too (the coupon was used), and
    :func:`reverse_refunded_orders` then gives them back as their template says."""
    now = at or utcnow()
    counts = OrderCouponCounts()
    order_ids = list(
        session.scalars(
            select(OrderCoupon.order_id)
            .where(
                OrderCoupon.tenant_id == tenant_id,
                OrderCoupon.status == PENDING,
                OrderCoupon.order_id > after_id,
            )
            .distinct()
            .order_by(OrderCoupon.order_id)
            .limit(limit)
        )
    )
    for order_id in order_ids:
        order = session.get(Order, order_id)
        assert order is not None
        # The order's lock first, then its codes as they are now: a run beside this one, or a till
        # redeeming on the same order, is seen rather than raced.
        hold_order(session, tenant_id=tenant_id, channel=order.channel, order_no=order.order_no)
        rows = session.scalars(
            select(OrderCoupon)
            .where(OrderCoupon.order_id == order.id, OrderCoupon.status == PENDING)
            .order_by(OrderCoupon.created_at, OrderCoupon.id)
            .execution_options(populate_existing=True)
        ).all()
        blocked = _blocked(session, order)
        paid_at = order.paid_at or order.ordered_at
        for row in rows:
            if blocked is not None:
                _settle(row, blocked[0], now, [blocked[1]])
                counts.waiting += blocked[0] == PENDING
                counts.refused += blocked[0] == REFUSED
                continue
            assert paid_at is not None  # _blocked refuses an order with no time
            if _redeem_code(session, order, row, paid_at, actor, now):
                counts.redeemed += 1
            else:
                counts.refused += 1
    session.flush()
    counts.last_id = order_ids[-1] if order_ids else None
    return counts


# --- refunds ----------------------------------------------------------------------------------------


def reverse_order_coupons(
    session: Session, *, tenant_id: str, order: Order, actor: str, at: datetime | None = None
) -> list[CouponOnOrder]:
    """After a refund of ``order`` (or an export showing it closed): reverse the coupons redeemed on it
    that the refunds undo. Refunded in full: every one. In part: those the kept part of the order no
    longer qualifies for (re-checked on the order's lines less what was returned, as at redemption).
    Idempotent: a redemption is reversed once, and calling again changes nothing. Returns every coupon
    redeemed on the order, reversed or kept."""
    at = at or utcnow()
    hold_order(session, tenant_id=tenant_id, channel=order.channel, order_no=order.order_no)
    redemptions = session.scalars(
        select(CouponRedemption)
        .where(
            CouponRedemption.tenant_id == tenant_id,
            CouponRedemption.channel == order.channel,
            CouponRedemption.order_no == order.order_no,
        )
        .order_by(CouponRedemption.at, CouponRedemption.id)
        .execution_options(populate_existing=True)
    ).all()
    if not redemptions:
        return []
    refunds = session.scalars(
        select(OrderRefund).where(OrderRefund.order_id == order.id).order_by(OrderRefund.refunded_at)
    ).all()
    total_refunded = refunded_fen(session, order_id=order.id)
    in_full = order.status in REFUNDED or (order.total_fen > 0 and total_refunded >= order.total_fen)
    lines = _lines(session, order) if not in_full else []
    out: list[CouponOnOrder] = []
    for redemption in redemptions:
        coupon = session.get(Coupon, redemption.coupon_id)
        assert coupon is not None
        if redemption.reversed_at is None and (
            in_full or _no_longer_qualifies(session, order, lines, refunds, redemption, coupon)
        ):
            # Conflict: reversed by hand a moment ago (that route takes no order lock), which is as good.
            with suppress(Conflict):
                reverse_redemption(
                    session, tenant_id=tenant_id, redemption_id=redemption.id, actor=actor, at=at
                )
            session.refresh(redemption)
            session.refresh(coupon)
        out.append(
            CouponOnOrder(
                redemption.id, coupon.id, coupon.code, coupon.status, redemption.reversed_at is not None
            )
        )
    return out


def _no_longer_qualifies(
    session: Session,
    order: Order,
    lines: Sequence[OrderLine],
    refunds: Sequence[OrderRefund],
    redemption: CouponRedemption,
    coupon: Coupon,
) -> bool:
    """True when the coupon applied to the whole order and does not to what the refunds left of it.
    When it did not apply to the whole order as stored (the till sent other lines), there is nothing to
    go by, and the coupon stays used."""
    template = session.get(CouponTemplate, coupon.template_id)
    assert template is not None
    rules = template_rules(template)

    def applies(basket_lines: list[Line]) -> bool:
        # As at redemption (same channel, store and moment); stacking was settled then and is not re-judged.
        basket = with_store_scope(
            session, rules, Basket(redemption.channel, redemption.store_id, redemption.at, basket_lines)
        )
        return evaluate(rules, basket, starts_at=coupon.valid_from, ends_at=coupon.valid_until).applies

    return applies(_basket_lines(order, lines)) and not applies(_basket_lines(order, lines, refunds))


def reverse_refunded_orders(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    after_id: str = "",
    limit: int = 200,
    at: datetime | None = None,
) -> OrderCouponCounts:
    """One batch: imported orders a later export shows closed or refunded, in id order after
    ``after_id``, whose coupon codes were redeemed and not yet reversed (their redemptions are
    reversed), or whose spend reward is still unused (it is voided)."""
    counts = OrderCouponCounts()
    redeemed = (
        select(Order.id)
        .join(OrderCoupon, OrderCoupon.order_id == Order.id)
        .join(CouponRedemption, CouponRedemption.id == OrderCoupon.redemption_id)
        .where(
            OrderCoupon.tenant_id == tenant_id,
            OrderCoupon.status == REDEEMED,
            CouponRedemption.reversed_at.is_(None),
            Order.status.in_(REFUNDED),
            Order.id > after_id,
        )
    )
    found = union(redeemed, undone_rewarded_orders(tenant_id, after_id)).subquery()
    order_ids = list(session.scalars(select(found.c.id).order_by(found.c.id).limit(limit)))
    for order_id in order_ids:
        order = session.get(Order, order_id)
        assert order is not None
        open_ids = set(
            session.scalars(
                select(CouponRedemption.id).where(
                    CouponRedemption.tenant_id == tenant_id,
                    CouponRedemption.channel == order.channel,
                    CouponRedemption.order_no == order.order_no,
                    CouponRedemption.reversed_at.is_(None),
                )
            )
        )
        after = reverse_order_coupons(session, tenant_id=tenant_id, order=order, actor=actor, at=at)
        counts.reversed += sum(1 for c in after if c.reversed and c.redemption_id in open_ids)
        counts.voided += void_order_reward(session, order=order, actor=actor)[1]
    counts.last_id = order_ids[-1] if order_ids else None
    return counts


# --- the job ------------------------------------------------------------------------------


def run_order_coupons(
    db: Database,
    *,
    tenant_id: str,
    actor: str,
    retry_refused: bool = False,
    at: datetime | None = None,
    on_batch: Callable[[OrderCouponCounts], None] | None = None,
) -> OrderCouponCounts:
    """Redeem the codes of imported orders, then reverse those of orders since closed or refunded (and
    void their unused spend rewards); one transaction a batch, so a run that stops keeps what it
    finished and the next picks up the rest."""
    totals = OrderCouponCounts()
    if retry_refused:
        with db.unit_of_work() as s:
            totals.retried = retry_refused_coupon_codes(s, tenant_id=tenant_id)
    for step in (redeem_order_coupons, reverse_refunded_orders):
        after: str | None = ""
        while after is not None:
            with db.unit_of_work() as s:
                batch = step(s, tenant_id=tenant_id, actor=actor, after_id=after, at=at)
            totals.add(batch)
            after = batch.last_id
            if on_batch is not None:
                on_batch(totals)
    return totals
