"""Batch work over a program's orders, one transaction a batch: a run that stops keeps the batches it
finished, and the next run picks up where the work is left (each step skips what is already done)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from datong.core.db import Database
from datong.loyalty.models import Program
from datong.loyalty.programs import get_program

# A step: (session, program, after this id) → (last id, or None when done; items; points).
Step = Callable[[Session, Program, str], tuple[str | None, int, int]]


def run_in_batches(
    db: Database,
    *,
    tenant_id: str,
    program_code: str | None,
    step: Step,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Run ``step`` batch after batch until it says it is done. Returns (items, points) in all;
    ``on_batch`` hears the running totals after each batch."""
    after: str | None = ""
    items = points = 0
    while after is not None:
        with db.unit_of_work() as s:
            program = get_program(s, tenant_id=tenant_id, code=program_code)
            after, count, moved = step(s, program, after)
        items, points = items + count, points + moved
        if on_batch is not None:
            on_batch(items, points)
    return items, points
