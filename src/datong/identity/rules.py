"""Normalisation: pure functions that turn what channels export into comparable values.

Every function takes ``str | None``. Nothing there (None, empty, whitespace) gives None; something there
that cannot be understood raises :class:`NormalizationError` with a reason fit for an error report.
Library data (phone metadata, the division table, OpenCC dictionaries) is loaded once and cached.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import phonenumbers
import pypinyin
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from datong.core.clock import as_utc
from datong.identity.address import Address, division_names, parse_address, strip_excel_guard, to_simplified

__all__ = [
    "Address",
    "IdNumber",
    "NormalizationError",
    "division_names",
    "is_masked_phone",
    "name_initials_pinyin",
    "name_pinyin",
    "normalize_email",
    "normalize_gender",
    "normalize_masked_phone",
    "normalize_name",
    "normalize_phone",
    "parse_address",
    "parse_amount_fen",
    "parse_date",
    "parse_datetime",
    "parse_id_number",
    "parse_int",
    "phone_mask",
    "strip_excel_guard",
]


class NormalizationError(ValueError):
    """A value is present but cannot be understood. ``reason`` is a sentence for the error report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IdNumber:
    number: str  # 18 characters, upper-case X
    birth_date: date
    gender: str  # "M" | "F"
    division_code: str  # first 6 digits


def _clean(text: str | None) -> str:
    """Guards off, full-width forms folded (NFKC turns １３８ into 138 and ＊ into *), trimmed."""
    value = strip_excel_guard(text)
    if value and not value.isascii():
        value = unicodedata.normalize("NFKC", value).strip()
    return value


# ---------------------------------------------------------------------------------------------------------
# Phones

_PHONE_SEPARATORS_RE = re.compile(r"[\s\-().]")
_MAINLAND_PREFIX_RE = re.compile(r"^(?:\+86|0086|86)(?=1\d{10}$)")
_MASKED_RE = re.compile(r"^(?:\+?86)?(1\d{2})[*xX]{4}(\d{4})$")
_PLAIN_MOBILE_RE = re.compile(r"^1\d{10}$")
_ACCEPTED_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@dataclass(frozen=True)
class _Desc:
    lengths: frozenset[int]
    pattern: re.Pattern[str]

    def matches(self, digits: str) -> bool:
        if self.lengths and len(digits) not in self.lengths:
            return False
        return self.pattern.fullmatch(digits) is not None


@lru_cache(maxsize=1)
def _cn_mobile_check() -> tuple[_Desc, _Desc, tuple[_Desc, ...]]:
    """phonenumbers' own CN patterns, compiled once: (general, mobile, types that take precedence).

    The order mirrors how phonenumbers classifies a number: a number matching a premium-rate, toll-free
    or shared-cost pattern is that type even if it also looks mobile. Reading the patterns from the
    library's metadata keeps this in step with each phonenumbers release instead of a prefix table.
    """
    meta = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    assert meta is not None

    def desc(d: Any) -> _Desc | None:
        if d is None or not d.national_number_pattern:
            return None
        return _Desc(frozenset(d.possible_length or ()), re.compile(d.national_number_pattern))

    first = (
        "premium_rate",
        "toll_free",
        "shared_cost",
        "voip",
        "personal_number",
        "pager",
        "uan",
        "voicemail",
    )
    general, mobile = desc(meta.general_desc), desc(meta.mobile)
    assert general is not None and mobile is not None
    return general, mobile, tuple(d for d in (desc(getattr(meta, f)) for f in first) if d is not None)


def _fast_mainland_mobile(digits: str) -> bool:
    """True only when phonenumbers would call these 11 digits a valid CN mobile, without parsing."""
    general, mobile, earlier = _cn_mobile_check()
    return general.matches(digits) and mobile.matches(digits) and not any(d.matches(digits) for d in earlier)


def _invalid_phone(compact: str) -> str:
    # The reason is kept with a failed row in plain JSON: it describes the value but never repeats it.
    digits = sum(c.isdigit() for c in compact)
    return f"not a mainland mobile or international number ({digits} digits)"


def normalize_phone(text: str | None) -> str | None:
    """A personal phone: mainland mobiles → 11 digits (13812345678), others → E.164 (+85291234567)."""
    value = _clean(text)
    if not value:
        return None
    compact = _PHONE_SEPARATORS_RE.sub("", value)
    if "*" in compact or _MASKED_RE.match(compact):
        raise NormalizationError("a masked phone number, not a full one")
    national = _MAINLAND_PREFIX_RE.sub("", compact)
    if _PLAIN_MOBILE_RE.match(national) and _fast_mainland_mobile(national):
        return national
    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        raise NormalizationError(_invalid_phone(compact)) from None
    if not phonenumbers.is_valid_number(number):
        raise NormalizationError(_invalid_phone(compact))
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        raise NormalizationError("a landline, not a mobile number")
    if kind not in _ACCEPTED_TYPES:
        raise NormalizationError("a service number, not a personal mobile number")
    if number.country_code == 86:
        return str(number.national_number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_masked_phone(text: str | None) -> bool:
    """138****1234 and its spellings (138xxxx1234, +86 138＊＊＊＊1234): evidence, never a key."""
    return normalize_masked_phone(text) is not None


def normalize_masked_phone(text: str | None) -> str | None:
    """Canonical ``138****1234`` for a masked mainland mobile; None for anything else."""
    value = _clean(text)
    if not value:
        return None
    match = _MASKED_RE.match(_PHONE_SEPARATORS_RE.sub("", value))
    return f"{match.group(1)}****{match.group(2)}" if match else None


def phone_mask(phone: str) -> str:
    """``13812341234`` → ``138****1234``, to compare a full phone with masked evidence."""
    national = phone if _PLAIN_MOBILE_RE.match(phone) else normalize_phone(phone)
    if national is None or not _PLAIN_MOBILE_RE.match(national):
        raise NormalizationError(f"only a mainland mobile can be masked: {phone!r}")
    return f"{national[:3]}****{national[7:]}"


# ---------------------------------------------------------------------------------------------------------
# Names

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_NAME_DOTS = ".·•・‧∙⋅"
_CJK_NAME_RE = re.compile(f"[{_CJK}\\s{_NAME_DOTS}]+")
_CJK_DOT_RE = re.compile(f"(?<=[{_CJK}])[{_NAME_DOTS}]+(?=[{_CJK}])")
_WHITESPACE_RE = re.compile(r"\s+")
_LATIN_WORD_RE = re.compile(r"[a-z]+")


def normalize_name(text: str | None) -> str | None:
    """张 伟 → 张伟, 張偉 → 张伟, 迪丽热巴•迪力木拉提 → 迪丽热巴·迪力木拉提, jOHN  smith → John Smith."""
    value = _clean(text)
    if not value:
        return None
    value = _WHITESPACE_RE.sub(" ", to_simplified(value))
    if not any(ch.isalpha() for ch in value):
        raise NormalizationError(f"not a name, it has no letters: {value!r}")
    if value.isascii() or not _CJK_NAME_RE.fullmatch(value):
        # Latin (or mixed) names: a consistent case so that JOHN SMITH and john smith are one name.
        return value.title()
    # Spaces inside a Chinese name are typing noise (张 伟); the dot in a transliterated name is not.
    return _CJK_DOT_RE.sub("·", value.replace(" ", ""))


def _latin_words(chunk: str) -> str:
    # pypinyin hands over runs it has no pinyin for; keep their Latin words (accents folded), space-separated.
    folded = unicodedata.normalize("NFKD", chunk.lower())
    return " ".join(_LATIN_WORD_RE.findall(folded.encode("ascii", "ignore").decode("ascii")))


@lru_cache(maxsize=65536)
def _syllables(name: str) -> tuple[str, ...]:
    # Syllables of Hanzi plus whole Latin words; punctuation and other scripts drop out.
    words = pypinyin.lazy_pinyin(name, style=pypinyin.Style.NORMAL, errors=_latin_words)
    syllables = tuple(part for w in words for part in w.lower().replace("ü", "v").split())
    if not syllables:
        raise NormalizationError(f"no Chinese or Latin letters to build a pinyin key from: {name!r}")
    return syllables


def name_pinyin(name: str | None) -> str | None:
    """A key equal for homophones: 张伟, 張偉 and 章伟 all give ``zhangwei``."""
    normalized = normalize_name(name)
    return None if normalized is None else "".join(_syllables(normalized))


def name_initials_pinyin(name: str | None) -> str | None:
    """First letter of each syllable (张伟 → ``zw``) or Latin word (John Smith → ``js``)."""
    normalized = normalize_name(name)
    return None if normalized is None else "".join(s[0] for s in _syllables(normalized))


# ---------------------------------------------------------------------------------------------------------
# Dates and times

_DATE_RE = re.compile(
    r"^(\d{4})(?:([-/.])(\d{1,2})\2(\d{1,2})|年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?|(\d{2})(\d{2}))"
    r"(?:(?:\s+|T)(.*))?$"
)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_TWO_DIGIT_YEAR_RE = re.compile(r"^\d{2}(?:[-/.]\d{1,2}[-/.]\d{1,2}(?!\d)|年)")
_EPOCH_RE = re.compile(r"^\d{10}$")


def _split_date(value: str) -> tuple[date, str]:
    """The calendar date at the start of ``value`` and whatever time text follows it."""
    match = _DATE_RE.match(value)
    if match is None:
        if _TWO_DIGIT_YEAR_RE.match(value):
            raise NormalizationError(f"a two-digit year is ambiguous: {value!r}")
        raise NormalizationError(f"not a date in a known format: {value!r}")
    year, _, m1, d1, m2, d2, m3, d3, rest = match.groups()
    try:
        day = date(int(year), int(m1 or m2 or m3), int(d1 or d2 or d3))
    except ValueError:
        raise NormalizationError(f"not a real calendar date: {value!r}") from None
    return day, (rest or "").strip()


def _time_of_day(rest: str, value: str) -> tuple[time, timezone | None]:
    match = _TIME_RE.match(rest)
    if match is None:
        raise NormalizationError(f"not a time in a known format: {value!r}")
    hour, minute, second, fraction, offset = match.groups()
    tz = None
    if offset == "Z":
        tz = UTC
    elif offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        micro = int((fraction or "0").ljust(6, "0"))
        return time(int(hour), int(minute), int(second or 0), micro), tz
    except ValueError:
        raise NormalizationError(f"not a real time of day: {value!r}") from None


def parse_date(text: str | None) -> date | None:
    """2024-01-02, 2024/1/2, 2024.1.2, 20240102, 2024年1月2日; a time after the date is ignored."""
    value = _clean(text)
    if not value:
        return None
    day, rest = _split_date(value)
    if rest:
        _time_of_day(rest, value)  # still reject garbage after the date
    return day


def parse_datetime(text: str | None) -> datetime | None:
    """A moment as aware UTC. Times without an offset are China time; 10 digits are epoch seconds."""
    value = _clean(text)
    if not value:
        return None
    if _EPOCH_RE.match(value):
        # WeChat's subscribe_time and similar API fields.
        return datetime.fromtimestamp(int(value), UTC)
    day, rest = _split_date(value)
    clock, tz = _time_of_day(rest, value) if rest else (time(0), None)
    return as_utc(datetime.combine(day, clock, tzinfo=tz))


# ---------------------------------------------------------------------------------------------------------
# Gender, ID numbers, email

_GENDERS: dict[str, str | None] = {
    **dict.fromkeys(("男", "男性", "m", "male", "1", "先生"), "M"),
    **dict.fromkeys(("女", "女性", "f", "female", "2", "女士"), "F"),
    **dict.fromkeys(("0", "未知", "unknown", "保密"), None),
}


def normalize_gender(text: str | None) -> str | None:
    """Gender as "M" or "F"; None when unknown. 1/2 are WeChat's ``sex`` codes."""
    value = _clean(text)
    if not value:
        return None
    key = value.lower()
    if key not in _GENDERS:
        raise NormalizationError(f"not a gender: {value!r}")
    return _GENDERS[key]


_ID_SEPARATORS_RE = re.compile(r"[\s\-]")
_ID_SHAPE_RE = re.compile(r"^\d{17}[\dX]$")


def parse_id_number(text: str | None) -> IdNumber | None:
    """A mainland resident ID (GB 11643). Reasons never repeat the number: it is sensitive."""
    value = _clean(text)
    if not value:
        return None
    number = ric.compact(_ID_SEPARATORS_RE.sub("", value))
    if len(number) == 15 and number.isdigit():
        # python-stdnum 2.2 has no 15 → 18 conversion, and guessing the century is not ours to do.
        raise NormalizationError("an old 15-digit ID number; the 18-character number is needed")
    if len(number) != 18:
        raise NormalizationError(f"wrong length for an ID number: {len(number)} characters instead of 18")
    if not _ID_SHAPE_RE.match(number):
        raise NormalizationError("an ID number must be 17 digits followed by a digit or X")
    if ric.calc_check_digit(number) != number[-1]:
        raise NormalizationError("bad check character in the ID number")
    try:
        birth = ric.get_birth_date(number)
    except ValidationError:
        raise NormalizationError("bad birth date in the ID number") from None
    # Only the province is checked: stdnum's birth-place test also wants the county code to have existed
    # in the birth year, which wrongly rejects everyone born before their district was (re)coded.
    if number[:2] not in _province_codes():
        raise NormalizationError("unknown province code in the ID number")
    gender = "M" if int(number[16]) % 2 else "F"
    return IdNumber(number=number, birth_date=birth, gender=gender, division_code=number[:6])


@lru_cache(maxsize=1)
def _province_codes() -> frozenset[str]:
    return frozenset(code for code in division_names() if len(code) == 2)


_EMAIL_RE = re.compile(r"^([^@\s]+)@([^@\s.]+(?:\.[^@\s.]+)+)$")


def normalize_email(text: str | None) -> str | None:
    """Trimmed, domain lower-cased; the local part is left alone (it may be case-sensitive)."""
    value = _clean(text)
    if not value:
        return None
    match = _EMAIL_RE.match(value)
    if match is None:
        raise NormalizationError("not an email address")  # the reason is stored unencrypted
    return f"{match.group(1)}@{match.group(2).lower()}"


# ---------------------------------------------------------------------------------------------------------
# Numbers

_AMOUNT_RE = re.compile(
    r"^([+-]?)\s*(?:¥|RMB|CNY)?\s*([+-]?)\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*元?$", re.IGNORECASE
)
_INT_RE = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?$")


def _decimal(sign: str, integer: str, fraction: str | None) -> Decimal:
    try:
        return Decimal(f"{sign}{integer.replace(',', '')}{fraction or ''}")
    except InvalidOperation:  # pragma: no cover - the regexes only let numbers through
        raise NormalizationError(f"not a number: {integer!r}") from None


def parse_amount_fen(text: str | None) -> int | None:
    """Yuan as written in exports (¥1,299.50, 1299.5元) → integer fen (129950). Decimal, never float."""
    value = _clean(text)
    if not value:
        return None
    match = _AMOUNT_RE.match(value)
    if match is None or (match.group(1) and match.group(2)):
        raise NormalizationError(f"not an amount of money: {value!r}")
    fraction = match.group(4)
    if fraction and len(fraction) > 3:
        raise NormalizationError(f"more than 2 decimals in an amount of money: {value!r}")
    amount = _decimal(match.group(1) or match.group(2), match.group(3), fraction)
    return int(amount * 100)


def parse_int(text: str | None) -> int | None:
    """1,234 → 1234, 12.0 → 12; 12.5 is not an integer."""
    value = _clean(text)
    if not value:
        return None
    match = _INT_RE.match(value)
    if match is None:
        raise NormalizationError(f"not an integer: {value!r}")
    number = _decimal(match.group(1), match.group(2), match.group(3))
    if number != number.to_integral_value():
        raise NormalizationError(f"not a whole number: {value!r}")
    return int(number)
