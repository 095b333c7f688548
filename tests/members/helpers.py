"""Building parsed rows by hand, and a brand to put them in, for the unification tests."""

from __future__ import annotations

from sqlalchemy import func, select

from datong.channels.models import ImportBatch
from datong.channels.records import CARD_NO, NICK, OPENID, PHONE, UNIONID, IdentityKey, ParsedRecord
from datong.channels.service import ingest_chunk
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.identity.rules import name_pinyin, normalize_name
from datong.members.models import Identity, Member
from datong.tenancy.service import create_tenant


def make_tenant(db: Database, code: str = "acme") -> str:
    with db.unit_of_work() as s:
        return create_tenant(s, code=code, name=f"{code} brand").id


def card(
    row: int, source: str, card_no: str, *, name: str | None = None, phone: str | None = None
) -> ParsedRecord:
    record = ParsedRecord(row_no=row, raw={"card": card_no, "name": name or "", "phone": phone or ""})
    record.identities.append(IdentityKey(CARD_NO, card_no, source))
    if phone:
        record.identities.append(IdentityKey(PHONE, phone))
    if name:
        record.person.name = normalize_name(name)
        record.person.name_pinyin = name_pinyin(name)
    return record


def fan(row: int, openid: str, *, unionid: str | None = None, appid: str = "wxapp") -> ParsedRecord:
    record = ParsedRecord(row_no=row, raw={"openid": openid, "unionid": unionid or ""})
    record.identities.append(IdentityKey(OPENID, openid, appid))
    if unionid:
        record.identities.append(IdentityKey(UNIONID, unionid))
    return record


def mini(
    row: int, openid: str, *, phone: str | None = None, unionid: str | None = None, name: str | None = None
) -> ParsedRecord:
    record = fan(row, openid, unionid=unionid, appid="wxmini")
    record.raw["phone"] = phone or ""
    if phone:
        record.identities.append(IdentityKey(PHONE, phone))
    if name:
        record.person.name = normalize_name(name)
        record.person.name_pinyin = name_pinyin(name)
    return record


def tmall(
    row: int, nick: str, *, receiver: str, masked: str | None = None, phone: str | None = None
) -> ParsedRecord:
    record = ParsedRecord(
        row_no=row, raw={"nick": nick, "receiver": receiver, "phone": masked or phone or ""}
    )
    record.identities.append(IdentityKey(NICK, nick))
    record.weak.receiver_name = normalize_name(receiver)
    record.weak.receiver_name_pinyin = name_pinyin(receiver)
    record.weak.masked_phone = masked
    record.weak.receiver_phone = phone
    return record


def ingest(
    db: Database,
    keyring: Keyring,
    tenant_id: str,
    kind: str,
    source: str,
    rows: list[ParsedRecord],
    *,
    name: str = "file.csv",
) -> ImportBatch:
    with db.unit_of_work() as s:
        batch = ImportBatch(
            tenant_id=tenant_id,
            kind=kind,
            source=source,
            filename=name,
            file_sha256=name,
            file_bytes=0,
            actor="system:test",
        )
        s.add(batch)
        s.flush()
        ingest_chunk(s, tenant_id=tenant_id, keyring=keyring, batch=batch, parsed=rows)
    return batch


def member_of(
    db: Database, keyring: Keyring, tenant_id: str, kind: str, value: str, namespace: str = ""
) -> set[str]:
    """The active members holding this identity."""
    from datong.members.service import identity_lookup

    lookup = identity_lookup(keyring, tenant_id, IdentityKey(kind, value, namespace))
    with db.reading() as s:
        return set(
            s.scalars(
                select(Identity.member_id)
                .join(Member, Member.id == Identity.member_id)
                .where(
                    Identity.tenant_id == tenant_id,
                    Identity.kind == kind,
                    Identity.namespace == namespace,
                    Identity.lookup == lookup,
                    Member.status == "active",
                )
            )
        )


def active_members(db: Database, tenant_id: str) -> int:
    with db.reading() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Member)
                .where(Member.tenant_id == tenant_id, Member.status == "active")
            )
            or 0
        )
