"""Grants from the control plane: pre-approvals an approver issued on the server, pulled
with the policy, honoured when policy asks.

A grant counts only after checks made here with what this runtime holds itself: the
server's Ed25519 signature (key received at enrollment) over the grant bound to this
runtime's id (an altered or foreign grant is ignored, saying so), its expiry on this
machine's clock, its sessions and agents, and what it matches: the exact action (tool,
input, working directory: `approvals.action_key`) or its rule, which must allow every part
of the action on its own (a rule never allows what is not fully understood, and the policy
had asked, not denied).

Spending: online, the server counts the use (atomically, across all runtimes) and answers
with a receipt signed for this runtime's credential; only a verified receipt allows. When
the server does not answer, the runtime spends only the uses the server allotted to it for
offline use, counted in `grant-uses.sqlite` in the state directory inside one
`BEGIN IMMEDIATE` transaction, so concurrent hook processes cannot overspend them. A
refusal (spent, expired, revoked) is final for that grant: the ask goes to a human.
Standard library plus the runtime's own loader; this runs on the ask path only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runestone.actions import Action
from runestone.home import Layout
from runestone.remote.client import RemoteError, ServerUnreachable
from runestone.remote.enrolled import EnrolledClient
from runestone.remote.signing import grant_message, grant_use_message

TIMEOUT = 5.0


def grants_file(layout: Layout) -> Path:
    return layout.state_dir / "server-grants.json"


@dataclass(frozen=True, slots=True)
class Used:
    """A grant spent for one action: how (`online` or `offline`) and which use."""

    grant_id: str
    via: str
    use: int
    uses: int
    summary: str


class ServerGrants(EnrolledClient):
    """The control plane's grants, as seen by one enrolled runtime (the client:
    remote/enrolled.py)."""

    speaks_of = "the server"

    def __init__(self, layout: Layout, config: dict[str, Any], credential: str) -> None:
        super().__init__(layout, config, credential)
        self._rules: dict[str, Any] = {}

    def _garbage(self, exc: ValueError) -> RemoteError:
        """An answer that is not a JSON object counts as no answer: spending falls back to
        this runtime's offline allotment."""
        return ServerUnreachable(f"{self.speaks_of} at {self.server} does not answer: {exc}")

    # --- pulling ------------------------------------------------------------------------

    def pull(self) -> int:
        """Fetch the grants meant for this runtime and keep the verified ones; how many."""
        status, answer = self._call("GET", "/api/v1/runtime/grants", None, TIMEOUT)
        if status != 200:
            raise RemoteError(f"the server refused the grants (HTTP {status}): "
                              f"{str(answer.get('detail', ''))[:300]}")
        kept = [item for item in answer.get("grants", []) if self.verified(item)]
        self.layout.state_dir.mkdir(parents=True, exist_ok=True)
        target = grants_file(self.layout)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps({"pulled": time.time(), "grants": kept}),
                             encoding="utf-8")
        os.replace(temporary, target)
        return len(kept)

    def verified(self, item: Any) -> bool:
        from runestone.audit.checkpoint import verify_signature

        if not isinstance(item, dict) or not isinstance(item.get("grant"), dict):
            return False
        return verify_signature(self.server_public_key,
                                grant_message(self.runtime_id, item["grant"]),
                                str(item.get("signature", "")))

    def cached(self) -> list[dict[str, Any]]:
        """The kept grants whose signature still verifies (a grant altered on disk is
        ignored, and said so)."""
        try:
            items = json.loads(grants_file(self.layout).read_text(encoding="utf-8"))["grants"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        good = []
        for item in items if isinstance(items, list) else []:
            if self.verified(item):
                good.append(item["grant"])
            else:
                gid = item.get("grant", {}).get("grant_id", "?") if isinstance(item, dict) \
                    else "?"
                print(f"runestone: grant {gid} fails its signature; ignored", file=sys.stderr)
        return good

    # --- spending -----------------------------------------------------------------------

    def covers(self, grant: dict[str, Any], action: Action, key: str,
               home: str | None) -> bool:
        if time.time() >= float(grant.get("expires", 0)):
            return False
        if grant.get("sessions") and action.session not in grant["sessions"]:
            return False
        if grant.get("agents") and action.agent not in grant["agents"]:
            return False
        match = grant.get("match") or {}
        if "action_key" in match:
            return match["action_key"] == key
        return isinstance(match.get("rule"), dict) and self._rule_allows(grant, action, home)

    def _rule_allows(self, grant: dict[str, Any], action: Action, home: str | None) -> bool:
        from runestone.facts import derive_facts
        from runestone.policy import PolicyError
        from runestone.policy.engine import evaluate
        from runestone.policy.learn import to_toml
        from runestone.policy.loader import compile_policy_text
        from runestone.policy.model import EvalContext

        gid = str(grant.get("grant_id"))
        if gid not in self._rules:
            try:
                self._rules[gid] = compile_policy_text(
                    '[policy]\nname = "grant"\ndefault = "ask"\n\n' + to_toml(
                        grant["match"]["rule"]), source=f"grant {gid}")
            except (PolicyError, TypeError) as exc:
                print(f"runestone: grant {gid} has a rule this runtime cannot read ({exc}); "
                      "ignored", file=sys.stderr)
                self._rules[gid] = None
        policy = self._rules[gid]
        if policy is None:
            return False
        return evaluate(policy, derive_facts(action, home=home), EvalContext()).decision \
            == "allow"

    def redeem(self, action: Action, key: str, home: str | None = None) -> Used | None:
        """Spend a grant that covers this action: online if the server answers, else from
        this runtime's offline allotment; None when no grant covers it or none is left."""
        for grant in self.cached():
            if not self.covers(grant, action, key, home):
                continue
            gid = str(grant["grant_id"])
            try:
                status, answer = self._call(
                    "POST", f"/api/v1/runtime/grants/{urllib.parse.quote(gid)}/spend",
                    {"action_key": key, "session": action.session, "agent": action.agent},
                    TIMEOUT)
            except ServerUnreachable:
                used = self._offline(grant)
                if used is not None:
                    return used
                continue
            if status != 200:
                print(f"runestone: grant {gid} not used: "
                      f"{str(answer.get('detail', ''))[:200]}", file=sys.stderr)
                continue
            use = answer.get("use")
            if not isinstance(use, int) or not self._receipt_verifies(gid, key, use, answer):
                print(f"runestone: the server's receipt for grant {gid} does not verify; "
                      "not used", file=sys.stderr)
                continue
            return Used(gid, "online", use, int(grant.get("uses", 0)),
                        str(grant.get("summary", "")))
        return None

    def _receipt_verifies(self, gid: str, key: str, use: int, answer: dict[str, Any]) -> bool:
        from runestone.audit.checkpoint import verify_signature

        return answer.get("grant_id") == gid and verify_signature(
            self.server_public_key,
            grant_use_message(self.runtime_id, gid, key, use, self.credential_hash),
            str(answer.get("signature", "")))

    def _offline(self, grant: dict[str, Any]) -> Used | None:
        allotted = int(grant.get("allotted") or 0)
        if allotted <= 0:
            return None
        gid = str(grant["grant_id"])
        path = self.layout.state_dir / "grant-uses.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS uses (grant_id TEXT NOT NULL, at REAL)")
            db.execute("BEGIN IMMEDIATE")
            (spent,) = db.execute("SELECT COUNT(*) FROM uses WHERE grant_id = ?",
                                  (gid,)).fetchone()
            if spent >= allotted:
                db.execute("COMMIT")
                return None
            db.execute("INSERT INTO uses VALUES (?, ?)", (gid, time.time()))
            db.execute("COMMIT")
        finally:
            db.close()
        return Used(gid, "offline", spent + 1, allotted, str(grant.get("summary", "")))
