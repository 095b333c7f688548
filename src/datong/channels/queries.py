"""Reads for imports: the rows a batch could not take, with their reasons."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.crypto import Keyring
from datong.members.models import SourceRecord
from datong.members.queries import record_raw

ERROR_REPORT_HEADER = ("row_no", "field", "reason", "row")


def error_rows(
    session: Session, keyring: Keyring, batch_id: str
) -> Iterator[tuple[int | None, str, str, str]]:
    """One line per problem (a row with two bad fields gives two), with the row as the file gave it."""
    query = (
        select(SourceRecord)
        .where(SourceRecord.batch_id == batch_id, SourceRecord.status == "failed")
        .order_by(SourceRecord.row_no)
    )
    for record in session.scalars(query):
        row = "|".join(record_raw(keyring, record).values())
        for error in record.errors:
            yield record.row_no, error["field"], error["reason"], row
