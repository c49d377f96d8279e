"""Agent hosts' hook protocols: their input shapes in, their output shapes out.

Each host sends its own JSON on stdin (or as an HTTP body) and reads its own answer; each
fails open on something different. An adapter turns the host's event into an `Event`
(a pre-tool check with an Action, or a post-tool result) and a Decision back into exactly
what that host reads, including the fail-closed answer for an internal error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from runestone.actions import Action, ActionError, action_from_hook_json
from runestone.integrations.reply import Reply

if TYPE_CHECKING:
    from runestone.policy import Decision


class Event(NamedTuple):
    """One hook call: `pre` asks for a decision, `post` reports what a tool did, `usage`
    what a model call cost (`result`: tokens)."""

    kind: str
    action: Action
    result: Any
    raw: dict[str, Any]


class HostAdapter(Protocol):
    name: str
    can_ask: bool

    def parse(self, data: Any) -> Event: ...

    def reply(self, event: Event, decision: Decision) -> Reply: ...

    def failure(self, reason: str, data: Any = None) -> Reply: ...


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def event_name(data: Any, default: str = "") -> str:
    """The `hook_event_name` of the host's input, read as far as it can be: a failure reply
    must have the shape of the event that failed, even when the input is half broken."""
    if isinstance(data, str):
        import json

        try:
            data = json.loads(data)
        except (ValueError, RecursionError):  # 100,000 nested brackets: still a reply
            return default
    if isinstance(data, dict) and isinstance(data.get("hook_event_name"), str):
        return data["hook_event_name"]
    return default


class ClaudeCode:
    """Claude Code hooks: PreToolUse, PermissionRequest, PostToolUse, PostToolUseFailure.

    Claude Code proceeds on a crash, a timeout or any exit code but 2 unless the hook says
    `"onFailure": "block"` (which `install` writes on every hook), so every failure is exit
    2 with the reason on stderr, and a body in the failing event's own shape for the `http`
    hook (Claude Code refuses a reply shaped for another event).
    """

    name = "claude-code"
    can_ask = True
    # PreToolUse may answer allow with `updatedInput`: a `sandbox` decision rewrites the
    # command to run inside `runestone sandbox run`.
    can_contain = True
    agent = "claude-code"
    label = "Claude Code"
    POST_EVENTS = ("PostToolUse", "PostToolUseFailure")

    def parse(self, data: Any) -> Event:
        if not isinstance(data, dict):
            raise ActionError(f"expected a JSON object from {self.label}")
        event = data.get("hook_event_name", "PreToolUse")
        action = action_from_hook_json(data, agent=self.agent)
        if event == "PostToolUse":
            return Event("post", action, data.get("tool_response"), data)
        if event == "PostToolUseFailure":
            # A failed tool fires only this event: its error is the result to record.
            return Event("post", action, {"error": data.get("error"), "is_error": True,
                                          "is_interrupt": data.get("is_interrupt") is True},
                         data)
        if event in ("PreToolUse", "PermissionRequest"):
            return Event("pre" if event == "PreToolUse" else "permission", action, None, data)
        raise ActionError(f"unsupported {self.label} hook event {event!r}")

    def reply(self, event: Event, decision: Decision) -> Reply:
        if event.kind == "post":
            return Reply("")
        if event.kind == "permission":
            return self._permission_reply(decision)
        return Reply(_json({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision.decision,
            "permissionDecisionReason": decision.reason,
        }}))

    def contain(self, event: Event, decision: Decision, command: str) -> Reply:
        """Allow, with the tool's input unchanged but for its command."""
        tool_input = event.raw.get("tool_input")
        updated = dict(tool_input) if isinstance(tool_input, dict) else {}
        updated["command"] = command
        return Reply(_json({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": decision.reason,
            "updatedInput": updated,
        }}))

    @staticmethod
    def _permission_reply(decision: Decision) -> Reply:
        # The user is about to be asked. Policy can answer for them, or let them decide.
        if decision.decision == "ask":
            return Reply("")
        behaviour = {"behavior": decision.decision}
        if decision.decision == "deny":
            behaviour["message"] = decision.reason or "denied by Runestone"
        return Reply(_json({"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                                   "decision": behaviour}}))

    def failure(self, reason: str, data: Any = None) -> Reply:
        # Exit 2 blocks a command hook (stdout is then ignored); the same block as JSON, in
        # the failing event's shape, is the body an `http` hook needs.
        text = f"runestone: {reason}"
        event = event_name(data, "PreToolUse")
        if event == "PermissionRequest":
            body: dict[str, Any] = {"hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": {"behavior": "deny", "message": text}}}
        elif event in self.POST_EVENTS:
            # The tool already ran; the block tells the model that its result is not on
            # record (Claude Code reads `decision: block` on both after-events).
            body = {"decision": "block", "reason": text,
                    "hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}
        else:
            body = {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                           "permissionDecision": "deny",
                                           "permissionDecisionReason": text}}
        return Reply(_json(body), 2, text)


class Codex(ClaudeCode):
    """Codex CLI: Claude-shaped input, but only a deny counts and an allow prints nothing.

    Codex rejects `ask` in PreToolUse (and runs the tool), so an ask there becomes the
    approvals `defer` flow. PermissionRequest (codex-rs/hooks/src/events/permission_request.rs)
    is answered like Claude Code's: allow, deny with a message, or nothing to let Codex ask
    its user. `apply_patch` carries its patch in `tool_input.command`. Codex reads a hook
    that times out or cannot be spawned as no objection: only exit 2 or a deny blocks.
    """

    name = "codex"
    can_ask = False
    # Codex applies a PreToolUse `updatedInput` paired with allow (openai/codex#20527):
    # observed with the pinned 0.171.0 in tests/hosts/test_codex_cli.py.
    can_contain = True
    agent = "codex"
    label = "Codex"
    POST_EVENTS = ("PostToolUse",)

    def parse(self, data: Any) -> Event:
        if isinstance(data, dict) and data.get("hook_event_name") == "PostToolUseFailure":
            raise ActionError("Codex sends no PostToolUseFailure event")
        return super().parse(data)

    def reply(self, event: Event, decision: Decision) -> Reply:
        if event.kind == "permission":
            return self._permission_reply(decision)
        if event.kind == "post" or decision.decision == "allow":
            return Reply("")
        return Reply(_json({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": decision.reason or "denied by Runestone",
        }}))


class Gemini:
    """Gemini CLI: `BeforeTool` / `AfterTool`, a top-level `decision` and `reason`;
    `AfterModel` reports a model call's token usage, counted against cost budgets."""

    name = "gemini"
    can_ask = False
    # BeforeTool may answer allow with `hookSpecificOutput.tool_input`, which Gemini CLI
    # merges over the model's arguments: a `sandbox` decision rewrites the command.
    can_contain = True
    agent = "gemini-cli"

    def parse(self, data: Any) -> Event:
        if not isinstance(data, dict):
            raise ActionError("expected a JSON object from Gemini CLI")
        event = data.get("hook_event_name", "BeforeTool")
        if event == "AfterModel":
            return Event("usage", _model_action(data, self.agent), _gemini_tokens(data), data)
        action = action_from_hook_json(_gemini_mcp_name(data), agent=self.agent)
        if event == "AfterTool":
            return Event("post", action, data.get("tool_response"), data)
        if event == "BeforeTool":
            return Event("pre", action, None, data)
        raise ActionError(f"unsupported Gemini CLI hook event {event!r}")

    def reply(self, event: Event, decision: Decision) -> Reply:
        if event.kind in ("post", "usage") or decision.decision == "allow":
            return Reply("{}")
        return Reply(_json({"decision": "deny", "reason": decision.reason}))

    def contain(self, event: Event, decision: Decision, command: str) -> Reply:
        """Allow, with the command (the one argument changed) run by the sandbox."""
        return Reply(_json({"decision": "allow", "reason": decision.reason,
                            "hookSpecificOutput": {"tool_input": {"command": command}}}))

    def failure(self, reason: str, data: Any = None) -> Reply:
        return Reply(_json({"decision": "deny", "reason": f"runestone: {reason}"}), 2,
                     f"runestone: {reason}")


def _model_action(data: dict[str, Any], agent: str) -> Action:
    """Who a model call's usage belongs to: its session and agent (no tool ran)."""
    session = data.get("session_id")
    cwd = data.get("cwd")
    return Action("model", {}, cwd if isinstance(cwd, str) else "", agent=agent,
                  session=session if isinstance(session, str) else "")


def _gemini_tokens(data: dict[str, Any]) -> int:
    """The tokens of one model call as Gemini CLI's AfterModel reports them
    (`llm_response.usageMetadata.totalTokenCount`, 0.61.0's hookTranslator); 0 without."""
    response = data.get("llm_response")
    usage = response.get("usageMetadata") if isinstance(response, dict) else None
    total = usage.get("totalTokenCount") if isinstance(usage, dict) else None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        return 0
    return total


def _gemini_mcp_name(data: dict[str, Any]) -> dict[str, Any]:
    """Gemini CLI names an MCP tool `mcp_<server>_<tool>` and sends `mcp_context` with the
    server and tool (packages/core/src/tools/mcp-tool.ts, coreToolHookTriggers.ts in 0.61.0).
    Read as `mcp__<server>__<tool>`, the MCP rules see it; `mcp_context` wins over the
    name, which is split as Gemini splits it (the server name holds no `_`)."""
    tool = data.get("tool_name")
    if not isinstance(tool, str) or not tool.startswith("mcp_") or tool.startswith("mcp__"):
        return data
    context = data.get("mcp_context")
    server = name = None
    if isinstance(context, dict):
        server, name = context.get("server_name"), context.get("tool_name")
    if not (isinstance(server, str) and server and isinstance(name, str) and name):
        server, separator, name = tool[len("mcp_"):].partition("_")
        if not (server and separator and name):
            raise ActionError(f"MCP tool name {tool!r} names no server and tool")
    return {**data, "tool_name": f"mcp__{server}__{name}"}


def _arguments_text(text: str) -> Any:
    """A tool's arguments sent as text: the JSON they spell, or the text itself when it is
    not JSON. JSON that canonical JSON cannot carry (NaN, 1e999) is malformed input: read as
    plain text, its arguments would hide from the rules that look at them."""
    import json

    from runestone.actions.canonical import loads_finite

    try:
        return loads_finite(text)
    except ValueError as exc:
        try:
            json.loads(text)
        except RecursionError:  # JSON nested past json's own limit: malformed, not text
            pass
        except ValueError:
            return {"input": text}
        raise ActionError(f"the tool's arguments are malformed JSON ({exc})") from exc


class Cursor:
    """Cursor: one event per kind of action, and `permission` allow / deny / ask.

    `ask` is honoured for shell and MCP calls only; reads are allow or deny.
    """

    name = "cursor"
    can_ask = True
    agent = "cursor"
    ASKABLE = ("beforeShellExecution", "beforeMCPExecution")

    def parse(self, data: Any) -> Event:
        if not isinstance(data, dict):
            raise ActionError("expected a JSON object from Cursor")
        event = data.get("hook_event_name")
        roots = data.get("workspace_roots") or []
        root = roots[0] if isinstance(roots, list) and roots and isinstance(roots[0], str) \
            else ""
        session = str(data.get("conversation_id") or "")
        common = {"cwd": data.get("cwd") or root, "session_id": session,
                  "project_dir": root, "user": data.get("user_email") or ""}
        if event == "beforeShellExecution":
            command = data.get("command")
            if not isinstance(command, str):
                raise ActionError("beforeShellExecution without a 'command' string")
            hook = {**common, "tool_name": "Bash", "tool_input": {"command": command}}
        elif event == "beforeMCPExecution":
            tool = data.get("tool_name")
            if not isinstance(tool, str) or not tool:
                raise ActionError("beforeMCPExecution without a 'tool_name'")
            server = _mcp_server(data)
            name = tool if tool.startswith("mcp__") else f"mcp__{server}__{tool}"
            tool_input = data.get("tool_input")
            if isinstance(tool_input, str):
                tool_input = _arguments_text(tool_input)
            hook = {**common, "tool_name": name, "tool_input": tool_input or {}}
        elif event == "beforeReadFile":
            path = data.get("file_path")
            if not isinstance(path, str):
                raise ActionError("beforeReadFile without a 'file_path'")
            hook = {**common, "tool_name": "Read", "tool_input": {"file_path": path}}
        elif event == "afterShellExecution":
            command = data.get("command")
            if not isinstance(command, str):
                raise ActionError("afterShellExecution without a 'command' string")
            hook = {**common, "tool_name": "Bash", "tool_input": {"command": command}}
            result = {"output": data.get("output"), "duration_ms": data.get("duration")}
            return Event("post", action_from_hook_json(hook, agent=self.agent), result, data)
        elif event == "afterMCPExecution":
            pre = self.parse({**data, "hook_event_name": "beforeMCPExecution"})
            return Event("post", pre.action, {"result_json": data.get("result_json"),
                                              "duration_ms": data.get("duration")}, data)
        else:
            raise ActionError(f"unsupported Cursor hook event {event!r}")
        return Event("pre", action_from_hook_json(hook, agent=self.agent), None, data)

    def reply(self, event: Event, decision: Decision) -> Reply:
        if event.kind == "post":
            return Reply("{}")  # after-events are observe-only; Cursor reads no decision
        permission = decision.decision
        if permission == "ask" and event.raw.get("hook_event_name") not in self.ASKABLE:
            permission = "deny"
        body: dict[str, Any] = {"permission": permission}
        if permission != "allow":
            body["user_message"] = decision.reason
            body["agent_message"] = decision.reason
        return Reply(_json(body))

    def failure(self, reason: str, data: Any = None) -> Reply:
        return Reply(_json({"permission": "deny", "user_message": f"runestone: {reason}",
                            "agent_message": f"runestone: {reason}"}), 2, f"runestone: {reason}")


def _mcp_server(data: dict[str, Any]) -> str:
    """The MCP server Cursor calls, by the name it is configured under in `mcp.json`.

    Cursor's beforeMCPExecution sends the server's `command` or `url`, not its name, so the
    name is looked up in the project's `.cursor/mcp.json` (which wins, as in Cursor) and
    `~/.cursor/mcp.json`. A server found in neither is named by its URL's host, or
    `unknown`: a word of its command line would let the arguments choose the name
    (`server-postgres postgresql://localhost/db` became `db`) and slip past `mcp_server`
    rules."""
    for key in ("server_name", "server"):
        name = data.get(key)
        if isinstance(name, str) and name.strip():
            return name.strip()
    named = _configured_mcp_server(data)
    if named:
        return named
    url = data.get("url")
    if isinstance(url, str) and url:
        from urllib.parse import urlsplit

        return (urlsplit(url).hostname or "remote").replace(".", "_")
    return "unknown"


def _configured_mcp_server(data: dict[str, Any]) -> str | None:
    import json
    import os
    import shlex

    url, command = data.get("url"), data.get("command")
    roots = data.get("workspace_roots")
    files = [os.path.join(root, ".cursor", "mcp.json") for root in
             (roots if isinstance(roots, list) else []) if isinstance(root, str)]
    files.append(os.path.expanduser("~/.cursor/mcp.json"))
    for file in files:
        try:
            with open(file, encoding="utf-8") as handle:
                servers = json.load(handle).get("mcpServers")
        except (OSError, ValueError, AttributeError):
            continue
        for name, entry in (servers.items() if isinstance(servers, dict) else ()):
            if not isinstance(entry, dict):
                continue
            if isinstance(url, str) and url and entry.get("url") == url:
                return str(name)
            words = [entry.get("command"), *(entry.get("args") or [])]
            if isinstance(command, str) and command and all(
                    isinstance(w, str) for w in words) and command in (" ".join(words),
                                                                      shlex.join(words)):
                return str(name)
    return None


class Copilot:
    """GitHub Copilot (CLI and coding agent): `preToolUse` with `toolName` and `toolArgs`.

    The cloud agent treats `ask` as deny and older releases honour only deny, so an ask
    becomes the approvals `defer` flow. `toolArgs` arrives as a JSON string.
    """

    name = "copilot"
    can_ask = False
    # preToolUse may answer allow with `modifiedArgs`: a `sandbox` decision rewrites the
    # command.
    can_contain = True
    agent = "copilot"

    def parse(self, data: Any) -> Event:
        if not isinstance(data, dict):
            raise ActionError("expected a JSON object from Copilot")
        if "tool_name" in data:  # a PascalCase hook sends snake_case, Claude-style input
            action = action_from_hook_json(data, agent=self.agent)
            if data.get("hook_event_name") in ("PostToolUse", "PostToolUseFailure"):
                return Event("post", action, data.get("tool_result") or
                             {"error": data.get("error")}, data)
            return Event("pre", action, None, data)
        tool = data.get("toolName")
        if not isinstance(tool, str) or not tool:
            raise ActionError("missing 'toolName'")
        args = data.get("toolArgs", {})
        if isinstance(args, str):
            from runestone.actions.canonical import loads_finite

            try:
                args = loads_finite(args) if args.strip() else {}
            except ValueError as exc:
                raise ActionError(f"'toolArgs' is not JSON ({exc})") from exc
        if not isinstance(args, dict):
            args = {"args": args}
        hook = {"tool_name": tool, "tool_input": args, "cwd": data.get("cwd") or "",
                "session_id": data.get("sessionId") or ""}
        action = action_from_hook_json(hook, agent=self.agent)
        # camelCase payloads name no event: a result (postToolUse) or an error
        # (postToolUseFailure) of the documented shape is what tells an after-event from
        # preToolUse. Anything else is decided: a misread "post" would answer `{}`, which
        # Copilot takes as no objection.
        result = data.get("toolResult")
        if isinstance(result, dict) and isinstance(result.get("resultType"), str):
            return Event("post", action, result, data)
        if isinstance(data.get("error"), str) and "toolResult" not in data:
            return Event("post", action, {"error": data["error"]}, data)
        return Event("pre", action, None, data)

    def reply(self, event: Event, decision: Decision) -> Reply:
        if event.kind == "post":
            return Reply("{}")  # postToolUse may add context; Runestone only records
        if decision.decision == "allow":
            return Reply(_json({"permissionDecision": "allow"}))
        return Reply(_json({"permissionDecision": "deny",
                            "permissionDecisionReason": decision.reason}))

    def contain(self, event: Event, decision: Decision, command: str) -> Reply:
        """Allow, with the tool's arguments unchanged but for its command."""
        return Reply(_json({"permissionDecision": "allow",
                            "permissionDecisionReason": decision.reason,
                            "modifiedArgs": {**event.action.input, "command": command}}))

    def failure(self, reason: str, data: Any = None) -> Reply:
        return Reply(_json({"permissionDecision": "deny",
                            "permissionDecisionReason": f"runestone: {reason}"}), 2,
                     f"runestone: {reason}")


HOSTS: dict[str, HostAdapter] = {adapter.name: adapter for adapter in (
    ClaudeCode(), Codex(), Gemini(), Cursor(), Copilot())}


def host(name: str) -> HostAdapter:
    try:
        return HOSTS[name]
    except KeyError:
        raise ValueError(f"unknown host {name!r}; one of {', '.join(sorted(HOSTS))}") from None
