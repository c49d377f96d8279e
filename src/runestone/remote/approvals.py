"""Approvals through the control plane: send an ask, learn the decision, verify it.

An enrolled runtime sends each ask to its server, which routes it to the right approvers.
The answer counts only after one check made here, with values this runtime holds itself:
the server's Ed25519 signature (key received at enrollment) over the runtime id, the
request id, the *local* action hash, the decision and a hash of this runtime's own
credential. An answer that fails the check is a deny; nothing the server says about which
action was approved is trusted beyond that signature.

Which local requests were sent to the server is remembered on disk (one small file per
request, under the action hash), so a later process (the retry of a deferred call) knows
to ask the server about them. Standard library only: this runs on the hook path.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runestone.approvals import MAX_SCOPE_MINUTES
from runestone.remote.client import CredentialRefused, RemoteError
from runestone.remote.enrolled import EnrolledClient

SUBMIT_TIMEOUT = 5.0
RECORD_TIMEOUT = 2.0
FETCH_TIMEOUT = 3.0
DECIDED = ("approved", "denied", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The server's answer as this runtime reads it. `state` is pending, approved, denied
    or expired; an answer that did not verify is `denied` with `verified` False. `scope`
    ("once" or "rule-session") and `minutes` are what a verified approval covers."""

    state: str
    approvers: tuple[str, ...] = ()
    reason: str = ""
    verified: bool = True
    scope: str = "once"
    minutes: int = 0

    @property
    def decided(self) -> bool:
        return self.state in DECIDED


class ServerApprovals(EnrolledClient):
    """The control plane's approval API, as seen by one enrolled runtime (the client and
    its failures: remote/enrolled.py)."""

    def submit(self, ask: dict[str, Any], *, timeout: float = SUBMIT_TIMEOUT) -> dict[str, Any]:
        """Send an ask; the server's view of it (id, link, state). Raises RemoteError."""
        status, answer = self._call("POST", "/api/v1/runtime/approvals", ask, timeout)
        if status not in (200, 201):
            raise RemoteError(f"the control plane refused the approval request (HTTP "
                              f"{status}: {str(answer.get('detail', ''))[:200]})")
        return answer

    def fetch(self, request_id: str, wait: float = 0.0) -> dict[str, Any] | None:
        """The server's view of a request, waiting up to `wait` seconds for a decision;
        None if the server does not know it. Raises RemoteError."""
        query = urllib.parse.urlencode({"wait": f"{max(0.0, wait):g}"})
        status, answer = self._call(
            "GET", f"/api/v1/runtime/approvals/{urllib.parse.quote(request_id)}?{query}",
            None, FETCH_TIMEOUT + wait)
        if status == 404:
            return None
        if status != 200:
            refusal = CredentialRefused if status in (401, 403) else RemoteError
            raise refusal(f"the control plane answered HTTP {status} for approval "
                          f"{request_id}: {str(answer.get('detail', ''))[:200]}")
        return answer

    def cancel(self, request_id: str) -> None:
        """Withdraw a pending ask nobody waits for any more. Raises RemoteError."""
        status, answer = self._call(
            "POST", f"/api/v1/runtime/approvals/{urllib.parse.quote(request_id)}/cancel",
            {}, FETCH_TIMEOUT)
        if status not in (200, 404):
            raise RemoteError(f"the control plane answered HTTP {status} to a cancel: "
                              f"{str(answer.get('detail', ''))[:200]}")

    # --- verifying ----------------------------------------------------------------------

    def verdict(self, view: dict[str, Any], request_id: str, action_hash: str) -> Verdict:
        """Read the server's view of `request_id` for this exact action."""
        state = str(view.get("state", ""))
        if state not in DECIDED:
            return Verdict("pending")
        problem = self._problem(view, request_id, action_hash, state)
        if problem:
            return Verdict("denied", reason=f"the control plane's decision does not verify "
                           f"({problem}); treated as a deny", verified=False)
        approvers = tuple(str(a) for a in view.get("approvers") or ())
        scope, minutes = _scope(view)
        return Verdict(state, approvers, str(view.get("reason") or ""), scope=scope,
                       minutes=minutes)

    def _problem(self, view: dict[str, Any], request_id: str, action_hash: str,
                 state: str) -> str:
        from runestone.audit.checkpoint import verify_signature
        from runestone.remote.signing import decision_message

        for name, mine in (("runtime_id", self.runtime_id), ("request_id", request_id),
                           ("action_hash", action_hash)):
            if not hmac.compare_digest(str(view.get(name, "")), mine):
                return f"it names another {name.replace('_', ' ')}"
        scope, minutes = _scope(view)
        if scope == "?":
            return "an unknown scope"
        message = decision_message(self.runtime_id, request_id, action_hash, state,
                                   self.credential_hash, scope, minutes)
        if not verify_signature(self.server_public_key, message,
                                str(view.get("signature", ""))):
            return "bad signature"
        return ""

    # --- what was sent ------------------------------------------------------------------

    def _dir(self, action_hash: str) -> Path:
        safe = "".join(c for c in action_hash if c in "0123456789abcdef")[:64] or "none"
        return self.layout.state_dir / "server-approvals" / safe

    def remember(self, request_id: str, action_hash: str, view: dict[str, Any], *,
                 server_request_id: str | None = None) -> None:
        """Note that local request `request_id` waits on the server's request
        `server_request_id` (its own id unless it joined an earlier ask)."""
        directory = self._dir(action_hash)
        directory.mkdir(parents=True, exist_ok=True)
        record = {"request_id": request_id, "action_hash": action_hash,
                  "server_request_id": server_request_id or request_id,
                  "id": view.get("id"), "link": view.get("link", "")}
        temporary = directory / f".{request_id}.tmp"
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, directory / f"{request_id}.json")

    def sent(self, action_hash: str) -> list[dict[str, Any]]:
        """Requests for this action that were sent to the server and not yet settled."""
        records = []
        try:
            names = sorted(os.listdir(self._dir(action_hash)))
        except OSError:
            return []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                records.append(json.loads((self._dir(action_hash) / name).read_text(
                    encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return records

    def was_sent(self, request_id: str, action_hash: str) -> dict[str, Any] | None:
        path = self._dir(action_hash) / f"{request_id}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def forget(self, request_id: str, action_hash: str) -> None:
        with contextlib.suppress(OSError):
            (self._dir(action_hash) / f"{request_id}.json").unlink()


def _scope(view: dict[str, Any]) -> tuple[str, int]:
    """(scope, minutes) as the answer states them (absent: "once", 0); ("?", 0) when they
    are not a scope this runtime knows. The signature then decides whether they stand."""
    scope, minutes = view.get("scope", "once"), view.get("minutes", 0)
    if isinstance(minutes, bool) or not isinstance(minutes, int):  # True is no minutes
        return "?", 0
    if scope == "once" and minutes == 0:
        return "once", 0
    if scope == "rule-session" and 1 <= minutes <= MAX_SCOPE_MINUTES:
        return "rule-session", minutes
    return "?", 0
