"""What an approver is shown of an action is bounded; the whole action stays in the
runtime's audit log.

Why: a 30 MB `input` (an agent writing a large file) was sent with the ask, stored on the
control plane and rendered in every approver's inbox. An ask is a question to a person,
who cannot read 30 MB anyway; the action's hash, which the approval is bound to, is taken
over the whole action before anything is cut, so cutting what is shown changes nothing that
is decided or verified.

What the control plane would refuse is made showable first: a lone surrogate becomes
U+FFFD and what lies deeper than MAX_DEPTH becomes its JSON text. Then long strings are
cut (each keeps its beginning, with a note saying how much is not shown and where it is),
since that is what makes an action large; a value that is still too large (thousands of
keys) becomes its JSON text's beginning under one key.
"""

from __future__ import annotations

import json
from typing import Any

MAX_SHOWN = 64 * 1024  # bytes of JSON text kept of an ask's input
STRING_KEPT = 4 * 1024  # characters kept of each long string when cutting
TRUNCATED_KEY = "runestone_truncated"
MAX_DEPTH = 32  # the server refuses bodies nested beyond 64 levels; an ask adds a few


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _note(missing: int) -> str:
    return (f" [... {missing} more characters not shown; the runtime's audit log has the "
            "whole action]")


def _text(value: str) -> str:
    """Text that encodes: a lone surrogate (JSON allows the escape) becomes U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)


def _cut(value: Any, keep: int | None, depth: int = 1) -> Any:
    """A copy that can be shown: strings cut to `keep` characters (None: whole), lone
    surrogates replaced, and what lies deeper than MAX_DEPTH given as its JSON text."""
    if isinstance(value, str):
        value = _text(value)
        return value if keep is None or len(value) <= keep else \
            value[:keep] + _note(len(value) - keep)
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        return _cut(json.dumps(value, ensure_ascii=False), keep, depth)
    if isinstance(value, dict):
        return {(_cut(k, keep, depth) if isinstance(k, str) else k): _cut(v, keep, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(item, keep, depth + 1) for item in value]
    return value


def bounded(value: Any, limit: int = MAX_SHOWN) -> Any:
    """A copy of `value` that the control plane takes and shows: its JSON text fits in
    `limit` bytes (with notes where something was cut), no lone surrogates, at most
    MAX_DEPTH levels deep. What already is so is returned equal."""
    whole = _cut(value, None)
    if _size(whole) <= limit:
        return whole
    cut = _cut(value, STRING_KEPT)
    if _size(cut) <= limit:
        return cut
    text = json.dumps(cut, ensure_ascii=False)
    keep = max(0, limit // 4 - 200)  # a character is at most 4 bytes of UTF-8
    return {TRUNCATED_KEY: text[:keep] + _note(len(text) - keep)}
