"""The Python SDK: guard a function an agent may call, with the same policy, approvals and
audit as every other tool call.

    from runestone import guard

    @guard(tool="deploy")
    def deploy(service: str, version: str) -> str: ...

Each call becomes an Action (the tool name and the call's arguments as JSON), is decided,
and runs only when allowed; its result (size and hash, not content) is audited and linked
to the request. A deny, or an ask nobody approved, raises `ToolDenied` with the reason.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.policy import Decision

F = TypeVar("F", bound=Callable[..., Any])
_default: Gatekeeper | None = None
_default_lock = threading.Lock()


class ToolDenied(PermissionError):
    """The gatekeeper did not allow the call; `decision` says who and why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"{decision.decision}: {decision.reason}")
        self.decision = decision


def gatekeeper() -> Gatekeeper:
    """The runtime's gatekeeper for this process (configured policy, audit, approvals)."""
    global _default
    with _default_lock:
        if _default is None:
            from runestone.home import layout

            _default = Gatekeeper.from_layout(layout())
        return _default


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class GuardedCall:
    """One call of an agent's tool: decided before it runs, its result audited after.

    `guard` and the framework adapters (runestone.adapters) share it, so a call through any
    of them is the same Action, the same decision and the same linked audit entries.
    """

    def __init__(self, tool: str, tool_input: dict[str, Any], *, agent: str,
                 session: str | None = None, keeper: Gatekeeper | None = None) -> None:
        self.keeper = keeper or gatekeeper()
        self.action = Action(tool, {k: _jsonable(v) for k, v in tool_input.items()},
                             os.getcwd(), agent=agent,
                             session=session or os.environ.get("RUNESTONE_SESSION", ""))
        self.decision: Decision | None = None

    def decide(self) -> Decision:
        """The decision; raises ToolDenied unless the call may run."""
        self.decision = self.keeper.check(self.action)
        if self.decision.decision != "allow":
            raise ToolDenied(self.decision)
        return self.decision

    def finished(self, result: Any) -> None:
        if self.decision is not None:
            _record(self.keeper, self.decision, self.action, result)

    def failed(self, error: BaseException) -> None:
        self.finished({"error": type(error).__name__})


def guard(func: F | None = None, *, tool: str | None = None, agent: str = "python-sdk",
          session: str | None = None, keeper: Gatekeeper | None = None) -> Any:
    """Decorate a tool function so that every call is decided, audited and linked."""

    def wrap(function: F) -> F:
        name = tool or function.__name__
        signature = inspect.signature(function)

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            call = GuardedCall(name, dict(bound.arguments), agent=agent, session=session,
                               keeper=keeper)
            call.decide()
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                call.failed(exc)
                raise
            call.finished(result)
            return result

        return guarded  # type: ignore[return-value]

    return wrap(func) if func is not None else wrap


def _record(gk: Gatekeeper, decision: Decision, action: Action, result: Any) -> None:
    if gk.audit is None:
        return
    from runestone.integrations.hook import result_summary

    gk.audit.append([{"kind": "result", "request_id": decision.request_id, "via": action.agent,
                      "tool": action.tool, "action_hash": action.hash,
                      **result_summary(_jsonable(result))}])


def call_tool(name: str, *, agent: str = "python-sdk", session: str | None = None,
              cwd: str | None = None, **params: Any) -> dict[str, Any]:
    """Run one of the runtime's own tools through the local daemon; raise ToolDenied unless
    it was allowed. Returns the tool's result (`request_id` included)."""
    from runestone.daemon.paths import daemon_socket
    from runestone.daemon.server import api_token
    from runestone.home import layout
    from runestone.integrations.client import ask_daemon

    where = layout()
    body = json.dumps({"params": params, "agent": agent, "cwd": cwd or os.getcwd(),
                       "session": session or os.environ.get("RUNESTONE_SESSION", "")})
    answer = ask_daemon(daemon_socket(where), f"/tools/{name}", body,
                        headers={"Authorization": f"Bearer {api_token(where)}"})
    if answer is None:
        raise RuntimeError("the runestone daemon is not running; start `runestone daemon`")
    response = json.loads(answer[0])
    if response.get("decision") != "allow":
        raise ToolDenied(Decision(response.get("decision", "deny"),
                                  response.get("error") or response.get("reason", ""), (), "",
                                  "", request_id=response.get("request_id", "")))
    return {"request_id": response["request_id"], **response.get("result", {})}
