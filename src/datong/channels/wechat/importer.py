"""WeChat official-account fans: ``user/info`` records, as JSON lines or one JSON array.

openid is per app, so it is namespaced by the account's appid; unionid (present when the account is
bound to an Open Platform account) is the key that ties a fan to the same person's mini-program
membership. A nickname is chosen by the user and shared by many: it is a person field, never a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from datong.channels.fields import MISSING, ROW_FIELD, convert, quiet
from datong.channels.files import FilePath, JsonRecord, json_raw, read_json_records
from datong.channels.records import OPENID, UNIONID, FieldError, IdentityKey, ParsedRecord, PersonFields
from datong.identity.rules import NormalizationError, parse_address

# user/info fields kept as text in person.extra (they feed attribution and tags, not identity).
EXTRA_FIELDS = (
    "subscribe",
    "remark",
    "subscribe_scene",
    "qr_scene",
    "qr_scene_str",
    "tagid_list",
    "groupid",
    "language",
    "country",
)
_SEX = {"0": None, "1": "M", "2": "F"}
_HAN = re.compile(r"[\u4e00-\u9fff]")
_CHINA = frozenset({"", "中国", "China", "CN"})


def _text(value: Any) -> str | None:
    """A JSON value as text: lists joined with commas (``tagid_list``), empty → None."""
    if value is None:
        return None
    if isinstance(value, list):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value).strip()
    return text or None


def _sex(text: str | None) -> str | None:
    if text is None:
        return None
    if text not in _SEX:
        raise NormalizationError(f"is {text!r}; expected 0 (unknown), 1 (male) or 2 (female)")
    return _SEX[text]


def _subscribe_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    if not text.isdigit():
        raise NormalizationError(f"is {text!r}; expected seconds since 1970")
    seconds = int(text)
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _places(person: PersonFields, country: str | None, province: str | None, city: str | None) -> None:
    """Province and city as given; Chinese names of mainland places become the canonical names
    (``广东`` → ``广东省``) so that they match addresses from other channels."""
    person.province, person.city = province, city
    if (country or "") not in _CHINA or not _HAN.search(f"{province or ''}{city or ''}"):
        return
    parsed = quiet(parse_address, f"{province or ''}{city or ''}")
    if parsed is not None:
        person.province = parsed.province or province
        person.city = parsed.city or city


def _build(item: JsonRecord, appid: str) -> ParsedRecord:
    if item.error is not None:
        return ParsedRecord(
            row_no=item.row_no,
            raw={"_text": item.text or ""},
            errors=[FieldError(ROW_FIELD, item.error)],
        )
    value = item.value
    if not isinstance(value, dict):
        raw = json_raw({"_value": value})
        return ParsedRecord(item.row_no, raw, errors=[FieldError(ROW_FIELD, "is not a JSON object")])
    record = ParsedRecord(row_no=item.row_no, raw=json_raw(value))
    openid = _text(value.get("openid"))
    unionid = _text(value.get("unionid"))
    if openid is None:
        record.errors.append(FieldError("openid", MISSING))
    else:
        record.identities.append(IdentityKey(OPENID, openid, namespace=appid))
    if unionid is not None:
        record.identities.append(IdentityKey(UNIONID, unionid))
    person = record.person
    person.nickname = _text(value.get("nickname"))
    person.gender = convert(record.errors, "sex", _sex, _text(value.get("sex")))
    _places(person, _text(value.get("country")), _text(value.get("province")), _text(value.get("city")))
    person.registered_at = convert(
        record.errors, "subscribe_time", _subscribe_time, _text(value.get("subscribe_time"))
    )
    for name in EXTRA_FIELDS:
        text = _text(value.get(name))
        if text is not None:
            person.extra[name] = text
    return record


def _records(path: FilePath, appid: str) -> Iterator[ParsedRecord]:
    for item in read_json_records(path):
        yield _build(item, appid)


def parse_wechat_fans(path: FilePath, *, source: str = "wechat", appid: str) -> Iterator[ParsedRecord]:
    """One record per fan in a dump of WeChat ``user/info`` records (JSON lines or a JSON array).

    Unsubscribed fans (``subscribe: 0``) are records too: ``person.extra["subscribe"]`` says so and
    the pipeline decides. A line or element that is not valid JSON becomes a failed record with a
    ``_row`` error. Raises ``ValueError`` at once without an ``appid`` (openids are per app).
    """
    if not appid or not appid.strip():
        raise ValueError("an appid is required: a WeChat openid only means something within its app")
    return _records(path, appid.strip())
