"""One hook call, start to finish: the host's JSON in, the host's answer out, audited.

The same function serves the command hook (in-process) and the daemon's `/hooks/<host>`
endpoint, so both give the same answer. Nothing here raises: any failure becomes the
host's own fail-closed reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runestone.actions import ActionError
from runestone.actions.canonical import canonical_json, loads_finite
from runestone.digest import sha256
from runestone.gatekeeper import Gatekeeper
from runestone.integrations.hosts import Event, HostAdapter, Reply
from runestone.integrations.links import CallLinks
from runestone.policy import Decision


def _malformed(gatekeeper: Gatekeeper, adapter: HostAdapter, body: str, reason: str) -> Reply:
    """Input that is not JSON an action can come from: denied, and the refusal audited
    (an unaudited refusal could not be told from a call that never came)."""
    refused = gatekeeper.refuse_malformed(body, reason, host=adapter.name)
    return adapter.failure(refused.reason, body)


def handle_hook(gatekeeper: Gatekeeper, adapter: HostAdapter, body: str,
                links: CallLinks | None = None,
                on_decision: Callable[[Decision], None] | None = None) -> Reply:
    """The host's answer to one hook call; `on_decision` sees each decision made (the
    daemon counts them for its metrics)."""
    try:
        data = loads_finite(body)
    except json.JSONDecodeError as exc:
        return _malformed(gatekeeper, adapter, body, f"malformed hook input ({exc.msg} at "
                                                     f"line {exc.lineno}); denied")
    except ValueError as exc:  # NaN, 1e999, an integer of more than 4300 digits, depth
        return _malformed(gatekeeper, adapter, body, f"malformed hook input ({exc}); denied")
    try:
        event = adapter.parse(data)
    except ActionError as exc:
        return adapter.failure(f"malformed hook input: {exc}; denied", data)
    try:
        if event.kind == "post":
            return _record_result(gatekeeper, adapter, event, links)
        if event.kind == "usage":
            return _record_usage(gatekeeper, adapter, event)
        # A host that cannot ask gets the approvals `defer` flow: deny now with a link, allow
        # the identical retry once a human approved it. A permission event is the host's
        # own prompt, so there an ask leaves the choice to its user.
        mode = None if adapter.can_ask or event.kind == "permission" else "defer"
        # A host that can rewrite the command runs a `sandbox` answer contained; for the
        # others the gatekeeper turns it into ask.
        contain = event.kind == "pre" and getattr(adapter, "can_contain", False)
        decision = gatekeeper.check(event.action, approval_mode=mode, contain=contain)
        if on_decision is not None:
            on_decision(decision)
        if links is not None and decision.request_id:
            links.remember(_call_id(event), decision.request_id)
        if decision.decision == "sandbox":
            return _contained(gatekeeper, adapter, event, decision, links)
        return adapter.reply(event, decision)
    except Exception as exc:  # never let an agent host read a crash as "proceed"
        return adapter.failure(f"internal error ({type(exc).__name__}: {exc}); denied", data)


def _contained(gatekeeper: Gatekeeper, adapter: HostAdapter, event: Event,
               decision: Decision, links: CallLinks | None = None) -> Reply:
    """Allow the call with its command rewritten to run inside the sandbox. The original
    goes to `runestone sandbox run` through a file (`runestone.sandbox.handoff`), never
    spliced into the new command line. If it cannot be handed over, a human decides."""
    try:
        from runestone.actions.tools import shell_command_of
        from runestone.audit.records import new_request_id
        from runestone.sandbox.handoff import sandbox_command, write_pending

        action = event.action
        original = shell_command_of(action.input)
        if original is None or gatekeeper.state_dir is None:
            raise ValueError("no command, or no runtime home to hand it over in")
        profile = gatekeeper.policy.sandbox_profile(decision.profile)
        request_id = decision.request_id or new_request_id()
        write_pending(gatekeeper.state_dir, request_id, {
            "command": original, "cwd": action.cwd, "project": action.project,
            "profile": profile.spec(), "profile_hash": profile.hash,
            "action_hash": action.hash})
        command = sandbox_command(request_id)
        if links is not None:
            # The after-tool event carries the rewritten command: a host that ties the two
            # events by the action's hash (Gemini CLI) must find the request by it too.
            rewritten = action._replace(input={**action.input, "command": command})
            links.remember(_call_id(event._replace(action=rewritten)), request_id)
        contain = getattr(adapter, "contain")  # noqa: B009 - only hosts with can_contain
        return contain(event, decision, command)
    except Exception as exc:
        return adapter.reply(event, decision._replace(
            decision="ask", profile="",
            reason=f"{decision.reason} It could not be handed to the sandbox ({exc}), so a "
                   "human decides."))


def _call_id(event: Event) -> str:
    """What ties a tool's before- and after-event: the host's call id where it sends one
    (Claude Code, Codex); else the turn or session with the action's hash (Cursor's
    generation, Copilot's session), since those hosts send the same call twice."""
    raw = event.raw
    for key in ("tool_use_id", "toolUseId", "call_id"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return value
    for key in ("generation_id", "sessionId", "session_id", "conversation_id"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return f"{key}:{value}:{event.action.hash}"
    return ""


def result_summary(result: Any) -> dict[str, Any]:
    """What the audit log keeps of a tool's output: its size, hash and error flag, not it."""
    try:
        encoded = canonical_json(result)
    except Exception:
        encoded = repr(result).encode("utf-8", "replace")
    summary: dict[str, Any] = {"result_bytes": len(encoded),
                               "result_sha256": sha256(encoded).hexdigest()}
    if isinstance(result, dict):
        for key in ("is_error", "isError", "success", "exit_code", "exitCode", "interrupted"):
            if key in result and isinstance(result[key], bool | int):
                summary[key] = result[key]
    return summary


def _record_result(gatekeeper: Gatekeeper, adapter: HostAdapter, event: Event,
                   links: CallLinks | None) -> Reply:
    call_id = _call_id(event)
    request_id = links.recall(call_id) if links else ""
    entry = {"kind": "result", "request_id": request_id,
             "call_id": call_id, "host": adapter.name, "tool": event.action.tool,
             "session": event.action.session, "action_hash": event.action.hash,
             **result_summary(event.result)}
    if request_id and gatekeeper.state_dir is not None:
        from runestone.sandbox.handoff import take_result

        report = take_result(gatekeeper.state_dir, request_id)
        if report is not None:  # the command ran in the sandbox: what it refused, if anything
            entry["sandbox"] = report.get("sandbox")
            entry["sandbox_exit_code"] = report.get("exit_code")
    if gatekeeper.audit is not None:
        try:
            gatekeeper.audit.append([entry])
        except Exception as exc:
            return adapter.failure(f"the tool ran but its result could not be audited ({exc})",
                                   event.raw)
    return adapter.reply(event, _no_decision(gatekeeper, event))


def _record_usage(gatekeeper: Gatekeeper, adapter: HostAdapter, event: Event) -> Reply:
    """A model call's tokens, as the host reported them: counted against the policy's cost
    budgets and audited (only when there is something to count)."""
    tokens = event.result if isinstance(event.result, int) else 0
    if tokens <= 0:
        return adapter.reply(event, _no_decision(gatekeeper, event))
    try:
        budgets = gatekeeper.record_usage(event.action, tokens)
    except Exception as exc:  # uncounted usage would let a budget be overspent
        return adapter.failure(f"the usage could not be counted ({exc})", event.raw)
    if gatekeeper.audit is not None:
        try:
            gatekeeper.audit.append([{"kind": "usage", "host": adapter.name, "tokens": tokens,
                                      "session": event.action.session,
                                      "agent": event.action.agent, "budgets": budgets}])
        except Exception as exc:
            return adapter.failure(f"the usage could not be audited ({exc})", event.raw)
    return adapter.reply(event, _no_decision(gatekeeper, event))


def _no_decision(gatekeeper: Gatekeeper, event: Event) -> Decision:
    return Decision("allow", "result recorded", (), gatekeeper.policy.hash, event.action.hash)
