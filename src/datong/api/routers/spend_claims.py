"""Spend-reward claims over HTTP (``coupons/claims.py``): a member's claim by order number (checked by
its rule at once) or by receipt photo (reviewed by staff), the review queue, one claim, its photo, and
staff approving or rejecting a receipt.

Submitting takes ``coupons:write`` (the mini-program's or the POS's key, acting for the member); reading
``coupons:read``; reviewing ``coupons:write``, and a caller bound to stores reviews only the receipts of
its own stores, naming one of them. A claim the caller may not see answers as one that does not exist.
Every write carries an Idempotency-Key (``api/idempotency.py``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from datong.api.deps import PrincipalDep, SessionDep, runtime
from datong.api.idempotency import answer_once
from datong.core.clock import utcnow
from datong.core.errors import NotFound
from datong.coupons import claim_queries, claims
from datong.members.queries import get_member_for, require
from datong.org.queries import store_by_code, store_to_act_at
from datong.tenancy import rules
from datong.tenancy.service import audit

router = APIRouter(prefix="/api/v1/spend-claims", tags=["spend rewards"])
IdempotencyKey = Annotated[str | None, Header()]
StatusFilter = Literal["pending", "rewarded", "no_reward", "rejected", "all"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderClaimIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    channel: str = Field(min_length=1, max_length=32, examples=["tmall"])
    order_no: str = Field(min_length=1, max_length=64)


class ApproveIn(_Strict):
    """What staff read off the receipt."""

    store_code: str = Field(min_length=1, max_length=40)
    receipt_no: str = Field(min_length=1, max_length=80)
    amount_fen: int = Field(gt=0)


class RejectIn(_Strict):
    reason: str = Field(min_length=1, max_length=300, examples=["小票模糊，请重新拍照"])


@router.post("/orders", status_code=201)
def submit_order(
    body: OrderClaimIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A claim by order number, checked at once: ``rewarded`` (with the coupon), ``no_reward``,
    ``rejected`` with the reason, or ``pending`` (the order is not imported yet) with the reason."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        claim = claims.submit_order_claim(
            s,
            tenant_id=p.tenant_id,
            member_id=member.id,
            channel=body.channel,
            order_no=body.order_no,
            at=utcnow(),
        )
        return 201, claim_queries.claim_view(s, claim)

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/receipts", status_code=201)
def submit_receipt(
    request: Request,
    s: SessionDep,
    p: PrincipalDep,
    member_id: Annotated[str, Form(min_length=1, max_length=32)],
    photo: Annotated[UploadFile, File(description="JPEG or PNG, at most 5 MB")],
    store_code: Annotated[str | None, Form(min_length=1, max_length=40)] = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """A claim by receipt photo (multipart), ``pending`` until staff review it. ``store_code``: the store
    the member says it is from, whose staff then see it."""
    require(p, rules.COUPONS_WRITE)
    data = photo.file.read(claims.MAX_PHOTO_BYTES + 1)  # one byte more is enough to refuse it

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, member_id)
        store = store_by_code(s, tenant_id=p.tenant_id, code=store_code) if store_code else None
        claim = claims.submit_receipt_claim(
            s,
            tenant_id=p.tenant_id,
            keyring=runtime(request).keyring,
            member_id=member.id,
            photo=data,
            store_id=store.id if store else None,
            at=utcnow(),
        )
        return 201, claim_queries.claim_view(s, claim)

    sent = {"member_id": member_id, "store_code": store_code, "photo": hashlib.sha256(data).hexdigest()}
    return answer_once(s, p, idempotency_key, sent, act)


@router.get("")
def list_claims(
    s: SessionDep,
    p: PrincipalDep,
    status: StatusFilter = "pending",
    member_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Claims the caller may see, oldest first: by default the pending ones (the review queue). HQ sees
    every claim; a store-bound caller its members' claims and the receipts sent to its stores."""
    require(p, rules.COUPONS_READ)
    member = get_member_for(s, p, member_id) if member_id is not None else None
    found = claim_queries.list_claims(
        s, p, status=None if status == "all" else status, member_id=member.id if member else None, limit=limit
    )
    return {"claims": [claim_queries.claim_view(s, claim) for claim in found]}


@router.get("/{claim_id}")
def get_claim(claim_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    require(p, rules.COUPONS_READ)
    return claim_queries.claim_view(s, claim_queries.get_claim_for(s, p, claim_id))


@router.get("/{claim_id}/photo", response_class=Response)
def claim_photo(claim_id: str, request: Request, s: SessionDep, p: PrincipalDep) -> Response:
    """The receipt photo as sent. A receipt may show a name or a card number: every view is audited."""
    require(p, rules.COUPONS_READ)
    claim = claim_queries.get_claim_for(s, p, claim_id)
    photo = claims.receipt_photo(runtime(request).keyring, claim)
    if photo is None or claim.photo_type is None:
        raise NotFound("an order-number claim has no photo", field="claim_id")
    audit(
        s,
        tenant_id=p.tenant_id,
        actor=p.label,
        action="spend_claim.photo_view",
        object_type="spend_claim",
        object_id=claim.id,
    )
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    return Response(photo, media_type=claim.photo_type, headers=headers)


@router.post("/{claim_id}/approve")
def approve(
    claim_id: str, body: ApproveIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Staff read the receipt: rewarded by the band of ``amount_fen`` (or ``no_reward``), once per store
    and receipt number. A receipt rewarded already, or a reward that cannot be issued, is a 409."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        claim_queries.get_claim_for(s, p, claim_id, review=True)
        store = store_to_act_at(s, p, body.store_code)
        assert store is not None  # a code was given
        claim = claims.approve_receipt(
            s,
            tenant_id=p.tenant_id,
            claim_id=claim_id,
            store_id=store.id,
            receipt_no=body.receipt_no,
            amount_fen=body.amount_fen,
            actor=p.label,
            at=utcnow(),
        )
        return 200, claim_queries.claim_view(s, claim)

    return answer_once(s, p, idempotency_key, {"claim_id": claim_id, **body.model_dump(mode="json")}, act)


@router.post("/{claim_id}/reject")
def reject(
    claim_id: str, body: RejectIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Turn a pending claim down; the member sees ``reason``."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        claim_queries.get_claim_for(s, p, claim_id, review=True)
        claim = claims.reject_claim(
            s, tenant_id=p.tenant_id, claim_id=claim_id, reason=body.reason, actor=p.label, at=utcnow()
        )
        return 200, claim_queries.claim_view(s, claim)

    return answer_once(s, p, idempotency_key, {"claim_id": claim_id, **body.model_dump(mode="json")}, act)
