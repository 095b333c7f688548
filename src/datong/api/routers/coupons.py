"""Coupons for HQ, the POS and the mini-program: templates, issuing a coupon to a member, a member's
coupons, validating a coupon on a basket, redeeming it (核销) and reversing a redemption.

Issuing, redeeming and reversing carry an Idempotency-Key (``api/idempotency.py``); validating changes
nothing and needs none. A coupon of a member the caller may not see answers as a code that does not
exist. A caller bound to a store (a store's API key, a store manager) redeems at its own store; an
agent manager at one of its agent's stores.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from sqlalchemy.orm import Session

from datong.api.deps import PrincipalDep, SessionDep
from datong.api.idempotency import answer_once
from datong.core.clock import utcnow
from datong.core.errors import NotFound, ValidationFailed
from datong.coupons import queries, service
from datong.coupons.models import Coupon, CouponTemplate
from datong.coupons.rules import ONLINE_CHANNELS, Basket, Line
from datong.coupons.schemas import IssueIn, RedeemIn, TemplateIn, ValidateIn
from datong.members.queries import get_member_for, require
from datong.org.queries import store_by_code, store_to_act_at
from datong.tenancy import rules
from datong.tenancy.rules import Principal

router = APIRouter(prefix="/api/v1/coupons", tags=["coupons"])
IdempotencyKey = Annotated[str | None, Header()]


@router.post("/templates", status_code=201)
def create_template(body: TemplateIn, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """A new kind of coupon, with where it applies and its budget. A second template with the same code
    is refused (409), so sending one twice creates it once."""
    require(p, rules.COUPONS_ADMIN)
    fields = body.model_dump(exclude={"code", "store_codes"})
    fields["store_ids"] = [
        store_by_code(s, tenant_id=p.tenant_id, code=code, field=f"store_codes.{index}").id
        for index, code in enumerate(body.store_codes)
    ]
    row = service.create_template(s, tenant_id=p.tenant_id, actor=p.label, code=body.code, **fields)
    return queries.template_view(s, row)


@router.post("/issue")
def issue(
    body: IssueIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Give a member a coupon of a template. The same ``issue_key`` gives the same coupon (``created``
    is then false) and spends nothing more of the budget or of the member's limit."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        coupon, created = service.issue_coupon(
            s,
            tenant_id=p.tenant_id,
            template_code=body.template,
            member_id=member.id,
            issue_key=body.issue_key,
            source="api",
        )
        return 200, {**queries.coupon_view(coupon, _template(s, coupon)), "created": created}

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.get("/members/{member_id}")
def member_coupons(member_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Every coupon the member was given, oldest first, with its status."""
    require(p, rules.COUPONS_READ)
    member = get_member_for(s, p, member_id)
    return {
        "member_id": member.id,
        "coupons": queries.member_coupons(s, tenant_id=p.tenant_id, member_id=member.id),
    }


@router.post("/validate")
def validate(body: ValidateIn, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """What the coupon takes off this basket now, or every reason it does not apply. Changes nothing."""
    require(p, rules.COUPONS_WRITE)
    coupon = _coupon_for(s, p, body.code)
    member_id = get_member_for(s, p, body.member_id).id if body.member_id else None
    basket = _basket(s, p, body.channel, body.store_code, body.lines, body.points_used, body.order_no)
    decision = service.validate_coupon(s, coupon=coupon, basket=basket, member_id=member_id)
    return {
        "coupon_id": coupon.id,
        "code": coupon.code,
        "applies": decision.applies,
        "discount_fen": decision.discount_fen,
        "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
    }


@router.post("/redeem")
def redeem(
    body: RedeemIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Redeem the coupon on an order, once: the discount, recomputed on the basket sent. A coupon that
    does not apply is a 409 with every reason (``detail.reasons``), and so is a second redemption."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        coupon = _coupon_for(s, p, body.code)
        member_id = get_member_for(s, p, body.member_id).id if body.member_id else None
        basket = _basket(s, p, body.channel, body.store_code, body.lines, body.points_used, body.order_no)
        done = service.redeem_coupon(
            s, coupon=coupon, basket=basket, order_no=body.order_no, actor=p.label, member_id=member_id
        )
        r = done.redemption
        return 200, {
            "redemption_id": r.id,
            "coupon_id": coupon.id,
            "code": coupon.code,
            "member_id": r.member_id,
            "status": "redeemed",
            "discount_fen": r.discount_fen,
            "order_fen": r.order_fen,
            "channel": r.channel,
            "order_no": r.order_no,
            "store_id": r.store_id,
            "at": r.at.isoformat(),
        }

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/redemptions/{redemption_id}/reverse")
def reverse(
    redemption_id: str, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """The order was refunded: the redemption is reversed once, and the coupon comes back if its
    template says so and it is still valid (``status`` issued), else it is void."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        found = queries.get_redemption(s, tenant_id=p.tenant_id, redemption_id=redemption_id)
        # A redemption of a member the caller may not see, or made at a store it may not act at: as if none.
        scope = p.store_scope
        if scope is not None and found.store_id not in scope:
            raise NotFound(f"no redemption {redemption_id}", field="redemption_id")
        try:
            get_member_for(s, p, found.member_id)
        except NotFound:
            raise NotFound(f"no redemption {redemption_id}", field="redemption_id") from None
        coupon = service.reverse_redemption(
            s, tenant_id=p.tenant_id, redemption_id=redemption_id, actor=p.label
        )
        s.refresh(found)
        return 200, {
            "redemption_id": found.id,
            "coupon_id": coupon.id,
            "code": coupon.code,
            "status": coupon.status,
            "reversed_at": found.reversed_at.isoformat() if found.reversed_at else None,
        }

    return answer_once(s, p, idempotency_key, {"redemption_id": redemption_id}, act)


# --- helpers ---------------------------------------------------------------------------------------


def _coupon_for(s: Session, p: Principal, code: str) -> Coupon:
    """The coupon a code names, if the caller may see its member; to the caller, a coupon it may not
    see and a code that does not exist look alike."""
    coupon = service.find_coupon(s, tenant_id=p.tenant_id, code=code)
    try:
        get_member_for(s, p, coupon.member_id)
    except NotFound:
        raise NotFound("no such coupon", field="code") from None
    return coupon


def _template(s: Session, coupon: Coupon) -> CouponTemplate:
    template = s.get(CouponTemplate, coupon.template_id)
    assert template is not None
    return template


def _basket(
    s: Session,
    p: Principal,
    channel: str,
    store_code: str | None,
    lines: list[Any],
    points_used: int,
    order_no: str | None,
) -> Basket:
    if channel in ONLINE_CHANNELS:
        if store_code is not None:
            raise ValidationFailed("an online order has no store", field="store_code")
        store = None
    else:
        store = store_to_act_at(s, p, store_code)
        if store is None:
            raise ValidationFailed("an order in a store names its store", field="store_code")
    others = []
    if order_no:
        service.hold_order(s, tenant_id=p.tenant_id, channel=channel, order_no=order_no)
        others = queries.coupons_on_order(s, tenant_id=p.tenant_id, channel=channel, order_no=order_no)
    return Basket(
        channel=channel,
        store_id=store.id if store else None,
        at=utcnow(),
        lines=[Line(line.sku, line.category, line.quantity, line.unit_price_fen) for line in lines],
        points_used=points_used,
        others=others,
    )
