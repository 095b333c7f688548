"""Opening input files: CSV in any Chinese encoding, Excel ``.xlsx`` and JSON (lines or one array).

Everything streams. A Tmall export or a WeChat fan dump can be several GB, so no function here
reads a whole file: CSV and Excel rows come one at a time, a JSON array is decoded element by element.

Row numbers are true to the file: the header row is row 0 and the next row is row 1 whether or not
some rows are blank and skipped, so "row 17" in an error report is row 17 below the header in the
file the user holds.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import charset_normalizer

from datong.identity.rules import strip_excel_guard

FilePath = str | PathLike[str]

SAMPLE_BYTES = 64 * 1024  # enough to see the header and a few hundred rows
EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm"})
JSON_CHUNK_CHARS = 1024 * 1024
# A JSON element larger than this means the array is broken beyond resynchronising (an unclosed
# bracket swallows the rest of the file); stop rather than buffer a 2 GB "element".
JSON_MAX_ELEMENT_CHARS = 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------- encoding


def _decodes(sample: bytes, encoding: str, *, complete: bool) -> bool:
    # Incremental so that a multi-byte character cut by the end of the sample is not taken as an error.
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(sample: bytes, *, complete: bool = False) -> str:
    """The encoding of a text file from its first bytes, preferring UTF-8 and then the GB family.

    ``complete`` says the sample is the whole file (so a truncated final character is an error).
    GB18030 is a superset of GBK and GB2312, so the classic GBK Tmall export decodes with it.
    charset-normalizer is asked only when neither fits, since on short Chinese samples it can pick
    a Big5 or Japanese code page that happens to decode the same bytes.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    for candidate in ("utf-8", "gb18030"):
        if _decodes(sample, candidate, complete=complete):
            return candidate
    best = charset_normalizer.from_bytes(sample).best()
    return best.encoding if best is not None else "gb18030"


def _sniff(path: Path) -> tuple[str, str]:
    """(encoding, decoded sample) of a text file."""
    with path.open("rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
        complete = raw.read(1) == b""
    encoding = detect_encoding(sample, complete=complete)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample, final=complete)
    return encoding, text


def _open_text(path: Path, encoding: str) -> IO[str]:
    # errors="replace": a bad byte deep in a large file shows up as U+FFFD in that row's raw text
    # (kept and visible in the error report) instead of aborting the whole import.
    return path.open("r", encoding=encoding, errors="replace", newline="")


# ---------------------------------------------------------------------------------------------- tables


def clean_header(text: str) -> str:
    """A header name without surrounding whitespace, a byte-order mark or an Excel text guard."""
    return strip_excel_guard(text.replace("\ufeff", "").strip()).strip()


def _unique_headers(cells: Sequence[str]) -> list[str]:
    names = [clean_header(cell) for cell in cells]
    while names and not names[-1]:
        names.pop()  # trailing empty header cells are not columns (a trailing comma, a wide sheet)
    headers: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        base = name or f"_col_{position}"
        unique, copy = base, 1
        while unique in seen:  # a repeated header would otherwise overwrite its twin's cell in the dict
            copy += 1
            unique = f"{base}_{copy}"
        seen.add(unique)
        headers.append(unique)
    return headers


def _is_blank(cells: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in cells)


class Table:
    """An open CSV or Excel file: the header is read on opening, data rows stream on iteration.

    Use as a context manager (or call :meth:`close`); iterate once.
    """

    def __init__(self, path: Path, rows: Iterator[list[str]], close: Callable[[], None]) -> None:
        self.path = path
        self._rows = rows
        self._close = close
        self.headers: list[str] = []
        for cells in rows:  # the header is the first row that is not blank
            if not _is_blank(cells):
                self.headers = _unique_headers(cells)
                break

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        headers = self.headers
        width = len(headers)
        # Numbering continues from the header row, so skipped blank rows still count.
        for row_no, cells in enumerate(self._rows, start=1):
            if _is_blank(cells):
                continue
            row = dict(zip(headers, cells, strict=False))
            for header in headers[len(cells) :]:
                row[header] = ""
            # Cells past the header keep their place number so the raw row is complete; empty ones
            # carry nothing (exports often end every data row with a comma the header lacks).
            for position, cell in enumerate(cells[width:], start=1):
                if cell.strip():
                    row[f"_extra_{position}"] = cell
            yield row_no, row

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _csv_table(path: Path) -> Table:
    encoding, sample = _sniff(path)
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    # Excel's "Unicode text" and some POS systems write tab-separated files under a .csv/.txt name.
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    stream = _open_text(path, encoding)
    reader = csv.reader(stream, delimiter=delimiter)
    return Table(path, (list(cells) for cells in reader), stream.close)


def excel_cell_text(value: object) -> str:
    """An Excel cell as the text a person sees: ``12`` not ``12.0``, times as ``YYYY-MM-DD HH:MM:SS``."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Phone numbers and order numbers typed into Excel come back as floats.
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    return str(value)


def _excel_table(path: Path) -> Table:
    import openpyxl  # imported here: only Excel imports pay for it

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
    except IndexError:
        workbook.close()
        raise ValueError(f"{path.name}: the workbook has no sheet") from None
    rows = ([excel_cell_text(value) for value in values] for values in sheet.iter_rows(values_only=True))
    return Table(path, rows, workbook.close)


def open_table(path: FilePath) -> Table:
    """Open a CSV (any delimiter among comma and tab) or ``.xlsx`` file and read its header."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".xls":
        raise ValueError(f"{file.name}: old .xls workbooks are not supported; save it as .xlsx or .csv")
    if suffix in EXCEL_SUFFIXES:
        return _excel_table(file)
    return _csv_table(file)


def read_rows(path: FilePath) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row_no, {header: cell text})`` for every non-blank data row of a CSV or Excel file.

    ``row_no`` is 1 for the row right under the header. Missing trailing cells are ``""``;
    cells past the last header are kept as ``_extra_N`` (N counts from the first cell past it).
    """
    with open_table(path) as table:
        yield from table


# ---------------------------------------------------------------------------------------------- JSON


@dataclass(frozen=True)
class JsonRecord:
    """One JSON line or array element. ``error`` is set when it could not be decoded."""

    row_no: int
    value: Any  # the decoded value (None when there is an error)
    text: str | None = None  # the source text, kept only when it could not be decoded
    error: str | None = None


def _find_boundary(text: str, start: int) -> int | None:
    """Index of the ``,`` or ``]`` that ends the array element starting at ``start``, if buffered.

    A small bracket-and-string scanner: used only after the decoder has failed, to step past a
    broken element and carry on with the next one.
    """
    depth = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                if char == "]":
                    return index
            else:
                depth -= 1
        elif char == "," and depth == 0:
            return index
    return None


class _JsonArrayReader:
    """Decodes a top-level JSON array one element at a time over a chunked text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(JSON_CHUNK_CHARS)
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk  # drop what is consumed: memory stays one element
        self._pos = 0
        return True

    def _peek(self) -> str | None:
        """The next non-whitespace character (not consumed), or None at the end of the file."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos].isspace():
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return None

    def _next_char_index(self, index: int) -> int | None:
        while index < len(self._buf) and self._buf[index].isspace():
            index += 1
        return index if index < len(self._buf) else None

    def _element(self, row_no: int) -> JsonRecord:
        while True:
            reason: str
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                reason = exc.msg
            else:
                after = self._next_char_index(end)
                if after is None and not self._eof:
                    self._more()  # a number may continue in the next chunk: decode again
                    continue
                if after is None or self._buf[after] in ",]":
                    self._pos = after if after is not None else len(self._buf)
                    return JsonRecord(row_no, value)
                reason = "unexpected text after the value"
            boundary = _find_boundary(self._buf, self._pos)
            if boundary is None:
                if len(self._buf) - self._pos > JSON_MAX_ELEMENT_CHARS:
                    raise ValueError(f"JSON array element {row_no} is broken and does not end; giving up")
                if self._more():
                    continue  # the element may just be cut by the chunk end
                boundary = len(self._buf)
            text = self._buf[self._pos : boundary].strip()
            self._pos = boundary
            return JsonRecord(row_no, None, text=text, error=f"not valid JSON: {reason}")

    def records(self) -> Iterator[JsonRecord]:
        if self._peek() != "[":
            raise ValueError("expected a JSON array")
        self._pos += 1
        if self._peek() == "]":
            return
        row_no = 0
        while True:
            row_no += 1
            char = self._peek()
            if char == "]" and row_no > 1:  # a trailing comma before "]": tolerated, nothing is lost
                return
            if char is None:
                yield JsonRecord(row_no, None, text="", error="the file ends inside the array")
                return
            yield self._element(row_no)
            char = self._peek()
            if char == ",":
                self._pos += 1
                continue
            if char == "]":
                self._pos += 1
                if self._peek() is not None:
                    tail = self._buf[self._pos : self._pos + 200]
                    yield JsonRecord(row_no + 1, None, text=tail, error="text after the closing ]")
                return
            return  # end of file without "]": every complete element has been yielded


def _json_lines(stream: IO[str]) -> Iterator[JsonRecord]:
    for line_no, line in enumerate(stream, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield JsonRecord(line_no, None, text=text, error=f"not valid JSON: {exc.msg}")
        else:
            yield JsonRecord(line_no, value)


def read_json_records(path: FilePath) -> Iterator[JsonRecord]:
    """Yield every record of a JSON-lines file or of a file holding one JSON array.

    The form is told by the first non-space character (``[`` → array). ``row_no`` is the line
    number for JSON lines and the 1-based element number for an array. A line or element that is
    not valid JSON is yielded with ``error`` and its ``text``; the records after it still come.
    """
    file = Path(path)
    encoding, sample = _sniff(file)
    stripped = sample.lstrip()
    with _open_text(file, encoding) as stream:
        if stripped.startswith("["):
            yield from _JsonArrayReader(stream).records()
        else:
            yield from _json_lines(stream)


def json_raw(value: dict[str, Any]) -> dict[str, str]:
    """A JSON object as a raw row: strings as they are, anything else as compact JSON text."""
    return {
        str(key): item
        if isinstance(item, str)
        else json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        for key, item in value.items()
    }
