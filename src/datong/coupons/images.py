"""A coupon's code as a picture: a QR code (segno: SVG and PNG) and a Code 128 barcode (python-barcode:
SVG), and the member page's short-lived code with its QR code. Pure functions: bytes out.

The QR code is a full QR code (never a Micro QR, which many phone scanners cannot read), error
correction level M at least (segno raises it when the version has room: a screen with a crack or a
glare still scans), with the quiet zone of four modules the standard asks for and a white background
drawn in, so a member page in dark mode does not turn the code negative.

The barcode encodes the code exactly as stored (13 characters, no hyphens: a scanner types it into the
POS, which reads it like a typed code) and prints it underneath in groups of four, as a cashier reads it
out. Bars of 0.33 mm with a quiet zone of ten bars each side, as Code 128 asks. There is no PNG of the
barcode: python-barcode draws PNG only through Pillow, a large imaging library for one picture, and the
SVG prints sharp at any size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import segno
from barcode import Code128  # type: ignore[import-untyped]
from barcode.writer import SVGWriter  # type: ignore[import-untyped]

from datong.coupons.codes import DYNAMIC_STEP_SECONDS, display_code, dynamic_payload, normalize_code

QR_ERROR = "m"
QR_SCALE = 8  # pixels per module
QR_BORDER = 4  # modules of quiet zone, as ISO/IEC 18004 asks
DARK = "#000"
LIGHT = "#fff"

BAR_MODULE_MM = 0.33  # the narrowest bar: POS scanners read 0.25 mm and up
BAR_HEIGHT_MM = 15.0
BAR_QUIET_ZONE_MM = 10 * BAR_MODULE_MM  # Code 128 asks for ten modules each side
BAR_FONT_PT = 10


def qr_code(payload: str) -> segno.QRCode:
    """The QR code drawn for ``payload``: what :func:`qr_svg` and :func:`qr_png` draw, module by module."""
    if not payload:
        raise ValueError("a QR code needs something to encode")
    return segno.make_qr(payload, error=QR_ERROR)


def qr_svg(payload: str, *, scale: int = QR_SCALE, border: int = QR_BORDER) -> bytes:
    """An SVG document (UTF-8, no XML declaration, so it can also be put inline in a page)."""
    out = io.BytesIO()
    qr_code(payload).save(
        out,
        kind="svg",
        scale=scale,
        border=border,
        dark=DARK,
        light=LIGHT,
        xmldecl=False,
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue()


def qr_png(payload: str, *, scale: int = QR_SCALE, border: int = QR_BORDER) -> bytes:
    """A black-and-white PNG, ``scale`` pixels per module."""
    out = io.BytesIO()
    qr_code(payload).save(out, kind="png", scale=scale, border=border, dark=DARK, light=LIGHT)
    return out.getvalue()


def qr_size(payload: str, *, scale: int = QR_SCALE, border: int = QR_BORDER) -> tuple[int, int]:
    """Width and height in pixels of the pictures above."""
    width, height = qr_code(payload).symbol_size(scale=scale, border=border)
    return int(width), int(height)


def barcode_svg(code: str) -> bytes:
    """A Code 128 barcode of a coupon code (raises :class:`~datong.coupons.codes.BadCode` for anything
    that is not one), sized in millimetres for print, with the code in groups of four underneath."""
    stored = normalize_code(code)
    # A new Code128 for every picture: the object keeps encoding state between calls.
    symbol = Code128(stored, writer=SVGWriter())
    options = {
        "module_width": BAR_MODULE_MM,
        "module_height": BAR_HEIGHT_MM,
        "quiet_zone": BAR_QUIET_ZONE_MM,
        "font_size": BAR_FONT_PT,
        "text_distance": 4.0,
        "human": display_code(stored),
        "with_doctype": False,  # no external DTD for a browser or an XML parser to fetch
    }
    rendered = symbol.render(options)
    assert isinstance(rendered, bytes)
    return rendered


# --- the member page's short-lived code ----------------------------------------------------------------


@dataclass(frozen=True)
class DynamicCode:
    """What the member page shows: ``payload`` (in ``qr_svg``) is accepted at the POS until
    ``expires_at``; the page fetches a new one after ``refresh_after_seconds``, when the next one starts,
    so the code on screen always has at least a full step left when it is scanned."""

    payload: str
    expires_at: datetime
    refresh_after_seconds: int
    qr_svg: str


def dynamic_code(code: str, *, sign: Callable[[str], str], at: datetime) -> DynamicCode:
    """The dynamic code of a coupon at ``at`` (tz-aware). ``codes.read_dynamic`` accepts a payload in its
    own step and the next one, so it expires when the step after its own ends."""
    epoch = at.timestamp()
    step = int(epoch // DYNAMIC_STEP_SECONDS)
    payload = dynamic_payload(code, at_epoch=epoch, sign=sign)
    next_step_at = (step + 1) * DYNAMIC_STEP_SECONDS
    return DynamicCode(
        payload=payload,
        expires_at=datetime.fromtimestamp((step + 2) * DYNAMIC_STEP_SECONDS, UTC),
        refresh_after_seconds=max(1, math.ceil(next_step_at - epoch)),
        qr_svg=qr_svg(payload).decode("utf-8"),
    )
