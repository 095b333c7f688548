"""Issue coupons within their limits, validate them against a basket, redeem them exactly once (核销),
and reverse a redemption when its order is refunded.

Every limit is held by the database, not by a read followed by a write: the counters of an issue
(``limits.py``: budget, stores' allocations, the day's count, the member's count) each move in
``UPDATE … WHERE count < limit``, and a redemption is the ``UPDATE`` that moves the coupon from
``issued`` to ``redeemed``; whoever's statement finds no row lost the race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.db import hold_named_lock, rowcount
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons import limits
from datong.coupons.codes import BadCode, new_code, normalize_code, read_dynamic
from datong.coupons.models import (
    ISSUED,
    REDEEMED,
    VOID,
    Coupon,
    CouponAllocation,
    CouponRedemption,
    CouponTemplate,
)
from datong.coupons.rules import KINDS, Basket, Decision, Reason, Template, evaluate, validity
from datong.guides.service import record_touch
from datong.members.service import get_active_member
from datong.org.models import Agent, Region, Store
from datong.tenancy.service import audit


def template_rules(row: CouponTemplate) -> Template:
    return Template(
        kind=row.kind,
        amount_fen=row.amount_fen,
        threshold_fen=row.threshold_fen,
        rate_pct=row.rate_pct,
        cap_fen=row.cap_fen,
        sku=row.sku,
        price_fen=row.price_fen,
        online=row.online,
        offline=row.offline,
        store_ids=frozenset(row.store_ids),
        region_ids=frozenset(row.region_ids),
        agent_ids=frozenset(row.agent_ids),
        skus=frozenset(row.skus),
        categories=frozenset(row.categories),
        exclusive=row.exclusive,
        with_points=row.with_points,
        one_per_category=row.one_per_category,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        valid_days=row.valid_days,
    )


def check_template(row: CouponTemplate) -> None:
    """The rules a template must keep, each naming its field."""
    if row.kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
    for name in ("amount_fen", "threshold_fen", "price_fen"):
        if getattr(row, name) < 0:
            raise ValidationFailed("an amount of fen is not negative", field=name)
    if row.kind in ("cash_off", "threshold") and row.amount_fen <= 0:
        raise ValidationFailed("say how many fen the coupon takes off", field="amount_fen")
    if row.kind == "threshold" and row.threshold_fen <= row.amount_fen:
        raise ValidationFailed("the threshold is more than the amount taken off", field="threshold_fen")
    if row.kind == "discount" and not 1 <= row.rate_pct <= 99:
        raise ValidationFailed("rate_pct is what the member pays, 1 to 99 (80 = 8折)", field="rate_pct")
    if row.kind in ("exchange", "pickup") and not row.sku:
        raise ValidationFailed("an exchange or pickup coupon names its SKU", field="sku")
    if row.valid_days is None and row.valid_until is None:
        raise ValidationFailed("give valid_days, or valid_until", field="valid_until")
    if row.valid_days is not None and row.valid_days <= 0:
        raise ValidationFailed("valid_days is at least 1", field="valid_days")
    if row.total_quantity is not None and row.total_quantity < 0:
        raise ValidationFailed("a budget is not negative", field="total_quantity")
    if row.per_member_limit is not None and row.per_member_limit < 1:
        raise ValidationFailed("a per-member limit is at least 1", field="per_member_limit")
    if row.per_day_limit is not None and row.per_day_limit < 1:
        raise ValidationFailed("a per-day limit is at least 1", field="per_day_limit")
    if row.valid_from and row.valid_until and row.valid_until <= row.valid_from:
        raise ValidationFailed("valid_until is after valid_from", field="valid_until")


def create_template(
    session: Session, *, tenant_id: str, actor: str, code: str, **fields: Any
) -> CouponTemplate:
    """A new template; ``fields`` are the columns of :class:`CouponTemplate`. Audited."""
    if not code or not code.strip():
        raise ValidationFailed("a template has a code", field="code")
    if session.scalar(
        select(CouponTemplate.id).where(CouponTemplate.tenant_id == tenant_id, CouponTemplate.code == code)
    ):
        raise Conflict(f"a coupon template {code!r} exists", field="code")
    settable = set(CouponTemplate.__table__.columns.keys()) - {
        "id",
        "tenant_id",
        "code",
        "issued_count",
        "created_at",
    }
    unknown = sorted(set(fields) - settable)
    if unknown:
        raise ValidationFailed(f"unknown field {unknown[0]!r}", field=unknown[0])
    row = CouponTemplate(id=new_id("cpt"), tenant_id=tenant_id, code=code, **fields)
    for name, column in CouponTemplate.__table__.columns.items():  # defaults, for the checks below
        if getattr(row, name) is None and column.default is not None and column.default.is_scalar:
            setattr(row, name, column.default.arg)
    check_template(row)
    for where, model in (("store_ids", Store), ("region_ids", Region), ("agent_ids", Agent)):
        ids: list[str] = getattr(row, where) or []
        known = set(session.scalars(select(model.id).where(model.tenant_id == tenant_id, model.id.in_(ids))))
        for index, value in enumerate(ids):
            if value not in known:
                raise ValidationFailed(f"no {model.__tablename__} {value!r}", field=f"{where}.{index}")
    session.add(row)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="coupon.template_create",
        object_type="coupon_template",
        object_id=row.id,
        detail={"code": code, "kind": row.kind},
    )
    return row


def get_template(session: Session, *, tenant_id: str, code: str) -> CouponTemplate:
    row = session.scalar(
        select(CouponTemplate).where(CouponTemplate.tenant_id == tenant_id, CouponTemplate.code == code)
    )
    if row is None:
        raise NotFound(f"no coupon template {code!r}", field="template")
    return row


def issue_coupon(
    session: Session,
    *,
    tenant_id: str,
    template_code: str,
    member_id: str,
    issue_key: str,
    source: str,
    at: datetime | None = None,
    store_id: str | None = None,
    guide_id: str | None = None,
) -> tuple[Coupon, bool]:
    """Give a member a coupon, through a store (and its guide) or none. Returns (coupon, created): the
    same ``issue_key`` returns the first coupon and spends nothing more. Refused (a conflict naming the
    field) when the budget, the day's limit, the store's allocation or the member's limit is spent; a
    refusal changes nothing."""
    at = at or utcnow()
    if not issue_key or len(issue_key) > 128:
        raise ValidationFailed(
            "an issue key of 1 to 128 characters makes issuing idempotent", field="issue_key"
        )
    template = get_template(session, tenant_id=tenant_id, code=template_code)
    # Hold the template first: a second issue with the same key waits here for the first to commit,
    # then finds its coupon below instead of colliding with it on the unique key.
    limits.lock_template(session, template)
    earlier = session.scalar(
        select(Coupon).where(
            Coupon.tenant_id == tenant_id, Coupon.template_id == template.id, Coupon.issue_key == issue_key
        )
    )
    if earlier is not None:
        if earlier.member_id != member_id:
            raise Conflict("this issue key was used for another member", field="issue_key")
        return earlier, False
    check_issuable(template, at)
    get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    store = limits.issuing_store(session, tenant_id, store_id, guide_id)
    starts_at, ends_at = validity(template_rules(template), at)
    with session.begin_nested():  # the counters move together, or none does
        allocated = limits.draw_allocation(session, template, store)
        limits.spend_budget(session, template, allocated=allocated)
        limits.count_for_day(session, template, at)
        limits.count_for_member(session, template, member_id)
        coupon = Coupon(
            id=new_id("cpn"),
            tenant_id=tenant_id,
            template_id=template.id,
            member_id=member_id,
            code=new_code(),
            status=ISSUED,
            issued_at=at,
            valid_from=starts_at,
            valid_until=ends_at,
            source=source,
            issue_key=issue_key,
            store_id=store.id if store else None,
            guide_id=guide_id,
        )
        session.add(coupon)
        session.flush()
        if guide_id is not None:  # a coupon a guide sent is a touch: orders soon after are credited to them
            record_touch(
                session,
                tenant_id=tenant_id,
                member_id=member_id,
                kind="coupon",
                at=at,
                guide_id=guide_id,
                store_id=coupon.store_id,
                source_ref=f"coupon:{coupon.id}",
            )
    return coupon, True


def check_issuable(template: CouponTemplate, at: datetime) -> None:
    """A template switched off, or whose coupons would already have run out, issues none."""
    if not template.active:
        raise Conflict(f"coupon template {template.code!r} is switched off", field="template")
    _starts_at, ends_at = validity(template_rules(template), at)
    if ends_at is not None and ends_at <= at:
        raise Conflict(f"coupon template {template.code!r} is no longer valid", field="template")


def set_allocation(
    session: Session, *, tenant_id: str, template_code: str, store_id: str, quantity: int, actor: str
) -> CouponAllocation:
    """A store's share of the template's budget. Never below what the store has issued already, and
    all shares together, with what was issued outside them, never above the budget. Audited."""
    if quantity < 0:
        raise ValidationFailed("an allocation is 0 coupons or more", field="quantity")
    template = get_template(session, tenant_id=tenant_id, code=template_code)
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != tenant_id:
        raise NotFound(f"no store {store_id}", field="store_id")
    limits.lock_template(session, template)  # issues of this template wait, so the sums below stay true
    session.refresh(template)
    shares = list(
        session.scalars(
            select(CouponAllocation)
            .where(CouponAllocation.tenant_id == tenant_id, CouponAllocation.template_id == template.id)
            .execution_options(populate_existing=True)
        )
    )
    current = next((a for a in shares if a.store_id == store.id), None)
    if current is not None and quantity < current.issued:
        raise Conflict(
            f"store {store.code} has issued {current.issued} of {template.code!r} already", field="quantity"
        )
    if template.total_quantity is not None:
        others = sum(a.quantity for a in shares if a is not current)
        outside = template.issued_count - sum(a.issued for a in shares)  # issued through no allocation
        free = template.total_quantity - others - outside
        if quantity > free:
            raise Conflict(
                f"allocations may not exceed the budget of {template.code!r}: {max(free, 0)} left",
                field="quantity",
            )
    was = current.quantity if current is not None else None
    if current is None:
        current = CouponAllocation(
            id=new_id("cpa"), tenant_id=tenant_id, template_id=template.id, store_id=store.id, issued=0
        )
        session.add(current)
    current.quantity = quantity
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="coupon.allocation_set",
        object_type="coupon_template",
        object_id=template.id,
        detail={"store_id": store.id, "quantity": quantity, "was": was},
    )
    return current


def hold_order(session: Session, *, tenant_id: str, channel: str, order_no: str) -> None:
    """Take the order's coupon lock until the transaction ends, before reading the coupons already on
    it: two coupons redeemed on one order at the same moment then see each other, so stacking rules
    (exclusive, one per category) hold. (SQLite's writers take turns already.)"""
    hold_named_lock(session, f"coupon-order|{tenant_id}|{channel}|{order_no}")


def find_coupon(
    session: Session,
    *,
    tenant_id: str,
    code: str,
    sign: Callable[[str], str] | None = None,
    at: datetime | None = None,
) -> Coupon:
    """The coupon a printed code names, or a dynamic code from the member page (``id.window.mac``: the
    coupon's id, never its code), read with the brand's ``sign`` (``codes.dynamic_signer``) as of ``at``.
    A mistyped, forged or expired code is refused naming ``code``."""
    try:
        if "." in code:
            if sign is None:
                raise BadCode("a dynamic code is not accepted here: type the coupon's printed code")
            coupon_id = read_dynamic(code, at_epoch=(at or utcnow()).timestamp(), sign=sign)
            found = select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.id == coupon_id)
        else:
            normalized = normalize_code(code)
            found = select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.code == normalized)
    except BadCode as exc:
        raise ValidationFailed(str(exc), field="code") from None
    coupon = session.scalar(found)
    if coupon is None:
        raise NotFound("no such coupon", field="code")
    return coupon


def with_store_scope(session: Session, rules: Template, basket: Basket) -> Basket:
    """The basket with its store's region and agent, read from the organisation (not taken from a
    caller), when the template is scoped to regions or agents: call before ``rules.evaluate``."""
    if basket.store_id is None or not (rules.region_ids or rules.agent_ids):
        return basket
    store = session.get(Store, basket.store_id)
    region_id, agent_id = (store.region_id, store.agent_id) if store else (None, None)
    return replace(basket, region_id=region_id, agent_id=agent_id)


def validate_coupon(
    session: Session, *, coupon: Coupon, basket: Basket, member_id: str | None = None
) -> Decision:
    """The discount the coupon gives on this basket, or every reason it does not apply. Changes nothing."""
    template = session.get(CouponTemplate, coupon.template_id)
    assert template is not None
    rules = template_rules(template)
    basket = with_store_scope(session, rules, basket)
    decision = evaluate(rules, basket, starts_at=coupon.valid_from, ends_at=coupon.valid_until)
    extra: list[Reason] = []
    if coupon.status != ISSUED:
        extra.append(Reason(coupon.status, f"this coupon is {coupon.status}"))
    if member_id is not None and member_id != coupon.member_id:
        extra.append(Reason("member", "this coupon belongs to another member"))
    if extra:
        return Decision(0, extra + decision.reasons)
    return decision


@dataclass(frozen=True)
class Redeemed:
    redemption: CouponRedemption
    decision: Decision


def redeem_coupon(
    session: Session,
    *,
    coupon: Coupon,
    basket: Basket,
    order_no: str,
    actor: str,
    member_id: str | None = None,
) -> Redeemed:
    """Redeem once: the discount, and the redemption that records it. A second redemption of the same
    coupon, at the same moment or later, is a conflict and writes nothing."""
    decision = validate_coupon(session, coupon=coupon, basket=basket, member_id=member_id)
    if not decision.applies:
        raise Conflict(
            "the coupon does not apply: " + "; ".join(r.message for r in decision.reasons),
            field="code",
            reasons=[r.code for r in decision.reasons],
        )
    result = session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id, Coupon.status == ISSUED)
        .values(status=REDEEMED, redeemed_at=basket.at)
    )
    if rowcount(result) != 1:
        raise Conflict("this coupon was redeemed already", field="code", reasons=[REDEEMED])
    redemption = CouponRedemption(
        id=new_id("cpr"),
        tenant_id=coupon.tenant_id,
        coupon_id=coupon.id,
        member_id=coupon.member_id,
        channel=basket.channel,
        order_no=order_no,
        store_id=basket.store_id,
        discount_fen=decision.discount_fen,
        order_fen=sum(line.amount_fen for line in basket.lines),
        at=basket.at,
        actor=actor,
    )
    session.add(redemption)
    session.flush()
    return Redeemed(redemption, decision)


def reverse_redemption(
    session: Session, *, tenant_id: str, redemption_id: str, actor: str, at: datetime | None = None
) -> Coupon:
    """The order was refunded: the redemption is reversed, and the coupon comes back if the template
    says so and it is still valid; otherwise it is void."""
    at = at or utcnow()
    redemption = session.get(CouponRedemption, redemption_id)
    if redemption is None or redemption.tenant_id != tenant_id:
        raise NotFound(f"no redemption {redemption_id}", field="redemption_id")
    result = session.execute(
        update(CouponRedemption)
        .where(CouponRedemption.id == redemption.id, CouponRedemption.reversed_at.is_(None))
        .values(reversed_at=at, reversed_by=actor)
    )
    if rowcount(result) != 1:
        raise Conflict("this redemption was reversed already", field="redemption_id")
    coupon = session.get(Coupon, redemption.coupon_id)
    template = session.get(CouponTemplate, coupon.template_id) if coupon else None
    assert coupon is not None and template is not None
    still_valid = coupon.valid_until is None or at < coupon.valid_until
    coupon.status = ISSUED if template.restore_on_refund and still_valid else VOID
    coupon.redeemed_at = None if coupon.status == ISSUED else coupon.redeemed_at
    session.flush()
    return coupon
