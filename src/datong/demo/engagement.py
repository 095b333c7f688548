"""The demo brand's coupons, lucky draw and guides, after its members and points: a welcome coupon for
some members, spend-tiered rewards, a lucky draw with free daily entries, and guides whose QR codes some
members scanned before buying on Tmall or JD — so the attribution and commission jobs have real work
and the API has something to show. The choices are seeded (the members picked still differ from run
to run, their ids being random), and running it again doubles nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.context import Runtime
from datong.core.errors import Conflict
from datong.coupons import lucky_draws, service
from datong.coupons.models import CouponTemplate, Draw
from datong.guides import jobs as guide_jobs
from datong.guides import plans
from datong.guides import service as guides
from datong.guides.models import QrCode, Touch
from datong.members.models import Member
from datong.orders.models import Order
from datong.org.models import Guide
from datong.tenancy.models import Tenant

ACTOR = "system:demo"
SCANNERS = 3000  # members who scanned a guide's code before an online order
WELCOMED = 2000  # members given the welcome coupon
DRAWERS = 500  # members who take today's free draw
TEMPLATES: list[dict[str, Any]] = [
    {
        "code": "WELCOME20",
        "name": "新会员满199减20",
        "kind": "threshold",
        "amount_fen": 2000,
        "threshold_fen": 19900,
        "valid_days": 30,
        "total_quantity": 10000,
        "per_member_limit": 1,
    },
    {
        "code": "SPEND20",
        "name": "消费满199返20元券",
        "kind": "cash_off",
        "amount_fen": 2000,
        "valid_days": 30,
    },
    {
        "code": "SPEND50",
        "name": "消费满399返50元券",
        "kind": "cash_off",
        "amount_fen": 5000,
        "valid_days": 30,
    },
    {
        "code": "DRAW10",
        "name": "抽奖10元券",
        "kind": "cash_off",
        "amount_fen": 1000,
        "valid_days": 30,
        "total_quantity": 1000,
    },
]
DRAW: dict[str, Any] = {
    "code": "demo-draw",
    "name": "门店周年庆抽奖",
    "free_per_day": 1,
    "per_member_limit": 10,
    "prizes": [
        {"code": "tote", "name": "帆布袋(到店领取)", "kind": "goods", "weight": 5, "stock": 20},
        {
            "code": "c10",
            "name": "10元券",
            "kind": "coupon",
            "weight": 100,
            "stock": 500,
            "coupon_template": "DRAW10",
        },
        {"code": "p50", "name": "50积分", "kind": "points", "weight": 200, "stock": 2000, "points": 50},
        {"code": "none", "name": "谢谢参与", "kind": "none", "weight": 695},
    ],
}
PLAN = {
    "guides": {"binding": "first_protected", "window_days": 15, "protection_days": 90},
    "commission": {
        "rules": [
            {"code": "franchise", "store_kinds": ["franchise"], "rate_bp": 300},
            {"code": "base", "rate_bp": 200},
        ]
    },
}


@dataclass
class Summary:
    coupons: int = 0
    entries: int = 0
    scans: int = 0
    attributed: int = 0
    commission_fen: int = 0


def run_engagement(rt: Runtime, tenant_id: str, console: Console) -> Summary:
    summary = Summary()
    rng = random.Random(2026)
    with console.status("      coupons and the lucky draw"):
        _coupons(rt, tenant_id, rng, summary)
        _draw(rt, tenant_id, rng, summary)
    console.print(
        f"      coupons: {summary.coupons:,} welcome coupons issued; {summary.entries:,} lucky-draw entries"
    )
    with console.status("      guides: scans before online orders, attribution, commission"):
        _scans(rt, tenant_id, rng, summary)
        since = datetime(2000, 1, 1, tzinfo=UTC)
        _seen, summary.attributed, _fen = guide_jobs.run_batches(
            rt.db,
            step=lambda s, after: guide_jobs.attribute_orders(
                s, tenant_id=tenant_id, since=since, after_id=after
            ),
        )
        _seen, _posted, summary.commission_fen = guide_jobs.run_batches(
            rt.db,
            step=lambda s, after: guide_jobs.post_commissions(
                s, tenant_id=tenant_id, actor=ACTOR, after_id=after
            ),
        )
    console.print(
        f"      guides: {summary.scans:,} code scans; {summary.attributed:,} online orders credited "
        f"to guides; {summary.commission_fen / 100:,.2f} yuan commission posted"
    )
    return summary


def _coupons(rt: Runtime, tenant_id: str, rng: random.Random, summary: Summary) -> None:
    with rt.db.unit_of_work() as s:
        for fields in TEMPLATES:
            if (
                s.scalar(
                    select(CouponTemplate.id).where(
                        CouponTemplate.tenant_id == tenant_id, CouponTemplate.code == fields["code"]
                    )
                )
                is None
            ):
                service.create_template(s, tenant_id=tenant_id, actor=ACTOR, **fields)
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        bands = [{"min_fen": 19900, "template": "SPEND20"}, {"min_fen": 39900, "template": "SPEND50"}]
        tenant.settings = {**(tenant.settings or {}), "spend_rewards": bands}
        plans.load_plan(s, tenant_id=tenant_id, data=PLAN, actor=ACTOR)
        members = _active_members(s, tenant_id)
    for start in range(0, min(WELCOMED, len(members)), 500):
        with rt.db.unit_of_work() as s:
            for member_id in members[start : min(start + 500, WELCOMED)]:
                _coupon, created = service.issue_coupon(
                    s,
                    tenant_id=tenant_id,
                    template_code="WELCOME20",
                    member_id=member_id,
                    issue_key=f"demo-welcome:{member_id}",
                    source="bulk",
                )
                summary.coupons += int(created)


def _draw(rt: Runtime, tenant_id: str, rng: random.Random, summary: Summary) -> None:
    with rt.db.unit_of_work() as s:
        if s.scalar(select(Draw.id).where(Draw.tenant_id == tenant_id, Draw.code == DRAW["code"])) is None:
            lucky_draws.create_draw(s, tenant_id=tenant_id, keyring=rt.keyring, actor=ACTOR, data=DRAW)
            lucky_draws.open_draw(s, tenant_id=tenant_id, code=str(DRAW["code"]), actor=ACTOR)
        members = _active_members(s, tenant_id)
    for member_id in rng.sample(members, min(DRAWERS, len(members))):
        try:
            with rt.db.unit_of_work() as s:
                lucky_draws.enter_draw(
                    s,
                    tenant_id=tenant_id,
                    keyring=rt.keyring,
                    code=str(DRAW["code"]),
                    member_id=member_id,
                    source="free",
                    actor=ACTOR,
                )
            summary.entries += 1
        except Conflict:
            pass  # already drew today (a second demo run the same day)


def _scans(rt: Runtime, tenant_id: str, rng: random.Random, summary: Summary) -> None:
    """Members who scanned a guide's card some days before their first paid online order: most within
    the 15-day window, some before it (those orders are not credited)."""
    with rt.db.reading() as s:
        if s.scalar(select(func.count()).select_from(Touch).where(Touch.tenant_id == tenant_id)):
            return  # the demo ran before
        guides_ = list(
            s.scalars(
                select(Guide).where(Guide.tenant_id == tenant_id, Guide.active.is_(True)).order_by(Guide.code)
            )
        )
        first_paid: list[tuple[str, datetime]] = list(
            s.execute(
                select(Order.member_id, func.min(Order.paid_at))
                .where(
                    Order.tenant_id == tenant_id,
                    Order.channel.in_(("tmall", "jd")),
                    Order.member_id.is_not(None),
                    Order.paid_at.is_not(None),
                )
                .group_by(Order.member_id)
                .order_by(Order.member_id)
            )
        )
    if not guides_ or not first_paid:
        return
    chosen_guides = guides_[:60]
    scenes: dict[str, str] = {}
    with rt.db.unit_of_work() as s:
        for guide in chosen_guides:
            found = s.scalar(
                select(QrCode.scene).where(QrCode.tenant_id == tenant_id, QrCode.guide_id == guide.id)
            )
            scenes[guide.id] = (
                found
                or guides.create_qr_code(
                    s,
                    tenant_id=tenant_id,
                    actor=ACTOR,
                    kind="guide",
                    name=f"{guide.name}的名片",
                    guide_id=guide.id,
                ).scene
            )
    picked = rng.sample(first_paid, min(SCANNERS, len(first_paid)))
    for start in range(0, len(picked), 500):
        with rt.db.unit_of_work() as s:
            for member_id, paid_at in picked[start : start + 500]:
                guide = rng.choice(chosen_guides)
                at = paid_at - timedelta(days=rng.randint(1, 24), hours=rng.randint(0, 12))
                try:
                    guides.record_scan(
                        s, tenant_id=tenant_id, member_id=member_id, scene=scenes[guide.id], at=at
                    )
                except Conflict:
                    continue  # a member merged since: the survivor carries on
                summary.scans += 1


def _active_members(s: Session, tenant_id: str) -> list[str]:
    return list(
        s.scalars(
            select(Member.id)
            .where(Member.tenant_id == tenant_id, Member.status == "active")
            .order_by(Member.id)
        )
    )
