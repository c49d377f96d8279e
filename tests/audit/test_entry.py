"""An entry's seal and line, as the log writes them (`sealed_line`, one encoding), are the
ones its definition gives (entry.py's docstring): the hash is SHA-256 over the canonical
JSON of the entry without `hash`, and the line is the canonical JSON of the sealed entry.
`runestone audit verify` checks the definition, so any difference would be a broken chain."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions.canonical import canonical_json
from runestone.audit import entry
from runestone.audit.entry import encode, entry_hash, seal, sealed_line
from runestone.digest import sha256

# Keys that sort just around "hash" (and "hash" itself, which sealing replaces), beside any.
KEYS = st.one_of(st.sampled_from(["hash", "has", "hasg", "hasi", "hash0", "hash ", "h", "i",
                                  "", "Z", "~", "é", "\U0001f600", "seq", "prev"]),
                 st.text(max_size=8))
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12)


def by_definition(entry: dict, seq: int, prev: str) -> tuple[dict, bytes]:
    body = {k: v for k, v in entry.items() if k != "hash"}
    body["seq"], body["prev"] = seq, prev
    sealed = {**body, "hash": sha256(canonical_json(body)).hexdigest()}
    return sealed, canonical_json(sealed) + b"\n"


@settings(max_examples=400)
@given(entry=st.dictionaries(KEYS, VALUES, max_size=8), seq=st.integers(1, 10**12),
       prev=st.text(min_size=1, max_size=70))
def test_the_line_written_is_the_entry_its_definition_gives(entry, seq, prev):
    sealed, line = sealed_line(entry, seq=seq, prev=prev)
    assert (sealed, line) == by_definition(entry, seq, prev)
    assert sealed["hash"] == entry_hash(sealed)
    assert seal(entry, seq=seq, prev=prev) == sealed and encode(sealed) == line


def test_an_entry_of_nothing_but_its_place():
    sealed, line = sealed_line({}, seq=1, prev="p")
    assert line == canonical_json(sealed) + b"\n"
    assert line.startswith(b'{"hash":"') and line.endswith(b',"prev":"p","seq":1}\n')


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800 * 10**9), min_size=1,
                max_size=20))
def test_each_time_is_written_as_its_own_instant(instants):
    """The text of a second is remembered between calls: each call must still write the
    instant it was made at, whether the clock moved on, stood still or went back."""
    ordered = sorted(instants)
    within_a_second = [ordered[0] + step for step in (0, 1, 999_999_999)]
    for sequence in (instants, ordered, within_a_second, [*ordered, *reversed(ordered)]):
        for instant in sequence:
            with patch.object(entry.time, "time_ns", return_value=instant):
                written = entry.now_rfc3339()
            moment = datetime.fromtimestamp(instant // 10**9, UTC)
            expected = (moment.strftime("%Y-%m-%dT%H:%M:%S")
                        + f".{instant % 10**9 // 1000:06d}Z")
            assert written == expected
