"""The brand mini-program's member export (CSV or .xlsx, English or Chinese headers).

The phone here is the member's own, verified in the mini-program (getPhoneNumber), so unlike a
receiver phone on an order it is a strong identity key.
"""

from __future__ import annotations

from collections.abc import Iterator

from datong.channels.fields import (
    Columns,
    Row,
    add_name,
    add_own_phone,
    open_records,
    unmapped,
)
from datong.channels.files import FilePath
from datong.channels.records import OPENID, UNIONID, IdentityKey, ParsedRecord
from datong.identity.rules import normalize_gender, parse_date, parse_datetime

DEFAULT_NAMESPACE = "miniprogram"  # the openid namespace when the export's appid is not given

COLUMNS: dict[str, tuple[str, ...]] = {
    "openid": ("openid",),
    "unionid": ("unionid",),
    "phone": ("phone", "手机号", "手机号码", "mobile"),
    "nickname": ("nickname", "昵称"),
    "name": ("name", "姓名"),
    "gender": ("gender", "性别"),
    "birthday": ("birthday", "生日"),
    "registered_at": ("registered_at", "注册时间"),
}
IDENTITY_FIELDS = ("openid", "unionid", "phone")


def _prepare(headers: list[str]) -> Columns:
    columns = Columns(headers, COLUMNS)
    if not any(columns.header(field) for field in IDENTITY_FIELDS):
        raise ValueError(
            "this does not look like a mini-program member export: no openid, unionid or phone column "
            f"(headers found: {', '.join(headers) or 'none'})"
        )
    return columns


def _build(row_no: int, raw: dict[str, str], columns: Columns, namespace: str) -> ParsedRecord:
    record = ParsedRecord(row_no=row_no, raw=raw)
    row = Row(raw, columns, record.errors)
    openid = row.text("openid")
    unionid = row.text("unionid")
    if openid is not None:
        record.identities.append(IdentityKey(OPENID, openid, namespace=namespace))
    if unionid is not None:
        record.identities.append(IdentityKey(UNIONID, unionid))
    add_own_phone(row, "phone", record)
    if not record.identities and not any(error.field == columns.label("phone") for error in record.errors):
        row.error("openid", "is missing, and the row has no unionid or phone either")
    add_name(row, "name", record)
    person = record.person
    person.nickname = row.text("nickname")
    person.gender = row.convert("gender", normalize_gender)
    person.birthday = row.convert("birthday", parse_date)
    person.registered_at = row.convert("registered_at", parse_datetime)
    person.extra = unmapped(raw, columns)
    return record


def parse_miniprogram_members(
    path: FilePath, *, source: str = "miniprogram", appid: str | None = None
) -> Iterator[ParsedRecord]:
    """One record per member row. openids are namespaced by ``appid`` (``"miniprogram"`` if not given).

    Raises ``ValueError`` at once if the file has no openid, unionid or phone column.
    """
    namespace = (appid or "").strip() or DEFAULT_NAMESPACE
    return open_records(path, _prepare, lambda row_no, raw, columns: _build(row_no, raw, columns, namespace))
