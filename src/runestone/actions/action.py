"""The canonical Action: one agent tool call, whatever host it came from."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from runestone.actions.canonical import canonical_hash, canonical_json, loads_finite


class ActionError(ValueError):
    """The input does not describe a tool call (missing tool name, input not an object, ...)."""


class _ActionFields(NamedTuple):
    tool: str
    input: dict[str, Any]
    cwd: str
    agent: str = ""
    session: str = ""
    user: str = ""
    project_dir: str = ""
    context: dict[str, Any] = {}  # noqa: RUF012 - never used: Action.__new__ gives a fresh one


class Action(_ActionFields):
    """A tool call as the gatekeeper sees it.

    `tool` is the name the agent used (`Bash`, `Read`, `mcp__github__create_issue`);
    `input` its arguments (a JSON object); `cwd` the directory it runs in. The identity
    fields say who is acting. `project_dir` anchors "inside the project" rules; it defaults
    to `cwd`. `context` carries what leads back to the conversation (the agent's stated
    purpose, transcript and tool-use ids): it is recorded, but not part of the action hash,
    so an approval is bound to what runs, not to how it was described.
    """

    __slots__ = ()

    def __new__(cls, tool: str, input: dict[str, Any], cwd: str,
                agent: str = "", session: str = "", user: str = "", project_dir: str = "",
                context: dict[str, Any] | None = None) -> Action:
        if not isinstance(tool, str) or not tool.strip():
            raise ActionError("tool name must be a non-empty string")
        if not isinstance(input, dict):
            raise ActionError(f"tool input must be a JSON object, got {type(input).__name__}")
        if not isinstance(cwd, str):
            raise ActionError("cwd must be a string")
        for name, value in (("agent", agent), ("session", session), ("user", user),
                            ("project_dir", project_dir)):
            if not isinstance(value, str):
                raise ActionError(f"{name} must be a string")
        return super().__new__(cls, tool, input, cwd, agent, session, user, project_dir,
                               {} if context is None else context)

    @property
    def project(self) -> str:
        return self.project_dir or self.cwd

    def identity(self) -> dict[str, Any]:
        """The fields the action hash covers."""
        return {
            "tool": self.tool,
            "input": self.input,
            "cwd": self.cwd,
            "agent": self.agent,
            "session": self.session,
            "user": self.user,
        }

    def canonical(self) -> bytes:
        return canonical_json(self.identity())

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the action's identity fields."""
        return canonical_hash(self.identity())


def action_from_hook_json(data: Any, *, agent: str = "", default_cwd: str = "") -> Action:
    """Build an Action from a Claude Code `PreToolUse`-shaped object.

    Expected keys: `tool_name`, `tool_input`, `cwd`; optional `session_id`, `user`,
    `agent`, `project_dir`, `transcript_path`, `tool_use_id`. Raises ActionError with a
    message that names the missing or malformed field.
    """
    if not isinstance(data, dict):
        raise ActionError(f"expected a JSON object, got {type(data).__name__}")
    tool = data.get("tool_name")
    if not isinstance(tool, str) or not tool.strip():
        raise ActionError("missing or empty field 'tool_name'")
    tool_input = data.get("tool_input", {})
    if tool_input is None:
        tool_input = {}
    if not isinstance(tool_input, dict):
        raise ActionError(
            f"field 'tool_input' must be a JSON object, got {type(tool_input).__name__}"
        )
    cwd = data.get("cwd", default_cwd) or default_cwd
    if not isinstance(cwd, str):
        raise ActionError("field 'cwd' must be a string")
    context = {
        key: data[key]
        for key in ("transcript_path", "tool_use_id", "hook_event_name", "permission_mode")
        if isinstance(data.get(key), str)
    }
    description = tool_input.get("description")
    if isinstance(description, str):
        context["purpose"] = description
    return Action(
        tool=tool,
        input=tool_input,
        cwd=cwd,
        agent=str(data.get("agent") or agent),
        session=str(data.get("session_id") or data.get("session") or ""),
        user=str(data.get("user") or ""),
        project_dir=str(data.get("project_dir") or ""),
        context=context,
    )


def parse_action_json(text: str, **kwargs: Any) -> Action:
    """Parse one JSON document into an Action; malformed JSON is an ActionError."""
    try:
        data = loads_finite(text)
    except json.JSONDecodeError as exc:
        raise ActionError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:  # NaN, 1e999, an integer of more than 4300 digits
        raise ActionError(f"malformed JSON: {exc}") from exc
    return action_from_hook_json(data, **kwargs)
