"""Points for the POS and the mini-program: balance and expiries, earn for an order, redeem (in one step
or hold then confirm), refund, history; manual adjustments and clearing for HQ.

Every write carries an Idempotency-Key (``api/idempotency.py``). A caller bound to a store (a store's
API key, a store manager) acts at its own store; an agent manager at one of its agent's stores.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sqlalchemy import select

from datong.api.deps import PrincipalDep, SessionDep
from datong.api.idempotency import answer_once
from datong.channels.records import OrderFields, OrderLineFields
from datong.core.clock import utcnow
from datong.core.errors import NotFound, ValidationFailed
from datong.coupons import spend_rewards
from datong.coupons.claim_queries import coupon_answer
from datong.coupons.orders import reverse_order_coupons
from datong.guides import service as guides
from datong.ledger.models import PENDING, Account, Transfer
from datong.loyalty import clearing, queries, redemptions, refunds, service
from datong.loyalty.lots import spendable_points
from datong.loyalty.programs import get_program, member_account
from datong.loyalty.schemas import AdjustIn, EarnIn, HoldActionIn, RedeemIn, RefundIn
from datong.members.queries import get_member_for, require
from datong.orders import service as orders
from datong.org.queries import store_to_act_at
from datong.tenancy import rules
from datong.tenancy.rules import Principal

router = APIRouter(prefix="/api/v1/points", tags=["points"])
IdempotencyKey = Annotated[str | None, Header()]


@router.get("/members/{member_id}")
def summary(member_id: str, s: SessionDep, p: PrincipalDep, program: str | None = None) -> dict[str, Any]:
    """Balance (points that can be spent now, and their value in fen), points on hold, what expires when,
    and the member's tier."""
    require(p, rules.POINTS_READ)
    member = get_member_for(s, p, member_id)
    return queries.points_summary(
        s, program=get_program(s, tenant_id=p.tenant_id, code=program), member_id=member.id
    )


@router.get("/members/{member_id}/history")
def member_history(
    member_id: str,
    s: SessionDep,
    p: PrincipalDep,
    program: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: datetime | None = None,
) -> dict[str, Any]:
    require(p, rules.POINTS_READ)
    member = get_member_for(s, p, member_id)
    prog = get_program(s, tenant_id=p.tenant_id, code=program)
    if before is not None and before.tzinfo is None:
        raise ValidationFailed("before needs a time zone, e.g. 2026-11-01T00:00:00+08:00", field="before")
    return {
        "member_id": member.id,
        "transfers": queries.points_history(s, program=prog, member_id=member.id, limit=limit, before=before),
        "tiers": queries.tier_changes(s, program=prog, member_id=member.id),
    }


@router.post("/earn")
def earn(
    body: EarnIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Record a sale and credit what it earns. An online order sent as ``paid`` earns when it is sent
    again as ``completed``; an order earns once, whatever the number of calls. When the brand gives
    spend rewards, ``reward_coupon`` is the coupon the sale's amount band earns (once per order), else
    null."""
    require(p, rules.POINTS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        program = get_program(s, tenant_id=p.tenant_id, code=body.program)
        store = store_to_act_at(s, p, body.order.store_code, field="order.store_code")
        o = body.order
        at = utcnow()
        fields = OrderFields(
            order_no=o.order_no,
            status=o.status,
            status_raw=o.status,
            total_fen=o.total_fen,
            paid_fen=o.paid_fen,
            created_at=o.ordered_at or at,
            paid_at=o.ordered_at or at,
            completed_at=(o.ordered_at or at) if o.status == "completed" else None,
            lines=[OrderLineFields(**line.model_dump()) for line in o.lines],
        )
        order = orders.record_order(
            s,
            tenant_id=p.tenant_id,
            channel=o.channel,
            fields=fields,
            member_id=member.id,
            store_id=store.id if store else None,
        )
        earned = asdict(service.earn_for_order(s, program=program, order=order, actor=p.label, at=at))
        if o.guide_code:
            guide = guides.guide_at_store(
                s, tenant_id=p.tenant_id, code=o.guide_code, store_id=order.store_id
            )
            guides.attribute_order(s, tenant_id=p.tenant_id, order_id=order.id, pos_guide_id=guide.id)
        reward = spend_rewards.reward_sale(s, order=order, actor=p.label, at=at)
        return 200, {**earned, "reward_coupon": coupon_answer(s, reward)}

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/redeem")
def redeem(
    body: RedeemIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Spend points as payment (``points``) or for a reward (``reward_code``); with ``hold`` the points
    are reserved until confirmed or voided, or until the program's hold time passes."""
    require(p, rules.POINTS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        program = get_program(s, tenant_id=p.tenant_id, code=body.program)
        store = store_to_act_at(s, p, body.store_code)
        if body.channel == "pos" and store is None:
            raise ValidationFailed("a POS redemption names its store", field="store_code")
        order_id = order_ref = None
        if body.order_no:
            try:
                order_id = orders.get_order(
                    s, tenant_id=p.tenant_id, channel=body.channel, order_no=body.order_no
                ).id
            except NotFound:
                order_ref = redemptions.order_ref(body.channel, body.order_no)
        result = redemptions.redeem_points(
            s,
            program=program,
            member_id=member.id,
            points=body.points,
            reward_code=body.reward_code,
            channel=body.channel,
            store_id=store.id if store else None,
            order_id=order_id,
            order_ref=order_ref,
            hold=body.hold,
            actor=p.label,
        )
        return 200, _redemption_answer(result)

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/holds/{hold_id}/confirm")
def confirm(
    hold_id: str, body: HoldActionIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    return _resolve(hold_id, body, s, p, idempotency_key, post=True)


@router.post("/holds/{hold_id}/void")
def void(
    hold_id: str, body: HoldActionIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    return _resolve(hold_id, body, s, p, idempotency_key, post=False)


def _resolve(
    hold_id: str, body: HoldActionIn, s: SessionDep, p: Principal, key: str | None, *, post: bool
) -> dict[str, Any]:
    require(p, rules.POINTS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        program = get_program(s, tenant_id=p.tenant_id, code=body.program)
        found = s.execute(
            select(Account.holder, Transfer.store_id)
            .join(Transfer, Transfer.debit_account_id == Account.id)
            .where(
                Transfer.tenant_id == p.tenant_id, Transfer.operation_id == hold_id, Transfer.kind == PENDING
            )
            .limit(1)
        ).one_or_none()
        # A hold of a member the caller may not see, or made at a store it may not act at: as if none.
        scope = p.store_scope
        if found is None or (scope is not None and found.store_id not in scope):
            raise NotFound(f"no hold {hold_id}", field="hold_id")
        get_member_for(s, p, found.holder)
        result = redemptions.resolve_hold(s, program=program, hold_id=hold_id, post=post, actor=p.label)
        return 200, _redemption_answer(result)

    return answer_once(s, p, key, {"hold_id": hold_id, "post": post, **body.model_dump(mode="json")}, act)


@router.post("/refund")
def refund(
    body: RefundIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A full or partial refund: the share of earned points it covers is taken back (never below zero:
    what the member already spent is reported as ``shortfall``), and that share of points spent is
    given back. Coupons redeemed on the order are reversed when it is refunded in full, or when the
    part kept no longer qualifies for them (``coupons``: each one's code, status and whether it is
    reversed; the key is there only when the order carries coupons). See docs/coupon-orders.md.
    Refunded in full, the order loses its spend reward: ``reward_coupon`` is that coupon, void unless
    it was used already (the key is there only then). See docs/spend-rewards.md."""
    require(p, rules.POINTS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        program = get_program(s, tenant_id=p.tenant_id, code=body.program)
        order = orders.get_order(s, tenant_id=p.tenant_id, channel=body.channel, order_no=body.order_no)
        if order.member_id is None:
            raise NotFound(f"no {body.channel} order {body.order_no}", field="order_no")
        get_member_for(s, p, order.member_id)
        if p.store_scope is not None and order.store_id not in p.store_scope:
            raise NotFound(f"no {body.channel} order {body.order_no}", field="order_no")
        row, _created = orders.record_refund(
            s,
            tenant_id=p.tenant_id,
            order=order,
            refund_no=body.refund_no,
            amount_fen=body.amount_fen,
            lines=[(line.line_no, line.quantity) for line in body.lines],
            reason=body.reason,
        )
        result = refunds.refund_points(s, program=program, order=order, refund=row, actor=p.label)
        answer: dict[str, Any] = {**asdict(result), "order_status": order.status}
        coupons = reverse_order_coupons(s, tenant_id=p.tenant_id, order=order, actor=p.label)
        if coupons:  # an order that carries coupons says what became of each
            answer["coupons"] = [asdict(c) for c in coupons]
        reward, _voided = spend_rewards.void_order_reward(s, order=order, actor=p.label)
        if reward is not None:
            answer["reward_coupon"] = coupon_answer(s, reward)
        return 200, answer

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/adjust")
def adjust(
    body: AdjustIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A manual correction with its reason; written to the audit log."""
    require(p, rules.POINTS_ADJUST)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        program = get_program(s, tenant_id=p.tenant_id, code=body.program)
        transfers = service.adjust_points(
            s, program=program, member_id=member.id, points=body.points, reason=body.reason, actor=p.label
        )
        return 200, {
            "operation_id": transfers[0].operation_id,
            "points": body.points,
            "transfer_ids": [t.id for t in transfers],
            "balance": spendable_points(s, account_id=member_account(s, program, member.id), at=utcnow()),
        }

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.get("/settlement")
def settlement(
    s: SessionDep,
    p: PrincipalDep,
    period: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-10"])],
    program: str | None = None,
) -> dict[str, Any]:
    """What each owner owes the others for a month, in fen at the program's rate, with the transfers."""
    require(p, rules.POINTS_SETTLE)
    result = clearing.settle(s, program=get_program(s, tenant_id=p.tenant_id, code=program), period=period)
    return {
        "period": result.period,
        "fen_per_point": result.fen_per_point,
        "obligations": [{**asdict(o), "amount_fen": result.amount_fen(o)} for o in result.obligations],
        "net": [asdict(n) for n in result.net],
    }


def _redemption_answer(result: redemptions.Redemption) -> dict[str, Any]:
    answer = asdict(result)
    answer["hold_expires_at"] = result.hold_expires_at.isoformat() if result.hold_expires_at else None
    if result.coupon_code is None:
        del answer["coupon_code"]  # a reward that is not a coupon, or points paid towards a sale
    return answer
