"""Reads for members: lookup, the full view (masked per caller), explain, the identities export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.records import PHONE, PII_KINDS, IdentityKey
from datong.core.crypto import Keyring
from datong.core.errors import Forbidden, NotFound, ValidationFailed
from datong.core.masking import mask_address, mask_email, mask_id_number, mask_name, mask_phone
from datong.identity.rules import NormalizationError, normalize_email, normalize_phone
from datong.members.models import ACTIVE, Consent, Identity, Member, MergeEvent, SourceRecord
from datong.members.service import identity_lookup, identity_value, record_json
from datong.orders.models import Order
from datong.tenancy.rules import Principal

LOOKUP_KINDS = ("phone", "unionid", "openid", "card_no", "nick", "pin", "email", "ouid", "omid")


def member_in_scope(principal: Principal, member: Member) -> bool:
    """A brand never sees another's members; scoped roles see only their stores' or their own."""
    if member.tenant_id != principal.tenant_id:
        return False
    if principal.sees_all_members:
        return True
    if principal.role == "guide" or principal.guide_id:
        return member.guide_id is not None and member.guide_id == principal.guide_id
    return principal.store_ids is not None and member.home_store_id in principal.store_ids


def get_member_for(session: Session, principal: Principal, member_id: str) -> Member:
    member = session.get(Member, member_id)
    # Out of scope and absent answer alike: the caller learns nothing about members it may not see.
    if member is None or not member_in_scope(principal, member):
        raise NotFound(f"no member {member_id}", field="member_id")
    return member


def lookup_members(
    session: Session, principal: Principal, keyring: Keyring, *, kind: str, value: str, namespace: str = ""
) -> list[Member]:
    if kind not in LOOKUP_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(LOOKUP_KINDS)}", field="kind")
    try:
        if kind == PHONE:
            value = normalize_phone(value) or ""
        elif kind == "email":
            value = normalize_email(value) or ""
    except NormalizationError as exc:
        raise ValidationFailed(exc.reason, field="value") from exc
    if not value.strip():
        raise ValidationFailed("a value to look up is required", field="value")
    lookup = identity_lookup(keyring, principal.tenant_id, IdentityKey(kind, value.strip(), namespace))
    holders = select(Identity.member_id).where(
        Identity.tenant_id == principal.tenant_id, Identity.kind == kind, Identity.lookup == lookup
    )
    if namespace or kind in ("openid", "card_no", "ouid"):
        holders = holders.where(Identity.namespace == namespace)
    # A subquery, not DISTINCT over members: PostgreSQL cannot compare json columns.
    query = select(Member).where(Member.id.in_(holders), Member.status == ACTIVE).order_by(Member.id)
    return [m for m in session.scalars(query) if member_in_scope(principal, m)]


def _unmasked(principal: Principal, want: bool) -> bool:
    """Only a caller with the unmask right (HQ administrators) sees plaintext, and only when it asks."""
    return want and principal.can("members:unmask")


def identity_view(keyring: Keyring, identity: Identity, *, unmask: bool) -> dict[str, Any]:
    value = identity_value(keyring, identity)
    if identity.kind in PII_KINDS and not unmask:
        value = mask_phone(value) if identity.kind == PHONE else mask_email(value)
    return {
        "id": identity.id,
        "kind": identity.kind,
        "namespace": identity.namespace,
        "value": value,
        "source": identity.source,
        "rule": identity.rule,
        "added_at": identity.created_at.isoformat(),
    }


def member_view(
    session: Session, principal: Principal, keyring: Keyring, member: Member, *, unmask: bool = False
) -> dict[str, Any]:
    plain = _unmasked(principal, unmask)
    seal = {"tenant_id": member.tenant_id, "table": "member", "row_id": member.id}
    phone = keyring.decrypt(member.phone_enc, column="phone_enc", **seal) if member.phone_enc else None
    address = (
        keyring.decrypt(member.address_enc, column="address_enc", **seal) if member.address_enc else None
    )
    id_number = (
        keyring.decrypt(member.id_number_enc, column="id_number_enc", **seal)
        if member.id_number_enc
        else None
    )
    identities = session.scalars(
        select(Identity).where(Identity.member_id == member.id).order_by(Identity.created_at)
    )
    consents = session.scalars(select(Consent).where(Consent.member_id == member.id).order_by(Consent.at))
    orders = session.scalars(
        select(Order).where(Order.member_id == member.id).order_by(Order.ordered_at.desc()).limit(50)
    )
    current: dict[str, dict[str, Any]] = {}
    for c in consents:
        current[c.purpose] = {
            "granted": c.granted,
            "at": c.at.isoformat(),
            "channel": c.channel,
            "text_version": c.text_version,
        }
    return {
        "id": member.id,
        "status": member.status,
        "merged_into_id": member.merged_into_id,
        "golden": {
            "name": member.name if plain or member.name is None else mask_name(member.name),
            "gender": member.gender,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "phone": phone if plain or phone is None else mask_phone(phone),
            "id_number": id_number if plain or id_number is None else mask_id_number(id_number),
            "province": member.province,
            "city": member.city,
            "district": member.district,
            "address": address if plain or address is None else mask_address(address),
            "nickname": member.nickname,
            "registered_at": member.registered_at.isoformat() if member.registered_at else None,
            "home_store_id": member.home_store_id,
            "guide_id": member.guide_id,
        },
        "golden_sources": member.golden_sources,
        "identities": [identity_view(keyring, i, unmask=plain) for i in identities],
        "consents": current,
        "orders": [
            {
                "id": o.id,
                "channel": o.channel,
                "order_no": o.order_no,
                "status": o.status,
                "total_fen": o.total_fen,
                "paid_fen": o.paid_fen,
                "ordered_at": o.ordered_at.isoformat() if o.ordered_at else None,
            }
            for o in orders
        ],
        "unmasked": plain,
    }


def explain(session: Session, keyring: Keyring, *, tenant_id: str, member_id: str) -> dict[str, Any]:
    """Why this member holds each identity and record, and every merge into or out of it."""
    member = session.get(Member, member_id)
    if member is None or member.tenant_id != tenant_id:
        raise NotFound(f"no member {member_id}", field="member_id")
    identities = session.scalars(
        select(Identity).where(Identity.member_id == member_id).order_by(Identity.created_at)
    )
    records = session.scalars(
        select(SourceRecord).where(SourceRecord.member_id == member_id).order_by(SourceRecord.created_at)
    )
    merges = session.scalars(
        select(MergeEvent)
        .where((MergeEvent.survivor_id == member_id) | (MergeEvent.absorbed_id == member_id))
        .order_by(MergeEvent.at)
    )
    return {
        "member_id": member.id,
        "status": member.status,
        "merged_into_id": member.merged_into_id,
        "identities": [
            identity_view(keyring, i, unmask=False) | {"evidence": i.evidence} for i in identities
        ],
        "records": [
            {
                "id": r.id,
                "source": r.source,
                "channel": r.channel,
                "row_no": r.row_no,
                "batch_id": r.batch_id,
                "rule": r.match_rule,
            }
            for r in records
        ],
        "merges": [
            {
                "id": m.id,
                "survivor_id": m.survivor_id,
                "absorbed_id": m.absorbed_id,
                "rule": m.rule,
                "evidence": m.evidence,
                "actor": m.actor,
                "at": m.at.isoformat(),
                "undone_at": m.undone_at.isoformat() if m.undone_at else None,
            }
            for m in merges
        ],
        "golden_sources": member.golden_sources,
    }


def export_identities(
    session: Session, keyring: Keyring, *, tenant_id: str
) -> Iterator[tuple[str, str, str, str]]:
    """(source, kind, value, member_id) for every identity of an active member; phones masked."""
    query = (
        select(Identity)
        .join(Member, Member.id == Identity.member_id)
        .where(Identity.tenant_id == tenant_id, Member.status == ACTIVE)
        .order_by(Identity.member_id, Identity.id)
        .execution_options(yield_per=5000)
    )
    for identity in session.scalars(query):
        view = identity_view(keyring, identity, unmask=False)
        yield identity.source, identity.kind, view["value"], identity.member_id


def record_raw(keyring: Keyring, record: SourceRecord) -> dict[str, str]:
    """The row exactly as the file or the caller gave it."""
    return record_json(keyring, record, "raw")


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise Forbidden(f"this needs the {permission} right", field=None)


def member_records(
    session: Session, keyring: Keyring, member_id: str, *, include_raw: bool
) -> list[dict[str, Any]]:
    records = session.scalars(
        select(SourceRecord).where(SourceRecord.member_id == member_id).order_by(SourceRecord.created_at)
    )
    return [
        {
            "id": r.id,
            "source": r.source,
            "channel": r.channel,
            "row_no": r.row_no,
            "raw": record_raw(keyring, r) if include_raw else None,
        }
        for r in records
    ]


def consent_granted(session: Session, *, tenant_id: str, member_id: str, purpose: str) -> bool:
    """Whether the member's newest decision for ``purpose`` is a grant (no decision: not granted)."""
    granted = session.scalar(
        select(Consent.granted)
        .where(Consent.tenant_id == tenant_id, Consent.member_id == member_id, Consent.purpose == purpose)
        .order_by(Consent.at.desc(), Consent.id.desc())
        .limit(1)
    )
    return bool(granted)
