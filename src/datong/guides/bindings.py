"""Exclusive-guide binding (专属导购): who binds a member, when HQ assigns one, and the hand-over when a
guide leaves. Every change is a ``BindingChange`` with its reason; ``Member.guide_id`` is the current one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.db import is_sqlite
from datong.core.errors import Conflict, ValidationFailed
from datong.core.ids import new_id
from datong.guides import rules
from datong.guides.models import BindingChange
from datong.guides.queries import get_guide, get_store, guide_policy
from datong.guides.touches import record_touch
from datong.members.models import Member
from datong.members.service import get_active_member
from datong.org.models import Guide
from datong.tenancy.service import audit


def lock_member(session: Session, *, tenant_id: str, member_id: str) -> Member:
    """The active member, read afresh and held until the transaction ends, before their binding is read:
    two scans (or a scan and an assignment) for one member then decide one after the other, the second
    seeing what the first did. On PostgreSQL ``SELECT ... FOR NO KEY UPDATE`` (the lock an ``UPDATE`` of
    the row takes: it keeps out others deciding a binding, not writers of rows that merely point at the
    member, such as an order or a touch); SQLite's writers already take turns (BEGIN IMMEDIATE)."""
    if not is_sqlite(session):
        # Fetched, not only run: populate_existing refreshes a member this session read before the lock.
        session.scalars(
            select(Member)
            .where(Member.tenant_id == tenant_id, Member.id == member_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ).one_or_none()
    return get_active_member(session, tenant_id=tenant_id, member_id=member_id)


def current_binding(session: Session, member: Member) -> rules.Binding:
    if member.guide_id is None:
        return rules.Binding(None, None)
    guide = session.get(Guide, member.guide_id)
    last = session.scalar(
        select(BindingChange)
        .where(BindingChange.tenant_id == member.tenant_id, BindingChange.member_id == member.id)
        .order_by(BindingChange.at.desc(), BindingChange.id.desc())
        .limit(1)
    )
    protected_until = (
        last.protected_until if last is not None and last.to_guide_id == member.guide_id else None
    )
    return rules.Binding(member.guide_id, protected_until, guide is not None and guide.active)


def bind(
    session: Session,
    member: Member,
    guide: Guide,
    *,
    reason: str,
    at: datetime,
    actor: str,
    policy: rules.Policy,
    touch_id: str | None = None,
) -> BindingChange:
    change = BindingChange(
        id=new_id("gbc"),
        tenant_id=member.tenant_id,
        member_id=member.id,
        from_guide_id=member.guide_id,
        to_guide_id=guide.id,
        to_store_id=guide.store_id,
        reason=reason,
        at=at,
        protected_until=rules.protection_end(policy, at),
        actor=actor,
        touch_id=touch_id,
    )
    # The exclusive guide's store serves the member: it becomes their home store.
    member.guide_id = guide.id
    member.home_store_id = guide.store_id
    session.add(change)
    session.flush()
    return change


def assign_guide(
    session: Session, *, tenant_id: str, member_id: str, guide_id: str, actor: str, at: datetime
) -> BindingChange:
    """HQ makes ``guide_id`` the member's exclusive guide, whatever the policy; a binding touch is
    recorded, so the assignment starts an attribution window like a scan does."""
    member = lock_member(session, tenant_id=tenant_id, member_id=member_id)
    guide = get_guide(session, tenant_id=tenant_id, guide_id=guide_id)
    if not guide.active:
        raise Conflict("this guide has left", field="guide_id")
    if member.guide_id == guide.id:
        raise Conflict("this guide is the member's exclusive guide already", field="guide_id")
    touch = record_touch(
        session, tenant_id=tenant_id, member_id=member.id, kind="binding", at=at, guide_id=guide.id
    )
    policy = guide_policy(session, tenant_id=tenant_id)
    change = bind(
        session, member, guide, reason="assign", at=at, actor=actor, policy=policy, touch_id=touch.id
    )
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.assign",
        object_type="member",
        object_id=member.id,
        detail={"from": change.from_guide_id, "to": guide.id},
    )
    return change


def hand_over_members(
    session: Session,
    *,
    tenant_id: str,
    guide_id: str,
    actor: str,
    at: datetime,
    to_guide_id: str | None = None,
    to_store_id: str | None = None,
) -> int:
    """A guide leaves: they are marked as left, and each of their members goes to ``to_guide_id`` or, with
    ``to_store_id``, to that store's pool (no exclusive guide, home store kept). Returns how many moved."""
    if (to_guide_id is None) == (to_store_id is None):
        raise ValidationFailed(
            "hand the members to a guide or to a store's pool, not both", field="to_guide_id"
        )
    leaving = get_guide(session, tenant_id=tenant_id, guide_id=guide_id)
    heir: Guide | None = None
    if to_guide_id is not None:
        heir = get_guide(session, tenant_id=tenant_id, guide_id=to_guide_id)
        if heir.id == leaving.id or not heir.active:
            raise Conflict("hand the members to another guide who has not left", field="to_guide_id")
    else:
        assert to_store_id is not None
        get_store(session, tenant_id=tenant_id, store_id=to_store_id)
    policy = guide_policy(session, tenant_id=tenant_id)
    # Each member is held (PostgreSQL; SQLite's writers take turns), as a scan or an assignment holds
    # them, so none is moved from under a binding being decided; one rebound meanwhile is no longer
    # the leaving guide's and is left alone.
    query = (
        select(Member)
        .where(Member.tenant_id == tenant_id, Member.guide_id == leaving.id)
        .order_by(Member.id)
        .execution_options(populate_existing=True)
    )
    if not is_sqlite(session):
        query = query.with_for_update(key_share=True)
    members = list(session.scalars(query))
    for member in members:
        if heir is not None:
            bind(session, member, heir, reason="handover", at=at, actor=actor, policy=policy)
        else:
            session.add(
                BindingChange(
                    id=new_id("gbc"),
                    tenant_id=tenant_id,
                    member_id=member.id,
                    from_guide_id=leaving.id,
                    to_guide_id=None,
                    to_store_id=to_store_id,
                    reason="handover",
                    at=at,
                    actor=actor,
                )
            )
            member.guide_id = None
            member.home_store_id = to_store_id
    leaving.active = False
    leaving.left_at = leaving.left_at or at  # a second hand-over keeps the day they left
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.hand_over",
        object_type="guide",
        object_id=leaving.id,
        detail={"members": len(members), "to_guide": to_guide_id, "to_store": to_store_id},
    )
    return len(members)
