"""The import pipeline with real-looking files from the demo generator, on SQLite and PostgreSQL:
every format, idempotent re-import, a crash mid-import then resume, and unification quality."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datong.channels.models import ImportBatch
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.demo.evaluate import pairwise_scores
from datong.demo.generator import DemoManifest, generate_demo
from datong.jobs.imports import ImportRequest, Interrupted, run_import
from datong.members.models import Identity, Member, SourceRecord
from datong.members.queries import export_identities
from datong.members.unify import unify_all
from datong.orders.models import Order, OrderLine
from tests.members.helpers import make_tenant


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate_demo(tmp_path_factory.mktemp("demo"), people=400, seed=11, workers=1)


def _import_all(db: Database, keyring: Keyring, tenant: str, manifest: DemoManifest) -> list[ImportBatch]:
    return [
        run_import(
            db,
            keyring,
            ImportRequest(tenant_id=tenant, kind=f.kind, path=f.path, source=f.source, appid=f.appid),
            chunk_rows=100,
        )
        for f in manifest.files
    ]


def _state(db: Database) -> dict[str, int]:
    with db.reading() as s:
        counts = {
            "members": s.scalar(select(func.count()).select_from(Member).where(Member.status == "active")),
            "identities": s.scalar(select(func.count()).select_from(Identity)),
            "records": s.scalar(select(func.count()).select_from(SourceRecord)),
            "failed": s.scalar(
                select(func.count()).select_from(SourceRecord).where(SourceRecord.status == "failed")
            ),
            "orders": s.scalar(select(func.count()).select_from(Order)),
            "lines": s.scalar(select(func.count()).select_from(OrderLine)),
        }
    return {k: int(v or 0) for k, v in counts.items()}


def test_every_format_imports_and_reimport_changes_nothing(
    database: Database, keyring: Keyring, demo_files: DemoManifest
) -> None:
    tenant = make_tenant(database, "demo")
    batches = _import_all(database, keyring, tenant, demo_files)
    assert {b.kind for b in batches} == {
        "members",
        "miniprogram-members",
        "wechat-fans",
        "tmall-orders",
        "jd-orders",
    }
    assert all(b.status == "done" for b in batches)
    assert sum(b.rows_seen for b in batches) == demo_files.records
    first = _state(database)
    assert first["records"] == demo_files.records
    assert first["orders"] == demo_files.orders
    assert first["lines"] == demo_files.order_lines
    assert first["failed"] == sum(b.rows_failed for b in batches) > 0  # planted bad rows are kept
    again = _import_all(database, keyring, tenant, demo_files)
    assert [b.id for b in again] == [b.id for b in batches]
    assert _state(database) == first


def test_crash_mid_import_then_resume_equals_a_clean_run(
    database: Database, keyring: Keyring, demo_files: DemoManifest
) -> None:
    tenant = make_tenant(database, "demo")
    tmall = next(f for f in demo_files.files if f.kind == "tmall-orders")
    request = ImportRequest(tenant_id=tenant, kind=tmall.kind, path=tmall.path, source=tmall.source)
    with pytest.raises(Interrupted):
        run_import(database, keyring, request, chunk_rows=50, stop_after_rows=100)
    with database.reading() as s:
        batch = s.scalars(select(ImportBatch)).one()
    assert (batch.status, batch.resume_after_row, batch.rows_seen) == ("running", 100, 100)
    resumed = run_import(database, keyring, request, chunk_rows=50)
    assert resumed.id == batch.id
    assert (resumed.status, resumed.rows_seen, resumed.rows_duplicate) == ("done", tmall.records, 0)
    crashed_state = _state(database)

    other = make_tenant(database, "clean")
    run_import(
        database,
        keyring,
        ImportRequest(tenant_id=other, kind=tmall.kind, path=tmall.path, source=tmall.source),
        chunk_rows=50,
    )
    with database.reading() as s:
        clean_members = s.scalar(select(func.count()).select_from(Member).where(Member.tenant_id == other))
        clean_records = s.scalar(
            select(func.count()).select_from(SourceRecord).where(SourceRecord.tenant_id == other)
        )
    assert crashed_state["members"] == clean_members
    assert crashed_state["records"] == clean_records == tmall.records


def test_unification_quality_on_generated_data(
    database: Database, keyring: Keyring, demo_files: DemoManifest, tmp_path: Path
) -> None:
    tenant = make_tenant(database, "demo")
    _import_all(database, keyring, tenant, demo_files)
    with database.unit_of_work() as s:
        unify_all(s, tenant_id=tenant, keyring=keyring, actor="system:test")
    out = tmp_path / "identities.csv"
    with database.reading() as s, out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "kind", "value", "member_id"])
        writer.writerows(export_identities(s, keyring, tenant_id=tenant))
    scores = pairwise_scores(demo_files.truth, out)
    # Precision is what a brand cannot afford to lose: a wrong merge shows one person another's data.
    assert scores.precision >= 0.995
    assert scores.recall >= 0.6
