"""One tool call the runtime executes: decide, hold to the tool's limits, run, audit; with
an `idempotency_key`, at most once per key (tools/idempotency.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.tools import files, http, idempotency, shell
from runestone.tools.settings import ToolSettings
from runestone.tools.shell import ToolRefused

TOOL_NAMES = ("shell.exec", "files.write", "http.request")


@dataclass(slots=True)
class ToolResponse:
    request_id: str
    decision: str
    reason: str
    result: dict[str, Any] | None = None
    error: str = ""
    approval: dict[str, str] = field(default_factory=dict)
    replayed: bool = False  # the stored response of an earlier call with the same key

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": self.request_id, "decision": self.decision,
                                "reason": self.reason}
        if self.replayed:
            body["replayed"] = True
        if self.result is not None:
            body["result"] = self.result
        if self.error:
            body["error"] = self.error
        if self.approval:
            body["approval"] = self.approval
        return body


def run_tool(gatekeeper: Gatekeeper, settings: ToolSettings, name: str,
             params: dict[str, Any], *, agent: str = "", session: str = "",
             cwd: str | None = None) -> ToolResponse:
    if name not in TOOL_NAMES:
        return ToolResponse("", "deny", f"unknown tool {name!r}; one of {', '.join(TOOL_NAMES)}")
    if not isinstance(params, dict):
        return ToolResponse("", "deny", "the tool's parameters must be a JSON object")
    cwd = cwd or os.getcwd()
    params = dict(params)
    key = params.pop("idempotency_key", None)
    try:
        action, execute = _plan(name, params, settings, cwd, gatekeeper, agent, session)
        if key is not None:
            key = idempotency.check_key(key)
    except (ToolRefused, idempotency.BadKey) as exc:
        return ToolResponse("", "deny", f"{name}: {exc}")
    action = Action(action.tool, action.input, action.cwd, agent=agent, session=session)
    if key is None:
        return _decide_and_run(gatekeeper, name, action, execute)
    store = idempotency.store_for(gatekeeper.limits_file)
    try:
        claim = store.claim(key, idempotency.call_hash(name, params, cwd))
    except Exception as exc:  # a key that cannot be checked must not risk a second run
        return ToolResponse("", "deny", f"{name}: the idempotency key could not be checked "
                                        f"({exc}); not run")
    if not claim.owned:
        return _replayed(gatekeeper, name, key, claim)
    # Interrupted before an answer (the process stopped): the claim stays, since the call
    # may have run, and a retry under this key is refused saying so.
    response = _decide_and_run(gatekeeper, name, action, execute)
    if response.decision in ("allow", "sandbox") or response.error:
        store.finish(key, response.to_json())  # it ran (or the tool refused as it began)
    else:
        store.release(key)  # not allowed: nothing ran, so the retry after approval may
    return response


def _replayed(gatekeeper: Gatekeeper, name: str, key: str,
              claim: idempotency.Claim) -> ToolResponse:
    """A call under a used key: the first response again (audited as a replay), or why
    it is refused."""
    if claim.response is None:
        return ToolResponse("", "deny", f"{name}: {claim.problem}")
    first = claim.response
    if gatekeeper.audit is not None:
        try:
            gatekeeper.audit.append([{"kind": "replay", "request_id": first["request_id"],
                                      "tool": name, "idempotency_key": key[:200]}])
        except Exception as exc:
            return ToolResponse("", "deny", f"{name}: the replay could not be audited ({exc})")
    replay = ToolResponse(first["request_id"], first["decision"],
                          f"Replayed: the first call with this idempotency key already ran "
                          f"({first['request_id']}); its response is returned, nothing ran "
                          f"again. {first['reason']}", result=first.get("result"),
                          error=first.get("error", ""), approval=first.get("approval", {}))
    replay.replayed = True
    return replay


def _decide_and_run(gatekeeper: Gatekeeper, name: str, action: Action,
                    execute: Any) -> ToolResponse:
    decision = gatekeeper.check(action, contain=name == "shell.exec")
    response = ToolResponse(decision.request_id, decision.decision, decision.reason,
                            approval=dict(decision.approval))
    if decision.decision == "sandbox":
        # shell.exec runs it in the sandbox the policy named (the shell's own `sandbox`
        # prefix setting still applies inside).
        profile = gatekeeper.policy.sandbox_profile(decision.profile)
        run_plain = execute
        execute = lambda: run_plain(profile)  # noqa: E731
    elif decision.decision != "allow":
        return response
    audit = gatekeeper.audit
    try:
        if audit is not None:
            audit.append([{"kind": "execution", "request_id": decision.request_id,
                           "tool": name, "action_hash": decision.action_hash}])
        result = execute()
    except ToolRefused as exc:
        response.decision, response.error = "deny", f"{name}: {exc}"
        response.reason = f"Refused by the tool's limits: {exc}"
        result = {"_audit": {"refused": str(exc)}}
    except Exception as exc:
        response.decision, response.error = "deny", f"{name} failed: {exc}"
        result = {"_audit": {"error": f"{type(exc).__name__}: {exc}"}}
    audit_fields = result.pop("_audit", {})
    if response.decision in ("allow", "sandbox"):
        response.result = result
    if audit is not None:
        try:
            audit.append([{"kind": "result", "request_id": decision.request_id, "tool": name,
                           **audit_fields}])
        except Exception as exc:
            response.error = (response.error + "; " if response.error else "") + \
                f"the result could not be audited: {exc}"
    return response


def _plan(name: str, params: dict[str, Any], settings: ToolSettings, cwd: str,
          gatekeeper: Gatekeeper, agent: str, session: str) -> tuple[Action, Any]:
    if name == "shell.exec":
        command, run_cwd, env = shell.prepare(params, cwd)
        action = Action("Bash", {"command": command}, run_cwd)
        return action, lambda profile=None: shell.run(command, run_cwd, env, settings.shell,
                                                      profile=profile)
    if name == "files.write":
        path, content = files.prepare(params, cwd)
        action = Action("Write", {"file_path": path, "content": content}, cwd)
        return action, lambda: files.write(path, content, settings.files)
    url, method, headers, body = http.prepare(params)

    def approve_hop(next_url: str) -> None:
        hop = Action("WebFetch", {"url": next_url, "method": method}, cwd, agent=agent,
                     session=session)
        verdict = gatekeeper.check(hop, approval_mode="ask")
        if verdict.decision != "allow":
            raise ToolRefused(f"the redirect to {next_url} is not allowed ({verdict.reason})")

    action = Action("WebFetch", {"url": url, "method": method}, cwd)
    return action, lambda: http.fetch(url, method, headers, body, settings.http, approve_hop)
