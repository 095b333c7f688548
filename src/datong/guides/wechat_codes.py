"""WeChat tickets for datong's QR codes: the code a follower scans is WeChat's parametric code
(``qrcode/create``), which carries the scene back in the ``subscribe``/``SCAN`` event. Temporary
tickets last at most 30 days; an account may hold at most 100,000 permanent ones, counted here before
asking WeChat, so a brand learns it is out of them before a print run, not after."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.channels.wechat.client import WeChatClient
from datong.core.clock import utcnow
from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.guides.models import QrCode
from datong.tenancy.service import audit

PERMANENT_LIMIT = 100_000
TEMPORARY_MAX_SECONDS = 30 * 24 * 3600


def permanent_codes_used(session: Session, *, appid: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(QrCode)
            .where(
                QrCode.wechat_appid == appid, QrCode.permanent.is_(True), QrCode.wechat_ticket.is_not(None)
            )
        )
        or 0
    )


def issue_wechat_ticket(
    db: Database,
    *,
    tenant_id: str,
    qr_code_id: str,
    client: WeChatClient,
    actor: str,
    expire_seconds: int = TEMPORARY_MAX_SECONDS,
    at: datetime | None = None,
) -> QrCode:
    """Ask WeChat for the code's ticket (permanent if the code is, else for ``expire_seconds``) and keep
    it. A permanent code that has one keeps it; a temporary one gets a fresh one. WeChat is called
    between two transactions, never inside one: a slow answer holds no lock (and, on SQLite, the
    shared token cache can write)."""
    at = at or utcnow()
    with db.reading() as s:
        code = _code(s, tenant_id, qr_code_id)
        if code.permanent and code.wechat_ticket and code.wechat_appid == client.appid:
            return code
        if code.permanent:
            if permanent_codes_used(s, appid=client.appid) >= PERMANENT_LIMIT:
                raise Conflict(
                    f"account {client.appid} holds {PERMANENT_LIMIT} permanent codes, WeChat's limit: "
                    "use temporary codes",
                    field="permanent",
                )
        elif not 60 <= expire_seconds <= TEMPORARY_MAX_SECONDS:
            raise ValidationFailed(
                f"expire_seconds is 60 to {TEMPORARY_MAX_SECONDS} (30 days)", field="expire_seconds"
            )
        scene, permanent = code.scene, code.permanent
    ticket = client.create_qr_ticket(
        scene, permanent=permanent, expire_seconds=None if permanent else expire_seconds
    )
    with db.unit_of_work() as s:
        code = _code(s, tenant_id, qr_code_id)
        if code.permanent and code.wechat_ticket and code.wechat_appid == client.appid:
            return code  # another request kept one meanwhile (WeChat gives the same scene the same ticket)
        code.wechat_appid = client.appid
        code.wechat_ticket = ticket.ticket
        code.wechat_url = ticket.url
        code.expires_at = (
            None if permanent else at + timedelta(seconds=ticket.expire_seconds or expire_seconds)
        )
        s.flush()
        audit(
            s,
            tenant_id=tenant_id,
            actor=actor,
            action="guides.wechat_ticket",
            object_type="guide_qr_code",
            object_id=code.id,
            detail={"appid": client.appid, "permanent": permanent},
        )
        return code


def _code(session: Session, tenant_id: str, qr_code_id: str) -> QrCode:
    code = session.get(QrCode, qr_code_id)
    if code is None or code.tenant_id != tenant_id:
        raise NotFound(f"no QR code {qr_code_id}", field="qr_code_id")
    if not code.active:
        raise Conflict("this code is switched off", field="qr_code_id")
    return code
