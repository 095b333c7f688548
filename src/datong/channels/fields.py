"""What every importer does with a cell: find its column, clean it, normalise it, report why not.

A normaliser from :mod:`datong.identity.rules` raises ``NormalizationError`` for a value that is
present but bad; here that becomes a :class:`FieldError` naming the column as the file calls it, so
no importer repeats the try/except and every error report reads the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from datong.channels.files import FilePath, Table, open_table
from datong.channels.records import PHONE, FieldError, IdentityKey, ParsedRecord, WeakEvidence
from datong.coupons.codes import BODY_LENGTH, BadCode, normalize_code
from datong.identity.rules import (
    Address,
    NormalizationError,
    is_masked_phone,
    name_pinyin,
    normalize_masked_phone,
    normalize_name,
    normalize_phone,
    parse_address,
    strip_excel_guard,
)

T = TypeVar("T")
C = TypeVar("C")

ROW_FIELD = "_row"  # FieldError.field for a problem with the row as a whole (e.g. not valid JSON)
MISSING = "is missing"

# Exports mask account names as well as phones ("tb****1234", "jd_***8"). Such a value names no
# single account, so it must never become an identity key.
_MASK_RUN = re.compile(r"\*{2,}")


def clean(text: str | None) -> str | None:
    """Cell text as importers use it: whitespace and Excel guards (``="123"``, ``'138…``) removed."""
    if text is None:
        return None
    value = strip_excel_guard(text.strip()).strip()
    return value or None


def header_key(name: str) -> str:
    """How headers are compared: case, spaces, ``_`` and ``-`` do not matter (``Card No`` = ``card_no``)."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


def is_masked(text: str | None) -> bool:
    return text is not None and _MASK_RUN.search(text) is not None


def convert(
    errors: list[FieldError], field: str, fn: Callable[[str | None], T | None], text: str | None
) -> T | None:
    """``fn(text)``; a ``NormalizationError`` is appended to ``errors`` as ``FieldError(field, reason)``."""
    try:
        return fn(text)
    except NormalizationError as exc:
        errors.append(FieldError(field=field, reason=exc.reason))
        return None


def quiet(fn: Callable[[str | None], T | None], text: str | None) -> T | None:
    """``fn(text)``, or None when it is not understood: for weak evidence, which must never fail a row."""
    try:
        return fn(text)
    except NormalizationError:
        return None


class Columns:
    """Which header of one file holds each canonical field, resolved once per file.

    ``synonyms`` maps a field to the header names that may carry it, in order of preference; the
    first is the label used in errors when the file has no such column at all.
    """

    def __init__(
        self,
        headers: Sequence[str],
        synonyms: Mapping[str, Sequence[str]],
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        by_key: dict[str, str] = {}
        for header in headers:
            by_key.setdefault(header_key(header), header)
        self.headers = list(headers)
        self._labels = {field: names[0] for field, names in synonyms.items()}
        self._found: dict[str, str] = dict(overrides or {})
        taken = set(self._found.values())
        for field, names in synonyms.items():
            if field in self._found:
                continue
            for name in names:
                found = by_key.get(header_key(name))
                if found is not None and found not in taken:
                    self._found[field] = found
                    taken.add(found)
                    break

    def header(self, field: str) -> str | None:
        return self._found.get(field)

    def label(self, field: str) -> str:
        """The column name for error reports: the file's own header when there is one."""
        return self._found.get(field) or self._labels.get(field, field)

    def used(self) -> set[str]:
        return set(self._found.values())

    def missing(self, fields: Iterable[str]) -> list[str]:
        return [self.label(field) for field in fields if field not in self._found]


class Row:
    """One raw row read through a file's :class:`Columns`, collecting the row's field errors."""

    def __init__(self, raw: Mapping[str, str], columns: Columns, errors: list[FieldError]) -> None:
        self.raw = raw
        self.columns = columns
        self.errors = errors

    def text(self, field: str) -> str | None:
        header = self.columns.header(field)
        return clean(self.raw.get(header)) if header is not None else None

    def error(self, field: str, reason: str) -> None:
        self.errors.append(FieldError(field=self.columns.label(field), reason=reason))

    def required(self, field: str) -> str | None:
        value = self.text(field)
        if value is None:
            self.error(field, MISSING)
        return value

    def convert(
        self, field: str, fn: Callable[[str | None], T | None], *, required: bool = False
    ) -> T | None:
        text = self.text(field)
        if text is None:
            if required:
                self.error(field, MISSING)
            return None
        return convert(self.errors, self.columns.label(field), fn, text)


# Coupon codes in one cell: separated by commas (half- or full-width), 、, semicolons or line breaks, or by
# spaces between whole codes. Spaces inside a part that is not made of whole codes are a code printed in
# groups (``7KQ2 M9XD 4HTP R``), which is one code.
_CODE_SEPARATORS = re.compile(r"[,，、;；\r\n]+")
# The column a brand adds to a Tmall/Taobao or JD order export for its own coupon codes (neither platform
# exports them: its 优惠 columns are the platform's and the shop's discounts, not datong's codes).
COUPON_CODE_HEADERS = ("商家优惠券码", "优惠券码", "券码", "coupon_codes")
MAX_COUPON_CODES = 20  # on one order: more is not a list of codes but some other text in the column


def coupon_codes(row: Row, field: str) -> list[str]:
    """The brand coupon codes in a cell, normalised, each once, in the order written. A code that is not
    one (wrong length, a mistyped character) is a field error naming its position, never the code."""
    text = row.text(field)
    if text is None:
        return []
    written: list[str] = []
    for part in _CODE_SEPARATORS.split(text):
        words = part.split()
        if len(words) > 1 and all(len(w.replace("-", "")) > BODY_LENGTH for w in words):
            written.extend(words)
        elif words:
            written.append(part.strip())
    if len(written) > MAX_COUPON_CODES:
        row.error(field, f"{len(written)} coupon codes on one order; at most {MAX_COUPON_CODES}")
        return []
    codes: list[str] = []
    for position, token in enumerate(written, start=1):
        try:
            code = normalize_code(token)
        except BadCode as exc:
            row.error(field, f"code {position} of {len(written)}: {exc}" if len(written) > 1 else str(exc))
            continue
        if code not in codes:
            codes.append(code)
    return codes


def require_columns(kind: str, columns: Columns, fields: Iterable[str]) -> None:
    """A file-level check: the file is not this kind of export at all if these columns are absent."""
    missing = columns.missing(fields)
    if missing:
        raise ValueError(
            f"this does not look like a {kind}: no column {', '.join(missing)} "
            f"(headers found: {', '.join(columns.headers) or 'none'})"
        )


def map_status(raw: str | None, table: Mapping[str, str]) -> tuple[str, str]:
    """(normalised status, raw status). An unknown status is kept as ``unknown``, never an error:
    platforms add statuses and an order must not be lost for a label we have not seen."""
    text = raw or ""
    key = text.replace("，", ",").replace(" ", "")  # exports differ in full- and half-width commas
    return table.get(key, "unknown"), text


def split_address(text: str | None) -> Address | None:
    """An address cut into divisions; if it cannot be parsed, all of it is the detail line."""
    if text is None:
        return None
    try:
        parsed = parse_address(text)
    except NormalizationError:
        parsed = None
    return parsed if parsed is not None else Address(None, None, None, text)


def receiver_evidence(name: str | None, phones: Iterable[str | None], address: str | None) -> WeakEvidence:
    """What an order says about its receiver. The receiver may not be the buyer (a gift, family), so
    it is weak evidence only, and a value we cannot read is left out rather than failing the order."""
    weak = WeakEvidence()
    weak.receiver_name = quiet(normalize_name, name) if not is_masked(name) else None
    weak.receiver_name_pinyin = quiet(name_pinyin, weak.receiver_name) if weak.receiver_name else None
    for phone in phones:  # mobile first, then the other number
        if phone is None:
            continue
        if is_masked_phone(phone):
            weak.masked_phone = weak.masked_phone or quiet(normalize_masked_phone, phone)
        elif weak.receiver_phone is None:
            weak.receiver_phone = quiet(normalize_phone, phone)
    parts = split_address(address)
    if parts is not None:
        weak.receiver_province = parts.province
        weak.receiver_city = parts.city
        weak.receiver_district = parts.district
        weak.receiver_address = parts.detail
    return weak


def add_own_phone(row: Row, field: str, record: ParsedRecord) -> None:
    """The member's own phone (verified or written on their card): a full one is a strong key, a
    masked one only evidence, a bad one a field error."""
    text = row.text(field)
    if text is None:
        return
    if is_masked_phone(text):
        record.weak.masked_phone = row.convert(field, normalize_masked_phone)
        return
    phone = row.convert(field, normalize_phone)
    if phone is not None:
        record.identities.append(IdentityKey(PHONE, phone))


def add_name(row: Row, field: str, record: ParsedRecord) -> None:
    record.person.name = row.convert(field, normalize_name)
    if record.person.name is not None:
        record.person.name_pinyin = quiet(name_pinyin, record.person.name)


def unmapped(raw: Mapping[str, str], columns: Columns) -> dict[str, str]:
    """Non-empty cells of columns no field claimed, for ``person.extra`` (nothing is dropped)."""
    used = columns.used()
    extra: dict[str, str] = {}
    for header, cell in raw.items():
        if header in used:
            continue
        value = clean(cell)
        if value is not None:
            extra[header] = value
    return extra


def _stream(
    table: Table, context: C, build: Callable[[int, dict[str, str], C], ParsedRecord]
) -> Iterator[ParsedRecord]:
    with table:
        for row_no, raw in table:
            yield build(row_no, raw, context)


def open_records(
    path: FilePath,
    prepare: Callable[[list[str]], C],
    build: Callable[[int, dict[str, str], C], ParsedRecord],
) -> Iterator[ParsedRecord]:
    """Open a CSV/Excel file, check its header with ``prepare`` now, then stream ``build`` per row.

    Not a generator itself: a wrong file (``prepare`` raises ``ValueError``) is reported when the
    importer is called, before any row, so the CLI can refuse it before starting an import batch.
    The file is closed when the returned iterator is exhausted or closed.
    """
    table = open_table(path)
    try:
        context = prepare(table.headers)
    except BaseException:
        table.close()
        raise
    return _stream(table, context, build)
