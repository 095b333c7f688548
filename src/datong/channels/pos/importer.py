"""Member exports from store POS and CRM systems: any CSV or .xlsx with a card-number column.

Every brand's old system names its columns differently, so headers are recognised from common
Chinese and English names, and a user-supplied mapping (header in file → canonical field) overrides
or extends that. Everything in such a file is about the card holder, so a full phone on it is the
member's own and a strong key — unlike the receiver phone on an order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from datong.channels.fields import (
    Columns,
    Row,
    add_name,
    add_own_phone,
    header_key,
    open_records,
    unmapped,
)
from datong.channels.files import FilePath
from datong.channels.records import CARD_NO, EMAIL, IdentityKey, ParsedRecord
from datong.identity.rules import (
    normalize_email,
    normalize_gender,
    parse_address,
    parse_date,
    parse_datetime,
    parse_id_number,
    parse_int,
)

# canonical field → header names recognised without a mapping, preferred first.
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "card_no": ("会员卡号", "卡号", "会员号", "card_no", "card", "card_number"),
    "name": ("姓名", "会员姓名", "name"),
    "phone": ("手机号", "手机", "手机号码", "联系电话", "mobile", "phone"),
    "gender": ("性别", "gender", "sex"),
    "birthday": ("生日", "出生日期", "birthday", "birth_date"),
    "store_code": ("所属门店", "开卡门店", "store", "store_code"),
    "registered_at": ("开卡时间", "注册时间", "入会时间", "registered_at"),
    "points": ("积分余额", "积分", "可用积分", "points", "points_balance"),
    "id_number": ("身份证号", "证件号码", "身份证", "id_number"),
    "address": ("地址", "联系地址", "address"),
    "email": ("邮箱", "电子邮箱", "email"),
    "nickname": ("昵称", "nickname"),
}


def _check_mapping(mapping: Mapping[str, str] | None) -> dict[str, str]:
    """The user's mapping as canonical field → header, refusing names datong does not know."""
    fields: dict[str, str] = {}
    for header, field in (mapping or {}).items():
        if field not in CANONICAL_FIELDS:
            raise ValueError(
                f"mapping: unknown field {field!r} for column {header!r}; "
                f"known fields: {', '.join(CANONICAL_FIELDS)}"
            )
        if field in fields:
            raise ValueError(f"mapping: both {fields[field]!r} and {header!r} are mapped to {field!r}")
        fields[field] = header
    return fields


def _prepare(headers: list[str], mapped: dict[str, str]) -> Columns:
    by_key = {header_key(header): header for header in headers}
    overrides: dict[str, str] = {}
    for field, wanted in mapped.items():
        header = by_key.get(header_key(wanted))
        if header is None:
            # A typo in the mapping would otherwise silently fall back to guessing.
            raise ValueError(
                f"mapping: column {wanted!r} (for {field!r}) is not in the file; "
                f"headers found: {', '.join(headers) or 'none'}"
            )
        overrides[field] = header
    columns = Columns(headers, CANONICAL_FIELDS, overrides)
    if columns.header("card_no") is None:
        raise ValueError(
            "no card-number column found; "
            f"headers found: {', '.join(headers) or 'none'}; "
            f"expected one of: {', '.join(CANONICAL_FIELDS['card_no'])} "
            "(or map yours to card_no with a mapping file)"
        )
    return columns


def _build(row_no: int, raw: dict[str, str], columns: Columns, source: str) -> ParsedRecord:
    record = ParsedRecord(row_no=row_no, raw=raw)
    row = Row(raw, columns, record.errors)
    person = record.person
    card = row.required("card_no")
    if card is not None:
        record.identities.append(IdentityKey(CARD_NO, card, namespace=source))
    add_own_phone(row, "phone", record)
    email = row.convert("email", normalize_email)
    if email is not None:
        record.identities.append(IdentityKey(EMAIL, email))
    add_name(row, "name", record)
    person.nickname = row.text("nickname")
    person.gender = row.convert("gender", normalize_gender)
    person.birthday = row.convert("birthday", parse_date)
    id_number = row.convert("id_number", parse_id_number)
    if id_number is not None:
        person.id_number = id_number.number
        # The ID number states birth date and sex; use them when the file has no column for them.
        person.birthday = person.birthday or id_number.birth_date
        person.gender = person.gender or id_number.gender
    errors_before = len(record.errors)
    address = row.convert("address", parse_address)
    if address is not None:
        person.province, person.city, person.district = address.province, address.city, address.district
        person.address = address.detail
    elif len(record.errors) == errors_before:
        person.address = row.text("address")  # no divisions recognised: the whole line is the detail
    person.store_code = row.text("store_code")
    person.registered_at = row.convert("registered_at", parse_datetime)
    person.points_balance = row.convert("points", parse_int)
    person.extra = unmapped(raw, columns)
    return record


def parse_member_export(
    path: FilePath, *, source: str, mapping: dict[str, str] | None = None
) -> Iterator[ParsedRecord]:
    """One record per member row of a POS/CRM export (CSV in any Chinese encoding, or .xlsx).

    ``source`` names the system the cards come from (card numbers are unique only within it).
    ``mapping`` is header in file → canonical field (a key of :data:`CANONICAL_FIELDS`); it wins
    over the built-in header names. Raises ``ValueError`` at once — before any row — for a missing
    source, an unknown field or absent column in the mapping, or a file without a card-number column.
    Any field error fails the record (it is still yielded with all its errors).
    """
    if not source or not source.strip():
        raise ValueError("a source is required for member exports: it namespaces the card numbers")
    mapped = _check_mapping(mapping)
    namespace = source.strip()
    return open_records(
        path,
        lambda headers: _prepare(headers, mapped),
        lambda row_no, raw, columns: _build(row_no, raw, columns, namespace),
    )
