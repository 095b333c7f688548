"""A coupon's code as pictures for the member page, the console and print: a QR code (SVG, PNG), a
Code 128 barcode (SVG), and the member page's short-lived code (``/dynamic``), which a screenshot cannot
keep using: it names the coupon by its id (not its printed code), changes every minute, and the POS
accepts it for two (``coupons/codes.py``).

Under ``/api/v1/coupons/codes/{coupon_id}``, which no route of ``/api/v1/coupons`` can mean. A coupon
of a member the caller may not see answers as one that does not exist. The pictures are of the code
itself, whatever the coupon's status; a coupon that is redeemed, void or expired has no dynamic code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from datong.api.deps import PrincipalDep, RuntimeDep, SessionDep
from datong.core.clock import utcnow
from datong.core.errors import Conflict, NotFound
from datong.coupons import images
from datong.coupons.codes import dynamic_signer
from datong.coupons.models import ISSUED, Coupon
from datong.members.models import Member
from datong.members.queries import member_in_scope, require
from datong.tenancy import rules
from datong.tenancy.rules import Principal

router = APIRouter(prefix="/api/v1/coupons/codes", tags=["coupons"])
# A code's picture never changes, but it is worth the coupon: kept by the caller's browser only.
STATIC = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
SVG = "image/svg+xml"


@router.get("/{coupon_id}/qr.svg", response_class=Response)
def qr_svg(coupon_id: str, s: SessionDep, p: PrincipalDep) -> Response:
    coupon = _coupon_for(s, p, coupon_id)
    return Response(images.qr_svg(coupon.code), media_type=SVG, headers=STATIC)


@router.get("/{coupon_id}/qr.png", response_class=Response)
def qr_png(coupon_id: str, s: SessionDep, p: PrincipalDep) -> Response:
    coupon = _coupon_for(s, p, coupon_id)
    return Response(images.qr_png(coupon.code), media_type="image/png", headers=STATIC)


@router.get("/{coupon_id}/barcode.svg", response_class=Response)
def barcode_svg(coupon_id: str, s: SessionDep, p: PrincipalDep) -> Response:
    coupon = _coupon_for(s, p, coupon_id)
    return Response(images.barcode_svg(coupon.code), media_type=SVG, headers=STATIC)


@router.get("/{coupon_id}/dynamic")
def dynamic(
    coupon_id: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep, response: Response
) -> dict[str, Any]:
    """The member page's code now: ``payload`` (also drawn in ``qr_svg``) scans at the POS until
    ``expires_at``; fetch a new one after ``refresh_after_seconds``."""
    coupon = _coupon_for(s, p, coupon_id)
    at = utcnow()
    if coupon.status != ISSUED:
        raise Conflict(
            f"this coupon is {coupon.status}: it has no dynamic code", field="coupon_id", status=coupon.status
        )
    if coupon.valid_until is not None and coupon.valid_until <= at:
        raise Conflict("this coupon has expired: it has no dynamic code", field="coupon_id", status="expired")
    # The payload names the coupon by its id: a code read off a screenshot must not outlive its minutes.
    code = images.dynamic_code(coupon.id, sign=dynamic_signer(rt.keyring, p.tenant_id), at=at)
    # Never served again from a cache: it is a key to the coupon for two minutes.
    response.headers["Cache-Control"] = "no-store"
    return {
        "payload": code.payload,
        "expires_at": code.expires_at.isoformat(),
        "refresh_after_seconds": code.refresh_after_seconds,
        "qr_svg": code.qr_svg,
    }


def _coupon_for(s: Session, p: Principal, coupon_id: str) -> Coupon:
    """The coupon, if the caller may see its member; to the caller, a coupon it may not see and one that
    does not exist look alike."""
    require(p, rules.COUPONS_READ)
    coupon = s.get(Coupon, coupon_id)
    member = s.get(Member, coupon.member_id) if coupon is not None else None
    if coupon is None or member is None or not member_in_scope(p, member):
        raise NotFound(f"no coupon {coupon_id}", field="coupon_id")
    return coupon
