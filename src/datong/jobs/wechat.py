"""Handle WeChat callback messages kept in the inbox: each in its own transaction, so one that fails
is marked failed (with the reason) without holding back the others."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from datong.channels.wechat.handlers import process_message
from datong.channels.wechat.models import FAILED
from datong.channels.wechat.service import mark, pending_inbox
from datong.core.crypto import Keyring
from datong.core.db import Database

log = logging.getLogger(__name__)


def process_inbox(db: Database, keyring: Keyring, inbox_ids: Sequence[str]) -> dict[str, int]:
    counts = {"done": 0, "failed": 0}
    for inbox_id in inbox_ids:
        try:
            with db.unit_of_work() as s:
                process_message(s, keyring=keyring, inbox_id=inbox_id)
            counts["done"] += 1
        except Exception as exc:
            log.warning("wechat inbox %s failed: %s", inbox_id, exc)
            with db.unit_of_work() as s:
                mark(s, inbox_id=inbox_id, status=FAILED, error=f"{type(exc).__name__}: {exc}")
            counts["failed"] += 1
    return counts


def process_pending(db: Database, keyring: Keyring, *, batch: int = 200) -> dict[str, int]:
    """Every message still pending (left by a crash after the answer), oldest first."""
    total = {"done": 0, "failed": 0}
    while True:
        with db.reading() as s:
            ids = pending_inbox(s, limit=batch)
        if not ids:
            return total
        counts = process_inbox(db, keyring, ids)
        for key, value in counts.items():
            total[key] += value
        if counts["done"] == 0:
            return total  # everything in this batch failed: stop rather than loop on them
