"""What an approver is shown of an action is bounded; the whole action stays in the
runtime's audit log.

Why: a 30 MB `input` (an agent writing a large file) was sent with the ask, stored on the
control plane and rendered in every approver's inbox. An ask is a question to a person,
who cannot read 30 MB anyway; the action's hash, which the approval is bound to, is taken
over the whole action before anything is cut, so cutting what is shown changes nothing that
is decided or verified.

Long strings are cut first (each keeps its beginning, with a note saying how much is not
shown and where it is), since that is what makes an action large; a value that is still
too large (thousands of keys) becomes its JSON text's beginning under one key.
"""

from __future__ import annotations

import json
from typing import Any

MAX_SHOWN = 64 * 1024  # bytes of JSON text kept of an ask's input
STRING_KEPT = 4 * 1024  # characters kept of each long string when cutting
TRUNCATED_KEY = "runestone_truncated"


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _note(missing: int) -> str:
    return (f" [... {missing} more characters not shown; the runtime's audit log has the "
            "whole action]")


def _cut(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= keep else value[:keep] + _note(len(value) - keep)
    if isinstance(value, dict):
        return {(_cut(k, keep) if isinstance(k, str) else k): _cut(v, keep)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(item, keep) for item in value]
    return value


def bounded(value: Any, limit: int = MAX_SHOWN) -> Any:
    """`value` when its JSON text fits in `limit` bytes; otherwise a copy that does, with
    notes where something was cut. `value` must be JSON (as parsed, depth-checked)."""
    if _size(value) <= limit:
        return value
    cut = _cut(value, STRING_KEPT)
    if _size(cut) <= limit:
        return cut
    text = json.dumps(cut, ensure_ascii=False)
    keep = max(0, limit // 4 - 200)  # a character is at most 4 bytes of UTF-8
    return {TRUNCATED_KEY: text[:keep] + _note(len(text) - keep)}
