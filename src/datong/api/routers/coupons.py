"""Coupons for HQ, the POS and the mini-program: templates and their stores' allocations, issuing a
coupon to a member (one, or a member list file in bulk), a member's coupons, validating a coupon on a
basket, redeeming it (核销), reversing a redemption, and the reports per template and per store.

Issuing, redeeming and reversing carry an Idempotency-Key (``api/idempotency.py``); validating changes
nothing and needs none. A coupon of a member the caller may not see answers as a code that does not
exist. A caller bound to a store (a store's API key, a store manager) issues and redeems at its own
store; an agent manager at one of its agent's stores. Validating and redeeming take the printed code or
the member page's dynamic code.
"""

from __future__ import annotations

import csv
import io
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from datong.api.deps import PrincipalDep, PrincipalOutsideTransactionDep, RuntimeDep, SessionDep
from datong.api.idempotency import answer_once
from datong.core.clock import utcnow
from datong.core.context import Runtime
from datong.core.errors import DatongError, NotFound, ValidationFailed
from datong.coupons import bulk, queries, reports, service
from datong.coupons.codes import dynamic_signer
from datong.coupons.models import Coupon, CouponIssueBatch, CouponTemplate
from datong.coupons.rules import ONLINE_CHANNELS, Basket, Line
from datong.coupons.schemas import AllocationIn, IssueIn, RedeemIn, TemplateIn, ValidateIn
from datong.members.queries import get_member_for, require
from datong.org.models import Agent, Guide, Region, Store
from datong.org.queries import store_by_code, store_to_act_at
from datong.tenancy import rules
from datong.tenancy.rules import Principal
from datong.tenancy.service import audit

router = APIRouter(prefix="/api/v1/coupons", tags=["coupons"])
IdempotencyKey = Annotated[str | None, Header()]
# A member list of a few million rows fits; a file past this is a mistake, or an attack on the disk.
MAX_BATCH_FILE_BYTES = 50 * 1024 * 1024
_TOO_BIG = f"a member list file is at most {MAX_BATCH_FILE_BYTES // (1024 * 1024)} MB"


@router.post("/templates", status_code=201)
def create_template(body: TemplateIn, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """A new kind of coupon, with where it applies and its budget. A second template with the same code
    is refused (409), so sending one twice creates it once."""
    require(p, rules.COUPONS_ADMIN)
    fields = body.model_dump(exclude={"code", "store_codes", "region_codes", "agent_codes"})
    for model, name in ((Store, "store"), (Region, "region"), (Agent, "agent")):
        codes = getattr(body, f"{name}_codes")
        fields[f"{name}_ids"] = queries.ids_by_code(
            s, model, tenant_id=p.tenant_id, codes=codes, field=f"{name}_codes"
        )
    row = service.create_template(s, tenant_id=p.tenant_id, actor=p.label, code=body.code, **fields)
    return queries.template_view(s, row)


@router.put("/templates/{code}/allocations/{store_code}")
def set_allocation(
    code: str, store_code: str, body: AllocationIn, s: SessionDep, p: PrincipalDep
) -> dict[str, Any]:
    """A store's share of the template's budget: issues through the store draw on it, and issues
    through no store may not touch it. Not below what the store gave out already; all shares together
    not above the budget. Setting the same quantity again changes nothing more."""
    require(p, rules.COUPONS_ADMIN)
    try:
        store = store_by_code(s, tenant_id=p.tenant_id, code=store_code)
    except ValidationFailed:
        raise NotFound(f"no store {store_code!r}", field="store_code") from None
    with _named(store_id="store_code"):
        row = service.set_allocation(
            s,
            tenant_id=p.tenant_id,
            template_code=code,
            store_id=store.id,
            quantity=body.quantity,
            actor=p.label,
        )
    return {"template": code, **queries.allocation_view(s, row)}


@router.post("/issue")
def issue(
    body: IssueIn, s: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Give a member a coupon of a template, through a store (``store_code``; a caller bound to a store:
    its own) and a guide if named (through the guide's store when no store is named). A caller bound to
    several stores (an agent manager) names one of them, or a guide of one: an issue through no store
    would bypass the allocations of its stores (422, ``store_code``). The same ``issue_key`` gives the
    same coupon (``created`` is then false) and spends nothing more. A spent budget, day's limit, store
    allocation or member's limit is a 409 naming the field."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        store = store_to_act_at(s, p, body.store_code)
        guide_id = _guide_to_issue_by(s, p, body.guide_code)
        if store is None and guide_id is None and p.store_scope is not None:
            raise ValidationFailed(
                "a caller bound to stores issues through one of them: name store_code (or a guide)",
                field="store_code",
            )
        with _named(store_id="store_code", guide_id="guide_code"):
            coupon, created = service.issue_coupon(
                s,
                tenant_id=p.tenant_id,
                template_code=body.template,
                member_id=member.id,
                issue_key=body.issue_key,
                source="api",
                store_id=store.id if store else None,
                guide_id=guide_id,
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
def validate(body: ValidateIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """What the coupon takes off this basket now, or every reason it does not apply. Changes nothing."""
    require(p, rules.COUPONS_WRITE)
    coupon = _coupon_for(s, p, rt, body.code)
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
    body: RedeemIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Redeem the coupon on an order, once: the discount, recomputed on the basket sent. A coupon that
    does not apply is a 409 with every reason (``detail.reasons``), and so is a second redemption."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        coupon = _coupon_for(s, p, rt, body.code)
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


# --- bulk issuing from a member list file --------------------------------------------------------------


@router.post("/batches", status_code=202)
def upload_batch(
    p: PrincipalOutsideTransactionDep,
    rt: RuntimeDep,
    template: Annotated[str, Form(min_length=1, max_length=40)],
    file: Annotated[UploadFile, File()],
    card_source: Annotated[str | None, Form(max_length=64)] = None,
) -> dict[str, Any]:
    """Issue the template's coupon to every member of a CSV or Excel file (``member_id``, ``card_no``
    with ``card_source``, or ``phone``; optional ``issue_key``), in the background: poll
    ``GET /api/v1/coupons/batches/{id}``. The same file for the same template is the same batch, so
    sending it again issues nothing more. Bad rows are kept: ``…/errors``. At most 50 MB (422, ``file``)."""
    require(p, rules.COUPONS_ADMIN)
    if file.size is not None and file.size > MAX_BATCH_FILE_BYTES:
        raise ValidationFailed(_TOO_BIG, field="file")
    name = Path(file.filename or "members.csv").name
    folder = Path(tempfile.mkdtemp(prefix="datong-coupon-batch-"))
    # Only while the job runs: every row it could not take is kept encrypted, and the plaintext (it may
    # hold phone numbers) must not outlive it. Sending the file again resumes a batch that stopped.
    path = folder / f"upload{Path(name).suffix.lower() or '.csv'}"
    try:
        _save_upload(file, path)
    except ValidationFailed:
        path.unlink(missing_ok=True)
        folder.rmdir()
        raise
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def opened(batch: CouponIssueBatch) -> None:
        outcome.setdefault("id", batch.id)
        started.set()

    def work() -> None:
        try:
            bulk.run_bulk_issue(
                rt.db,
                rt.keyring,
                tenant_id=p.tenant_id,
                template_code=template,
                path=path,
                actor=p.label,
                filename=name,
                card_source=card_source,
                progress=opened,
            )
        except Exception as exc:  # shown to the caller if the batch never opened, else on the batch
            outcome["error"] = exc
        finally:
            path.unlink(missing_ok=True)
            folder.rmdir()
            started.set()

    threading.Thread(target=work, name=f"coupon-batch-{p.tenant_id}", daemon=True).start()
    started.wait(timeout=30)
    if "id" not in outcome:
        if "error" in outcome:
            raise outcome["error"]
        return {"status": "running", "filename": name}
    with rt.db.reading() as s:
        return queries.batch_view(s, queries.get_batch(s, tenant_id=p.tenant_id, batch_id=outcome["id"]))


@router.get("/batches/{batch_id}")
def get_batch(batch_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """A bulk issue's progress: rows seen, issued, already issued (the same key before), failed."""
    require(p, rules.COUPONS_ADMIN)
    return queries.batch_view(s, queries.get_batch(s, tenant_id=p.tenant_id, batch_id=batch_id))


@router.get("/batches/{batch_id}/errors")
def batch_errors(batch_id: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> StreamingResponse:
    """CSV of the rows not issued: row number, the column at fault, the reason, and the row as given
    (the brand's own file, which may hold phone numbers: audited)."""
    require(p, rules.COUPONS_ADMIN)
    batch = queries.get_batch(s, tenant_id=p.tenant_id, batch_id=batch_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(queries.ERROR_REPORT_HEADER)
    writer.writerows(queries.error_rows(s, rt.keyring, batch.id))
    audit(
        s,
        tenant_id=p.tenant_id,
        actor=p.label,
        action="coupon.bulk_errors_export",
        object_type="coupon_issue_batch",
        object_id=batch.id,
    )
    return StreamingResponse(
        iter([out.getvalue().encode("utf-8-sig")]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{batch.id}-errors.csv"'},
    )


# --- reports ----------------------------------------------------------------------------------------

Since = Annotated[AwareDatetime | None, Query(description="from (inclusive); default: the beginning")]
Until = Annotated[AwareDatetime | None, Query(description="to (exclusive); default: now")]


@router.get("/templates/{code}/report")
def template_report(
    code: str, s: SessionDep, p: PrincipalDep, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """The template's coupons issued in the period and redeemed in it: issued, redeemed, expired (as
    of now), the redemption rate, the GMV of the orders that used one, the average order with and
    without a coupon."""
    require(p, rules.COUPONS_ADMIN)
    row = service.get_template(s, tenant_id=p.tenant_id, code=code)
    now = utcnow()
    [figures] = reports.template_report(
        s, tenant_id=p.tenant_id, since=since, until=until or now, at=now, template_id=row.id
    )
    return {
        "template": row.code,
        "name": row.name,
        **_period(since, until or now),
        **queries.figures_view(figures),
    }


@router.get("/templates/{code}/stores")
def store_report(
    code: str, s: SessionDep, p: PrincipalDep, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """The same figures per store: issued and expired through the store, redeemed at it. A caller bound
    to stores sees only its stores' rows."""
    require(p, rules.COUPONS_READ)
    row = service.get_template(s, tenant_id=p.tenant_id, code=code)
    now = utcnow()
    rows = reports.store_report(
        s,
        tenant_id=p.tenant_id,
        since=since,
        until=until or now,
        at=now,
        template_id=row.id,
        store_ids=p.store_scope,
    )
    return {"template": row.code, **_period(since, until or now), "stores": queries.store_rows(s, rows)}


# --- helpers ---------------------------------------------------------------------------------------


@contextmanager
def _named(**fields: str) -> Iterator[None]:
    """A service's error about ``store_id`` (say) named as this API's field (``store_code``)."""
    try:
        yield
    except DatongError as exc:
        exc.field = fields.get(exc.field or "", exc.field)
        raise


def _save_upload(upload: UploadFile, path: Path) -> None:
    """Copy an upload to ``path`` a chunk at a time (never the whole file in memory), refusing an empty
    one, or one over the cap as soon as the cap is passed."""
    size = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_BATCH_FILE_BYTES:
                raise ValidationFailed(_TOO_BIG, field="file")
            out.write(chunk)
    if size == 0:
        raise ValidationFailed("the file is empty", field="file")


def _guide_to_issue_by(s: Session, p: Principal, code: str | None) -> str | None:
    """The guide named, if any. To a caller bound to stores, a guide of a store it may not act at and a
    guide that does not exist look alike (404), as its stores do."""
    if code is None:
        return None
    scope = p.store_scope
    try:
        guide_id = queries.id_by_code(s, Guide, tenant_id=p.tenant_id, code=code, field="guide_code")
    except ValidationFailed:
        if scope is not None:
            raise NotFound(f"no guide {code!r}", field="guide_code") from None
        raise
    guide = s.get(Guide, guide_id)
    if guide is None or (scope is not None and guide.store_id not in scope):
        raise NotFound(f"no guide {code!r}", field="guide_code")
    return guide_id


def _period(since: datetime | None, until: datetime) -> dict[str, str | None]:
    return {"since": since.isoformat() if since else None, "until": until.isoformat()}


def _coupon_for(s: Session, p: Principal, rt: Runtime, code: str) -> Coupon:
    """The coupon a printed or dynamic code names, if the caller may see its member; to the caller, a
    coupon it may not see and a code that does not exist look alike."""
    sign = dynamic_signer(rt.keyring, p.tenant_id)
    coupon = service.find_coupon(s, tenant_id=p.tenant_id, code=code, sign=sign)
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
