"""The WeChat server callback: signatures, safe mode (against an independent implementation), key
rotation, replies and deduplication of WeChat's retries. Parsing and hostile XML: test_wechat_callback_xml.py.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datong.channels.wechat.callback import (
    SUBSCRIBE,
    BadMessage,
    BadSignature,
    CallbackError,
    DecryptError,
    SafeModeCipher,
    check_signature,
    dedupe_key,
    encrypted_reply,
    is_safe_mode,
    msg_signature,
    parse_message,
    unwrap,
    verify_url,
)
from datong.core.errors import ConfigurationError
from tests.channels.wechat_safe_mode import (
    ACCOUNT,
    APPID,
    KEY_CURRENT,
    KEY_PREVIOUS,
    TOKEN,
    WeChatScheme,
    pkcs7_32,
    safe_request,
    sha1_signature,
    signed_params,
    xml_message,
)

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
SUBSCRIBE_FIELDS: dict[str, str | int] = {
    "ToUserName": ACCOUNT,
    "FromUserName": OPENID,
    "CreateTime": 1714036504,
    "MsgType": "event",
    "Event": "subscribe",
    "EventKey": "qrscene_guide_0042",
    "Ticket": "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUw==",
}
SUBSCRIBE_XML = xml_message(SUBSCRIBE_FIELDS)


def cipher(*keys: str, appid: str = APPID) -> SafeModeCipher:
    return SafeModeCipher(list(keys) or [KEY_CURRENT], appid)


# --- signatures -----------------------------------------------------------------------------------


def test_the_signature_example_of_channels_md() -> None:
    good = "f464b24fc39322e44b38aa78f5edd27bd1441696"
    assert check_signature("AAAAA", "1714036504", "1514711492", good) is True
    assert check_signature("AAAAA", "1714036504", "1514711492", good.upper()) is True
    assert check_signature("AAAAA", "1714036504", "1514711493", good) is False
    assert check_signature("AAAAB", "1714036504", "1514711492", good) is False
    assert check_signature("AAAAA", "1714036504", "1514711492", good[:-1]) is False
    assert check_signature("AAAAA", "1714036504", "1514711492", "签名") is False


def test_url_check_answers_echostr_as_is() -> None:
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "7390417329374836501",
    }
    assert verify_url(params, "AAAAA") == "7390417329374836501"


@pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce"])
def test_url_check_without_a_signed_part_is_refused(missing: str) -> None:
    params = signed_params() | {"echostr": "e"}
    del params[missing]
    with pytest.raises(BadSignature) as caught:
        verify_url(params, TOKEN)
    assert (caught.value.field, caught.value.message) == (
        missing,
        f"the query parameter {missing} is missing",
    )


def test_url_check_with_a_wrong_signature_or_token_is_refused() -> None:
    params = signed_params() | {"echostr": "e"}
    with pytest.raises(BadSignature) as caught:
        verify_url(params | {"signature": "0" * 40}, TOKEN)
    assert caught.value.field == "signature"
    with pytest.raises(BadSignature):
        verify_url(params, "AAAAB")
    with pytest.raises(BadMessage) as missing:
        verify_url(signed_params(), TOKEN)
    assert missing.value.field == "echostr"
    with pytest.raises(ConfigurationError) as empty:
        verify_url(params, "")
    assert empty.value.field == "token"


def test_msg_signature_is_sha1_of_the_four_sorted_strings() -> None:
    expected = sha1_signature("AAAAA", "1714036504", "1514711492", "c2VjcmV0")
    assert msg_signature("AAAAA", "1714036504", "1514711492", "c2VjcmV0") == expected
    # printf '%s' 15147114921714036504AAAAAc2VjcmV0 | sha1sum
    assert expected == "10179365485d2d31040fafa1bfe8337c16338bd7"


def test_plain_mode_post_is_signed_then_parsed() -> None:
    message = unwrap(signed_params(), SUBSCRIBE_XML, token=TOKEN)
    assert (message.event, message.scene, message.from_user) == (SUBSCRIBE, "guide_0042", OPENID)
    assert is_safe_mode(signed_params()) is False
    with pytest.raises(BadSignature) as caught:
        unwrap(signed_params() | {"signature": sha1_signature("x")}, SUBSCRIBE_XML, token=TOKEN)
    assert caught.value.field == "signature"
    with pytest.raises(BadMessage) as unknown:
        unwrap(signed_params() | {"encrypt_type": "sm4"}, SUBSCRIBE_XML, token=TOKEN)
    assert unknown.value.field == "encrypt_type"


def test_an_unsigned_body_is_never_parsed() -> None:
    with pytest.raises(BadSignature):
        unwrap({"timestamp": "1", "nonce": "2"}, b"not even xml", token=TOKEN)


# --- safe mode against the independent implementation ---------------------------------------------


def test_safe_mode_message_from_wechat_opens() -> None:
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML)
    assert is_safe_mode(params) is True
    message = unwrap(params, body, token=TOKEN, cipher=cipher())
    assert message == parse_message(SUBSCRIBE_XML)
    assert (message.to_user, message.create_time, message.ticket) == (
        ACCOUNT,
        1714036504,
        SUBSCRIBE_FIELDS["Ticket"],
    )


def test_compatible_mode_trusts_only_the_ciphertext() -> None:
    forged = SUBSCRIBE_FIELDS | {"FromUserName": "oSomeoneElse", "EventKey": "qrscene_forged"}
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML, plaintext_too=forged)
    message = unwrap(params, body, token=TOKEN, cipher=cipher())
    assert (message.from_user, message.scene) == (OPENID, "guide_0042")
    # The same body without encrypt_type=aes is read as plain: Encrypt is one more field.
    plain = unwrap(signed_params(), body, token=TOKEN, cipher=cipher())
    assert (plain.from_user, plain.scene) == ("oSomeoneElse", "forged")
    assert plain.raw["Encrypt"] == ET.fromstring(body).findtext("Encrypt")


def test_datong_ciphertext_is_wechats_byte_for_byte() -> None:
    random16 = bytes(range(16))
    ours = cipher().encrypt(SUBSCRIBE_XML, random16=random16)
    assert ours == WeChatScheme(KEY_CURRENT).encrypt(SUBSCRIBE_XML, random16)
    assert WeChatScheme(KEY_CURRENT).decrypt(ours) == (random16, SUBSCRIBE_XML)
    assert len(base64.b64decode(ours)) % 32 == 0


def test_the_previous_key_still_opens_after_a_rotation() -> None:
    rotated = cipher(KEY_CURRENT, KEY_PREVIOUS)
    for key in (KEY_CURRENT, KEY_PREVIOUS):
        params, body = safe_request(WeChatScheme(key), SUBSCRIBE_XML)
        assert unwrap(params, body, token=TOKEN, cipher=rotated) == parse_message(SUBSCRIBE_XML)
    # Replies use the current key only.
    reply = rotated.encrypt(b"<xml/>", random16=b"R" * 16)
    assert WeChatScheme(KEY_CURRENT).decrypt(reply) == (b"R" * 16, b"<xml/>")
    with pytest.raises(AssertionError):
        WeChatScheme(KEY_PREVIOUS).decrypt(reply)
    # Once the previous key is dropped, its messages no longer open.
    params, body = safe_request(WeChatScheme(KEY_PREVIOUS), SUBSCRIBE_XML)
    with pytest.raises(DecryptError) as caught:
        unwrap(params, body, token=TOKEN, cipher=cipher(KEY_CURRENT))
    assert caught.value.field == "Encrypt"
    assert caught.value.message.startswith("no EncodingAESKey opens Encrypt (current key: ")


def test_another_accounts_appid_is_refused() -> None:
    encrypt = WeChatScheme(KEY_CURRENT, appid="wx0000000000000000").encrypt(SUBSCRIBE_XML)
    with pytest.raises(DecryptError) as caught:
        cipher(KEY_CURRENT, KEY_PREVIOUS).decrypt(encrypt)
    assert re.fullmatch(
        r"no EncodingAESKey opens Encrypt \(current key: another appid; previous key: .+\)",
        caught.value.message,
    )


def test_tampered_ciphertext_is_refused() -> None:
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML)
    encrypt = ET.fromstring(body).findtext("Encrypt") or ""
    sealed = bytearray(base64.b64decode(encrypt))
    sealed[-1] ^= 0x01  # the last block decrypts to noise: its padding no longer holds
    tampered = base64.b64encode(bytes(sealed)).decode()
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(tampered)
    assert caught.value.message == "no EncodingAESKey opens Encrypt (current key: bad padding)"
    # Through the callback the signature already fails: nothing is decrypted.
    with pytest.raises(BadSignature) as signed:
        unwrap(params, body.replace(encrypt.encode(), tampered.encode()), token=TOKEN, cipher=cipher())
    assert signed.value.field == "msg_signature"


def disagreeing_counts(data: bytes) -> bytes:
    """PKCS#7 to 32 whose first padding byte is not the count (SUBSCRIBE_XML needs more than one)."""
    padded = bytearray(pkcs7_32(data))
    assert padded[-1] >= 2
    padded[-padded[-1]] ^= 0xFF
    return bytes(padded)


@pytest.mark.parametrize(
    ("pad", "reason"),
    [
        (lambda data: data + b"\x00" * (32 - len(data) % 32), "bad padding"),  # a zero count
        (lambda data: pkcs7_32(data)[:-1] + b"\x21", "bad padding"),  # 33: past one block
        (disagreeing_counts, "bad padding"),
    ],
    ids=["zero", "over-32", "inconsistent"],
)
def test_bad_padding_is_refused(pad: Callable[[bytes], bytes], reason: str) -> None:
    encrypt = WeChatScheme(KEY_CURRENT).encrypt(SUBSCRIBE_XML, pad=pad)
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(encrypt)
    assert caught.value.message == f"no EncodingAESKey opens Encrypt (current key: {reason})"


def test_padding_to_16_bytes_is_not_wechats_32() -> None:
    def pkcs7_16(data: bytes) -> bytes:
        count = 16 - len(data) % 16
        return data + bytes([count]) * count

    xml = b"<xml/>"  # 20 + 6 + 18 (the appid) = 44 bytes: one 16-byte block of padding makes 48
    encrypt = WeChatScheme(KEY_CURRENT).encrypt(xml, pad=pkcs7_16)
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(encrypt)
    assert caught.value.message == "Encrypt holds 48 bytes; expected a non-zero multiple of 32"


@pytest.mark.parametrize("text", ["not base64!", "", "QUJD"])
def test_ciphertext_that_is_not_blocks_of_base64_is_refused(text: str) -> None:
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(text)
    assert caught.value.field == "Encrypt"


def test_a_length_field_past_the_end_is_refused() -> None:
    encrypt = WeChatScheme(KEY_CURRENT).encrypt(SUBSCRIBE_XML, length=len(SUBSCRIBE_XML) + 100)
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(encrypt)
    assert caught.value.message == (
        f"no EncodingAESKey opens Encrypt (current key: length field {len(SUBSCRIBE_XML) + 100} "
        "runs past the end)"
    )


def test_a_plaintext_shorter_than_its_header_is_refused() -> None:
    encrypt = WeChatScheme(KEY_CURRENT).encrypt(b"", pad=lambda data: data[:16] + b"\x10" * 16)
    with pytest.raises(DecryptError) as caught:
        cipher().decrypt(encrypt)
    assert caught.value.message == "no EncodingAESKey opens Encrypt (current key: too short)"


def test_a_wrong_or_missing_msg_signature_is_refused() -> None:
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML)
    for wrong in (params | {"msg_signature": params["signature"]}, params | {"msg_signature": ""}):
        with pytest.raises(BadSignature) as caught:
            unwrap(wrong, body, token=TOKEN, cipher=cipher())
        assert caught.value.field == "msg_signature"
    # A right msg_signature under another token is still wrong.
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML, token="BBBBB")
    with pytest.raises(BadSignature):
        unwrap(params | {"signature": signed_params()["signature"]}, body, token=TOKEN, cipher=cipher())


def test_safe_mode_without_a_configured_key_or_encrypt_is_refused() -> None:
    params, body = safe_request(WeChatScheme(KEY_CURRENT), SUBSCRIBE_XML)
    with pytest.raises(DecryptError) as caught:
        unwrap(params, body, token=TOKEN, cipher=None)
    assert caught.value.message == "a safe-mode message came but no EncodingAESKey is configured"
    with pytest.raises(BadMessage) as empty:
        unwrap(params, xml_message({"ToUserName": ACCOUNT}), token=TOKEN, cipher=cipher())
    assert empty.value.field == "Encrypt"


@pytest.mark.parametrize(
    ("keys", "field", "message"),
    [
        (
            [KEY_CURRENT[:-1]],
            "encoding_aes_keys[0]",
            "the current EncodingAESKey must be 43 letters and digits as the WeChat console shows it; "
            "got 42 characters",
        ),
        (
            [KEY_CURRENT, KEY_PREVIOUS + "="],
            "encoding_aes_keys[1]",
            "the previous EncodingAESKey must be 43 letters and digits as the WeChat console shows it; "
            "got 44 characters",
        ),
        (
            ["密" * 43],
            "encoding_aes_keys[0]",
            "the current EncodingAESKey must be 43 letters and digits as the WeChat console shows it; "
            "got 43 characters, not all ASCII",
        ),
        (KEY_CURRENT, "encoding_aes_keys", None),
        ([], "encoding_aes_keys", "EncodingAESKey: no key is configured"),
    ],
    ids=["short", "previous-long", "non-ascii", "one-string", "none"],
)
def test_bad_keys_are_refused_at_construction(keys: list[str] | str, field: str, message: str | None) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SafeModeCipher(keys, APPID)
    assert caught.value.field == field
    if message is not None:
        assert caught.value.message == message


def test_an_empty_appid_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SafeModeCipher([KEY_CURRENT], " ")
    assert caught.value.field == "appid"


def test_encrypted_reply_opens_at_wechat() -> None:
    reply_xml = xml_message(
        {"ToUserName": OPENID, "FromUserName": ACCOUNT, "MsgType": "text", "Content": "欢迎"}
    )
    reply = encrypted_reply(reply_xml, token=TOKEN, cipher=cipher(), timestamp="1714036600", nonce="n&<1")
    root = ET.fromstring(reply)
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    encrypt = root.findtext("Encrypt") or ""
    assert root.findtext("MsgSignature") == sha1_signature(TOKEN, "1714036600", "n&<1", encrypt)
    assert (root.findtext("TimeStamp"), root.findtext("Nonce")) == ("1714036600", "n&<1")
    assert WeChatScheme(KEY_CURRENT).decrypt(encrypt)[1] == reply_xml
    with pytest.raises(ValueError):
        encrypted_reply(reply_xml, token=TOKEN, cipher=cipher(), timestamp="soon", nonce="1")


def test_callback_errors_share_one_base() -> None:
    assert issubclass(BadSignature, CallbackError) and issubclass(BadMessage, CallbackError)
    assert issubclass(DecryptError, CallbackError)
    assert (BadSignature("x").code, BadMessage("x").code, DecryptError("x").code) == (
        "unauthenticated",
        "invalid",
        "invalid",
    )


# --- property: anything WeChat encrypts, datong opens; anything datong encrypts, WeChat opens -------

_APPIDS = st.from_regex(r"wx[0-9a-f]{16}", fullmatch=True)
_KEYS = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()[:43])


@settings(max_examples=150, deadline=None)
@given(xml=st.binary(max_size=3000), random16=st.binary(min_size=16, max_size=16), appid=_APPIDS, key=_KEYS)
def test_any_payload_round_trips_both_ways(xml: bytes, random16: bytes, appid: str, key: str) -> None:
    ours, theirs = SafeModeCipher([key], appid), WeChatScheme(key, appid)
    assert ours.decrypt(theirs.encrypt(xml, random16)) == xml
    assert theirs.decrypt(ours.encrypt(xml, random16=random16)) == (random16, xml)


_XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn"), whitelist_characters="\t\n"), max_size=200
)
_TYPED = {"ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "MsgId", "MsgID"}
_TYPED |= {"Latitude", "Longitude", "Precision"}
_EXTRA = st.dictionaries(
    st.from_regex(r"[A-Z][A-Za-z0-9_]{0,15}", fullmatch=True).filter(lambda name: name not in _TYPED),
    _XML_TEXT,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(extra=_EXTRA, use_cdata=st.booleans(), random16=st.binary(min_size=16, max_size=16))
def test_any_xml_message_round_trips_through_the_callback(
    extra: dict[str, str], use_cdata: bool, random16: bytes
) -> None:
    fields = {"ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": "1714036504", "MsgType": "text"}
    fields |= {"MsgId": "23637352235060880"} | extra
    xml = xml_message(fields, use_cdata=use_cdata)
    params, body = safe_request(WeChatScheme(KEY_CURRENT), xml, random16=random16)
    message = unwrap(params, body, token=TOKEN, cipher=cipher(KEY_PREVIOUS, KEY_CURRENT))
    assert message.raw == fields
    assert message == parse_message(xml)


# --- WeChat's retries ------------------------------------------------------------------------------


def test_retries_of_one_push_collapse_to_one_key() -> None:
    scheme = WeChatScheme(KEY_CURRENT)
    tries = [
        safe_request(scheme, SUBSCRIBE_XML, random16=bytes([n]) * 16, timestamp=f"171403650{n}", nonce=f"{n}")
        for n in range(3)
    ]
    keys = {dedupe_key(unwrap(params, body, token=TOKEN, cipher=cipher())) for params, body in tries}
    assert keys == {dedupe_key(parse_message(SUBSCRIBE_XML))}
    (key,) = keys
    assert re.fullmatch(r"event:[0-9a-f]{64}", key)


def test_different_pushes_keep_different_keys() -> None:
    base = {"ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": 1714036504, "MsgType": "event"}
    location = base | {"Event": "LOCATION", "Latitude": "23.137466", "Longitude": "113.352425"}
    click = base | {"Event": "CLICK", "EventKey": "V1001_TODAY_MUSIC"}
    done_a = base | {"Event": "TEMPLATESENDJOBFINISH", "MsgID": "200163836", "Status": "success"}
    done_b = done_a | {"MsgID": "200163840"}
    other_user = click | {"FromUserName": "oOther"}
    next_second = click | {"CreateTime": 1714036505}
    pushes = [location, click, done_a, done_b, other_user, next_second]
    keys = [dedupe_key(parse_message(xml_message(push))) for push in pushes]
    assert len(set(keys)) == len(pushes)


def test_ordinary_messages_are_deduplicated_by_msg_id() -> None:
    text = {"ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": 1714036504, "MsgType": "text"}
    first = parse_message(xml_message(text | {"Content": "你好", "MsgId": "23637352235060880"}))
    again = parse_message(xml_message(text | {"Content": "你好", "MsgId": "23637352235060880"}))
    second = parse_message(xml_message(text | {"Content": "你好", "MsgId": "23637352235060881"}))
    assert dedupe_key(first) == dedupe_key(again) != dedupe_key(second)
    assert dedupe_key(first).startswith("msg:")
