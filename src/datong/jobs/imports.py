"""The import job: reads a file in chunks, each chunk one transaction, so a crash loses at most the
chunk in flight and the next run of the same file resumes after the last committed row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from datong.channels import importers
from datong.channels.models import ImportBatch
from datong.channels.records import ParsedRecord
from datong.channels.service import finish_batch, ingest_chunk, open_batch
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import ValidationFailed


@dataclass(frozen=True)
class ImportRequest:
    tenant_id: str
    kind: str
    path: Path
    source: str | None = None
    appid: str | None = None
    mapping: dict[str, str] | None = None
    actor: str = "system:cli"


class Interrupted(RuntimeError):
    """Raised by the ``stop_after_rows`` test hook: the process 'crashes' between two chunks."""


def run_import(
    db: Database,
    keyring: Keyring,
    request: ImportRequest,
    *,
    chunk_rows: int = 2000,
    progress: Callable[[ImportBatch], None] | None = None,
    stop_after_rows: int | None = None,
) -> ImportBatch:
    """Import one file; returns the batch with its counts. Re-running a finished file changes nothing."""
    if request.kind not in importers.IMPORT_KINDS:
        raise ValidationFailed(
            f"unknown import kind {request.kind!r}; one of {', '.join(sorted(importers.IMPORT_KINDS))}",
            field="kind",
        )
    if not request.path.is_file():
        raise ValidationFailed(f"no such file: {request.path}", field="file")
    spec = importers.importer_spec(request.kind)
    source = (request.source or "").strip() or spec.default_source
    if source is None:
        raise ValidationFailed(
            f"{request.kind} imports need the source system's name (--source)", field="source"
        )
    if spec.needs_appid and not (request.appid or "").strip():
        raise ValidationFailed(f"{request.kind} imports need the WeChat appid (--appid)", field="appid")
    options: dict[str, Any] = {"appid": request.appid, "mapping": request.mapping}
    try:
        rows = importers.open_importer(
            request.kind, request.path, source=source, appid=request.appid, mapping=request.mapping
        )
    except ValueError as exc:  # file-level problems: no card column, unknown mapping field ...
        raise ValidationFailed(str(exc), field="file") from exc
    with db.unit_of_work() as session:
        batch = open_batch(
            session,
            tenant_id=request.tenant_id,
            kind=request.kind,
            source=source,
            path=request.path,
            options=options,
            actor=request.actor,
        )
        batch_id, status, resume_after = batch.id, batch.status, batch.resume_after_row
    if status == "done":
        return batch
    records = (r for r in rows if r.row_no > resume_after)
    done_rows = 0
    try:
        while chunk := list(islice(records, chunk_rows)):
            _commit_chunk(db, keyring, request.tenant_id, batch_id, chunk, progress)
            done_rows += len(chunk)
            if stop_after_rows is not None and done_rows >= stop_after_rows:
                raise Interrupted(f"stopped after {done_rows} rows")
    except ValueError as exc:  # raised by the reader: a file that turns out not to be of its kind
        _finish(db, batch_id, str(exc))
        raise ValidationFailed(str(exc), field="file") from exc
    return _finish(db, batch_id, None)


def _commit_chunk(
    db: Database,
    keyring: Keyring,
    tenant_id: str,
    batch_id: str,
    chunk: list[ParsedRecord],
    progress: Callable[[ImportBatch], None] | None,
) -> None:
    with db.unit_of_work() as session:
        batch = session.get(ImportBatch, batch_id)
        assert batch is not None
        ingest_chunk(session, tenant_id=tenant_id, keyring=keyring, batch=batch, parsed=chunk)
    if progress:
        progress(batch)


def _finish(db: Database, batch_id: str, error: str | None) -> ImportBatch:
    with db.unit_of_work() as session:
        batch = session.get(ImportBatch, batch_id)
        assert batch is not None
        finish_batch(session, batch, error=error)
    return batch
