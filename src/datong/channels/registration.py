"""Registration or binding from a POS or the mini-program: one source record, resolved at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from datong.channels.records import (
    CARD_NO,
    EMAIL,
    OPENID,
    PHONE,
    UNIONID,
    FieldError,
    IdentityKey,
    ParsedRecord,
)
from datong.channels.service import build_source_record, fingerprint, pending_for
from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.errors import ValidationFailed
from datong.identity import rules
from datong.members.service import record_consent
from datong.members.unify import resolve_records


@dataclass
class Registration:
    source: str
    card_no: str | None = None
    phone: str | None = None
    unionid: str | None = None
    openid: str | None = None
    appid: str | None = None
    email: str | None = None
    name: str | None = None
    gender: str | None = None
    birthday: date | None = None
    store_code: str | None = None
    consents: list[dict[str, object]] = field(default_factory=list)


def _parse(reg: Registration) -> ParsedRecord:
    raw = {k: str(v) for k, v in vars(reg).items() if v not in (None, "", []) and k != "consents"}
    record = ParsedRecord(row_no=0, raw=raw)
    errors: list[FieldError] = []

    def norm(field_name: str, fn: object, value: str | None) -> str | None:
        try:
            return fn(value)  # type: ignore[operator,no-any-return]
        except rules.NormalizationError as exc:
            errors.append(FieldError(field_name, exc.reason))
            return None

    phone = norm("phone", rules.normalize_phone, reg.phone)
    email = norm("email", rules.normalize_email, reg.email)
    name = norm("name", rules.normalize_name, reg.name)
    gender = norm("gender", rules.normalize_gender, reg.gender)
    if errors:
        raise ValidationFailed(
            errors[0].reason,
            field=errors[0].field,
            errors=[{"field": e.field, "reason": e.reason} for e in errors],
        )
    keys = [
        (CARD_NO, reg.card_no, reg.source),
        (PHONE, phone, ""),
        (UNIONID, reg.unionid, ""),
        (OPENID, reg.openid, reg.appid or ""),  # no appid: refused below
        (EMAIL, email, ""),
    ]
    record.identities = [
        IdentityKey(kind, value.strip(), ns) for kind, value, ns in keys if value and value.strip()
    ]
    if not record.identities:
        raise ValidationFailed("give at least one of card_no, phone, unionid, openid, email", field="phone")
    if reg.openid and not reg.appid:
        raise ValidationFailed("an openid is per app: give its appid", field="appid")
    record.person.name = name
    record.person.name_pinyin = rules.name_pinyin(name) if name else None
    record.person.gender = gender
    record.person.birthday = reg.birthday
    record.person.store_code = reg.store_code
    record.person.registered_at = utcnow()
    return record


def register_member(
    session: Session, *, tenant_id: str, keyring: Keyring, actor: str, registration: Registration
) -> tuple[str, bool]:
    """Returns the member id and whether the person is new to the brand."""
    parsed = _parse(registration)
    parsed.raw["at"] = utcnow().isoformat()  # two registrations with one body are still two events

    record = build_source_record(
        keyring,
        tenant_id,
        batch_id=None,
        channel="api",
        source=registration.source,
        item=parsed,
        print_=fingerprint("api", registration.source, parsed.raw),
    )
    session.add(record)
    session.flush()
    stats = resolve_records(
        session,
        tenant_id=tenant_id,
        keyring=keyring,
        pending=[pending_for(keyring, tenant_id, parsed, record)],
        actor=actor,
    )
    member_id = record.member_id
    assert member_id is not None
    for consent in registration.consents:
        record_consent(
            session,
            tenant_id=tenant_id,
            member_id=member_id,
            purpose=str(consent.get("purpose", "")),
            granted=bool(consent.get("granted")),
            channel=registration.source,
            text_version=str(consent.get("text_version", "")),
            actor=actor,
        )
    return member_id, stats.members_created == 1
