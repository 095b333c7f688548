"""Codes a person types for a lucky draw: pass codes (printed in a product pack or on a receipt, one entry
each, kept only as keyed hashes) and pickup codes (goods won, collected once at a store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.db import rowcount
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons.codes import BadCode, new_code, normalize_code
from datong.coupons.draw_queries import CLOSED, get_draw
from datong.coupons.models import Draw, DrawEntry, DrawPassCode
from datong.org.models import Store
from datong.tenancy.service import audit

PASS_CODE_INDEX = "draw_pass_code"  # the blind index's kind: a pass code's hash is good for nothing else
_LENIENT = str.maketrans({"O": "0", "I": "1", "L": "1"})


# --- pass codes ------------------------------------------------------------------------------------


def pass_code_key(text: str) -> str:
    """A pass code as it is hashed, from what a person typed: case, spaces and hyphens do not matter, and
    O is read as 0, I and L as 1 (as for coupon codes). Raises ValidationFailed."""
    key = text.strip().upper().replace("-", "").replace(" ", "").translate(_LENIENT)
    if not 6 <= len(key) <= 40 or not key.isascii() or not key.isalnum():
        raise ValidationFailed("a pass code has 6 to 40 letters and digits", field="pass_code")
    return key


def generate_pass_codes(
    session: Session, *, tenant_id: str, keyring: Keyring, code: str, count: int, batch: str, actor: str
) -> list[str]:
    """``count`` new random codes for the draw, returned this once for printing: only their keyed hashes
    are kept, so they cannot be read back. Codes are like coupon codes (13 characters, a check one)."""
    if not 1 <= count <= 100_000:
        raise ValidationFailed("generate 1 to 100000 codes at a time", field="count")
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_code())
    ordered = sorted(codes)
    _store_pass_codes(
        session,
        tenant_id=tenant_id,
        keyring=keyring,
        code=code,
        keys=ordered,
        batch=batch,
        actor=actor,
        how="generated",
    )
    return ordered


def load_pass_codes(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    code: str,
    codes: Sequence[str],
    batch: str,
    actor: str,
) -> int:
    """Codes the brand printed itself (a packaging supplier's list). All or nothing: one bad row refuses
    the list, naming every bad row (``detail.rows``) so that the file can be fixed and sent again."""
    keys: list[str] = []
    bad: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row_no, text in enumerate(codes, start=1):
        try:
            key = pass_code_key(text)
        except ValidationFailed as exc:
            bad.append({"row": row_no, "reason": exc.message})
            continue
        if key in seen:
            bad.append({"row": row_no, "reason": f"the same code as row {seen[key]}"})
            continue
        seen[key] = row_no
        keys.append(key)
    hashes = {_hash(keyring, tenant_id, key): row for key, row in seen.items()}
    for chunk in _chunks(sorted(hashes), 1000):
        for taken in session.scalars(
            select(DrawPassCode.code_hash).where(
                DrawPassCode.tenant_id == tenant_id, DrawPassCode.code_hash.in_(chunk)
            )
        ):
            bad.append({"row": hashes[taken], "reason": "this code was loaded before"})
    if not keys and not bad:
        raise ValidationFailed("the list has no codes", field="codes")
    if bad:
        bad.sort(key=lambda item: int(item["row"]))
        first = bad[0]
        raise ValidationFailed(
            f"{len(bad)} codes cannot be loaded; row {first['row']}: {first['reason']}",
            field="codes",
            rows=bad[:1000],
        )
    _store_pass_codes(
        session,
        tenant_id=tenant_id,
        keyring=keyring,
        code=code,
        keys=keys,
        batch=batch,
        actor=actor,
        how="loaded",
    )
    return len(keys)


def _store_pass_codes(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    code: str,
    keys: Sequence[str],
    batch: str,
    actor: str,
    how: str,
) -> None:
    if not batch.strip() or len(batch) > 64:
        raise ValidationFailed("name the batch (the print run) in 1 to 64 characters", field="batch")
    draw = get_draw(session, tenant_id=tenant_id, code=code, lock=True)
    if not draw.pass_codes:
        raise ValidationFailed(f"draw {code!r} takes no pass codes", field="draw")
    if draw.status == CLOSED:
        raise Conflict(f"draw {code!r} is closed", field="status")
    rows = [
        {
            "id": new_id("dpc"),
            "tenant_id": tenant_id,
            "draw_id": draw.id,
            "batch": batch,
            "code_hash": _hash(keyring, tenant_id, key),
        }
        for key in keys
    ]
    for chunk in _chunks(rows, 1000):
        session.execute(insert(DrawPassCode), chunk)
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=f"draw.pass_codes_{how}",
        object_type="draw",
        object_id=draw.id,
        detail={"batch": batch, "count": len(keys)},
    )


def _hash(keyring: Keyring, tenant_id: str, key: str) -> str:
    return keyring.blind_index(key, tenant_id=tenant_id, kind=PASS_CODE_INDEX)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- goods at a store -----------------------------------------------------------------------------------


def find_pickup(session: Session, *, tenant_id: str, pickup_code: str) -> DrawEntry:
    """The entry whose goods a pickup code collects (read leniently, as a coupon code)."""
    try:
        normalized = normalize_code(pickup_code)
    except BadCode as exc:
        raise ValidationFailed(str(exc).replace("coupon code", "pickup code"), field="pickup_code") from None
    entry = session.scalar(
        select(DrawEntry).where(DrawEntry.tenant_id == tenant_id, DrawEntry.pickup_code == normalized)
    )
    if entry is None:
        raise NotFound("no such pickup code", field="pickup_code")
    return entry


def collect_prize(
    session: Session, *, tenant_id: str, entry_id: str, store_id: str, actor: str, at: datetime | None = None
) -> DrawEntry:
    """The member collects the goods at a store: the store and the time are recorded, once. Audited."""
    at = at or utcnow()
    entry = session.get(DrawEntry, entry_id)
    if entry is None or entry.tenant_id != tenant_id:
        raise NotFound(f"no entry {entry_id}", field="entry_id")
    if entry.pickup_code is None:
        raise ValidationFailed("this entry won no goods to collect", field="pickup_code")
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != tenant_id:
        raise NotFound(f"no store {store_id}", field="store_id")
    done = session.execute(
        update(DrawEntry)
        .where(DrawEntry.id == entry.id, DrawEntry.collected_at.is_(None))
        .values(collected_at=at, collected_store_id=store.id)
    )
    session.refresh(entry)
    if rowcount(done) != 1:
        when = entry.collected_at.isoformat() if entry.collected_at else "?"
        raise Conflict(
            f"these goods were collected already, at {when}",
            field="pickup_code",
            store_id=entry.collected_store_id,
        )
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="draw.prize_collect",
        object_type="draw_entry",
        object_id=entry.id,
        detail={"store_id": store.id},
    )
    return entry


def unused_pass_code(session: Session, *, keyring: Keyring, draw: Draw, pass_code: str) -> DrawPassCode:
    """The draw's pass code that a person typed, if it was not used; refuses an unknown or used one."""
    found = session.scalar(
        select(DrawPassCode).where(
            DrawPassCode.tenant_id == draw.tenant_id,
            DrawPassCode.code_hash == _hash(keyring, draw.tenant_id, pass_code_key(pass_code)),
        )
    )
    if found is None or found.draw_id != draw.id:
        raise NotFound("no such pass code for this draw", field="pass_code")
    if found.entry_id is not None:
        raise Conflict("this pass code was used already", field="pass_code")
    return found


def mark_pass_code_used(session: Session, *, code: DrawPassCode, entry_id: str, at: datetime) -> None:
    marked = session.execute(
        update(DrawPassCode)
        .where(DrawPassCode.id == code.id, DrawPassCode.entry_id.is_(None))
        .values(entry_id=entry_id, used_at=at)
    )
    if rowcount(marked) != 1:
        raise Conflict("this pass code was used already", field="pass_code")
