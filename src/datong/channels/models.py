"""Import batches: one per file, with counts and a resume point."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped
from datong.core.ids import new_id

RUNNING = "running"
DONE = "done"
FAILED = "failed"


class ImportBatch(Base, TenantScoped):
    """A file being imported. The same file (by content hash) is one batch: importing it again resumes
    it if it was cut short, and changes nothing if it finished."""

    __tablename__ = "import_batch"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "source", "file_sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("imp"))
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_bytes: Mapped[int] = mapped_column()
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    rows_seen: Mapped[int] = mapped_column(default=0)
    rows_ok: Mapped[int] = mapped_column(default=0)
    rows_failed: Mapped[int] = mapped_column(default=0)
    rows_duplicate: Mapped[int] = mapped_column(default=0)
    members_created: Mapped[int] = mapped_column(default=0)
    members_merged: Mapped[int] = mapped_column(default=0)
    orders_upserted: Mapped[int] = mapped_column(default=0)
    resume_after_row: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
