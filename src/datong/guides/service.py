"""Guides' QR codes, the touches they bring, exclusive-guide binding and order attribution.

The rules themselves (binding policies, which touch an order is credited to) are in ``rules.py``; here
they meet the database. A member's exclusive guide is ``Member.guide_id``; every change of it is a
``BindingChange`` with its reason, so a member's history with the brand's guides is never lost.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.db import upsert_insert
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons.codes import ALPHABET
from datong.guides import rules
from datong.guides.bindings import assign_guide as assign_guide
from datong.guides.bindings import bind, current_binding, lock_member
from datong.guides.bindings import hand_over_members as hand_over_members
from datong.guides.models import Attribution, BindingChange, QrCode, Touch
from datong.guides.queries import get_guide, get_store, guide_policy
from datong.guides.queries import guide_at_store as guide_at_store
from datong.guides.touches import record_touch as record_touch
from datong.members.models import Member
from datong.orders.models import Order
from datong.tenancy.service import audit

_SCENE_PREFIX = {"guide": "g", "store": "s", "campaign": "c", "event": "e"}


def create_qr_code(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    kind: str,
    name: str,
    guide_id: str | None = None,
    store_id: str | None = None,
    campaign_code: str | None = None,
    window_days: int | None = None,
    permanent: bool = False,
    scene: str | None = None,
) -> QrCode:
    """A code for a guide's card, a store, or a campaign or event. ``scene`` defaults to a short random
    one (``g_7KQ2M9XD4HTP``); a chosen scene must be free. A guide's code credits the guide's store too."""
    if kind not in rules.QR_KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(rules.QR_KINDS)}", field="kind")
    if not name.strip():
        raise ValidationFailed("a code has a name", field="name")
    if kind == "guide":
        if guide_id is None:
            raise ValidationFailed("a guide's code names the guide", field="guide_id")
        guide = get_guide(session, tenant_id=tenant_id, guide_id=guide_id)
        if not guide.active:
            raise Conflict("this guide has left", field="guide_id")
        store_id = guide.store_id
    elif guide_id is not None:
        raise ValidationFailed("only a guide's code names a guide", field="guide_id")
    if kind == "store" and store_id is None:
        raise ValidationFailed("a store's code names the store", field="store_id")
    if store_id is not None:
        get_store(session, tenant_id=tenant_id, store_id=store_id)
    if kind in ("campaign", "event") and not campaign_code:
        raise ValidationFailed("a campaign or event code names the campaign", field="campaign_code")
    if kind in ("campaign", "event") and store_id is None:
        # Its scans are touches, and a touch names a guide or a store: without a store each would be refused.
        raise ValidationFailed("a campaign or event code names the store it is for", field="store_id")
    if window_days is not None and not 1 <= window_days <= rules.MAX_WINDOW_DAYS:
        raise ValidationFailed(f"window_days is 1 to {rules.MAX_WINDOW_DAYS}", field="window_days")
    if scene is None:
        scene = f"{_SCENE_PREFIX[kind]}_{''.join(secrets.choice(ALPHABET) for _ in range(12))}"
    rules.check_scene(scene)
    if session.scalar(select(QrCode.id).where(QrCode.tenant_id == tenant_id, QrCode.scene == scene)):
        raise Conflict(f"scene {scene!r} is taken", field="scene")
    code = QrCode(
        id=new_id("qrc"),
        tenant_id=tenant_id,
        scene=scene,
        kind=kind,
        name=name.strip(),
        guide_id=guide_id,
        store_id=store_id,
        campaign_code=campaign_code,
        window_days=window_days,
        permanent=permanent,
        scans=0,
        active=True,
    )
    session.add(code)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.qr_create",
        object_type="guide_qr_code",
        object_id=code.id,
        detail={"scene": scene, "kind": kind},
    )
    return code


def find_qr_code(session: Session, *, tenant_id: str, scene: str) -> QrCode:
    code = session.scalar(select(QrCode).where(QrCode.tenant_id == tenant_id, QrCode.scene == scene))
    if code is None:
        raise NotFound("no code with this scene", field="scene")
    return code


@dataclass(frozen=True)
class Scan:
    touch: Touch
    binding: BindingChange | None  # set when the scan made the scanning guide the exclusive guide


def record_scan(
    session: Session,
    *,
    tenant_id: str,
    member_id: str,
    scene: str,
    at: datetime,
    kind: str = "scan",
    source_ref: str | None = None,
    actor: str = "wechat",
) -> Scan:
    """A member scanned a code (``kind`` scan, or subscribe when the scan made them a follower): a touch,
    and, for a guide's code, the binding the brand's policy gives. A code of a guide who has left is a
    touch of the code's store alone: a departed guide is credited with nothing new and binds no one."""
    # Held before anything is read, so two scans for one member decide their binding one after the other.
    member = lock_member(session, tenant_id=tenant_id, member_id=member_id)
    code = find_qr_code(session, tenant_id=tenant_id, scene=scene)
    scanning = get_guide(session, tenant_id=tenant_id, guide_id=code.guide_id) if code.guide_id else None
    if scanning is not None and not scanning.active:
        scanning = None
    touch = record_touch(
        session,
        tenant_id=tenant_id,
        member_id=member.id,
        kind=kind,
        at=at,
        guide_id=scanning.id if scanning is not None else None,
        store_id=code.store_id,
        campaign_code=code.campaign_code,
        window_days=code.window_days,
        qr_code_id=code.id,
        source_ref=source_ref,
    )
    # Counted once the touch is in: a refused scan (the caller may carry on, as the WeChat callback does)
    # leaves the count as it was.
    session.execute(update(QrCode).where(QrCode.id == code.id).values(scans=QrCode.scans + 1))
    if scanning is None or not code.active:
        return Scan(touch, None)
    policy = guide_policy(session, tenant_id=tenant_id)
    if not rules.scan_binds(policy, current_binding(session, member), scanning.id, at):
        return Scan(touch, None)
    change = bind(
        session, member, scanning, reason="scan", at=at, actor=actor, policy=policy, touch_id=touch.id
    )
    return Scan(touch, change)


def attribute_order(
    session: Session, *, tenant_id: str, order_id: str, pos_guide_id: str | None = None
) -> Attribution | None:
    """Credit an order to a guide and store, once (asking again returns the first answer). A POS sale a
    guide rang up goes to that guide; an online order to the touch ``rules.credit_for`` picks."""
    earlier = session.scalar(
        select(Attribution).where(Attribution.tenant_id == tenant_id, Attribution.order_id == order_id)
    )
    if earlier is not None:
        return earlier
    order = session.get(Order, order_id)
    if order is None or order.tenant_id != tenant_id:
        raise NotFound(f"no order {order_id}", field="order_id")
    at = order.paid_at or order.ordered_at
    if at is None:
        raise ValidationFailed("the order has no time to look back from", field="ordered_at")
    if pos_guide_id is not None:
        guide = get_guide(session, tenant_id=tenant_id, guide_id=pos_guide_id)
        return _attribution(session, order, at, guide.id, guide.store_id, None, "pos_sale", None)
    if order.member_id is None or order.channel not in rules.ONLINE_CHANNELS:
        return None
    member = session.get(Member, order.member_id)
    touches = list(
        session.scalars(
            select(Touch)
            .where(Touch.tenant_id == tenant_id, Touch.member_id == order.member_id, Touch.at <= at)
            .order_by(Touch.at, Touch.id)
        )
    )
    views = [rules.TouchView(t.id, t.at, t.guide_id, t.store_id, t.window_days) for t in touches]
    policy = guide_policy(session, tenant_id=tenant_id)
    credit = rules.credit_for(
        views, at, default_days=policy.window_days, exclusive_guide_id=member.guide_id if member else None
    )
    if credit is None:
        return None
    t = credit.touch
    return _attribution(session, order, at, t.guide_id, t.store_id, t.id, credit.rule, credit.window_days)


def _attribution(
    session: Session,
    order: Order,
    at: datetime,
    guide_id: str | None,
    store_id: str | None,
    touch_id: str | None,
    rule: str,
    window_days: int | None,
) -> Attribution:
    # Insert-or-nothing: two workers attributing one order at once both read back the one row.
    session.execute(
        upsert_insert(session, Attribution)
        .values(
            id=new_id("att"),
            tenant_id=order.tenant_id,
            order_id=order.id,
            member_id=order.member_id,
            guide_id=guide_id,
            store_id=store_id,
            touch_id=touch_id,
            rule=rule,
            window_days=window_days,
            at=at,
            amount_fen=order.paid_fen,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "order_id"])
    )
    row = session.scalar(
        select(Attribution).where(Attribution.tenant_id == order.tenant_id, Attribution.order_id == order.id)
    )
    assert row is not None
    return row
