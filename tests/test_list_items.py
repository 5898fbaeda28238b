"""The comma lists microweb reads itself (Connection, Content-Encoding, Transfer-Encoding):
the same answers as the item-by-item reading they replaced, at a cost in C (review359)."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from drive import python_calls
from hypothesis import given, settings
from hypothesis import strategies as st

from microweb._framing import UNSUPPORTED_CODING, CodingRefusal, transfer_coding_refusal
from microweb._parsing import is_coded, list_items, names_option

# -- the readings before review359 (66e71b2e), item by item in Python ------------------------


def old_is_coded(content_encoding: str | None) -> bool:
    if not content_encoding:
        return False
    return any(
        coding.strip(" \t").lower() not in ("", "identity")
        for coding in content_encoding.split(",")
    )


def old_names_option(connection: str | None, option: str) -> bool:
    if connection is None:
        return False
    return any(token.strip(" \t").lower() == option for token in connection.split(","))


def old_transfer_coding_refusal(values: list[str], length: bool = False) -> CodingRefusal | None:
    named: list[str] = []
    blank_line = False
    for value in values:
        line = [coding for coding in (c.strip(" \t").lower() for c in value.split(",")) if coding]
        blank_line = blank_line or not line
        named += line
    if blank_line:
        return CodingRefusal(400, "Transfer-Encoding line without a coding")
    if named[-1:] != ["chunked"]:
        return CodingRefusal(400, "Transfer-Encoding without chunked last")
    if length:
        return CodingRefusal(400, "Transfer-Encoding with Content-Length")
    if named.count("chunked") > 1:
        return CodingRefusal(400, "Transfer-Encoding names chunked more than once")
    if len(named) > 1:
        return CodingRefusal(501, UNSUPPORTED_CODING)
    return None


# NOTE: items that the options are made of, in both cases, with what strip(" \t") leaves
# (other spaces), what lower() turns into ASCII (the Kelvin sign) or into two characters.
PIECES = st.sampled_from(
    [
        "close", "CLOSE", "Close", "keep-alive", "upgrade", "identity", "IDENTITY", "chunked",
        "Chunked", "gzip", "clo", "se", "x", ",", ",", ",", " ", " ", "  ", "\t", "\t ",
        '"', "\x0b", "\xa0", "\u212a", "\u0130", "\u03a3", "=", ";",
    ]
)  # fmt: skip
LISTS = st.lists(PIECES, max_size=12).map("".join)
OPTIONS = st.sampled_from(["close", "keep-alive", "upgrade", "chunked"])


@settings(max_examples=1_500, deadline=None, database=None)
@given(LISTS, OPTIONS)
def test_names_option_answers_as_the_item_by_item_reading(value: str, option: str) -> None:
    assert names_option(value, option) == old_names_option(value, option)


@settings(max_examples=1_500, deadline=None, database=None)
@given(LISTS)
def test_is_coded_answers_as_the_item_by_item_reading(value: str) -> None:
    assert is_coded(value) == old_is_coded(value)


@settings(max_examples=1_500, deadline=None, database=None)
@given(st.lists(LISTS, min_size=1, max_size=3), st.booleans())
def test_transfer_coding_refusal_answers_as_the_item_by_item_reading(
    values: list[str], length: bool
) -> None:
    assert transfer_coding_refusal(values, length) == old_transfer_coding_refusal(values, length)


@settings(max_examples=500, deadline=None, database=None)
@given(st.text(st.characters(max_codepoint=0x3FF), max_size=16), OPTIONS)
def test_the_readings_agree_on_any_text(value: str, option: str) -> None:
    assert names_option(value, option) == old_names_option(value, option)
    assert is_coded(value) == old_is_coded(value)
    assert transfer_coding_refusal([value]) == old_transfer_coding_refusal([value])


def test_list_items_fences_each_item_stripped() -> None:
    assert list_items(" A ,b\t\tc,") == ",a,b  c,,"
    assert list_items("b\t\tc") == ",b  c,"
    assert list_items("b\t\tc , " * 65) == ",b c" * 65 + ",,"
    assert list_items("close") == ",close,"
    assert list_items(" " * 1000 + "Close" + "\t" * 999) == ",close,"


# NOTE: 256 KiB values, what Waitress and httptools let through in a head: each item was a
# Python step (a generator resumed), about 12 ms of CPU each.
HOSTILE = {
    "commas": "," * 262_144,
    "commas-then-the-option": "," * 262_144 + "close",
    "spaced-commas": " ,\t" * 87_381 + " chunked",
    "short-items": "".join(f"a{i}," for i in range(40_000)) + "identity",
    "near-misses": "xclose, identityx,chunked x," * 10_000,
    "identities": "identity," * 29_000,
    "long-spaces": "close" + " " * 200_000 + "x,chunked",
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=list(HOSTILE))
def test_a_long_list_is_read_with_no_python_call_per_item(value: str) -> None:
    assert python_calls(names_option, value, "close") <= 1
    assert python_calls(is_coded, value) <= 1
    assert python_calls(transfer_coding_refusal, [value], False) <= 10
    assert names_option(value, "close") == old_names_option(value, "close")
    assert is_coded(value) == old_is_coded(value)
    assert transfer_coding_refusal([value]) == old_transfer_coding_refusal([value])


@pytest.mark.parametrize(
    "values",
    [
        ["chunked, gzip", "chunked"],
        ["chunked,chunked"],
        ["gzip,chunked ,\tChunked"],
        ["chunked", ""],
        [",,", "chunked"],
        ["gzip", "chunked,,"],
        ["chunked x", "chunked"],
        ["identity,identity,identity,chunked"],
    ],
)
def test_transfer_coding_refusal_on_the_lists_that_share_fences(values: list[str]) -> None:
    assert transfer_coding_refusal(values) == old_transfer_coding_refusal(values)
    assert is_coded(values[0]) == old_is_coded(values[0])


@settings(max_examples=1_000, deadline=None, database=None)
@given(LISTS, OPTIONS)
def test_the_reading_for_many_spaced_commas_answers_as_the_one_for_few(
    value: str, option: str
) -> None:
    few = (names_option(value, option), is_coded(value), transfer_coding_refusal([value]))
    with patch("microweb._parsing._FEW_SPACED_COMMAS", -1):
        many = (names_option(value, option), is_coded(value), transfer_coding_refusal([value]))
    assert (
        many
        == few
        == (
            old_names_option(value, option),
            old_is_coded(value),
            old_transfer_coding_refusal([value]),
        )
    )
