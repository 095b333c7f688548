"""Parsing WeChat callback XML: every event of channels.md to exact fields, malformed bodies, and
hostile XML (external entities, billion laughs, DTDs, oversize) refused with nothing read from disk.
How long a refusal takes is measured in bench/callback_hostile.py, not here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datong.channels.wechat.callback import (
    MAX_BODY_BYTES,
    BadMessage,
    Message,
    SafeModeCipher,
    parse_message,
    unwrap,
)
from tests.channels import hostile_xml
from tests.channels.wechat_safe_mode import (
    ACCOUNT,
    APPID,
    KEY_CURRENT,
    TOKEN,
    WeChatScheme,
    safe_request,
    signed_params,
    xml_message,
)

OPENID = "oLVPpjqs2BhvzwPj5A-vTYAX3GLc"
HEAD: dict[str, str | int] = {
    "ToUserName": ACCOUNT,
    "FromUserName": OPENID,
    "CreateTime": 1714036504,
    "MsgType": "event",
}


def expected(raw: dict[str, str | int], **typed: Any) -> Message:
    fields = {
        "to_user": ACCOUNT,
        "from_user": OPENID,
        "create_time": 1714036504,
        "msg_type": "event",
        "event": None,
        "event_key": None,
        "ticket": None,
        "latitude": None,
        "longitude": None,
        "precision": None,
        "msg_id": None,
        "status": None,
        "menu_id": None,
        "scene": None,
    }
    return Message(**(fields | typed), raw={name: str(value) for name, value in raw.items()})


# --- every event of channels.md -------------------------------------------------------------------

EVENTS = {
    "subscribe_by_qr": (
        HEAD | {"Event": "subscribe", "EventKey": "qrscene_guide_0042", "Ticket": "gQFx8DwAAAAAAAAAAS5o"},
        {"event": "subscribe", "event_key": "qrscene_guide_0042", "ticket": "gQFx8DwAAAAAAAAAAS5o"}
        | {"scene": "guide_0042"},
    ),
    "subscribe_by_numeric_qr": (
        HEAD | {"Event": "subscribe", "EventKey": "qrscene_123123", "Ticket": "TICKET"},
        {"event": "subscribe", "event_key": "qrscene_123123", "ticket": "TICKET", "scene": "123123"},
    ),
    "subscribe_by_search": (
        HEAD | {"Event": "subscribe", "EventKey": ""},
        {"event": "subscribe"},
    ),
    "scan": (
        HEAD | {"Event": "SCAN", "EventKey": "guide_0042", "Ticket": "gQFx8DwAAAAAAAAAAS5o"},
        {"event": "scan", "event_key": "guide_0042", "ticket": "gQFx8DwAAAAAAAAAAS5o", "scene": "guide_0042"},
    ),
    "unsubscribe": (
        HEAD | {"Event": "unsubscribe", "EventKey": ""},
        {"event": "unsubscribe"},
    ),
    "location": (
        HEAD
        | {"Event": "LOCATION", "Latitude": "23.137466", "Longitude": "113.352425"}
        | {"Precision": "119.385040"},
        {"event": "location", "latitude": 23.137466, "longitude": 113.352425, "precision": 119.38504},
    ),
    "location_south_west": (
        HEAD | {"Event": "LOCATION", "Latitude": "-33.8688", "Longitude": "-70.6693", "Precision": "65"},
        {"event": "location", "latitude": -33.8688, "longitude": -70.6693, "precision": 65.0},
    ),
    "click": (
        HEAD | {"Event": "CLICK", "EventKey": "V1001_MEMBER_CARD"},
        {"event": "click", "event_key": "V1001_MEMBER_CARD"},
    ),
    "view": (
        HEAD
        | {"Event": "VIEW", "EventKey": "https://m.example.com/card?from=menu&x=1", "MenuId": "208396938"},
        {"event": "view", "event_key": "https://m.example.com/card?from=menu&x=1", "menu_id": "208396938"},
    ),
}
STATUSES = ("success", "failed:user block", "failed: system failed")


@pytest.mark.parametrize("name", list(EVENTS))
def test_each_event_parses_to_exact_fields(name: str) -> None:
    raw, typed = EVENTS[name]
    message = parse_message(xml_message(raw))
    assert message == expected(raw, **typed)
    assert message.created_at == datetime(2024, 4, 25, 9, 15, 4, tzinfo=UTC)
    # The same with escaped text instead of CDATA, as some senders write it.
    assert parse_message(xml_message(raw, use_cdata=False)) == expected(raw, **typed)


@pytest.mark.parametrize("status", STATUSES)
def test_template_send_job_finish_carries_each_status(status: str) -> None:
    raw = HEAD | {"Event": "TEMPLATESENDJOBFINISH", "MsgID": 200163836, "Status": status}
    assert parse_message(xml_message(raw)) == expected(
        raw, event="templatesendjobfinish", msg_id="200163836", status=status
    )


def test_an_ordinary_message_keeps_its_msg_id_and_every_field() -> None:
    raw = HEAD | {"MsgType": "text", "Content": "  两件 & 一件\n", "MsgId": "23637352235060880"}
    assert parse_message(xml_message(raw)) == expected(raw, msg_type="text", msg_id="23637352235060880")


def test_blanks_around_identifiers_are_formatting() -> None:
    body = (
        b"<xml>\n  <ToUserName> gh_0123456789ab </ToUserName>\n  <FromUserName>\n"
        + OPENID.encode()
        + b"\n</FromUserName>\n  <CreateTime> 1714036504 </CreateTime>\n"
        b"  <MsgType>Event</MsgType>\n  <Event> SCAN </Event>\n  <EventKey> 42 </EventKey>\n</xml>\n"
    )
    message = parse_message(body)
    assert (message.to_user, message.from_user, message.create_time) == (ACCOUNT, OPENID, 1714036504)
    assert (message.msg_type, message.event, message.event_key, message.scene) == (
        "event",
        "scan",
        "42",
        "42",
    )
    assert message.raw["EventKey"] == " 42 "


# --- malformed bodies -----------------------------------------------------------------------------

SUBSCRIBE = HEAD | {"Event": "subscribe"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"", "body", "the body is empty"),
        (b"  \n", "body", "the body is empty"),
        (b"<xml><ToUserName>a</ToUserName>", "body", None),
        (b"\xff\xfe<\x00x\x00", "body", None),
        (b'<?xml version="1.0" encoding="GBK"?><xml/>', "body", None),
        (b"<root><A>1</A></root>", "body", "expected <xml> without attributes or text around its fields"),
        (
            b'<xml id="1"><A>1</A></xml>',
            "body",
            "expected <xml> without attributes or text around its fields",
        ),
        (b"<xml>loose<A>1</A></xml>", "body", "expected <xml> without attributes or text around its fields"),
        (b"<xml><A>1</A>tail</xml>", "A", "field <A> must be a plain element holding only text"),
        (b"<xml><A><B>1</B></A></xml>", "A", "field <A> must be a plain element holding only text"),
        (b'<xml><A kind="x">1</A></xml>', "A", "field <A> must be a plain element holding only text"),
        (b'<xml xmlns:n="urn:x"><n:A>1</n:A></xml>', "{urn:x}A", None),
        (b"<xml><A>1</A><A>2</A></xml>", "A", "field <A> appears twice"),
    ],
)
def test_anything_but_a_flat_xml_is_refused(body: bytes, field: str, message: str | None) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_message(body)
    assert caught.value.field == field
    if message is not None:
        assert caught.value.message == message


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ToUserName": ""}, "ToUserName", "<ToUserName> is missing or empty"),
        ({"FromUserName": "  "}, "FromUserName", "<FromUserName> is missing or empty"),
        ({"MsgType": ""}, "MsgType", "<MsgType> is missing or empty"),
        ({"Event": ""}, "Event", "<Event> is missing or empty"),
        ({"CreateTime": "-1"}, "CreateTime", "<CreateTime> is '-1'; expected whole seconds"),
        (
            {"CreateTime": "17140365040"},
            "CreateTime",
            "<CreateTime> is '17140365040'; expected whole seconds",
        ),
        (
            {"CreateTime": "1714036504.5"},
            "CreateTime",
            "<CreateTime> is '1714036504.5'; expected whole seconds",
        ),
        ({"CreateTime": "١٧١٤٠٣٦٥٠٤"}, "CreateTime", "<CreateTime> is '١٧١٤٠٣٦٥٠٤'; expected whole seconds"),
        ({"Latitude": "nan"}, "Latitude", "<Latitude> is 'nan'; expected a decimal number within ±90"),
        ({"Latitude": "91"}, "Latitude", "<Latitude> is '91'; expected a decimal number within ±90"),
        ({"Longitude": "1e2"}, "Longitude", "<Longitude> is '1e2'; expected a decimal number within ±180"),
        ({"Longitude": "1_0"}, "Longitude", "<Longitude> is '1_0'; expected a decimal number within ±180"),
        ({"MsgId": "1", "MsgID": "2"}, "MsgId", "<MsgId> '1' and <MsgID> '2' disagree"),
    ],
)
def test_bad_fields_are_named(change: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_message(xml_message(SUBSCRIBE | change))
    assert (caught.value.field, caught.value.message) == (field, message)


def test_a_missing_field_is_named() -> None:
    without = {name: value for name, value in SUBSCRIBE.items() if name != "CreateTime"}
    with pytest.raises(BadMessage) as caught:
        parse_message(xml_message(without))
    assert caught.value.field == "CreateTime"


# --- hostile XML ----------------------------------------------------------------------------------

_WATCH: list[tuple[str, tuple[Any, ...]]] | None = None
_WATCHED = frozenset({"open", "urllib.Request", "socket.connect", "subprocess.Popen", "os.system", "os.exec"})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _WATCH is not None and event in _WATCHED:
        _WATCH.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only inside watching()


@contextmanager
def watching() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Every file opened, URL fetched, socket connected or program run meanwhile (audit events)."""
    global _WATCH
    seen: list[tuple[str, tuple[Any, ...]]] = []
    _WATCH = seen
    try:
        yield seen
    finally:
        _WATCH = None


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7f3a", encoding="utf-8")
    return path


_NO_DTD = ("body", "a DTD, entity or external reference is refused (DTDForbidden)")
_XINCLUDE = "{http://www.w3.org/2001/XInclude}include"
# Each hostile payload → the field and the message of its refusal. Every DTD is refused before any entity
# in it is looked at, so all of those say DTDForbidden; XInclude and nesting are refused as fields.
HOSTILE_REFUSALS: dict[str, tuple[str, str]] = {
    "external_entity_passwd": _NO_DTD,
    "external_entity_secret": _NO_DTD,
    "parameter_entity": _NO_DTD,
    "external_dtd": _NO_DTD,
    "billion_laughs": _NO_DTD,
    "quadratic_blowup": _NO_DTD,
    "internal_dtd": _NO_DTD,
    "xinclude": (_XINCLUDE, f"field <{_XINCLUDE}> must be a plain element holding only text"),
    "deep_nesting": ("a", "field <a> must be a plain element holding only text"),
    "oversize": ("body", f"the body is {MAX_BODY_BYTES + 1} bytes; at most {MAX_BODY_BYTES}"),
}


def test_every_hostile_payload_has_its_expected_refusal() -> None:
    assert sorted(HOSTILE_REFUSALS) == sorted(hostile_xml.hostile_payloads("/x"))


@pytest.mark.parametrize("name", list(hostile_xml.hostile_payloads("/x")))
def test_hostile_xml_is_refused_without_reading_anything(name: str, secret: Path) -> None:
    body = hostile_xml.hostile_payloads(str(secret))[name]
    with watching() as seen, pytest.raises(BadMessage) as caught:
        parse_message(body)
    assert seen == []
    assert "TOP-SECRET" not in str(caught.value) and "root:" not in str(caught.value)
    assert (caught.value.field, caught.value.message) == HOSTILE_REFUSALS[name]


def test_a_body_of_exactly_the_limit_is_read() -> None:
    valid = xml_message(SUBSCRIBE)
    body = valid[:-6] + b"<!--" + b"x" * (MAX_BODY_BYTES - len(valid) - 7) + b"--></xml>"
    assert len(body) == MAX_BODY_BYTES
    assert parse_message(body).event == "subscribe"


@pytest.mark.parametrize("name", ["external_entity_secret", "billion_laughs"])
def test_hostile_xml_with_a_valid_signature_is_still_refused(name: str, secret: Path) -> None:
    body = hostile_xml.hostile_payloads(str(secret))[name]
    with watching() as seen, pytest.raises(BadMessage):
        unwrap(signed_params(), body, token=TOKEN)
    params, sealed = safe_request(WeChatScheme(KEY_CURRENT), body)
    with watching() as seen_too, pytest.raises(BadMessage):
        unwrap(params, sealed, token=TOKEN, cipher=SafeModeCipher([KEY_CURRENT], APPID))
    assert seen == seen_too == []


def test_the_audit_watch_does_see_a_read(secret: Path) -> None:
    """The watch is not blind: reading the file inside it is recorded."""
    with watching() as seen:
        secret.read_text(encoding="utf-8")
    assert [event for event, args in seen if event == "open" and str(args[0]) == str(secret)] == ["open"]
