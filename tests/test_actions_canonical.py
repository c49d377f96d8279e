"""The action hash: canonical JSON, equal actions hash equally on every machine."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runestone.actions import Action, ActionError, canonical_json, parse_action_json
from runestone.actions.canonical import CanonicalJSONError, loads_finite

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def test_canonical_form_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_known_hash_is_stable_across_machines():
    action = Action("Bash", {"command": "ls"}, "/home/dev/app")
    # Pinned: the identity of this action must never change between versions or machines.
    assert action.canonical() == (
        b'{"agent":"","cwd":"/home/dev/app","input":{"command":"ls"},'
        b'"session":"","tool":"Bash","user":""}'
    )
    assert action.hash == "38c2fe97dd6e4ac5ca90c0297bbefee3eda658088c1ec75e95a852bef3668451"


@given(json_values)
def test_key_order_never_changes_the_hash(value):
    data = {"input": value}
    shuffled = json.loads(json.dumps(data))
    assert canonical_json(data) == canonical_json(shuffled)
    a = Action("T", {"x": value, "y": 1}, "/")
    b = Action("T", dict(reversed(list({"x": value, "y": 1}.items()))), "/")
    assert a.hash == b.hash


def test_context_is_not_part_of_the_hash():
    a = Action("Bash", {"command": "ls"}, "/", context={"purpose": "list"})
    b = Action("Bash", {"command": "ls"}, "/", context={"purpose": "something else"})
    assert a.hash == b.hash
    assert a.hash != Action("Bash", {"command": "ls -a"}, "/").hash


@pytest.mark.parametrize("text,needle", [
    ("{", "malformed JSON"),
    ("[]", "expected a JSON object"),
    ('{"tool_input": {}}', "tool_name"),
    ('{"tool_name": "Bash", "tool_input": "ls"}', "tool_input"),
    ('{"tool_name": "", "tool_input": {}}', "tool_name"),
    ('{"tool_name": "Bash", "tool_input": {}, "cwd": 3}', "cwd"),
])
def test_malformed_input_is_an_action_error(text, needle):
    with pytest.raises(ActionError, match=needle):
        parse_action_json(text)


@given(json_values | st.floats(allow_nan=False, allow_infinity=False))
def test_the_encoder_built_once_writes_what_json_writes(value):
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    assert canonical_json(value) == expected


def test_a_value_holding_itself_or_nested_past_the_limit_is_refused():
    holding_itself: dict = {"a": []}
    holding_itself["a"].append(holding_itself)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for value in (holding_itself, deep):
        with pytest.raises(CanonicalJSONError, match="nested too deep"):
            canonical_json(value)
    assert canonical_json({"after": "the refusals"}) == b'{"after":"the refusals"}'


def test_nan_cannot_be_hashed():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999",
                                  "-1e400", "9" * 5000, '"\\ud800"', '["ok", "x\\udfff"]',
                                  '{"\\udc00": 1}'])
def test_input_that_canonical_json_cannot_carry_is_refused_where_it_is_read(text):
    with pytest.raises(ValueError):
        loads_finite(text)


# Any code point, and often the lone surrogates JSON can escape (rare among all the rest).
any_text = st.text(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]),
                   max_size=12)
wild_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


@given(wild_values)
def test_what_is_read_can_always_be_hashed(value):
    """loads_finite's promise: whatever it returns, canonical JSON can write (so the audit
    log can record it); whatever canonical JSON cannot write, it refuses."""
    text = json.dumps(value)  # NaN and Infinity as Python writes them; surrogates escaped
    try:
        read = loads_finite(text)
    except ValueError:
        with pytest.raises(ValueError):
            canonical_json(value)
        return
    assert canonical_json(read)


def test_numbers_canonical_json_carries_are_read_as_json_reads_them():
    text = '{"big": 123456789012345678901234567890, "f": 1.5e300, "n": -0.0, "i": 7}'
    assert loads_finite(text) == json.loads(text)
    assert canonical_json(loads_finite(text))


def _outcome(text, walk_always):
    """What loads_finite makes of `text`: its value, or that it refused."""
    from runestone.actions import canonical

    shortcut = canonical._may_carry_trouble
    if walk_always:
        canonical._may_carry_trouble = lambda text: True
    try:
        return ("read", loads_finite(text))
    except ValueError:
        return ("refused",)
    finally:
        canonical._may_carry_trouble = shortcut


deep_values = st.integers(1, 260).map(lambda depth: json.loads("[" * depth + "]" * depth))


@given(st.one_of(wild_values, deep_values), st.sampled_from(
    ["ascii", "str", "utf-8", "utf-16", "utf-32-be", "utf-8 escaped", "utf-16-le escaped",
     "utf-32-le escaped"]))
def test_the_raw_text_shortcut_refuses_what_the_walk_refuses(value, form):
    """`_may_carry_trouble` lets most input skip the walk for lone surrogates and depth:
    whatever the text's form (surrogates escaped or raw, str or bytes in any encoding
    `json` reads), loads_finite reads and refuses exactly as when it always walks."""
    if form == "ascii":
        text = json.dumps(value)
    elif form.endswith(" escaped"):
        text = json.dumps(value).encode(form.split()[0])
    else:
        raw = json.dumps(value, ensure_ascii=False)
        text = raw if form == "str" else raw.encode(form, "surrogatepass")
    assert _outcome(text, walk_always=False) == _outcome(text, walk_always=True)


@pytest.mark.parametrize("text", [
    "[" * 201 + "]" * 201, b"[" * 201 + b"]" * 201, '"a\\ud800"', '"a\\uDFFF"',
    b'"a\\udc00"', '"a\udc80b"', '"\u00e9\udc80"', '"\\ud800"'.encode("utf-16"),
    '"\ud800"'.encode("utf-8", "surrogatepass"), '"\ud800"'.encode("utf-16-le",
                                                                   "surrogatepass"),
    '"\\ud800"'.encode("utf-16-le"), ("[" * 201 + "]" * 201).encode("utf-32-le"),
])
def test_lone_surrogates_and_depth_are_refused_in_every_form(text):
    with pytest.raises(ValueError):
        loads_finite(text)
