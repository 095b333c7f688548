"""Reads for spend-reward claims (``claims.py``): who sees which claim, the review queue, and a claim as
the API shows it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from datong.core.errors import NotFound
from datong.coupons.claims import BY_RECEIPT
from datong.coupons.models import Coupon, CouponTemplate, SpendClaim
from datong.coupons.queries import coupon_view
from datong.members.models import Member
from datong.members.queries import member_in_scope
from datong.org.models import Store
from datong.tenancy.rules import GUIDE, Principal


def claim_visible(session: Session, principal: Principal, claim: SpendClaim) -> bool:
    """HQ and brand-wide systems see every claim; others see their members' claims, and a store-bound
    caller also the receipts sent to its stores."""
    if claim.tenant_id != principal.tenant_id:
        return False
    if principal.sees_all_members:
        return True
    if claim.kind == BY_RECEIPT and claim.store_id in (principal.store_scope or frozenset()):
        return True
    member = session.get(Member, claim.member_id)
    return member is not None and member_in_scope(principal, member)


def may_review(principal: Principal, claim: SpendClaim) -> bool:
    """A store-bound caller reviews only receipts of its own stores (or sent to no store)."""
    scope = principal.store_scope
    return scope is None or (claim.kind == BY_RECEIPT and (claim.store_id is None or claim.store_id in scope))


def get_claim_for(
    session: Session, principal: Principal, claim_id: str, *, review: bool = False
) -> SpendClaim:
    """The claim, if the caller may see it (and, with ``review``, decide it); otherwise, as for a claim
    that does not exist, a 404."""
    claim = session.get(SpendClaim, claim_id)
    if (
        claim is None
        or not claim_visible(session, principal, claim)
        or (review and not may_review(principal, claim))
    ):
        raise NotFound(f"no spend claim {claim_id}", field="claim_id")
    return claim


def list_claims(
    session: Session, principal: Principal, *, status: str | None, member_id: str | None, limit: int
) -> list[SpendClaim]:
    """Claims the caller may see, oldest first (a review queue), of one status (None: any)."""
    query = select(SpendClaim).where(SpendClaim.tenant_id == principal.tenant_id)
    if status is not None:
        query = query.where(SpendClaim.status == status)
    if member_id is not None:
        query = query.where(SpendClaim.member_id == member_id)
    if not principal.sees_all_members:
        members = select(Member.id).where(Member.tenant_id == principal.tenant_id)
        if principal.role == GUIDE or principal.guide_id:
            members = members.where(Member.guide_id == principal.guide_id)
        else:
            members = members.where(Member.home_store_id.in_(sorted(principal.store_ids or ())))
        stores = sorted(principal.store_scope or ())
        query = query.where(
            or_(
                and_(SpendClaim.kind == BY_RECEIPT, SpendClaim.store_id.in_(stores)),
                SpendClaim.member_id.in_(members),
            )
        )
    rows = session.scalars(query.order_by(SpendClaim.created_at, SpendClaim.id).limit(limit))
    # The query narrows; the rule for one claim decides, so a list never shows what a get would refuse.
    return [claim for claim in rows if claim_visible(session, principal, claim)]


def coupon_answer(session: Session, coupon: Coupon | None) -> dict[str, Any] | None:
    if coupon is None:
        return None
    template = session.get(CouponTemplate, coupon.template_id)
    assert template is not None
    return coupon_view(coupon, template)


def claim_view(session: Session, claim: SpendClaim) -> dict[str, Any]:
    store = session.get(Store, claim.store_id) if claim.store_id else None
    coupon = session.get(Coupon, claim.coupon_id) if claim.coupon_id else None
    return {
        "id": claim.id,
        "member_id": claim.member_id,
        "kind": claim.kind,
        "status": claim.status,
        "reason": claim.reason,
        "channel": claim.channel,
        "order_no": claim.order_no,
        "order_id": claim.order_id,
        "store_id": claim.store_id,
        "store_code": store.code if store else None,
        "receipt_no": claim.receipt_no,
        "amount_fen": claim.amount_fen,
        "photo_type": claim.photo_type,
        "photo_sha256": claim.photo_sha256,
        "coupon": coupon_answer(session, coupon),
        "reviewed_by": claim.reviewed_by,
        "reviewed_at": claim.reviewed_at.isoformat() if claim.reviewed_at else None,
        "created_at": claim.created_at.isoformat(),
    }
