"""The agent's stated purpose of an ask: what it says the call is for, in its own words.

Claude Code sends a `description` with a shell call ("Rotate the staging certificates");
the runtime keeps it in the action's input (and as `purpose` in its audit entries). An
approver should read it, but as a claim: it is whatever the agent wrote, checked by nobody,
and may be wrong or written to persuade. Every place that shows it labels it so.
"""

from __future__ import annotations

from typing import Any

LABEL = "The agent's stated purpose (its own words, not checked)"
MAX_SHOWN = 1000  # characters of it put in a notification


def stated_purpose(stored_input: Any) -> str:
    """The `description` of the stored ask input (the action's identity, or a bare tool
    input), or ""."""
    data = stored_input if isinstance(stored_input, dict) else {}
    inner = data.get("input") if isinstance(data.get("input"), dict) and "tool" in data \
        else data
    value = inner.get("description") if isinstance(inner, dict) else None
    return value.strip() if isinstance(value, str) else ""
