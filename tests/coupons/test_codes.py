"""Coupon codes: random, read leniently, and a check character that catches typing mistakes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datong.coupons.codes import ALPHABET, BODY_LENGTH, BadCode, display_code, new_code, normalize_code


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
