"""Coupon codes: random, read leniently, and a check character that catches typing mistakes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datong.coupons.codes import (
    ALPHABET,
    BODY_LENGTH,
    DYNAMIC_STEP_SECONDS,
    BadCode,
    display_code,
    dynamic_payload,
    new_code,
    normalize_code,
    read_dynamic,
)


def _valid(code: str) -> bool:
    try:
        normalize_code(code)
    except BadCode:
        return False
    return True


def _complete(body: str) -> str:
    """The body with the one check character that makes it a code."""
    (code,) = [body + char for char in ALPHABET if _valid(body + char)]
    return code


codes = st.text(alphabet=ALPHABET, min_size=BODY_LENGTH, max_size=BODY_LENGTH).map(_complete)


def test_a_new_code_is_valid_and_reads_back_however_it_is_typed() -> None:
    code = new_code()
    assert len(code) == BODY_LENGTH + 1 and set(code) <= set(ALPHABET)
    assert normalize_code(code) == code
    assert normalize_code(f" {display_code(code).lower()} ") == code
    assert display_code(code).count("-") == 3


def test_look_alike_letters_are_read_as_digits() -> None:
    valid = _complete("0123456789AB")
    typed = valid.replace("0", "O").replace("1", "l")
    assert normalize_code(typed) == valid


@given(codes, st.integers(0, BODY_LENGTH), st.sampled_from(ALPHABET))
def test_any_one_mistyped_character_is_caught(code: str, position: int, char: str) -> None:
    if code[position] == char:
        return
    wrong = code[:position] + char + code[position + 1 :]
    with pytest.raises(BadCode, match="a character is wrong or two are swapped"):
        normalize_code(wrong)


@given(codes, st.integers(0, BODY_LENGTH - 1))
def test_any_swap_of_neighbours_is_caught_but_zero_with_z(code: str, position: int) -> None:
    a, b = code[position], code[position + 1]
    swapped = code[:position] + b + a + code[position + 2 :]
    if a == b or {a, b} == {"0", "Z"}:
        return
    with pytest.raises(BadCode):
        normalize_code(swapped)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [("", "13 characters"), ("ABCD-EFGH-JKMN", "13 characters"), ("ABCDEFGHJKMNU", "without I, L, O and U")],
)
def test_what_is_not_a_code_says_why(typed: str, reason: str) -> None:
    with pytest.raises(BadCode, match=reason):
        normalize_code(typed)


def test_a_dynamic_code_works_for_a_minute_and_only_with_the_brands_key() -> None:
    import hashlib
    import hmac

    def sign_with(key: bytes) -> Callable[[str], str]:
        return lambda text: hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    coupon_id, brand = "cpn_01jd4k9m2x7q8r5t6v3w0y1z2a", sign_with(b"brand key")
    shown_at = 1_800_000_000.0
    payload = dynamic_payload(coupon_id, at_epoch=shown_at, sign=brand)
    window = int(shown_at // DYNAMIC_STEP_SECONDS)
    assert payload == f"{coupon_id}.{window}.{brand(f'{coupon_id}.{window}')[:16]}"  # the id, not a code
    assert read_dynamic(payload, at_epoch=shown_at + 30, sign=brand) == coupon_id
    assert read_dynamic(payload, at_epoch=shown_at + DYNAMIC_STEP_SECONDS, sign=brand) == coupon_id  # skew
    with pytest.raises(BadCode, match="expired"):
        read_dynamic(payload, at_epoch=shown_at + 2 * DYNAMIC_STEP_SECONDS, sign=brand)
    with pytest.raises(BadCode, match="not a coupon's dynamic code"):
        read_dynamic(payload, at_epoch=shown_at, sign=sign_with(b"another brand"))
    forged = payload.replace(f".{int(shown_at // DYNAMIC_STEP_SECONDS)}.", f".{int(shown_at // 60) + 5}.")
    with pytest.raises(BadCode, match="not a coupon's dynamic code"):
        read_dynamic(forged, at_epoch=shown_at + 300, sign=brand)
