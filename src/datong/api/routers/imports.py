"""Import jobs over HTTP: upload a file, follow its progress, fetch its error report."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from datong.api.deps import PrincipalDep, PrincipalOutsideTransactionDep, RuntimeDep, SessionDep
from datong.channels.importers import IMPORT_KINDS
from datong.channels.models import ImportBatch
from datong.channels.queries import ERROR_REPORT_HEADER, error_rows
from datong.core.errors import DatongError, NotFound, ValidationFailed
from datong.jobs.imports import ImportRequest, run_import
from datong.members.queries import require
from datong.tenancy import rules
from datong.tenancy.service import audit

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])
UPLOADS = Path("var/uploads")


def _view(b: ImportBatch) -> dict[str, Any]:
    return {
        "id": b.id,
        "kind": b.kind,
        "source": b.source,
        "filename": b.filename,
        "status": b.status,
        "rows_seen": b.rows_seen,
        "rows_ok": b.rows_ok,
        "rows_failed": b.rows_failed,
        "rows_duplicate": b.rows_duplicate,
        "members_created": b.members_created,
        "members_merged": b.members_merged,
        "orders_upserted": b.orders_upserted,
        "error": b.error,
        "started_at": b.started_at.isoformat(),
        "finished_at": b.finished_at.isoformat() if b.finished_at else None,
    }


@router.post("", status_code=202)
def upload(
    p: PrincipalOutsideTransactionDep,
    rt: RuntimeDep,
    kind: Annotated[str, Form()],
    file: Annotated[UploadFile, File()],
    source: Annotated[str | None, Form()] = None,
    appid: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Starts the import in the background; poll ``GET /api/v1/imports/{id}``."""
    require(p, rules.IMPORTS_WRITE)
    if kind not in IMPORT_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(sorted(IMPORT_KINDS))}", field="kind")
    data = file.file.read()
    if not data:
        raise ValidationFailed("the file is empty", field="file")
    folder = UPLOADS / p.tenant_id
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(file.filename or "upload.csv").suffix.lower() or ".csv"
    path = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    path.write_bytes(data)
    request = ImportRequest(
        tenant_id=p.tenant_id, kind=kind, path=path, source=source, appid=appid, actor=p.label
    )
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def work() -> None:
        def seen(batch: ImportBatch) -> None:
            outcome.setdefault("id", batch.id)
            started.set()

        try:
            batch = run_import(
                rt.db, rt.keyring, request, chunk_rows=rt.settings.import_chunk_rows, progress=seen
            )
            outcome.setdefault("id", batch.id)
            # Every row now lives encrypted in the database; the plaintext upload must not outlive it.
            path.unlink(missing_ok=True)
        except DatongError as exc:  # a file-level problem: the batch says so, and the file is of no use
            outcome["error"] = exc
            path.unlink(missing_ok=True)
        except Exception as exc:  # kept: the same upload resumes where the batch stopped
            outcome["error"] = exc
        finally:
            started.set()

    threading.Thread(target=work, name=f"import-{path.name}", daemon=True).start()
    started.wait(timeout=30)
    if "error" in outcome and "id" not in outcome:
        raise outcome["error"]
    if "id" not in outcome:
        return {"status": "running", "file": path.name}
    with rt.db.reading() as s:
        batch = s.get(ImportBatch, outcome["id"])
        assert batch is not None
        return _view(batch)


def _batch(s: Any, p: Any, batch_id: str) -> ImportBatch:
    batch = s.get(ImportBatch, batch_id)
    if batch is None or batch.tenant_id != p.tenant_id:
        raise NotFound(f"no import {batch_id}", field="batch_id")
    return batch  # type: ignore[no-any-return]


@router.get("")
def list_imports(s: SessionDep, p: PrincipalDep) -> list[dict[str, Any]]:
    require(p, rules.IMPORTS_READ)
    query = (
        select(ImportBatch)
        .where(ImportBatch.tenant_id == p.tenant_id)
        .order_by(ImportBatch.started_at.desc())
    )
    return [_view(b) for b in s.scalars(query.limit(200))]


@router.get("/{batch_id}")
def get_import(batch_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    require(p, rules.IMPORTS_READ)
    return _view(_batch(s, p, batch_id))


@router.get("/{batch_id}/errors")
def errors_report(batch_id: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> StreamingResponse:
    """CSV: row number, field, reason and the row as given (it is the brand's own file): audited."""
    require(p, rules.IMPORTS_READ)
    batch = _batch(s, p, batch_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ERROR_REPORT_HEADER)
    writer.writerows(error_rows(s, rt.keyring, batch.id))
    audit(
        s,
        tenant_id=p.tenant_id,
        actor=p.label,
        action="import.errors_export",
        object_type="import_batch",
        object_id=batch.id,
    )
    return StreamingResponse(
        iter([out.getvalue().encode("utf-8-sig")]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{batch.id}-errors.csv"'},
    )
