"""Touches: the moments a guide or store reached a member, which attribution looks back on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from datong.core.errors import ValidationFailed
from datong.core.ids import new_id
from datong.guides.models import Touch
from datong.guides.queries import get_guide


def record_touch(
    session: Session,
    *,
    tenant_id: str,
    member_id: str,
    kind: str,
    at: datetime,
    guide_id: str | None = None,
    store_id: str | None = None,
    campaign_code: str | None = None,
    window_days: int | None = None,
    qr_code_id: str | None = None,
    source_ref: str | None = None,
) -> Touch:
    """A moment a guide or store reached the member (a link or coupon the guide sent, a visit)."""
    if guide_id is None and store_id is None:
        raise ValidationFailed("a touch names a guide or a store", field="guide_id")
    if guide_id is not None:
        store_id = store_id or get_guide(session, tenant_id=tenant_id, guide_id=guide_id).store_id
    touch = Touch(
        id=new_id("tch"),
        tenant_id=tenant_id,
        member_id=member_id,
        kind=kind,
        at=at,
        guide_id=guide_id,
        store_id=store_id,
        qr_code_id=qr_code_id,
        campaign_code=campaign_code,
        window_days=window_days,
        source_ref=source_ref,
        detail={},
    )
    session.add(touch)
    session.flush()
    return touch
