"""The import pipeline's writes: open or resume a batch, store a chunk of parsed rows, resolve them.

Every row becomes a source record, a failed one too (with its errors), so nothing a brand gives us is
dropped. A row already stored (same source, same content) is counted as a duplicate and changes nothing,
which is what makes a second import of the same file, or a resumed one, safe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.models import DONE, FAILED, RUNNING, ImportBatch
from datong.channels.records import NICK, PHONE, PIN, ParsedRecord
from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.ids import new_id
from datong.identity.matching import WeakHint
from datong.identity.rules import phone_mask
from datong.members import service as members
from datong.members.models import SourceRecord
from datong.members.unify import PendingRecord, resolve_records
from datong.orders.service import IncomingOrder, upsert_orders
from datong.tenancy.service import audit

ORDER_CHANNEL = {"tmall-orders": "tmall", "jd-orders": "jd"}


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def open_batch(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    source: str,
    path: Path,
    options: dict[str, Any],
    actor: str,
) -> ImportBatch:
    """The batch for this file: a new one, the unfinished one to resume, or the finished one (a no-op)."""
    sha, size = file_digest(path)
    batch = session.scalar(
        select(ImportBatch).where(
            ImportBatch.tenant_id == tenant_id,
            ImportBatch.kind == kind,
            ImportBatch.source == source,
            ImportBatch.file_sha256 == sha,
        )
    )
    if batch is not None:
        if batch.status == FAILED:
            batch.status, batch.error = RUNNING, None
        return batch
    batch = ImportBatch(
        tenant_id=tenant_id,
        kind=kind,
        source=source,
        filename=path.name,
        file_sha256=sha,
        file_bytes=size,
        options=options,
        actor=actor,
        status=RUNNING,
        started_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="import.start",
        object_type="import_batch",
        object_id=batch.id,
        detail={"kind": kind, "source": source, "file": path.name, "sha256": sha},
    )
    return batch


def finish_batch(session: Session, batch: ImportBatch, *, error: str | None = None) -> None:
    batch.status = FAILED if error else DONE
    batch.error = error
    batch.finished_at = utcnow()
    audit(
        session,
        tenant_id=batch.tenant_id,
        actor=batch.actor,
        action="import.finish",
        object_type="import_batch",
        object_id=batch.id,
        detail={
            "status": batch.status,
            "ok": batch.rows_ok,
            "failed": batch.rows_failed,
            "duplicate": batch.rows_duplicate,
        },
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def fingerprint(kind: str, source: str, raw: dict[str, str]) -> str:
    body = json.dumps([kind, source, raw], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class ChunkResult:
    ok: int = 0
    failed: int = 0
    duplicate: int = 0


def ingest_chunk(
    session: Session, *, tenant_id: str, keyring: Keyring, batch: ImportBatch, parsed: list[ParsedRecord]
) -> ChunkResult:
    """Store and resolve one chunk, and move the batch's resume point past its last row."""
    result = ChunkResult()
    if not parsed:
        return result
    prints = [fingerprint(batch.kind, batch.source, p.raw) for p in parsed]
    known: set[str] = set()
    for start in range(0, len(prints), 900):
        known.update(
            session.scalars(
                select(SourceRecord.fingerprint).where(
                    SourceRecord.tenant_id == tenant_id,
                    SourceRecord.source == batch.source,
                    SourceRecord.fingerprint.in_(prints[start : start + 900]),
                )
            )
        )
    pending: list[PendingRecord] = []
    orders: list[tuple[ParsedRecord, SourceRecord]] = []
    for item, print_ in zip(parsed, prints, strict=True):
        if print_ in known:
            result.duplicate += 1
            continue
        known.add(print_)
        record = build_source_record(
            keyring,
            tenant_id,
            batch_id=batch.id,
            channel=batch.kind,
            source=batch.source,
            item=item,
            print_=print_,
        )
        session.add(record)
        if not item.ok:
            result.failed += 1
            continue
        result.ok += 1
        pending.append(pending_for(keyring, tenant_id, item, record))
        if item.order is not None:
            orders.append((item, record))
    session.flush()
    stats = resolve_records(session, tenant_id=tenant_id, keyring=keyring, pending=pending, actor=batch.actor)
    upserted = upsert_orders(
        session, tenant_id=tenant_id, incoming=[_order(keyring, tenant_id, batch, p, r) for p, r in orders]
    )
    batch.rows_seen += len(parsed)
    batch.rows_ok += result.ok
    batch.rows_failed += result.failed
    batch.rows_duplicate += result.duplicate
    batch.members_created += stats.members_created
    batch.members_merged += stats.members_merged
    batch.orders_upserted += upserted
    batch.resume_after_row = max(batch.resume_after_row, parsed[-1].row_no)
    return result


def build_source_record(
    keyring: Keyring,
    tenant_id: str,
    *,
    batch_id: str | None,
    channel: str,
    source: str,
    item: ParsedRecord,
    print_: str,
) -> SourceRecord:
    record_id = new_id("src")
    seal = {"tenant_id": tenant_id, "table": "source_record", "row_id": record_id}
    raw = json.dumps(item.raw, ensure_ascii=False)
    record = SourceRecord(
        id=record_id,
        tenant_id=tenant_id,
        batch_id=batch_id,
        source=source,
        channel=channel,
        row_no=item.row_no,
        fingerprint=print_,
        raw_enc=keyring.encrypt(raw, column="raw", **seal),
        status="ok" if item.ok else "failed",
        errors=[asdict(e) for e in item.errors],
        created_at=utcnow(),
    )
    if not item.ok:
        return record
    person = {
        k: _jsonable(v)
        for k, v in asdict(item.person).items()
        if k not in ("address", "id_number", "extra") and v not in (None, "")
    }
    pii = {k: v for k, v in (("address", item.person.address), ("id_number", item.person.id_number)) if v}
    person.update({f"has_{k}": True for k in pii})
    record.person = person
    if pii:
        record.pii_enc = keyring.encrypt(json.dumps(pii, ensure_ascii=False), column="pii_enc", **seal)
    return record


def _hints(keyring: Keyring, tenant_id: str, item: ParsedRecord) -> list[WeakHint]:
    weak = item.weak
    hints = []
    if weak.receiver_phone:
        hints.append(
            WeakHint(
                "phone",
                keyring.blind_index(weak.receiver_phone, tenant_id=tenant_id, kind=PHONE),
                weak.receiver_name_pinyin,
            )
        )
    if weak.masked_phone:
        hints.append(
            WeakHint(
                "mask", members.mask_index(keyring, tenant_id, weak.masked_phone), weak.receiver_name_pinyin
            )
        )
    return hints


def pending_for(keyring: Keyring, tenant_id: str, item: ParsedRecord, record: SourceRecord) -> PendingRecord:
    hints = _hints(keyring, tenant_id, item)
    masks = frozenset(
        members.mask_index(keyring, tenant_id, phone_mask(k.value))
        for k in item.identities
        if k.kind == PHONE and len(k.value) == 11
    )
    lookups = [(k.kind, k.namespace, members.identity_lookup(keyring, tenant_id, k)) for k in item.identities]
    record.keys = [f"{kind}|{ns}|{lookup}" for kind, ns, lookup in lookups]
    record.evidence = {"hints": [[h.by, h.lookup, h.name_pinyin] for h in hints]} if hints else {}
    names = frozenset({item.person.name_pinyin} if item.person.name_pinyin else ())
    return PendingRecord(
        record=record, identities=item.identities, names=names, phone_masks=masks, hints=hints
    )


def _order(
    keyring: Keyring, tenant_id: str, batch: ImportBatch, item: ParsedRecord, record: SourceRecord
) -> IncomingOrder:
    assert item.order is not None
    buyer = next((k for k in item.identities if k.kind in (NICK, PIN)), None)
    return IncomingOrder(
        channel=ORDER_CHANNEL.get(batch.kind, batch.source),
        fields=item.order,
        member_id=record.member_id,
        buyer_kind=buyer.kind if buyer else None,
        buyer_lookup=members.identity_lookup(keyring, tenant_id, buyer) if buyer else None,
        source_record_id=record.id,
    )
