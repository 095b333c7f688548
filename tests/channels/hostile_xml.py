"""Hostile callback bodies: what ``parse_message`` must refuse without reading a file or expanding an
entity. Shared by tests/channels/test_wechat_callback_xml.py and bench/callback_hostile.py (which times
their rejection), so both look at the same payloads. No dependencies beyond the standard library.
"""

from __future__ import annotations

_FIELDS = (
    "<ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName>{who}</FromUserName>"
    "<CreateTime>1714036504</CreateTime><MsgType><![CDATA[event]]></MsgType><Event>subscribe</Event>"
)
MAX_BODY_BYTES = 64 * 1024  # the limit datong documents; the oversize payload is one byte past it


def _message(doctype: str, who: str) -> bytes:
    return f'<?xml version="1.0"?>{doctype}<xml>{_FIELDS.format(who=who)}</xml>'.encode()


def billion_laughs(levels: int = 10, fan_out: int = 10) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * fan_out}">' for n in range(1, levels)]
    return f"<!DOCTYPE xml [{''.join(entities)}]>"


def hostile_payloads(secret_path: str) -> dict[str, bytes]:
    """Name → body. ``secret_path`` is a local file whose text must never show up anywhere."""
    valid = _message("", "oUser")
    padding = b"<!--" + b"x" * (MAX_BODY_BYTES + 1 - len(valid) - 7) + b"-->"
    quadratic = "q" * 20_000
    return {
        "external_entity_passwd": _message(
            '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"
        ),
        "external_entity_secret": _message(
            f'<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file://{secret_path}">]>', "&xxe;"
        ),
        "parameter_entity": _message(
            f'<!DOCTYPE xml [<!ENTITY % ext SYSTEM "file://{secret_path}"> %ext;]>', "oUser"
        ),
        "external_dtd": _message(f'<!DOCTYPE xml SYSTEM "file://{secret_path}">', "oUser"),
        "billion_laughs": _message(billion_laughs(), "&lol9;"),
        "quadratic_blowup": _message(f'<!DOCTYPE xml [<!ENTITY q "{quadratic}">]>', "&q;" * 2000),
        "internal_dtd": _message("<!DOCTYPE xml [<!ELEMENT xml ANY>]>", "oUser"),
        "xinclude": (
            b'<xml xmlns:xi="http://www.w3.org/2001/XInclude">'
            + f'<xi:include href="file://{secret_path}" parse="text"/></xml>'.encode()
        ),
        "deep_nesting": b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>",
        "oversize": valid[:-6] + padding + b"</xml>",
    }
