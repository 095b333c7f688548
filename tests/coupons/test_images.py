"""A coupon's code as pictures: what is drawn is exactly the code (the QR code module for module against
segno's own matrix, the barcode bar for bar decoded by Code 128's rules), at the stated size; and the
member page's short-lived code."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from barcode.charsets import code128
from hypothesis import given, settings
from hypothesis import strategies as st

from datong.core.crypto import Keyring
from datong.coupons import images
from datong.coupons.codes import (
    ALPHABET,
    BODY_LENGTH,
    BadCode,
    display_code,
    dynamic_payload,
    dynamic_signer,
    normalize_code,
    read_dynamic,
)

SVG_NS = "{http://www.w3.org/2000/svg}"


def _complete(body: str) -> str:
    for check in ALPHABET:
        try:
            return normalize_code(body + check)
        except BadCode:
            continue
    raise AssertionError(body)


codes = st.text(alphabet=ALPHABET, min_size=BODY_LENGTH, max_size=BODY_LENGTH).map(_complete)
LETTERS = _complete("ABCDEFGHJKMN")  # no run of digits: one code set (B) from start to end
COUPON_ID = "cpn_01jd4k9m2x7q8r5t6v3w0y1z2a"  # the dynamic code names a coupon by its id


# --- QR codes -----------------------------------------------------------------------------------------


def _svg_modules(svg: bytes) -> tuple[ET.Element, set[tuple[int, int]]]:
    """The SVG's root and the dark modules its path draws, as (row, column) with the quiet zone."""
    root = ET.fromstring(svg)  # well-formed, or this raises
    (group,) = root.iter(f"{SVG_NS}g")
    background, bars = group.findall(f"{SVG_NS}path")
    assert background.get("fill") == images.LIGHT
    assert bars.get("stroke") == images.DARK
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    # segno writes the dark modules as horizontal strokes: "M x y" starts, "h n" draws n modules to the
    # right, "m dx dy" moves; y is the middle of a row (row + 0.5).
    for command, first, second in re.findall(r"([Mhm])(-?[\d.]+)(?: (-?[\d.]+))?", bars.get("d", "")):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        else:
            dark.update((int(y - 0.5), int(x) + i) for i in range(int(first)))
            x += float(first)
    return root, dark


def _matrix_modules(payload: str, border: int) -> set[tuple[int, int]]:
    matrix = images.qr_code(payload).matrix
    return {(r + border, c + border) for r, row in enumerate(matrix) for c, bit in enumerate(row) if bit}


@pytest.mark.parametrize("payload", [_complete("7KQ2M9XD4HTP"), "7KQ2M9XD4HTPR.29853720.3f9a0c1d2e4b5a69"])
def test_the_qr_svg_draws_segnos_matrix_for_the_payload_at_its_size(payload: str) -> None:
    root, dark = _svg_modules(images.qr_svg(payload))
    assert dark == _matrix_modules(payload, images.QR_BORDER)
    code = images.qr_code(payload)
    assert (code.is_micro, code.error in ("M", "Q", "H")) == (False, True)
    side = (code.symbol_size(scale=1, border=0)[0] + 2 * images.QR_BORDER) * images.QR_SCALE
    assert (root.get("width"), root.get("height")) == (str(side), str(side))
    assert images.qr_size(payload) == (side, side)


def _png_pixels(png: bytes) -> tuple[int, int, list[list[int]]]:
    """Width, height and the pixels (1 white, 0 black) of a 1-bit greyscale PNG, read by the PNG
    specification: chunks, zlib, and the two row filters a bilevel image needs (None and Up)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind, data = png[position + 4 : position + 8], png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks.append((kind, data))
        position += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">2I5B", chunks[0][1])
    assert (depth, colour, interlace) == (1, 0, 0)
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = (width + 7) // 8
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, data = line[0], line[1:]
        assert kind in (0, 2), kind
        row = data if kind == 0 else bytes((a + b) & 0xFF for a, b in zip(data, previous, strict=True))
        rows.append(row)
        previous = row
    pixels = [[(row[x // 8] >> (7 - x % 8)) & 1 for x in range(width)] for row in rows]
    return width, height, pixels


def test_the_qr_png_is_segnos_matrix_scaled_with_its_quiet_zone() -> None:
    payload, scale, border = _complete("0123456789AB"), 3, 4
    width, height, pixels = _png_pixels(images.qr_png(payload, scale=scale, border=border))
    assert (width, height) == images.qr_size(payload, scale=scale, border=border)
    dark = _matrix_modules(payload, border)
    expected = [[0 if (y // scale, x // scale) in dark else 1 for x in range(width)] for y in range(height)]
    assert pixels == expected


def test_an_empty_payload_has_no_qr_code() -> None:
    with pytest.raises(ValueError):
        images.qr_svg("")


# --- barcodes -----------------------------------------------------------------------------------------

STOP = "1100011101011"  # Code 128's stop pattern with its final bar: 13 modules
_VALUE_OF = {pattern: value for value, pattern in enumerate(code128.CODES)}


def _bars(svg: bytes) -> tuple[ET.Element, str, str]:
    """The SVG's root, its bars as modules ("1" dark, "0" light) between the quiet zones, and its text."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    width_mm = float(root.get("width", "").removesuffix("mm"))
    module = images.BAR_MODULE_MM
    count = round((width_mm - 2 * images.BAR_QUIET_ZONE_MM) / module)
    modules = ["0"] * count
    for rect in root.iter(f"{SVG_NS}rect"):
        if rect.get("width") == "100%":
            continue  # the background
        assert rect.get("height") == f"{images.BAR_HEIGHT_MM:.3f}mm"
        start = round((float(rect.get("x", "").removesuffix("mm")) - images.BAR_QUIET_ZONE_MM) / module)
        span = round(float(rect.get("width", "").removesuffix("mm")) / module)
        modules[start : start + span] = ["1"] * span
    (label,) = root.iter(f"{SVG_NS}text")
    return root, "".join(modules), label.text or ""


def _decode(modules: str) -> str:
    """The text of Code 128 modules (ISO/IEC 15417), for the characters a coupon code uses: each symbol
    is 11 modules; start A, B or C (103, 104, 105); in A and B a value is the character 32 below it in
    ASCII, in C two digits; 99, 100 and 101 switch sets; then a checksum (mod 103) and the stop."""
    assert modules.endswith(STOP)
    body = modules[: -len(STOP)]
    assert len(body) % 11 == 0
    values = [_VALUE_OF[body[i : i + 11]] for i in range(0, len(body), 11)]
    *symbols, checksum = values
    assert checksum == (symbols[0] + sum(i * v for i, v in enumerate(symbols[1:], start=1))) % 103
    charset = {103: "A", 104: "B", 105: "C"}[symbols[0]]
    switches = {"A": {99: "C", 100: "B"}, "B": {99: "C", 101: "A"}, "C": {100: "B", 101: "A"}}
    text = ""
    for value in symbols[1:]:
        if value in switches[charset]:
            charset = switches[charset][value]
        elif charset == "C":
            assert value < 100
            text += f"{value:02d}"
        else:
            assert value < 64
            text += chr(value + 32)
    return text


@settings(max_examples=40, deadline=None)
@given(codes)
def test_the_barcode_draws_exactly_the_code_and_prints_it_in_groups(code: str) -> None:
    _, modules, label = _bars(images.barcode_svg(code))
    assert _decode(modules) == code
    assert label == display_code(code)


def test_the_barcode_has_its_quiet_zones_and_width() -> None:
    root, modules, _ = _bars(images.barcode_svg(LETTERS))
    # Start, 13 characters and the checksum, of 11 modules each, and the stop: 178 modules of 0.33 mm,
    # with 3.3 mm of quiet zone either side.
    assert len(modules) == 15 * 11 + 13 == 178
    assert root.get("width") == "65.340mm"
    assert modules[0] == modules[-1] == "1"  # the bars start and end at the quiet zones


def test_a_barcode_is_only_drawn_for_a_coupon_code() -> None:
    assert images.barcode_svg(display_code(LETTERS).lower()) == images.barcode_svg(LETTERS)
    with pytest.raises(BadCode):
        images.barcode_svg(LETTERS[:-1] + ("0" if LETTERS[-1] != "0" else "1"))


# --- the member page's short-lived code ---------------------------------------------------------------


def test_the_signer_is_the_brands_key_for_this_purpose_only() -> None:
    keyring = Keyring(master=bytes(range(32)))
    sign = dynamic_signer(keyring, "ten_a")
    assert sign("X.1") == keyring.sign("X.1", tenant_id="ten_a", purpose="coupon-dynamic")
    assert sign("X.1") != dynamic_signer(keyring, "ten_b")("X.1")
    assert sign("X.1") != keyring.sign("X.1", tenant_id="ten_a", purpose="other")


@pytest.mark.parametrize(
    ("second", "refresh"), [(0.0, 60), (15.0, 45), (59.5, 1)], ids=["at-the-turn", "in-the-minute", "last"]
)
def test_the_dynamic_code_expires_after_the_next_minute_and_refreshes_at_the_turn(
    second: float, refresh: int
) -> None:
    sign = dynamic_signer(Keyring(master=bytes(range(32))), "ten_a")
    minute = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    at = minute + timedelta(seconds=second)
    shown = images.dynamic_code(COUPON_ID, sign=sign, at=at)
    assert shown.payload == dynamic_payload(COUPON_ID, at_epoch=at.timestamp(), sign=sign)
    assert (shown.expires_at, shown.refresh_after_seconds) == (minute + timedelta(minutes=2), refresh)
    # Scanned up to the last moment before expires_at, it is the coupon's id; from then on it is not.
    last = (shown.expires_at - timedelta(milliseconds=1)).timestamp()
    assert read_dynamic(shown.payload, at_epoch=last, sign=sign) == COUPON_ID
    with pytest.raises(BadCode, match="expired"):
        read_dynamic(shown.payload, at_epoch=shown.expires_at.timestamp(), sign=sign)
    _, dark = _svg_modules(shown.qr_svg.encode())
    assert dark == _matrix_modules(shown.payload, images.QR_BORDER)
