"""Issuing a template's coupon to every member of a list file (CSV or Excel), one coupon per good row.

The file names each member by ``member_id``, or by card number (``card_no``/会员卡号, looked up in the
card source the caller names) or phone (``phone``/手机号, looked up by its blind index), the first of
these the row fills; an optional ``issue_key`` column gives a row's own idempotency key (else it is
``bulk:<batch>:<row>``). A row that cannot be issued (unknown or deleted member, a phone several members
share, a limit reached, the member a second time when the per-member limit forbids, a malformed value)
is kept as a :class:`CouponIssueRow` with the column at fault and the reason, the row as given
encrypted; it never stops the others.

The same file for the same template is one batch (unique on its SHA-256). Rows go in chunks, each its
own transaction that also moves the batch's counters, so a run that stops resumes after the last chunk
it committed, and a finished file sent again issues nothing more. A member merged into another is issued
to the member it was merged into (the same person).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.files import open_table
from datong.channels.records import CARD_NO, PHONE
from datong.channels.service import file_digest
from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.db import Database, upsert_insert
from datong.core.errors import Conflict, DatongError, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons.models import CouponIssueBatch, CouponIssueRow, CouponTemplate
from datong.coupons.service import check_issuable, get_template, issue_coupon
from datong.members.queries import lookup_members
from datong.members.service import get_active_member
from datong.tenancy.rules import system_principal
from datong.tenancy.service import audit

RUNNING, DONE, FAILED = "running", "done", "failed"
CHUNK_ROWS = 500
# What a column may be called (compared without case and surrounding spaces).
MEMBER_ID_HEADERS = frozenset({"member_id", "会员id"})
CARD_HEADERS = frozenset({"card_no", "card", "member_no", "会员卡号", "卡号", "会员号", "会员编号"})
PHONE_HEADERS = frozenset({"phone", "mobile", "手机号", "手机", "手机号码"})
ISSUE_KEY_HEADERS = frozenset({"issue_key", "发券编号"})
MAX_MERGE_HOPS = 8  # a merge chain longer than this is a data problem, not a person


@dataclass(frozen=True)
class Columns:
    """The file's own header for each thing a row may give (None: the file has no such column)."""

    member_id: str | None
    card: str | None
    phone: str | None
    issue_key: str | None


def find_columns(headers: Iterable[str]) -> Columns:
    """Which columns name the member; a file with none of them is refused before anything is written."""
    found: dict[frozenset[str], str] = {}
    for header in headers:
        for names in (MEMBER_ID_HEADERS, CARD_HEADERS, PHONE_HEADERS, ISSUE_KEY_HEADERS):
            if header.strip().lower() in names:
                found.setdefault(names, header)
    columns = Columns(
        found.get(MEMBER_ID_HEADERS),
        found.get(CARD_HEADERS),
        found.get(PHONE_HEADERS),
        found.get(ISSUE_KEY_HEADERS),
    )
    if not (columns.member_id or columns.card or columns.phone):
        raise ValidationFailed(
            "the file needs a member_id, card_no (会员卡号) or phone (手机号) column", field="file"
        )
    return columns


class RowError(Exception):
    """Why one row is not issued: the column at fault (as the file names it) and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


# --- one chunk, in the caller's transaction ---------------------------------------------------------


def open_issue_batch(
    session: Session,
    *,
    tenant_id: str,
    template_code: str,
    filename: str,
    file_sha256: str,
    actor: str,
    at: datetime,
) -> CouponIssueBatch:
    """The batch of this file for this template: a new one, the unfinished one to resume, or the
    finished one (nothing more to do). A new one needs a template that issues now. Audited."""
    template = get_template(session, tenant_id=tenant_id, code=template_code)
    earlier = _batch_of(session, template, file_sha256)
    if earlier is not None:
        if earlier.status == FAILED:
            earlier.status = RUNNING
        return earlier
    check_issuable(template, at)
    session.execute(  # two uploads of one file at once both end up with the one batch
        upsert_insert(session, CouponIssueBatch)
        .values(
            id=new_id("cib"),
            tenant_id=tenant_id,
            template_id=template.id,
            filename=filename[:300],
            file_sha256=file_sha256,
            status=RUNNING,  # the row counts start at their columns' default, 0
            actor=actor,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "template_id", "file_sha256"])
    )
    batch = _batch_of(session, template, file_sha256)
    assert batch is not None
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="coupon.bulk_start",
        object_type="coupon_issue_batch",
        object_id=batch.id,
        detail={"template": template.code, "file": filename, "sha256": file_sha256},
    )
    return batch


def _batch_of(session: Session, template: CouponTemplate, file_sha256: str) -> CouponIssueBatch | None:
    return session.scalar(
        select(CouponIssueBatch)
        .where(
            CouponIssueBatch.tenant_id == template.tenant_id,
            CouponIssueBatch.template_id == template.id,
            CouponIssueBatch.file_sha256 == file_sha256,
        )
        .execution_options(populate_existing=True)
    )


def issue_chunk(
    session: Session,
    *,
    keyring: Keyring,
    batch_id: str,
    offset: int,
    columns: Columns,
    rows: list[tuple[int, dict[str, str]]],
    card_source: str | None = None,
    seen: dict[str, int] | None = None,
    at: datetime | None = None,
) -> CouponIssueBatch:
    """Issue the rows that follow the first ``offset`` rows of the file. ``seen`` (member → the row that
    gave it a coupon) carries over from chunk to chunk, to say when a refusal is the file's own repeat."""
    batch = session.get(CouponIssueBatch, batch_id, with_for_update=True, populate_existing=True)
    assert batch is not None
    if batch.status != RUNNING or batch.rows_seen != offset:
        raise Conflict("another run of this file is under way, or has finished it", field="file")
    template = session.get(CouponTemplate, batch.template_id)
    assert template is not None
    seen = {} if seen is None else seen
    for row_no, row in rows:
        batch.rows_seen += 1
        try:
            member_id = _member_of(session, keyring, batch.tenant_id, columns, row, card_source)
            key = (row.get(columns.issue_key, "") if columns.issue_key else "").strip()
            created = _issue(session, template, batch, columns, row_no, member_id, key, seen, at)
        except RowError as exc:
            _keep(session, keyring, batch, row_no, row, exc)
            batch.rows_failed += 1
            continue
        if created:
            batch.rows_issued += 1
            seen.setdefault(member_id, row_no)
        else:
            batch.rows_already += 1
    session.flush()
    return batch


def _issue(
    session: Session,
    template: CouponTemplate,
    batch: CouponIssueBatch,
    columns: Columns,
    row_no: int,
    member_id: str,
    key: str,
    seen: dict[str, int],
    at: datetime | None,
) -> bool:
    member_column = columns.member_id or columns.card or columns.phone or "member_id"
    try:
        _coupon, created = issue_coupon(
            session,
            tenant_id=batch.tenant_id,
            template_code=template.code,
            member_id=member_id,
            issue_key=key or f"bulk:{batch.id}:{row_no}",
            source="bulk",
            at=at,
        )
    except DatongError as exc:
        if exc.field == "member_id" and member_id in seen:
            raise RowError(
                member_column,
                f"the member is in this file already (row {seen[member_id]}), "
                f"and {template.code!r} gives at most {template.per_member_limit} per member",
            ) from None
        fields = {"member_id": member_column, "issue_key": columns.issue_key or "issue_key"}
        raise RowError(fields.get(exc.field or "", exc.field or "row"), exc.message) from None
    return created


def _member_of(
    session: Session,
    keyring: Keyring,
    tenant_id: str,
    columns: Columns,
    row: dict[str, str],
    card_source: str | None,
) -> str:
    """The active member a row names, by the first of member_id, card and phone it fills."""
    for column, kind in ((columns.member_id, "member_id"), (columns.card, CARD_NO), (columns.phone, PHONE)):
        value = (row.get(column, "") if column else "").strip()
        if column is None or not value:
            continue
        if kind == "member_id":
            return _active(session, tenant_id, column, value)
        if kind == CARD_NO and not card_source:
            raise RowError(column, "name the system the card numbers come from (card_source)")
        try:
            found = lookup_members(
                session,
                system_principal(tenant_id),
                keyring,
                kind=kind,
                value=value,
                namespace=(card_source or "") if kind == CARD_NO else "",
            )
        except ValidationFailed as exc:  # a malformed phone: the reason describes it, never repeats it
            raise RowError(column, exc.message) from None
        if not found:
            what = f"card {value}" if kind == CARD_NO else "this phone"
            raise RowError(column, f"no member with {what}")
        if len(found) > 1:
            raise RowError(column, f"{len(found)} members share this phone: name the member by member_id")
        return found[0].id
    raise RowError(columns.member_id or columns.card or columns.phone or "row", "the row names no member")


def _active(session: Session, tenant_id: str, column: str, member_id: str) -> str:
    """The member itself, or the one it was merged into; an unknown or deleted one is refused."""
    if len(member_id) > 32:
        raise RowError(column, "a member id has at most 32 characters")
    for _hop in range(MAX_MERGE_HOPS):
        try:
            return get_active_member(session, tenant_id=tenant_id, member_id=member_id).id
        except NotFound:
            raise RowError(column, f"no member {member_id}") from None
        except Conflict as exc:
            merged_into = exc.detail.get("merged_into")
            if not merged_into:
                raise RowError(column, exc.message) from None
            member_id = merged_into
    raise RowError(column, "the member was merged too many times over to follow")


def _keep(
    session: Session,
    keyring: Keyring,
    batch: CouponIssueBatch,
    row_no: int,
    row: dict[str, str],
    exc: RowError,
) -> None:
    kept = CouponIssueRow(id=new_id("cir"), tenant_id=batch.tenant_id, batch_id=batch.id, row_no=row_no)
    kept.field, kept.reason = exc.field[:64], exc.reason[:300]
    seal = {"tenant_id": batch.tenant_id, "table": "coupon_issue_row", "row_id": kept.id, "column": "raw_enc"}
    kept.raw_enc = keyring.encrypt(json.dumps(row, ensure_ascii=False), **seal)
    session.add(kept)


def finish_issue_batch(session: Session, batch: CouponIssueBatch, *, failed: bool = False) -> None:
    batch.status = FAILED if failed else DONE
    batch.finished_at = utcnow()
    audit(
        session,
        tenant_id=batch.tenant_id,
        actor=batch.actor,
        action="coupon.bulk_finish",
        object_type="coupon_issue_batch",
        object_id=batch.id,
        detail={
            "status": batch.status,
            "issued": batch.rows_issued,
            "already": batch.rows_already,
            "failed": batch.rows_failed,
        },
    )


# --- the job: a transaction per chunk -----------------------------------------------------------------


def run_bulk_issue(
    db: Database,
    keyring: Keyring,
    *,
    tenant_id: str,
    template_code: str,
    path: Path,
    actor: str,
    filename: str | None = None,
    card_source: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[CouponIssueBatch], None] | None = None,
    at: datetime | None = None,
) -> CouponIssueBatch:
    """Issue one file (a job: it owns its transactions, one per chunk). ``progress`` hears of the batch
    once it is open and after every chunk. A file-level problem (no member column, not a table) is
    refused before anything is written; a finished file answers its batch as it stands."""
    if not path.is_file():
        raise ValidationFailed(f"no such file: {path.name}", field="file")
    sha, _size = file_digest(path)
    try:
        table = open_table(path)
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"not a CSV or Excel table: {exc}", field="file") from None
    with table:
        columns = find_columns(table.headers)
        if columns.card and not (card_source or "").strip():
            # Card numbers are unique only within the system that gave them out.
            raise ValidationFailed(
                f"the file has card numbers ({columns.card}): name the system they come from",
                field="card_source",
            )
        with db.unit_of_work() as s:
            batch = open_issue_batch(
                s,
                tenant_id=tenant_id,
                template_code=template_code,
                filename=filename or path.name,
                file_sha256=sha,
                actor=actor,
                at=at or utcnow(),
            )
        if progress:
            progress(batch)
        if batch.status == DONE:
            return batch
        offset = batch.rows_seen
        seen: dict[str, int] = {}
        rows = islice(iter(table), offset, None)  # what a run before this one committed is done
        while True:
            try:
                chunk = list(islice(rows, chunk_rows))
            except ValueError as exc:  # the file breaks part way: the rows before it stay done
                _finish(db, batch.id, failed=True)
                raise ValidationFailed(f"the file cannot be read on: {exc}", field="file") from None
            if not chunk:
                break
            with db.unit_of_work() as s:
                batch = issue_chunk(
                    s,
                    keyring=keyring,
                    batch_id=batch.id,
                    offset=offset,
                    columns=columns,
                    rows=chunk,
                    card_source=card_source,
                    seen=seen,
                    at=at,
                )
            offset += len(chunk)
            if progress:
                progress(batch)
    return _finish(db, batch.id)


def _finish(db: Database, batch_id: str, *, failed: bool = False) -> CouponIssueBatch:
    with db.unit_of_work() as s:
        batch = s.get(CouponIssueBatch, batch_id)
        assert batch is not None
        finish_issue_batch(s, batch, failed=failed)
    return batch
