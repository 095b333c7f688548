"""The counters that hold a template's limits: the budget, the stores' allocations, the day's count and
each member's count. Each moves in one ``UPDATE … WHERE count < limit``: whoever's statement finds no row
lost the race, so no limit is ever exceeded whatever the concurrency. A refusal is a :class:`Conflict`
naming the field. The caller runs them inside one savepoint (``service.issue_coupon``), so a refusal by
a later counter takes back the earlier ones.

Allocations reserve part of the budget for stores: an issue through a store with an allocation draws on
it, and an issue through no store may only use what no allocation holds back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datong.core.clock import CHINA_TZ
from datong.core.db import is_sqlite, rowcount, upsert_insert
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons.models import CouponAllocation, CouponDayCount, CouponHolding, CouponTemplate
from datong.org.models import Guide, Store


def lock_template(session: Session, template: CouponTemplate) -> None:
    if not is_sqlite(session):  # SQLite's writers already take turns (BEGIN IMMEDIATE)
        session.execute(select(CouponTemplate.id).where(CouponTemplate.id == template.id).with_for_update())


def issuing_store(
    session: Session, tenant_id: str, store_id: str | None, guide_id: str | None
) -> Store | None:
    """The store an issue goes through: the one named, else the guide's."""
    guide = session.get(Guide, guide_id) if guide_id else None
    if guide_id and (guide is None or guide.tenant_id != tenant_id):
        raise NotFound(f"no guide {guide_id}", field="guide_id")
    store_id = store_id or (guide.store_id if guide else None)
    store = session.get(Store, store_id) if store_id else None
    if store_id and (store is None or store.tenant_id != tenant_id):
        raise NotFound(f"no store {store_id}", field="store_id")
    if guide is not None and store is not None and guide.store_id != store.id:
        raise ValidationFailed(f"guide {guide.code} works at another store", field="guide_id")
    return store


def unallocated(template: CouponTemplate) -> Any:
    """What the stores' allocations still hold back of the budget (0 without allocations)."""
    return (
        select(func.coalesce(func.sum(CouponAllocation.quantity - CouponAllocation.issued), 0))
        .where(CouponAllocation.tenant_id == template.tenant_id, CouponAllocation.template_id == template.id)
        .scalar_subquery()
    )


def spend_budget(session: Session, template: CouponTemplate, *, allocated: bool) -> None:
    """One coupon of the budget. Drawn on a store's allocation, it uses that store's share; otherwise
    only what no allocation holds back."""
    within = CouponTemplate.issued_count < CouponTemplate.total_quantity
    if not allocated:
        within = CouponTemplate.issued_count + unallocated(template) < CouponTemplate.total_quantity
    result = session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template.id, CouponTemplate.total_quantity.is_(None) | within)
        .values(issued_count=CouponTemplate.issued_count + 1)
    )
    if rowcount(result) != 1:
        held = session.scalar(select(unallocated(template)))
        if not allocated and held:
            raise Conflict(
                f"the rest of the budget of {template.code!r} is allocated to stores: issue through one",
                field="template",
            )
        raise Conflict(f"the budget of {template.code!r} is spent", field="template")


def draw_allocation(session: Session, template: CouponTemplate, store: Store | None) -> bool:
    """Whether the issue drew on the store's allocation: it does when the template has allocations, and
    a store without one (or with its share spent) is refused."""
    if store is None:
        return False
    shares = select(CouponAllocation.id).where(
        CouponAllocation.tenant_id == template.tenant_id, CouponAllocation.template_id == template.id
    )
    if session.scalar(shares.limit(1)) is None:
        return False
    result = session.execute(
        update(CouponAllocation)
        .where(
            CouponAllocation.tenant_id == template.tenant_id,
            CouponAllocation.template_id == template.id,
            CouponAllocation.store_id == store.id,
            CouponAllocation.issued < CouponAllocation.quantity,
        )
        .values(issued=CouponAllocation.issued + 1)
    )
    if rowcount(result) != 1:
        held = session.scalar(
            select(CouponAllocation.quantity).where(
                CouponAllocation.template_id == template.id, CouponAllocation.store_id == store.id
            )
        )
        if held is None:
            raise Conflict(f"store {store.code} has no allocation of {template.code!r}", field="store_id")
        raise Conflict(
            f"the {held} coupons of {template.code!r} allocated to store {store.code} are given out",
            field="store_id",
        )
    return True


def count_for_day(session: Session, template: CouponTemplate, at: datetime) -> None:
    if template.per_day_limit is None:
        return
    day = at.astimezone(CHINA_TZ).date()
    session.execute(
        upsert_insert(session, CouponDayCount)
        .values(id=new_id("cpd"), tenant_id=template.tenant_id, template_id=template.id, day=day, issued=0)
        .on_conflict_do_nothing(index_elements=["tenant_id", "template_id", "day"])
    )
    result = session.execute(
        update(CouponDayCount)
        .where(
            CouponDayCount.tenant_id == template.tenant_id,
            CouponDayCount.template_id == template.id,
            CouponDayCount.day == day,
            CouponDayCount.issued < template.per_day_limit,
        )
        .values(issued=CouponDayCount.issued + 1)
    )
    if rowcount(result) != 1:
        raise Conflict(
            f"the {template.per_day_limit} coupons of {template.code!r} for {day.isoformat()} are given out",
            field="template",
        )


def count_for_member(session: Session, template: CouponTemplate, member_id: str) -> None:
    if template.per_member_limit is None:
        return
    session.execute(
        upsert_insert(session, CouponHolding)
        .values(
            id=new_id("cph"),
            tenant_id=template.tenant_id,
            template_id=template.id,
            member_id=member_id,
            issued=0,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "template_id", "member_id"])
    )
    result = session.execute(
        update(CouponHolding)
        .where(
            CouponHolding.tenant_id == template.tenant_id,
            CouponHolding.template_id == template.id,
            CouponHolding.member_id == member_id,
            CouponHolding.issued < template.per_member_limit,
        )
        .values(issued=CouponHolding.issued + 1)
    )
    if rowcount(result) != 1:
        raise Conflict(
            f"this member already has {template.per_member_limit} of {template.code!r}", field="member_id"
        )
