"""Fuzzing the two parsers an attacker can feed: policy files and tool-call JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions import ActionError, parse_action_json
from runestone.policy.errors import PolicyError
from runestone.policy.loader import compile_policy_text

FIELDS = ["id", "decision", "reason", "command", "program", "path", "domain", "flags", "args",
          "tool", "mcp_server", "text", "access", "include", "default", "match", "expect"]
values = st.one_of(
    st.text(max_size=12).map(json.dumps),
    st.lists(st.text(max_size=8), max_size=3).map(json.dumps),
    st.sampled_from(['"deny"', '"ask"', '"allow"', "1", "true", "[1, 2]", '"(("', "{}"]),
)
line = st.one_of(
    st.tuples(st.sampled_from(FIELDS), values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(["[policy]", "[[rule]]", "[[test]]", "[pack]", "", "x = ", "[[rule"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(line, max_size=14).map("\n".join))
def test_any_policy_text_compiles_or_is_refused_with_a_policy_error(text):
    try:
        compile_policy_text(text, source="fuzz.toml")
    except PolicyError as exc:
        assert str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=60),
    st.dictionaries(st.sampled_from(["tool_name", "tool_input", "cwd", "session_id", "x"]),
                    json_values, max_size=5).map(json.dumps),
))
def test_any_hook_input_parses_or_is_refused_with_an_action_error(text):
    try:
        action = parse_action_json(text)
    except ActionError as exc:
        assert str(exc)
    else:
        assert isinstance(action.hash, str) and len(action.hash) == 64
