"""A guide's, store's or campaign's code as a picture (PNG, SVG), drawn here with segno: pure functions,
bytes out, nothing fetched from anywhere.

What the picture encodes carries the scene, so a scan can be traced back to the code:

- a code with a WeChat ticket encodes the ticket's URL (``QrCode.wechat_url``): WeChat opens the
  official account and sends the ``subscribe``/``SCAN`` event with the scene;
- otherwise the brand's landing page (``Tenant.settings["guides"]["landing_url"]``) with ``scene=`` added
  to its query, for a page (the mini-program's web view, the e-shop) that reads it.

A full QR code (never a Micro QR, which many phone cameras do not read), error correction level M at
least (segno raises it when the version has room, so a printed card with a crease still scans), the
quiet zone of four modules the standard asks for, and the white background drawn in, so a dark page
does not turn the code negative.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import segno

ERROR_LEVEL = "m"
BORDER = 4  # modules of quiet zone (ISO/IEC 18004)
DEFAULT_SCALE = 8  # pixels (PNG) or user units (SVG) per module
MAX_SCALE = 40
DARK = "#000"
LIGHT = "#fff"


def payload(*, scene: str, wechat_url: str | None, landing_url: str | None) -> str | None:
    """What the picture of a code encodes, or None when there is nothing to point to (no ticket, and
    the brand has set no landing page). A ``scene`` already in the landing page's query is replaced."""
    if wechat_url:
        return wechat_url
    if not landing_url:
        return None
    parts = urlsplit(landing_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "scene"]
    query.append(("scene", scene))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


def _symbol(text: str) -> segno.QRCode:
    if not text:
        raise ValueError("a QR code needs something to encode")
    return segno.make_qr(text, error=ERROR_LEVEL)


def _scale(scale: int) -> int:
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale is 1 to {MAX_SCALE}")
    return scale


def png(text: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """A black-and-white PNG of ``text``, ``scale`` pixels a module."""
    out = io.BytesIO()
    _symbol(text).save(out, kind="png", scale=_scale(scale), border=BORDER, dark=DARK, light=LIGHT)
    return out.getvalue()


def svg(text: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """An SVG document of ``text`` (UTF-8), ``scale`` user units a module."""
    out = io.BytesIO()
    _symbol(text).save(
        out,
        kind="svg",
        scale=_scale(scale),
        border=BORDER,
        dark=DARK,
        light=LIGHT,
        xmldecl=True,
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue()


def size(text: str, *, scale: int = DEFAULT_SCALE) -> int:
    """The width (and height) in pixels of the pictures above, quiet zone included."""
    width, _height = _symbol(text).symbol_size(scale=_scale(scale), border=BORDER)
    return int(width)
