"""Writes for members: identities, merges and unmerges, the golden record, consent, PIPL deletion.

Nothing here commits; the caller's unit of work does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from datong.channels.records import PHONE, PII_KINDS, IdentityKey
from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.identity.matching import EXCLUSIVE_KINDS
from datong.identity.rules import phone_mask
from datong.members import rules
from datong.members.models import (
    ACTIVE,
    DELETED,
    MERGED,
    Consent,
    Identity,
    Member,
    MergeEvent,
    Separation,
    SourceRecord,
)
from datong.orders.models import Order
from datong.org.models import Store
from datong.tenancy.service import audit

# "location": precise whereabouts are sensitive personal data (PIPL 28), kept only with this consent.
CONSENT_PURPOSES = (
    "marketing_sms",
    "wechat_messages",
    "personalised_marketing",
    "share_with_agents",
    "location",
)


def identity_lookup(keyring: Keyring, tenant_id: str, key: IdentityKey) -> str:
    """What the identity table is searched by: the value, or its blind index for personal data."""
    if key.kind in PII_KINDS:
        return keyring.blind_index(key.value, tenant_id=tenant_id, kind=key.kind)
    return key.value


def mask_index(keyring: Keyring, tenant_id: str, masked_phone: str) -> str:
    return keyring.blind_index(masked_phone, tenant_id=tenant_id, kind="phone_mask")


def build_identity(
    keyring: Keyring,
    *,
    tenant_id: str,
    member_id: str,
    key: IdentityKey,
    source: str,
    source_record_id: str | None,
    rule: str,
    evidence: dict[str, Any] | None = None,
) -> Identity:
    identity = Identity(
        tenant_id=tenant_id,
        member_id=member_id,
        kind=key.kind,
        namespace=key.namespace,
        lookup=identity_lookup(keyring, tenant_id, key),
        is_exclusive=key.kind in EXCLUSIVE_KINDS,
        source=source,
        source_record_id=source_record_id,
        rule=rule,
        evidence=evidence or {},
        created_at=utcnow(),
    )
    identity.id = new_id("idn")  # needed now: the ciphertext is bound to the row id
    if key.kind in PII_KINDS:
        identity.value_enc = keyring.encrypt(
            key.value, tenant_id=tenant_id, table="identity", row_id=identity.id, column="value"
        )
    else:
        identity.value = key.value
    if key.kind == PHONE and len(key.value) == 11:
        identity.mask_bidx = mask_index(keyring, tenant_id, phone_mask(key.value))
    return identity


def identity_value(keyring: Keyring, identity: Identity) -> str:
    if identity.value_enc is not None:
        return keyring.decrypt(
            identity.value_enc,
            tenant_id=identity.tenant_id,
            table="identity",
            row_id=identity.id,
            column="value",
        )
    return identity.value or ""


def get_active_member(session: Session, *, tenant_id: str, member_id: str) -> Member:
    member = session.get(Member, member_id)
    if member is None or member.tenant_id != tenant_id:
        raise NotFound(f"no member {member_id}", field="member_id")
    if member.status != ACTIVE:
        raise Conflict(
            f"member {member_id} is {member.status}", field="member_id", merged_into=member.merged_into_id
        )
    return member


def merge_members(
    session: Session,
    *,
    tenant_id: str,
    survivor_id: str,
    absorbed_id: str,
    rule: str,
    evidence: dict[str, Any],
    actor: str,
) -> MergeEvent:
    """Move everything of ``absorbed`` onto ``survivor``, and write down what moved so it can go back."""
    if survivor_id == absorbed_id:
        raise ValidationFailed("a member cannot be merged into itself", field="absorbed_id")
    survivor = get_active_member(session, tenant_id=tenant_id, member_id=survivor_id)
    absorbed = get_active_member(session, tenant_id=tenant_id, member_id=absorbed_id)
    pair = sorted((survivor.id, absorbed.id))
    if session.scalar(
        select(Separation.id).where(
            Separation.tenant_id == tenant_id, Separation.member_a == pair[0], Separation.member_b == pair[1]
        )
    ):
        raise Conflict(
            "these members were separated by an unmerge; they are not joined again", field="absorbed_id"
        )
    survivor_keys = set(
        session.execute(
            select(Identity.kind, Identity.namespace, Identity.lookup).where(
                Identity.member_id == survivor.id
            )
        ).all()
    )
    identities = session.scalars(select(Identity).where(Identity.member_id == absorbed.id)).all()
    # A phone both hold stays on the absorbed member (lookups skip merged members); the rest moves.
    moving = [i.id for i in identities if (i.kind, i.namespace, i.lookup) not in survivor_keys]
    moved: dict[str, list[str]] = {"identities": moving}
    for name, model in (("source_records", SourceRecord), ("orders", Order), ("consents", Consent)):
        moved[name] = list(session.scalars(select(model.id).where(model.member_id == absorbed.id)))
    _move(session, moved, to_member=survivor.id)
    absorbed.status = MERGED
    absorbed.merged_into_id = survivor.id
    event = MergeEvent(
        tenant_id=tenant_id,
        survivor_id=survivor.id,
        absorbed_id=absorbed.id,
        rule=rule,
        evidence=evidence,
        moved=moved,
        actor=actor,
        at=utcnow(),
    )
    session.add(event)
    session.flush()
    # The person's points follow them, in the same transaction. (Imported here: loyalty builds on members.)
    from datong.loyalty.merges import move_points_on_merge

    move_points_on_merge(
        session,
        tenant_id=tenant_id,
        survivor_id=survivor.id,
        absorbed_id=absorbed.id,
        merge_id=event.id,
        actor=actor,
    )
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="member.merge",
        object_type="member",
        object_id=survivor.id,
        detail={"absorbed_id": absorbed.id, "merge_id": event.id, "rule": rule},
    )
    return event


def _move(session: Session, moved: dict[str, list[str]], *, to_member: str) -> None:
    for name, model in (
        ("identities", Identity),
        ("source_records", SourceRecord),
        ("orders", Order),
        ("consents", Consent),
    ):
        ids = moved.get(name, [])
        for start in range(0, len(ids), 500):
            session.execute(
                update(model).where(model.id.in_(ids[start : start + 500])).values(member_id=to_member)
            )


def unmerge(
    session: Session, *, tenant_id: str, keyring: Keyring, merge_id: str, actor: str, reason: str
) -> MergeEvent:
    """Put back everything a merge moved, and keep the two apart from now on."""
    if not reason.strip():
        raise ValidationFailed("say why the merge was wrong", field="reason")
    event = session.get(MergeEvent, merge_id)
    if event is None or event.tenant_id != tenant_id:
        raise NotFound(f"no merge {merge_id}", field="merge_id")
    if event.undone_at is not None:
        raise Conflict("this merge was already undone", field="merge_id")
    survivor = get_active_member(session, tenant_id=tenant_id, member_id=event.survivor_id)
    absorbed = session.get(Member, event.absorbed_id)
    assert absorbed is not None
    later = session.scalar(
        select(MergeEvent.id).where(
            MergeEvent.survivor_id == absorbed.id, MergeEvent.undone_at.is_(None), MergeEvent.at > event.at
        )
    )
    if absorbed.status != MERGED or absorbed.merged_into_id != survivor.id or later:
        raise Conflict("the absorbed member changed since; undo the later merges first", field="merge_id")
    _move(session, event.moved, to_member=absorbed.id)
    absorbed.status = ACTIVE
    absorbed.merged_into_id = None
    event.undone_at = utcnow()
    event.undone_by = actor
    pair = sorted((survivor.id, absorbed.id))
    session.add(Separation(tenant_id=tenant_id, member_a=pair[0], member_b=pair[1], reason=reason[:300]))
    session.flush()
    from datong.loyalty.merges import move_points_back_on_unmerge  # see merge_members

    move_points_back_on_unmerge(
        session, tenant_id=tenant_id, merge_id=event.id, absorbed_id=absorbed.id, actor=actor
    )
    refresh_golden(session, tenant_id=tenant_id, keyring=keyring, member_ids=[survivor.id, absorbed.id])
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="member.unmerge",
        object_type="member",
        object_id=survivor.id,
        detail={"absorbed_id": absorbed.id, "merge_id": event.id},
        note=reason,
    )
    return event


def refresh_golden(session: Session, *, tenant_id: str, keyring: Keyring, member_ids: Iterable[str]) -> None:
    """Recompute the golden record of these members from every source record they hold."""
    ids = sorted(set(member_ids))
    for start in range(0, len(ids), 500):
        _refresh_chunk(session, tenant_id, keyring, ids[start : start + 500])


def _refresh_chunk(session: Session, tenant_id: str, keyring: Keyring, ids: list[str]) -> None:
    records: dict[str, list[SourceRecord]] = defaultdict(list)
    for record in session.scalars(
        select(SourceRecord).where(SourceRecord.member_id.in_(ids), SourceRecord.status == "ok")
    ):
        records[record.member_id or ""].append(record)
    phones: dict[str, list[Identity]] = defaultdict(list)
    for identity in session.scalars(
        select(Identity).where(Identity.member_id.in_(ids), Identity.kind == PHONE)
    ):
        phones[identity.member_id].append(identity)
    store_codes = {
        r.person.get("store_code") for rs in records.values() for r in rs if r.person.get("store_code")
    }
    stores = (
        dict(
            session.execute(
                select(Store.code, Store.id).where(Store.tenant_id == tenant_id, Store.code.in_(store_codes))
            ).all()
        )
        if store_codes
        else {}
    )
    for member in session.scalars(select(Member).where(Member.id.in_(ids))):
        _apply_golden(member, records.get(member.id, []), phones.get(member.id, []), stores, keyring)


def _apply_golden(
    member: Member,
    records: list[SourceRecord],
    phones: list[Identity],
    stores: dict[str, str],
    keyring: Keyring,
) -> None:
    by_id = {r.id: r for r in records}
    facts = [rules.Fact(r.id, r.channel, r.person or {}, r.created_at.isoformat()) for r in records]
    golden = rules.choose_golden(facts)
    sources: dict[str, Any] = {}

    def value(attr: str) -> Any:
        choice = golden.get(attr)
        if choice is None:
            return None
        sources[attr] = {"record": choice.record_id, "channel": by_id[choice.record_id].channel}
        return choice.value

    member.name = value("name")
    member.name_pinyin = value("name_pinyin")
    member.gender = value("gender")
    birthday = value("birthday")
    member.birthday = date.fromisoformat(birthday) if birthday else None
    member.province, member.city, member.district = value("province"), value("city"), value("district")
    member.nickname = value("nickname")
    registered = value("registered_at")
    member.registered_at = datetime.fromisoformat(registered) if registered else None
    code = value("store_code")
    member.home_store_id = stores.get(code) if code else None
    member.name_keys = rules.name_keys(facts)
    seal = {"tenant_id": member.tenant_id, "table": "member", "row_id": member.id}
    for attr, column in (("address", "address_enc"), ("id_number", "id_number_enc")):
        choice = golden.get(attr)
        plain = record_json(keyring, by_id[choice.record_id], "pii_enc").get(attr) if choice else None
        if choice:
            sources[attr] = {"record": choice.record_id, "channel": by_id[choice.record_id].channel}
        setattr(member, column, keyring.encrypt(plain, column=column, **seal) if plain else None)
    channel_of = {r.id: r.channel for r in records}
    winner = rules.choose_phone(
        [(p.id, channel_of.get(p.source_record_id or "", "api"), p.created_at.isoformat()) for p in phones]
    )
    phone = next((p for p in phones if p.id == winner), None)
    if phone is None:
        member.phone_enc = member.phone_bidx = None
    else:
        member.phone_enc = keyring.encrypt(identity_value(keyring, phone), column="phone_enc", **seal)
        member.phone_bidx = phone.lookup
        sources["phone"] = {"identity": phone.id, "source": phone.source}
    member.golden_sources = sources


def record_json(keyring: Keyring, record: SourceRecord, column: str) -> dict[str, Any]:
    """A source record's encrypted JSON column (``raw`` as received, ``pii_enc`` for the golden record)."""
    blob = record.raw_enc if column == "raw" else record.pii_enc
    if not blob:  # an erased record, or one with no personal fields
        return {}
    text = keyring.decrypt(
        blob, tenant_id=record.tenant_id, table="source_record", row_id=record.id, column=column
    )
    result: dict[str, Any] = json.loads(text)
    return result


def record_consent(
    session: Session,
    *,
    tenant_id: str,
    member_id: str,
    purpose: str,
    granted: bool,
    channel: str,
    text_version: str,
    actor: str,
) -> Consent:
    if purpose not in CONSENT_PURPOSES:
        raise ValidationFailed(f"purpose must be one of {', '.join(CONSENT_PURPOSES)}", field="purpose")
    if not text_version.strip():
        raise ValidationFailed("the version of the consent text shown is required", field="text_version")
    if not channel.strip():
        raise ValidationFailed("the channel the consent came through is required", field="channel")
    get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    consent = Consent(
        tenant_id=tenant_id,
        member_id=member_id,
        purpose=purpose,
        granted=granted,
        channel=channel,
        text_version=text_version,
        actor=actor,
        at=utcnow(),
    )
    session.add(consent)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="consent.grant" if granted else "consent.withdraw",
        object_type="member",
        object_id=member_id,
        detail={"purpose": purpose, "channel": channel},
    )
    return consent


def delete_member(
    session: Session, *, tenant_id: str, keyring: Keyring, member_id: str, actor: str, reason: str
) -> Member:
    """PIPL deletion: erase the person's data. Orders stay for the books, no longer tied to anyone."""
    if not reason.strip():
        raise ValidationFailed(
            "a deletion records its ground (withdrawn consent, a request ...)", field="reason"
        )
    member = get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    absorbed = list(session.scalars(select(Member.id).where(Member.merged_into_id == member.id)))
    everyone = [member.id, *absorbed]
    session.execute(delete(Identity).where(Identity.member_id.in_(everyone)))
    session.execute(
        update(SourceRecord)
        .where(SourceRecord.member_id.in_(everyone))
        .values(raw_enc=b"", pii_enc=None, person={}, keys=[], evidence={}, status="erased")
    )
    session.execute(
        update(Order).where(Order.member_id.in_(everyone)).values(member_id=None, buyer_lookup=None)
    )
    for target in session.scalars(select(Member).where(Member.id.in_(everyone))):
        for column in (
            "name",
            "name_pinyin",
            "gender",
            "birthday",
            "phone_enc",
            "phone_bidx",
            "id_number_enc",
            "province",
            "city",
            "district",
            "address_enc",
            "nickname",
            "registered_at",
        ):
            setattr(target, column, None)
        target.name_keys = []
        target.golden_sources = {}
        target.status = DELETED
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="member.delete",
        object_type="member",
        object_id=member.id,
        detail={"absorbed": absorbed},
        note=reason,
    )
    return member


def forget_identity(
    session: Session, *, tenant_id: str, kind: str, namespace: str, lookup: str, source: str, actor: str
) -> str | None:
    """Forget one account of a member, keeping the member and their other channels: the identity, and
    the source records that came through that account (``source``) are erased. WeChat asks this of an
    account when a user unfollows. Returns the member it belonged to, if any. (The caller refreshes the
    golden record if it wants the erased records' contributions gone from it.)"""
    identity = session.scalar(
        select(Identity).where(
            Identity.tenant_id == tenant_id,
            Identity.kind == kind,
            Identity.namespace == namespace,
            Identity.lookup == lookup,
        )
    )
    if identity is None:
        return None
    member_id = identity.member_id
    session.execute(delete(Identity).where(Identity.id == identity.id))
    # The records that came through the account: from its source, or carrying its key (a fan import).
    key = f"{kind}|{namespace}|{lookup}"
    erased = [
        record.id
        for record in session.scalars(
            select(SourceRecord).where(
                SourceRecord.tenant_id == tenant_id, SourceRecord.member_id == member_id
            )
        )
        if record.source == source or key in (record.keys or [])
    ]
    if erased:
        session.execute(
            update(SourceRecord)
            .where(SourceRecord.id.in_(erased))
            .values(raw_enc=b"", pii_enc=None, person={}, keys=[], evidence={}, status="erased")
        )
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="member.forget_identity",
        object_type="member",
        object_id=member_id,
        detail={"kind": kind, "namespace": namespace, "source": source},
    )
    return member_id
