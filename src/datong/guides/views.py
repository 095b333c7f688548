"""What the guides API shows of each object: plain dicts ready for JSON, times in ISO 8601 with their
offset, money in fen. Guides and stores appear with their ids and their codes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from datong.guides import images, plans, queries
from datong.guides.bindings import current_binding
from datong.guides.models import Attribution, BindingChange, CommissionDispute, QrCode, Touch
from datong.guides.queries import Kpi, StatementLine, StatementRow
from datong.members.models import Member
from datong.orders.models import Order
from datong.org.models import Guide

FIGURES = ("orders", "earned_fen", "clawed_back_fen", "adjusted_fen", "paid_out_fen", "net_fen")
Names = dict[str, tuple[str, str]]  # id → (code, name)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _code(names: Names, key: str | None) -> str | None:
    return names[key][0] if key else None


def qr_codes(session: Session, *, tenant_id: str, codes: Iterable[QrCode]) -> list[dict[str, Any]]:
    """Codes, each with ``payload``: what its picture encodes (None until the code has a WeChat ticket
    or the brand a landing page)."""
    codes = list(codes)
    landing = plans.landing_url(session, tenant_id=tenant_id)
    guides = queries.codes_and_names(
        session, tenant_id=tenant_id, by="guide", keys=[c.guide_id or "" for c in codes]
    )
    stores = queries.codes_and_names(
        session, tenant_id=tenant_id, by="store", keys=[c.store_id or "" for c in codes]
    )
    return [
        {
            "id": c.id,
            "scene": c.scene,
            "kind": c.kind,
            "name": c.name,
            "guide_id": c.guide_id,
            "guide_code": _code(guides, c.guide_id),
            "store_id": c.store_id,
            "store_code": _code(stores, c.store_id),
            "campaign_code": c.campaign_code,
            "window_days": c.window_days,
            "permanent": c.permanent,
            "wechat_url": c.wechat_url,
            "expires_at": iso(c.expires_at),
            "scans": c.scans,
            "active": c.active,
            "created_at": iso(c.created_at),
            "payload": images.payload(scene=c.scene, wechat_url=c.wechat_url, landing_url=landing),
        }
        for c in codes
    ]


def binding_change(change: BindingChange, guides: Names) -> dict[str, Any]:
    return {
        "id": change.id,
        "at": iso(change.at),
        "reason": change.reason,
        "from_guide_id": change.from_guide_id,
        "from_guide_code": _code(guides, change.from_guide_id),
        "to_guide_id": change.to_guide_id,
        "to_guide_code": _code(guides, change.to_guide_id),
        "to_store_id": change.to_store_id,
        "protected_until": iso(change.protected_until),
        "actor": change.actor,
    }


def binding_changes(session: Session, changes: Sequence[BindingChange]) -> list[dict[str, Any]]:
    ids = [i for c in changes for i in (c.from_guide_id, c.to_guide_id) if i]
    tenant_id = changes[0].tenant_id if changes else ""
    guides = queries.codes_and_names(session, tenant_id=tenant_id, by="guide", keys=ids)
    return [binding_change(c, guides) for c in changes]


def member_guide(session: Session, member: Member) -> dict[str, Any]:
    """The member's exclusive guide, until when it is protected against other guides' scans, and every
    change of it, oldest first."""
    binding = current_binding(session, member)
    guide = session.get(Guide, member.guide_id) if member.guide_id else None
    history = queries.binding_history(session, tenant_id=member.tenant_id, member_id=member.id)
    return {
        "member_id": member.id,
        "guide_id": member.guide_id,
        "guide_code": guide.code if guide else None,
        "guide_name": guide.name if guide else None,
        "guide_active": guide.active if guide else None,
        "home_store_id": member.home_store_id,
        "protected_until": iso(binding.protected_until),
        "history": binding_changes(session, history),
    }


def touch(t: Touch, guide: Guide) -> dict[str, Any]:
    return {
        "id": t.id,
        "member_id": t.member_id,
        "kind": t.kind,
        "at": iso(t.at),
        "guide_id": guide.id,
        "guide_code": guide.code,
        "store_id": t.store_id,
        "ref": (t.detail or {}).get("ref"),
    }


def credit(session: Session, order: Order, found: Attribution | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"order_id": order.id, "channel": order.channel, "order_no": order.order_no}
    if found is None:
        return {**answer, "credited": False}
    reached = session.get(Touch, found.touch_id) if found.touch_id else None
    tenant_id = order.tenant_id
    guides = queries.codes_and_names(session, tenant_id=tenant_id, by="guide", keys=[found.guide_id or ""])
    stores = queries.codes_and_names(session, tenant_id=tenant_id, by="store", keys=[found.store_id or ""])
    return {
        **answer,
        "credited": True,
        "guide_id": found.guide_id,
        "guide_code": _code(guides, found.guide_id),
        "store_id": found.store_id,
        "store_code": _code(stores, found.store_id),
        "rule": found.rule,
        "window_days": found.window_days,
        "at": iso(found.at),
        "amount_fen": found.amount_fen,
        "touch": {"id": reached.id, "kind": reached.kind, "at": iso(reached.at)} if reached else None,
    }


def statement(period: str, rows: Sequence[StatementRow], lines: Sequence[StatementLine]) -> dict[str, Any]:
    codes = {r.guide_id: r.guide_code for r in rows}
    return {
        "period": period,
        "rows": [
            {
                "guide_id": r.guide_id,
                "guide_code": r.guide_code,
                "guide_name": r.guide_name,
                "store_code": r.store_code,
                **{name: getattr(r, name) for name in FIGURES},
            }
            for r in rows
        ],
        "total": {name: sum(getattr(r, name) for r in rows) for name in FIGURES},
        "lines": [
            {
                "guide_id": line.guide_id,
                "guide_code": codes.get(line.guide_id),
                "at": iso(line.at),
                "code": line.code,
                "amount_fen": line.amount_fen,
                "channel": line.channel,
                "order_no": line.order_no,
                "reason": line.reason,
                "transfer_id": line.transfer_id,
            }
            for line in lines
        ],
    }


def kpis(session: Session, *, tenant_id: str, by: str, found: Sequence[Kpi]) -> list[dict[str, Any]]:
    names = queries.codes_and_names(session, tenant_id=tenant_id, by=by, keys=[k.key for k in found])
    return [
        {
            "key": k.key,
            "code": names[k.key][0] if k.key else None,
            "name": names[k.key][1] if k.key else None,
            "fans_added": k.fans_added,
            "members_bound": k.members_bound,
            "attributed_orders": k.attributed_orders,
            "attributed_gmv_fen": k.attributed_gmv_fen,
            "commission_fen": k.commission_fen,
        }
        for k in found
    ]


def disputes(session: Session, *, tenant_id: str, found: Sequence[CommissionDispute]) -> list[dict[str, Any]]:
    codes = queries.codes_and_names(
        session, tenant_id=tenant_id, by="guide", keys=[d.guide_id for d in found]
    )
    return [
        {
            "id": d.id,
            "guide_id": d.guide_id,
            "guide_code": codes[d.guide_id][0],
            "period": d.period,
            "order_id": d.order_id,
            "claim": d.claim,
            "status": d.status,
            "resolution": d.resolution,
            "transfer_id": d.transfer_id,
            "raised_by": d.raised_by,
            "raised_at": iso(d.created_at),
            "resolved_by": d.resolved_by,
            "resolved_at": iso(d.resolved_at),
        }
        for d in found
    ]
