"""The one reader of whole numbers people and clients type (forms, query strings,
Content-Length): any text gives a number in bounds or None, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runestone.whole_numbers import whole_number


@given(st.one_of(st.text(), st.integers().map(str), st.from_regex(r"\A0*[0-9]{1,14}\Z"),
                 st.sampled_from(["²", "٣", "1_0", "+5"])),
       st.integers(0, 10), st.integers(0, 10**12))
def test_any_text_is_a_number_in_bounds_or_none(text, low, span):
    high = low + span
    value = whole_number(text, low, high)
    plain = text.strip()
    if plain.isascii() and plain.isdigit() and low <= int(plain) <= high:
        assert value == int(plain)
    else:
        assert value is None


def test_what_int_would_take_but_a_person_did_not_type_as_a_number_is_refused():
    for text in ("²", "٣", "1_000", "+5", "-5", " ", "", None, "9" * 5000):
        assert whole_number(text, 0, 10**6) is None
    assert whole_number(" 42 ", 0, 100) == 42
    assert whole_number("0000042", 0, 100) == 42
