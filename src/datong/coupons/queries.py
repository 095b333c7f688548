"""Reads for coupons: a template and a coupon as the API shows them, codes of the organisation to ids, a
member's coupons, the coupons already redeemed on an order (for stacking), a redemption with what scopes
it, a bulk issue batch and its failed rows, and the report rows as the API and the CLI show them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.crypto import Keyring
from datong.core.errors import NotFound, ValidationFailed
from datong.coupons.codes import display_code
from datong.coupons.models import (
    Coupon,
    CouponAllocation,
    CouponIssueBatch,
    CouponIssueRow,
    CouponRedemption,
    CouponTemplate,
)
from datong.coupons.reports import Figures
from datong.coupons.rules import OtherCoupon
from datong.org.models import Agent, Guide, Region, Store

ERROR_REPORT_HEADER = ("row_no", "field", "reason", "row")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


Org = Store | Region | Agent | Guide


def _by_code(session: Session, model: type[Org], tenant_id: str, codes: Sequence[str]) -> dict[str, str]:
    query = select(model.code, model.id).where(model.tenant_id == tenant_id, model.code.in_(codes))
    return {code: id_ for code, id_ in session.execute(query).all()}


def ids_by_code(
    session: Session, model: type[Org], *, tenant_id: str, codes: Sequence[str], field: str
) -> list[str]:
    """The ids of the brand's stores, regions or agents with these codes, in order; an unknown code is
    refused naming its place (``region_codes.1``)."""
    found = _by_code(session, model, tenant_id, codes)
    for index, code in enumerate(codes):
        if code not in found:
            raise ValidationFailed(f"no {model.__tablename__} {code!r}", field=f"{field}.{index}")
    return [found[code] for code in codes]


def id_by_code(session: Session, model: type[Org], *, tenant_id: str, code: str, field: str) -> str:
    found = _by_code(session, model, tenant_id, [code]).get(code)
    if found is None:
        raise ValidationFailed(f"no {model.__tablename__} {code!r}", field=field)
    return found


def _codes(session: Session, model: type[Org], ids: list[str]) -> list[str]:
    return sorted(session.scalars(select(model.code).where(model.id.in_(ids))))


def template_view(session: Session, row: CouponTemplate) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "kind": row.kind,
        "amount_fen": row.amount_fen,
        "threshold_fen": row.threshold_fen,
        "rate_pct": row.rate_pct,
        "cap_fen": row.cap_fen,
        "sku": row.sku,
        "price_fen": row.price_fen,
        "online": row.online,
        "offline": row.offline,
        "store_codes": _codes(session, Store, row.store_ids),
        "region_codes": _codes(session, Region, row.region_ids),
        "agent_codes": _codes(session, Agent, row.agent_ids),
        "skus": sorted(row.skus),
        "categories": sorted(row.categories),
        "exclusive": row.exclusive,
        "with_points": row.with_points,
        "one_per_category": row.one_per_category,
        "valid_from": _iso(row.valid_from),
        "valid_until": _iso(row.valid_until),
        "valid_days": row.valid_days,
        "total_quantity": row.total_quantity,
        "issued_count": row.issued_count,
        "per_member_limit": row.per_member_limit,
        "per_day_limit": row.per_day_limit,
        "restore_on_refund": row.restore_on_refund,
        "active": row.active,
    }


def coupon_view(coupon: Coupon, template: CouponTemplate) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "code": coupon.code,
        "display_code": display_code(coupon.code),
        "template": template.code,
        "name": template.name,
        "kind": template.kind,
        "member_id": coupon.member_id,
        "status": coupon.status,
        "issued_at": _iso(coupon.issued_at),
        "valid_from": _iso(coupon.valid_from),
        "valid_until": _iso(coupon.valid_until),
        "redeemed_at": _iso(coupon.redeemed_at),
    }


def member_coupons(session: Session, *, tenant_id: str, member_id: str) -> list[dict[str, Any]]:
    """Every coupon the member was given, oldest first, whatever its status."""
    rows = session.execute(
        select(Coupon, CouponTemplate)
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .where(Coupon.tenant_id == tenant_id, Coupon.member_id == member_id)
        .order_by(Coupon.issued_at, Coupon.id)
    ).all()
    return [coupon_view(coupon, template) for coupon, template in rows]


def coupons_on_order(session: Session, *, tenant_id: str, channel: str, order_no: str) -> list[OtherCoupon]:
    """The coupons redeemed on an order and not reversed: what a further coupon is stacked with."""
    rows = session.scalars(
        select(CouponTemplate)
        .join(Coupon, Coupon.template_id == CouponTemplate.id)
        .join(CouponRedemption, CouponRedemption.coupon_id == Coupon.id)
        .where(
            CouponRedemption.tenant_id == tenant_id,
            CouponRedemption.channel == channel,
            CouponRedemption.order_no == order_no,
            CouponRedemption.reversed_at.is_(None),
        )
        .order_by(CouponRedemption.at, CouponRedemption.id)
    ).all()
    return [
        OtherCoupon(
            exclusive=t.exclusive, one_per_category=t.one_per_category, categories=frozenset(t.categories)
        )
        for t in rows
    ]


def get_redemption(session: Session, *, tenant_id: str, redemption_id: str) -> CouponRedemption:
    row = session.get(CouponRedemption, redemption_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no redemption {redemption_id}", field="redemption_id")
    return row


def allocation_view(session: Session, row: CouponAllocation) -> dict[str, Any]:
    store = session.get(Store, row.store_id)
    assert store is not None
    return {"store_code": store.code, "quantity": row.quantity, "issued": row.issued}


# --- bulk issue batches ------------------------------------------------------------------------------


def get_batch(session: Session, *, tenant_id: str, batch_id: str) -> CouponIssueBatch:
    batch = session.get(CouponIssueBatch, batch_id)
    if batch is None or batch.tenant_id != tenant_id:
        raise NotFound(f"no coupon issue batch {batch_id}", field="batch_id")
    return batch


def batch_view(session: Session, batch: CouponIssueBatch) -> dict[str, Any]:
    template = session.get(CouponTemplate, batch.template_id)
    assert template is not None
    return {
        "id": batch.id,
        "template": template.code,
        "filename": batch.filename,
        "status": batch.status,
        "rows_seen": batch.rows_seen,
        "rows_issued": batch.rows_issued,
        "rows_already": batch.rows_already,
        "rows_failed": batch.rows_failed,
        "created_at": _iso(batch.created_at),
        "finished_at": _iso(batch.finished_at),
    }


def row_raw(keyring: Keyring, row: CouponIssueRow) -> dict[str, str]:
    """A failed row as the file gave it (sealed to its own row: it may hold a phone number)."""
    text = keyring.decrypt(
        row.raw_enc, tenant_id=row.tenant_id, table="coupon_issue_row", row_id=row.id, column="raw_enc"
    )
    raw: dict[str, str] = json.loads(text)
    return raw


def error_rows(session: Session, keyring: Keyring, batch_id: str) -> Iterator[tuple[int, str, str, str]]:
    """(row_no, field, reason, the row as given) for every row of the batch that was not issued."""
    query = select(CouponIssueRow).where(CouponIssueRow.batch_id == batch_id).order_by(CouponIssueRow.row_no)
    for row in session.scalars(query.execution_options(yield_per=1000)):
        yield row.row_no, row.field, row.reason, "|".join(row_raw(keyring, row).values())


# --- reports ----------------------------------------------------------------------------------------


def figures_view(figures: Figures) -> dict[str, Any]:
    return {
        "issued": figures.issued,
        "redeemed": figures.redeemed,
        "expired": figures.expired,
        "redemption_rate": round(figures.redemption_rate, 4),
        "gmv_fen": figures.gmv_fen,
        "average_with_fen": figures.average_with_fen,
        "average_without_fen": figures.average_without_fen,
    }


def store_rows(session: Session, rows: list[Figures]) -> list[dict[str, Any]]:
    """Store report rows with each store's code and name, by store code."""
    stores = {s.id: s for s in session.scalars(select(Store).where(Store.id.in_([r.key for r in rows])))}
    out = [
        {"store_code": stores[r.key].code, "store_name": stores[r.key].name, **figures_view(r)} for r in rows
    ]
    return sorted(out, key=lambda row: str(row["store_code"]))
