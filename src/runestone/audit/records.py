"""What the gatekeeper writes for one tool call: the request and the decision, linked by a
request id, with why the agent asked (its stated purpose and the ids that lead back to the
conversation)."""

from __future__ import annotations

import os
from typing import Any

from runestone.actions import Action
from runestone.policy import Decision

CONTEXT_KEYS = ("purpose", "transcript_path", "tool_use_id", "hook_event_name",
                "permission_mode")


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()  # what secrets.token_hex does, without its imports


def summarize(action: Action) -> str:
    data = action.input
    for key in ("command", "cmd", "file_path", "path", "url", "query"):
        value = data.get(key)
        if isinstance(value, str):
            return value[:500]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return " ".join(value)[:500]
    return action.tool


def request_entry(action: Action, request_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "request",
        "request_id": request_id,
        "tool": action.tool,
        "input": action.input,
        "cwd": action.cwd,
        "agent": action.agent,
        "session": action.session,
        "user": action.user,
        "action_hash": action.hash,
        "summary": summarize(action),
    }
    for key in CONTEXT_KEYS:
        if key in action.context:
            entry[key] = action.context[key]
    return entry


def decision_entry(action: Action, decision: Decision, request_id: str) -> dict[str, Any]:
    return {
        "kind": "decision",
        "request_id": request_id,
        "tool": action.tool,
        "session": action.session,
        "action_hash": decision.action_hash or action.hash,
        "policy_hash": decision.policy_hash,
        "decision": decision.decision,
        "rules": list(decision.rules),
        "reason": decision.reason,
        "severity": decision.severity,
        "opaque": [o["kind"] for o in decision.opaque],
        "summary": summarize(action),
    }
