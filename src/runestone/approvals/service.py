"""The approval workflow of one runtime: ask, decide, spend, with every step audited.

The gatekeeper calls `redeem` before asking (is there an approval or grant for exactly
this?) and `open_request` when it must ask; people call `decide`, `grant` and `revoke`
through the CLI or the approval page. Each human decision is an `approval` entry in the
audit log, linked by the request id to the request and the decision that asked.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from runestone.actions import Action
from runestone.approvals import MAX_GRANT_MINUTES, MAX_SCOPE_MINUTES, tokens
from runestone.audit.log import AuditLog
from runestone.audit.redact import Redactor
from runestone.home import Layout
from runestone.policy import Decision

if TYPE_CHECKING:
    from runestone.approvals.store import ApprovalStore, Grant, Request
    from runestone.remote.approvals import ServerApprovals, Verdict

DEFAULT_TTL_SECONDS = 15 * 60
DEFAULT_PAGE_URL = "http://127.0.0.1:8765"
SCOPES = ("once", "rule-session")
REMOTE_RETRY_SECONDS = 2.0  # a wait asks an unreachable control plane again this often


class ApprovalError(ValueError):
    """A request for an approval action that cannot be carried out, and why."""


class ApprovalSettings(NamedTuple):
    """How this runtime handles `ask`: from the environment, with safe defaults."""

    ttl_seconds: int = DEFAULT_TTL_SECONDS
    skew_seconds: int = tokens.DEFAULT_SKEW_SECONDS
    page_url: str = DEFAULT_PAGE_URL
    approver: str = ""
    # Enrolled runtimes only: what an ask becomes when the control plane does not answer.
    # "deny" (the team's approvers decide, and none can be reached), or "local" (this
    # machine's user may approve until it answers again).
    fallback: str = "deny"

    @classmethod
    def from_env(cls) -> ApprovalSettings:
        return cls(
            ttl_seconds=_int_env("RUNESTONE_APPROVAL_TTL", DEFAULT_TTL_SECONDS),
            skew_seconds=_int_env("RUNESTONE_APPROVAL_SKEW", tokens.DEFAULT_SKEW_SECONDS),
            page_url=os.environ.get("RUNESTONE_APPROVAL_URL", DEFAULT_PAGE_URL).rstrip("/"),
            approver=os.environ.get("RUNESTONE_APPROVER", ""),
            fallback="local" if os.environ.get("RUNESTONE_APPROVAL_FALLBACK") == "local"
            else "deny",
        )


def _int_env(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


def local_approver(settings: ApprovalSettings) -> str:
    """The person approving on this machine: the configured name, else the login name."""
    if settings.approver:
        return settings.approver
    try:
        import getpass

        return "local:" + getpass.getuser()
    except Exception:  # no login name is not a reason to fail
        return f"local:uid-{os.getuid()}"


class Approvals:
    def __init__(self, layout: Layout, *, audit: AuditLog | None,
                 settings: ApprovalSettings | None = None) -> None:
        from runestone.audit.checkpoint import Signer
        from runestone.identity import load_identity

        self.layout = layout
        self.identity = load_identity(layout)
        self.signer = Signer(layout.private_key_file)
        self._store: ApprovalStore | None = None
        self._remote: ServerApprovals | bool | None = False  # False: not looked up yet
        self._links: dict[str, str] = {}  # request id -> the control plane's link
        self._notes: dict[str, str] = {}  # request id -> why the server was not used
        self.audit = audit
        self.settings = settings or ApprovalSettings.from_env()
        try:
            self.redactor: Redactor | None = Redactor(layout.redaction_key_file.read_bytes())
        except (OSError, ValueError):
            self.redactor = None

    @property
    def store(self) -> ApprovalStore:
        """Opened on first use: most decisions never ask, and need no database."""
        if self._store is None:
            from runestone.approvals.store import ApprovalStore

            self._store = ApprovalStore(self.layout.state_dir / "approvals.sqlite3")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def remote(self) -> ServerApprovals | None:
        """The control plane's approvals when this runtime is enrolled, else None."""
        if self._remote is False:
            # Not enrolled (no remote.json, as `runestone.remote.client.remote_file` names
            # it): say so without importing the HTTP client, urllib.request and OpenSSL,
            # ~25 ms that every cold hook answering "ask" paid.
            if not (self.layout.config_dir / "remote.json").exists():
                self._remote = None
                return None
            from runestone.remote.approvals import ServerApprovals

            self._remote = ServerApprovals.from_layout(self.layout)
        return self._remote  # type: ignore[return-value]

    def link(self, request: Request) -> str:
        """Where a human decides: the control plane's page when the ask went there."""
        return self._links.get(request.id) or f"{self.settings.page_url}/approve/{request.token}"

    def how_to_approve(self, request: Request) -> str:
        """The instruction a deferred or waiting ask shows the person."""
        if request.id in self._links:
            return (f"open {self.link(request)} (routed to the control plane's approvers; "
                    "local approval is refused for it)")
        note = self._notes.get(request.id, "")
        return (f"open {self.link(request)} or run `runestone approvals approve "
                f"{request.id}`" + (f" ({note})" if note else ""))

    # --- asking ---------------------------------------------------------------------------

    def open_request(self, action: Action, decision: Decision, request_id: str,
                     analysis: dict[str, Any] | None = None) -> Request:
        """Record a pending request and sign its token (the id is the audit request id).

        What is stored, shown to approvers and sent to the control plane is redacted as
        the audit log is: the action, its summary, and also the policy's reason and how the
        command was read, which quote it."""
        now = time.time()
        expires = int(now + self.settings.ttl_seconds)
        claims = tokens.new_claims(request_id, decision.action_hash or action.hash,
                                   decision.policy_hash, expires, self.identity.runtime_id)
        from runestone.approvals.store import Request
        from runestone.audit.records import summarize

        request = Request(
            id=request_id, tool=action.tool, action=self._redact_value(action.identity()),
            summary=self._redact(summarize(action)),
            action_hash=claims.action_hash, policy_hash=claims.policy_hash,
            rules=tuple(decision.rules), reason=self._redact(decision.reason),
            analysis=self._redact_value(analysis or {}),
            agent=action.agent, session=action.session, user=action.user or _login(),
            host=_hostname(), created=now, expires=float(expires), state="pending",
            token=tokens.issue(claims, self.signer), nonce=claims.nonce,
        )
        self.store.add_request(request)
        self._send(request, decision.severity)
        return request

    def _send(self, request: Request, severity: str, mode: str = "wait") -> None:
        """Enrolled: route the ask through the control plane, whose approvers decide it.

        When the control plane refuses the ask, or does not answer and no local fallback was
        configured, the request is cancelled and ApprovalError says why (the gatekeeper
        denies): an enrolled runtime's user must not become its own approver because the
        network is down. With RUNESTONE_APPROVAL_FALLBACK=local an unanswered ask stays on
        this machine, and the reason says so. Nothing is allowed without a verified approval.
        """
        remote = self.remote
        if remote is None:
            return
        from runestone.remote.client import RemoteError, ServerUnreachable

        if self._take_over(request):
            return
        from runestone.bounded import bounded

        ask = {"request_id": request.id, "action_hash": request.action_hash,
               "tool": request.tool, "summary": request.summary, "reason": request.reason,
               "rules": list(request.rules), "severity": severity or "medium",
               "input": bounded(request.action), "user": request.user,
               "agent": request.agent, "session": request.session, "mode": mode}
        try:
            view = remote.submit(ask)
        except RemoteError as exc:
            local = isinstance(exc, ServerUnreachable) and self.settings.fallback == "local"
            self._audit({"kind": "approval-routing", "request_id": request.id,
                         "server": remote.server, "routed": False, "error": str(exc),
                         "fallback": "local" if local else "deny"})
            if local:
                self._notes[request.id] = (f"{exc}; falling back to local approval on this "
                                           "machine (RUNESTONE_APPROVAL_FALLBACK=local)")
                return
            self.store.cancel(request.id)
            hint = "" if not isinstance(exc, ServerUnreachable) else (
                "; RUNESTONE_APPROVAL_FALLBACK=local would let this machine's user approve "
                "while it does not answer")
            raise ApprovalError(f"{exc}. This runtime is enrolled, so its team's approvers "
                                f"decide its asks{hint}") from exc
        remote.remember(request.id, request.action_hash, view)
        self._links[request.id] = str(view.get("link") or "")
        self._audit({"kind": "approval-routing", "request_id": request.id,
                     "server": remote.server, "routed": True,
                     "server_id": view.get("id"), "link": view.get("link", "")})

    def _take_over(self, request: Request) -> bool:
        """A retry of a deferred call while its ask is still open on the server joins that
        ask instead of opening another (approvers are not asked twice for one action). The
        older local request is cancelled, so one approval still allows one execution."""
        remote = self.remote
        assert remote is not None
        for sent in remote.sent(request.action_hash):
            old = self.store.request(str(sent.get("request_id", "")))
            if old is None or old.id == request.id or old.state != "pending" or \
                    old.expires <= time.time() or not self.store.cancel(old.id):
                continue
            server_request_id = str(sent.get("server_request_id") or old.id)
            remote.forget(old.id, request.action_hash)
            remote.remember(request.id, request.action_hash,
                            {"id": sent.get("id"), "link": sent.get("link", "")},
                            server_request_id=server_request_id)
            self._links[request.id] = str(sent.get("link") or "")
            self._audit({"kind": "approval-routing", "request_id": request.id,
                         "server": remote.server, "routed": True, "server_id": sent.get("id"),
                         "link": sent.get("link", ""), "joins": server_request_id,
                         "replaces": old.id})
            return True
        return False

    def note_host_ask(self, action: Action, decision: Decision) -> None:
        """The host asks its user itself; an enrolled runtime still records the ask on the
        control plane (briefly: the host is waiting), and carries on if it cannot."""
        remote = self.remote
        if remote is None or decision.decision != "ask" or not decision.request_id:
            return
        from runestone.audit.records import summarize
        from runestone.bounded import bounded
        from runestone.remote.client import RemoteError

        try:
            remote.submit({
                "request_id": decision.request_id,
                "action_hash": decision.action_hash or action.hash, "tool": action.tool,
                "summary": self._redact(summarize(action)),
                "reason": self._redact(decision.reason),
                "rules": list(decision.rules), "severity": decision.severity or "medium",
                "input": bounded(self._redact_value(action.identity())),
                "user": action.user or _login(), "agent": action.agent,
                "session": action.session, "mode": "ask"}, timeout=_record_timeout())
        except RemoteError as exc:
            print(f"runestone: the ask was not recorded on the control plane ({exc})",
                  file=sys.stderr)

    def remote_verdict(self, request: Request, wait: float = 0.0) -> Verdict | None:
        """The control plane's verified answer for a request sent there; None when it was
        not sent or the server cannot be reached. Applies a decision to the local store."""
        remote = self.remote
        sent = remote.was_sent(request.id, request.action_hash) if remote else None
        if remote is None or sent is None:
            return None
        from runestone.remote.client import CredentialRefused, RemoteError

        # A retry that joined an earlier ask holds the server's request under its first id.
        server_request_id = str(sent.get("server_request_id") or request.id)
        try:
            view = remote.fetch(server_request_id, wait=wait)
        except CredentialRefused as exc:
            # No verdict will ever come (a revoked runtime): the request is over here too,
            # so a retry opens a new ask, which the server refuses with its reason.
            self._notes[request.id] = str(exc)
            if self.store.cancel(request.id):
                self._audit({"kind": "approval", "request_id": request.id,
                             "decision": "cancelled", "approver": "control-plane",
                             "scope": "", "reason": str(exc)})
            remote.forget(request.id, request.action_hash)
            return None
        except RemoteError as exc:
            self._notes[request.id] = str(exc)
            return None
        if view is None:
            self._notes[request.id] = "the control plane does not know this request"
            return None
        verdict = remote.verdict(view, server_request_id, request.action_hash)
        if verdict.decided:
            self._apply(request, verdict)
        return verdict

    def _apply(self, request: Request, verdict: Verdict) -> None:
        """Make a verified server decision (or a forged one, as a deny) local: audited,
        then stored, so the retry spends it once like a local approval. A verified
        rule-session approval also grants the *local* request's rules for its session (what
        this runtime asked, not what the server says was asked), like a local one."""
        assert self.remote is not None
        state = "approved" if verdict.state == "approved" and verdict.verified else "denied"
        approver = "server:" + (",".join(verdict.approvers) or verdict.state)
        reason = verdict.reason or ("expired unanswered on the control plane"
                                    if verdict.state == "expired" else "")
        # A request with no session id would make session-wide grants cover every
        # session: wider than the approvers chose, so it is approved once instead.
        scope = "rule-session" if state == "approved" and verdict.scope == "rule-session" \
            and request.rules and request.session and verdict.minutes > 0 else "once"
        grant_ids = self._grant_ids(request) if scope == "rule-session" else []
        self._audit({"kind": "approval", "request_id": request.id, "decision": state,
                     "approver": approver, "scope": scope, "reason": reason,
                     "action_hash": request.action_hash, "policy_hash": request.policy_hash,
                     "grants": grant_ids, "minutes": verdict.minutes if grant_ids else None,
                     "via": "control plane", "verified": verdict.verified})
        if self.store.decide(request.id, state, approver, reason, scope, time.time(),
                             grant_id=",".join(grant_ids) or None):
            self._rule_session_grants(request, grant_ids, approver, verdict.minutes)
        self.remote.forget(request.id, request.action_hash)

    def sync_from_server(self, action_hash: str) -> None:
        """Before spending approvals for this action, learn what the server decided about
        the requests for it that were sent there (the retry of a deferred call)."""
        remote = self.remote
        if remote is None:
            return
        for sent in remote.sent(action_hash):
            request = self.store.request(str(sent.get("request_id", "")))
            if request is None or request.state != "pending":
                remote.forget(str(sent.get("request_id", "")), action_hash)
                continue
            if request.action_hash == action_hash:
                self.remote_verdict(request)

    def claims_of(self, request: Request) -> tokens.Claims:
        return tokens.Claims(request.id, request.action_hash, request.policy_hash,
                             int(request.expires), request.nonce, self.identity.runtime_id)

    def verify_token(self, token: str, *, action_hash: str | None = None,
                     policy_hash: str | None = None) -> tuple[tokens.Claims, Request]:
        """Check a link's token against this runtime and its store. Raises TokenRefused."""
        claims, _, _ = tokens.read_claims(token)
        request = self.store.request(claims.request_id)
        if request is None:
            raise tokens.TokenRefused("unknown-request", "no approval request with this id "
                                      "exists on this runtime")
        verified = tokens.verify(
            token, public_key_hex=self.identity.public_key, runtime_id=self.identity.runtime_id,
            now=time.time(), issued=self.claims_of(request), action_hash=action_hash,
            policy_hash=policy_hash, skew_seconds=self.settings.skew_seconds)
        if request.state == "consumed":
            raise tokens.TokenRefused("used", "this approval was already used; approvals are "
                                      "single-use")
        return verified, request

    # --- spending -------------------------------------------------------------------------

    def redeem(self, action: Action, decision: Decision, *,
               home: str | None = None) -> tuple[str, str] | None:
        """Spend an approval or grant that covers exactly this ask; ("request"|"grant", id).
        Enrolled, a grant issued on the control plane (remote/grants.py) comes before the
        local ones (which an enrolled runtime refuses to make)."""
        now = time.time()
        action_hash = decision.action_hash or action.hash
        try:
            self.sync_from_server(action_hash)
        except Exception as exc:  # the server's answer is optional; a broken one is no allow
            print(f"runestone: control plane approvals unavailable ({exc})", file=sys.stderr)
        spendable = self.store.spendable(now)
        for request in self.store.approved_for(action_hash) if spendable else ():
            try:
                self.verify_token(request.token, action_hash=action_hash,
                                  policy_hash=decision.policy_hash)
            except tokens.TokenRefused:
                continue
            if self.store.consume(request.id, action_hash, now):
                self._audit({"kind": "execution-approved", "request_id": request.id,
                             "action_hash": action_hash, "via": "approval",
                             "approver": request.approver or ""})
                return "request", request.id
        served = self._server_grant(action, action_hash, home)
        if served is not None:
            return served
        if not spendable:
            return None
        grant = self.store.use_grant(action_key(action),
                                     tuple(decision.rules) if decision.explained else (),
                                     action.session, now)
        if grant is not None:
            self._audit({"kind": "grant-use", "grant_id": grant.id, "action_hash": action_hash,
                         "request_id": grant.request_id or "", "rules": list(decision.rules),
                         "session": action.session, "uses_left": grant.uses_left})
            return "grant", grant.id
        return None

    def _server_grant(self, action: Action, action_hash: str,
                      home: str | None) -> tuple[str, str] | None:
        if self.remote is None:
            return None
        from runestone.remote.grants import ServerGrants

        grants = ServerGrants.from_layout(self.layout)
        if grants is None:
            return None
        try:
            used = grants.redeem(action, action_key(action), home)
        except Exception as exc:  # a broken grant store is no allow
            print(f"runestone: control plane grants unavailable ({exc})", file=sys.stderr)
            return None
        if used is None:
            return None
        self._audit({"kind": "grant-use", "grant_id": used.grant_id, "action_hash": action_hash,
                     "via": "control plane" if used.via == "online" else
                     "offline allotment", "use": used.use, "uses": used.uses,
                     "session": action.session, "summary": used.summary[:200]})
        return "grant", f"{used.grant_id} (use {used.use} of {used.uses}"  \
            + (" allotted for offline use)" if used.via == "offline" else ")")

    # --- deciding -------------------------------------------------------------------------

    def decide(self, request_id: str, *, approve: bool, approver: str, reason: str = "",
               scope: str = "once", minutes: int = 30) -> Request:
        """Approve or deny a pending request; with scope `rule-session`, also grant its rules
        for the requesting session for `minutes`."""
        if scope not in SCOPES:
            raise ApprovalError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}")
        request = self.store.request(request_id)
        if request is None:
            raise ApprovalError(f"no approval request {request_id}")
        now = time.time()
        if request.state == "pending" and request.expires <= now:
            self.store.expire_due(now)
            raise ApprovalError(f"request {request_id} expired; it can no longer be decided")
        if request.state != "pending":
            raise ApprovalError(f"request {request_id} is {request.state}, not pending")
        remote = self.remote
        sent = remote.was_sent(request_id, request.action_hash) if remote else None
        if sent is not None:
            raise ApprovalError(f"request {request_id} was routed to the control plane; "
                                f"decide it there: {sent.get('link') or remote.server}")
        if approve and scope == "rule-session" and not request.rules:
            raise ApprovalError("this request was not asked by a rule (it was not fully "
                                "understood), so only this exact action can be approved")
        if approve and scope == "rule-session" and not request.session:
            # A grant with no session would cover every session: wider than was chosen.
            raise ApprovalError("this request names no session, so only this exact action "
                                "can be approved")
        if approve and scope == "rule-session" and not 1 <= minutes <= MAX_SCOPE_MINUTES:
            raise ApprovalError(f"a rule-session approval lasts 1 to {MAX_SCOPE_MINUTES} "
                                "minutes")
        grant_ids = self._grant_ids(request) if approve and scope == "rule-session" else []
        state = "approved" if approve else "denied"
        # Audit first: a decision that is not in the log must not take effect.
        self._audit({"kind": "approval", "request_id": request_id, "decision": state,
                     "approver": approver, "scope": scope, "reason": reason,
                     "action_hash": request.action_hash, "policy_hash": request.policy_hash,
                     "grants": grant_ids, "minutes": minutes if grant_ids else None})
        if not self.store.decide(request_id, state, approver, reason, scope, now,
                                 grant_id=",".join(grant_ids) or None):
            self._audit({"kind": "approval-void", "request_id": request_id,
                         "reason": "decided by someone else first, or expired"})
            raise ApprovalError(f"request {request_id} was decided by someone else first")
        self._rule_session_grants(request, grant_ids, approver, minutes)
        decided = self.store.request(request_id)
        assert decided is not None
        return decided

    @staticmethod
    def _grant_ids(request: Request) -> list[str]:
        """Ids for a rule-session approval's grants, one per rule: chosen before the
        decision so its audit entry names them."""
        return ["grant_" + _token_hex(8) for _ in request.rules]

    def _rule_session_grants(self, request: Request, grant_ids: list[str], approver: str,
                             minutes: int) -> None:
        """The grants of a rule-session approval (local, or verified from the control
        plane): each of the request's rules, in the requesting session, for `minutes`."""
        for grant_id, rule_id in zip(grant_ids, request.rules if grant_ids else (),
                                     strict=True):
            self._new_grant("rule", approver, minutes, uses=None, rule_id=rule_id,
                            session=request.session or None,
                            summary=f"{rule_id} in session {request.session}",
                            request_id=request.id, grant_id=grant_id)

    def give_up(self, request_id: str) -> None:
        """The wait ran out: cancel the request here and, if it was routed, on the server
        too, so approvers are not left deciding an ask nobody waits for (best effort)."""
        request = self.store.request(request_id)
        self.store.cancel(request_id)
        remote = self.remote
        sent = remote.was_sent(request_id, request.action_hash) \
            if remote is not None and request is not None else None
        if remote is None or request is None or sent is None:
            return
        from runestone.remote.client import RemoteError

        try:
            remote.cancel(str(sent.get("server_request_id") or request_id))
        except RemoteError as exc:
            print(f"runestone: the control plane was not told the wait ended ({exc})",
                  file=sys.stderr)
        remote.forget(request_id, request.action_hash)

    def cancel(self, request_id: str, by: str) -> None:
        if not self.store.cancel(request_id):
            raise ApprovalError(f"request {request_id} is not pending")
        self._audit({"kind": "approval", "request_id": request_id, "decision": "cancelled",
                     "approver": by, "scope": "", "reason": ""})

    def grant(self, *, approver: str, minutes: int, uses: int | None,
              action: Action | None = None, rule_id: str | None = None,
              session: str | None = None) -> Grant:
        """A pre-approval: one exact action, or a rule's matches, until expiry or uses run out."""
        if (action is None) == (rule_id is None):
            raise ApprovalError("a grant is for one exact action or for one rule")
        if self.remote is not None and self.settings.fallback != "local":
            raise ApprovalError(
                f"this runtime is enrolled with {self.remote.server}: its team's approvers "
                "decide its asks there, so a grant made on this machine would step around "
                "them (RUNESTONE_APPROVAL_FALLBACK=local gives this machine that authority)")
        if action is not None:
            from runestone.audit.records import summarize

            summary = summarize(action)
            grant = self._new_grant("action", approver, minutes, uses,
                                    action_hash=action_key(action), session=session,
                                    summary=self._redact(summary))
        else:
            grant = self._new_grant("rule", approver, minutes, uses, rule_id=rule_id,
                                    session=session, summary=f"rule {rule_id}")
        return grant

    def _new_grant(self, kind: str, approver: str, minutes: int, uses: int | None, *,
                   action_hash: str | None = None, rule_id: str | None = None,
                   session: str | None = None, summary: str = "",
                   request_id: str | None = None, grant_id: str | None = None) -> Grant:
        if not 0 < minutes <= MAX_GRANT_MINUTES:
            raise ApprovalError(f"a grant lasts 1 to {MAX_GRANT_MINUTES} minutes")
        if uses is not None and uses <= 0:
            raise ApprovalError("a grant needs a positive number of uses")
        from runestone.approvals.store import Grant

        now = time.time()
        grant = Grant(id=grant_id or "grant_" + _token_hex(8), kind=kind,
                      action_hash=action_hash, rule_id=rule_id, session=session,
                      summary=summary, created=now, expires=now + minutes * 60,
                      uses_left=uses, uses=0, created_by=approver, request_id=request_id,
                      revoked=None, revoked_by=None)
        self._audit({"kind": "grant", "grant_id": grant.id, "grant_kind": kind,
                     "action_hash": action_hash or "", "rule": rule_id or "",
                     "session": session or "", "approver": approver, "minutes": minutes,
                     "uses": uses, "request_id": request_id or ""})
        self.store.add_grant(grant)
        return grant

    def revoke(self, grant_id: str, by: str) -> None:
        if not self.store.revoke(grant_id, by, time.time()):
            raise ApprovalError(f"no active grant {grant_id}")
        self._audit({"kind": "grant-revoked", "grant_id": grant_id, "approver": by})

    # --- waiting --------------------------------------------------------------------------

    def wait(self, request_id: str, timeout: float, poll: float = 0.2) -> Request:
        """Block until the request is decided or expires (or `timeout` passes). A request
        sent to the control plane is long-polled there (answered the moment it is decided);
        if the server stops answering, the wait goes on locally."""
        deadline = time.monotonic() + timeout
        next_remote = 0.0  # when to ask the server next (soon again after a failure)
        while True:
            request = self.store.request(request_id)
            if request is None or request.state != "pending":
                assert request is not None
                return request
            if request.expires <= time.time():
                self.store.expire_due(time.time())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return request
            if time.monotonic() >= next_remote:
                if self.remote_verdict(request, wait=min(remaining, 30.0)) is not None:
                    continue
                next_remote = time.monotonic() + REMOTE_RETRY_SECONDS
            time.sleep(poll)

    # --- helpers --------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return self.redactor.text(text) if self.redactor else text

    def _redact_value(self, value: Any) -> Any:
        return self.redactor.value(value) if self.redactor else value

    def _audit(self, entry: dict[str, Any]) -> None:
        """Write an approval-side entry; failing to audit a human decision is an error."""
        if self.audit is not None:
            self.audit.append([entry])


def action_key(action: Action) -> str:
    """What a pre-approval names: the tool, its input and where it runs.

    Planned work is approved before the session that will do it exists, so the key leaves
    out agent, session and user (a grant can still be limited to one session).
    """
    from runestone.actions.canonical import canonical_hash

    return canonical_hash({"tool": action.tool, "input": action.input, "cwd": action.cwd})


def _record_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("RUNESTONE_APPROVAL_RECORD_TIMEOUT", "2")))
    except ValueError:
        return 2.0


def _login() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no login name: leave it empty
        return ""


# Imported where used: a hook answering an ask (or an allow) builds this service without
# opening a request, and `socket` (~2.5 ms), `secrets` (OpenSSL, ~3 ms) and `getpass` are
# needed only to open one or to name a grant.
def _hostname() -> str:
    import socket

    return socket.gethostname()


def _token_hex(size: int) -> str:
    import secrets

    return secrets.token_hex(size)
