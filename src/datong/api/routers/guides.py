"""Shopping guides (导购): QR codes and their pictures, a member's exclusive guide and its history, HQ
assignment, hand-over when a guide leaves, touches, an order's credit, commission statements (JSON, CSV,
Excel), manual adjustments, disputes, and KPIs.

Guides and stores are named by their codes. Who sees which guide, store, code and credit is decided in
one place, ``guides/scope.py``: HQ the whole brand, an agent or store manager its stores and their
guides, a guide itself. Anything else answers as if it did not exist (404). Members are seen as
everywhere else (``members.queries.get_member_for``). Every write carries an Idempotency-Key
(``api/idempotency.py``): a retry gives the first answer and never a second code, touch, dispute or
ledger line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from datong.api.deps import PrincipalDep, SessionDep
from datong.api.idempotency import answer_once
from datong.core.clock import utcnow
from datong.core.errors import Conflict, DatongError, NotFound, ValidationFailed
from datong.guides import commissions, disputes, exports, images, plans, queries, service, views
from datong.guides.schemas import (
    AdjustIn,
    AssignIn,
    DisputeIn,
    HandOverIn,
    OrderRef,
    QrCodeIn,
    ResolveIn,
    TouchIn,
)
from datong.guides.scope import (
    GuideScope,
    check_code_maker,
    scope_of,
    visible_guide,
    visible_qr_code,
    visible_qr_codes,
    visible_store,
)
from datong.members.queries import get_member_for, require
from datong.orders.service import get_order
from datong.org.models import Guide
from datong.tenancy import rules
from datong.tenancy.rules import Principal

router = APIRouter(prefix="/api/v1/guides", tags=["guides"])
IdempotencyKey = Annotated[str | None, Header()]
Period = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-10"])]
Scale = Annotated[int, Query(ge=1, le=images.MAX_SCALE, description="pixels a module")]
# A code's picture changes only if its ticket or the brand's landing page does.
IMAGE_HEADERS = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}


# --- QR codes --------------------------------------------------------------------------------------


@router.post("/qr-codes", status_code=201)
def create_qr_code(
    body: QrCodeIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A guide's card (a guide makes its own), a store's code (its managers), or a campaign or event code
    for a store (HQ). The scene defaults to a short random one; a chosen scene must be free (409)."""
    require(p, rules.GUIDES_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        scope = scope_of(s, p)
        check_code_maker(scope, body.kind)
        guide_id = store_id = None
        if body.kind == "guide":
            if body.store_code is not None:
                raise ValidationFailed(
                    "a guide's card is for the guide's own store: leave store_code out", field="store_code"
                )
            guide_id = _guide_or_self(s, scope, body.guide_code).id
        elif body.guide_code is not None:
            raise ValidationFailed("only a guide's card names a guide", field="guide_code")
        if body.store_code is not None:
            store_id = visible_store(s, scope, body.store_code).id
        # A store's, campaign's or event code without a store: the service's store_id, named store_code.
        with _named_by_code():
            code = service.create_qr_code(
                s,
                tenant_id=p.tenant_id,
                actor=p.label,
                kind=body.kind,
                name=body.name,
                guide_id=guide_id,
                store_id=store_id,
                campaign_code=body.campaign_code,
                window_days=body.window_days,
                permanent=body.permanent,
                scene=body.scene,
            )
        return 201, views.qr_codes(s, tenant_id=p.tenant_id, codes=[code])[0]

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.get("/qr-codes")
def list_qr_codes(
    s: SessionDep, p: PrincipalDep, kind: Literal["guide", "store", "campaign", "event"] | None = None
) -> list[dict[str, Any]]:
    """The codes the caller sees, oldest first."""
    require(p, rules.GUIDES_READ)
    return views.qr_codes(s, tenant_id=p.tenant_id, codes=visible_qr_codes(s, scope_of(s, p), kind=kind))


@router.get("/qr-codes/{qr_code_id}.png", response_class=Response)
def qr_code_png(
    qr_code_id: str, s: SessionDep, p: PrincipalDep, scale: Scale = images.DEFAULT_SCALE
) -> Response:
    return Response(
        images.png(_payload(s, p, qr_code_id), scale=scale), media_type="image/png", headers=IMAGE_HEADERS
    )


@router.get("/qr-codes/{qr_code_id}.svg", response_class=Response)
def qr_code_svg(
    qr_code_id: str, s: SessionDep, p: PrincipalDep, scale: Scale = images.DEFAULT_SCALE
) -> Response:
    return Response(
        images.svg(_payload(s, p, qr_code_id), scale=scale), media_type="image/svg+xml", headers=IMAGE_HEADERS
    )


@router.get("/qr-codes/{qr_code_id}")
def get_qr_code(qr_code_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """One code, with ``payload``: what its picture encodes (null until the code has a WeChat ticket or
    the brand a landing page)."""
    require(p, rules.GUIDES_READ)
    return views.qr_codes(s, tenant_id=p.tenant_id, codes=[visible_qr_code(s, scope_of(s, p), qr_code_id)])[0]


def _payload(s: Session, p: Principal, qr_code_id: str) -> str:
    require(p, rules.GUIDES_READ)
    code = visible_qr_code(s, scope_of(s, p), qr_code_id)
    text = images.payload(
        scene=code.scene, wechat_url=code.wechat_url, landing_url=plans.landing_url(s, tenant_id=p.tenant_id)
    )
    if text is None:
        raise Conflict(
            "this code has no WeChat ticket and the brand has no landing page: set guides.landing_url "
            "(datong guides load-plan)",
            field="landing_url",
        )
    return text


# --- members: exclusive guide, assignment, hand-over, touches ------------------------------------------


@router.get("/members/{member_id}")
def member_guide(member_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """The member's exclusive guide (专属导购), until when it is protected from other guides' scans, and
    every change of it, oldest first."""
    require(p, rules.GUIDES_READ)
    return views.member_guide(s, get_member_for(s, p, member_id))


@router.post("/members/{member_id}/guide")
def assign_guide(
    member_id: str, body: AssignIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """HQ makes a guide the member's exclusive guide, whatever the brand's binding policy."""
    require(p, rules.GUIDES_ADMIN)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, member_id)
        guide = visible_guide(s, scope_of(s, p), body.guide_code)
        with _named_by_code():
            change = service.assign_guide(
                s, tenant_id=p.tenant_id, member_id=member.id, guide_id=guide.id, actor=p.label, at=utcnow()
            )
        return 200, views.binding_changes(s, [change])[0]

    return answer_once(s, p, idempotency_key, {"member_id": member_id, **body.model_dump(mode="json")}, act)


@router.post("/hand-over")
def hand_over(
    body: HandOverIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A guide leaves: marked as left, and every member of theirs goes to another guide or to a store's
    pool, each move kept in the member's history."""
    require(p, rules.GUIDES_ADMIN)

    def act() -> tuple[int, dict[str, Any]]:
        if (body.to_guide_code is None) == (body.to_store_code is None):
            raise ValidationFailed(
                "hand the members to a guide or to a store's pool, one of them", field="to_guide_code"
            )
        scope = scope_of(s, p)
        leaving = visible_guide(s, scope, body.guide_code)
        to_guide, to_store = body.to_guide_code, body.to_store_code
        heir = visible_guide(s, scope, to_guide, field="to_guide_code") if to_guide else None
        pool = visible_store(s, scope, to_store, field="to_store_code") if to_store else None
        with _named_by_code():
            moved = service.hand_over_members(
                s,
                tenant_id=p.tenant_id,
                guide_id=leaving.id,
                actor=p.label,
                at=utcnow(),
                to_guide_id=heir.id if heir else None,
                to_store_id=pool.id if pool else None,
            )
        return 200, {
            "guide_id": leaving.id,
            "guide_code": leaving.code,
            "left_at": views.iso(leaving.left_at),
            "members_moved": moved,
            "to_guide_code": heir.code if heir else None,
            "to_store_code": pool.code if pool else None,
        }

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/touches", status_code=201)
def record_touch(
    body: TouchIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A guide reached a member (sent a link or a coupon, met them in the store): an online order within
    the attribution window may be credited to the guide. Timed now; a guide records only its own."""
    require(p, rules.GUIDES_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        guide = _guide_or_self(s, scope_of(s, p), body.guide_code)
        if not guide.active:
            raise Conflict("this guide has left", field="guide_code")
        touch = service.record_touch(
            s, tenant_id=p.tenant_id, member_id=member.id, kind=body.kind, at=utcnow(), guide_id=guide.id
        )
        touch.detail = {"ref": body.ref, "actor": p.label}
        s.flush()
        return 201, views.touch(touch, guide)

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


# --- an order's credit ------------------------------------------------------------------------------


@router.get("/attribution")
def attribution(s: SessionDep, p: PrincipalDep, channel: str, order_no: str) -> dict[str, Any]:
    """Which guide and store an order is credited to, by which rule and touch (``credited`` false: the
    brand's own sale, or not looked at yet by ``datong guides attribute``)."""
    require(p, rules.GUIDES_READ)
    scope = scope_of(s, p)
    order = get_order(s, tenant_id=p.tenant_id, channel=channel, order_no=order_no)
    credit = queries.attribution_of(s, tenant_id=p.tenant_id, order_id=order.id)
    if not scope.everything and (credit is None or not scope.sees_credit(credit.guide_id, credit.store_id)):
        raise NotFound(f"no {channel} order {order_no}", field="order_no")
    return views.credit(s, order, credit)


# --- commission -------------------------------------------------------------------------------------


@router.get("/commission/statement", response_model=None)
def statement(
    s: SessionDep,
    p: PrincipalDep,
    period: Period,
    file_format: Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")] = "json",
    part: Annotated[Literal["summary", "lines"], Query(description="which table a CSV holds")] = "summary",
) -> dict[str, Any] | Response:
    """Each guide the caller sees: orders, commission earned, taken back, adjusted, and what is due, for a
    month (China time), with every ledger line behind the figures. ``format=csv`` is one table (``part``),
    ``format=xlsx`` both (sheets 汇总 and 明细)."""
    require(p, rules.GUIDES_READ)
    rows, lines = queries.commission_statement(
        s, tenant_id=p.tenant_id, period=period, guide_ids=scope_of(s, p).guide_filter
    )
    if file_format == "csv":
        body = exports.statement_csv(rows, lines, part=part)
        return _file(body, "text/csv; charset=utf-8", f"commission-{period}-{part}.csv")
    if file_format == "xlsx":
        body = exports.statement_xlsx(period, rows, lines)
        return _file(
            body,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            f"commission-{period}.xlsx",
        )
    return views.statement(period, rows, lines)


@router.post("/commission/adjustments", status_code=201)
def adjust(
    body: AdjustIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """A manual correction of a guide's commission, positive (owed to the guide) or negative, with its
    reason; audited, and on the statement of the month it is made in."""
    require(p, rules.GUIDES_ADMIN)

    def act() -> tuple[int, dict[str, Any]]:
        guide = visible_guide(s, scope_of(s, p), body.guide_code)
        order_id = _order_id(s, p, body.order)
        transfer = commissions.adjust_commission(
            s,
            tenant_id=p.tenant_id,
            guide_id=guide.id,
            amount_fen=body.amount_fen,
            reason=body.reason,
            actor=p.label,
            order_id=order_id,
        )
        return 201, {
            "transfer_id": transfer.id,
            "guide_id": guide.id,
            "guide_code": guide.code,
            "amount_fen": body.amount_fen,
            "reason": transfer.reason,
            "order_id": order_id,
            "at": views.iso(transfer.created_at),
        }

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.post("/commission/disputes", status_code=201)
def raise_dispute(
    body: DisputeIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Note that a guide's commission for a month is wrong (a guide for itself, a manager for its
    guides); HQ settles it."""
    require(p, rules.GUIDES_READ)

    def act() -> tuple[int, dict[str, Any]]:
        guide = visible_guide(s, scope_of(s, p), body.guide_code)
        dispute = disputes.raise_dispute(
            s,
            tenant_id=p.tenant_id,
            guide_id=guide.id,
            period=body.period,
            claim=body.claim,
            actor=p.label,
            order_id=_order_id(s, p, body.order),
        )
        return 201, views.disputes(s, tenant_id=p.tenant_id, found=[dispute])[0]

    return answer_once(s, p, idempotency_key, body.model_dump(mode="json"), act)


@router.get("/commission/disputes")
def list_disputes(
    s: SessionDep,
    p: PrincipalDep,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    status: Literal["open", "adjusted", "rejected"] | None = None,
) -> list[dict[str, Any]]:
    require(p, rules.GUIDES_READ)
    found = disputes.list_disputes(
        s, tenant_id=p.tenant_id, guide_ids=scope_of(s, p).guide_filter, period=period, status=status
    )
    return views.disputes(s, tenant_id=p.tenant_id, found=found)


@router.post("/commission/disputes/{dispute_id}/resolve")
def resolve_dispute(
    dispute_id: str, body: ResolveIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Settle an open dispute by an adjustment (``amount_fen``) or reject it, with the reason. A dispute
    settled already is a 409."""
    require(p, rules.GUIDES_ADMIN)

    def act() -> tuple[int, dict[str, Any]]:
        found = disputes.get_dispute(s, tenant_id=p.tenant_id, dispute_id=dispute_id)
        if not scope_of(s, p).sees_guide(found.guide_id):
            raise NotFound(f"no dispute {dispute_id}", field="dispute_id")
        dispute = disputes.resolve_dispute(
            s,
            tenant_id=p.tenant_id,
            dispute_id=found.id,
            outcome=body.outcome,
            reason=body.reason,
            actor=p.label,
            amount_fen=body.amount_fen,
        )
        return 200, views.disputes(s, tenant_id=p.tenant_id, found=[dispute])[0]

    return answer_once(s, p, idempotency_key, {"dispute_id": dispute_id, **body.model_dump(mode="json")}, act)


# --- KPIs -------------------------------------------------------------------------------------------


@router.get("/kpis")
def kpis(
    s: SessionDep, p: PrincipalDep, period: Period, by: Literal["guide", "store", "agent"] = "guide"
) -> dict[str, Any]:
    """Fans added, members bound, attributed orders and their GMV, and net commission for a month, by
    guide, store or agent: the ones the caller sees (``key`` "" with ``by=agent``: stores of no agent)."""
    require(p, rules.GUIDES_READ)
    scope = scope_of(s, p)
    found = [
        k
        for k in queries.guide_kpis(s, tenant_id=p.tenant_id, period=period, by=by)
        if scope.sees_kpi(by, k.key)
    ]
    return {"period": period, "by": by, "rows": views.kpis(s, tenant_id=p.tenant_id, by=by, found=found)}


# --- helpers ---------------------------------------------------------------------------------------

# The services name guides and stores by id; this API by code.
_CODE_FIELDS = {
    "guide_id": "guide_code",
    "store_id": "store_code",
    "to_guide_id": "to_guide_code",
    "to_store_id": "to_store_code",
}


@contextmanager
def _named_by_code() -> Iterator[None]:
    """A service's error about a guide or store, naming the field as the caller sent it."""
    try:
        yield
    except DatongError as exc:
        exc.field = _CODE_FIELDS.get(exc.field or "", exc.field)
        raise


def _guide_or_self(s: Session, scope: GuideScope, code: str | None) -> Guide:
    """The guide named, if the caller sees it; a guide calling without a code means itself."""
    if code is not None:
        return visible_guide(s, scope, code)
    if scope.own_guide_id is None:
        raise ValidationFailed("name the guide (guide_code)", field="guide_code")
    return queries.get_guide(s, tenant_id=scope.tenant_id, guide_id=scope.own_guide_id)


def _order_id(s: Session, p: Principal, ref: OrderRef | None) -> str | None:
    if ref is None:
        return None
    return get_order(s, tenant_id=p.tenant_id, channel=ref.channel, order_no=ref.order_no).id


def _file(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
