"""The gatekeeper: Action -> facts -> Decision, with the session context policy needs.

This is the entry point integrations call. It owns the compiled policy and the per-session
state (whether a session has read untrusted content), and it turns every failure into a
deny with a reason: malformed input, an unreadable policy, an internal error.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runestone.actions import Action
from runestone.actions.canonical import canonical_hash
from runestone.actions.tools import Family
from runestone.audit.log import AuditLog, AuditWriteError
from runestone.audit.records import decision_entry, new_request_id, request_entry
from runestone.digest import sha256
from runestone.facts import Facts
from runestone.home import Layout
from runestone.memo import DecisionMemo
from runestone.policy import (
    CompiledPolicy,
    Decision,
    EvalContext,
    PolicyCache,
    PolicyError,
    load_policy,
    load_preset,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from runestone.approvals.service import Approvals
    from runestone.limit_counter import LimitCounter

APPROVAL_MODES = ("ask", "wait", "defer")
DEFAULT_WAIT_SECONDS = 300.0
NETWORK_FETCHERS = frozenset({"curl", "wget", "http", "https", "xh", "httpie", "aria2c", "lynx",
                              "w3m", "links"})


def _cached_team_policy_refused(layout: Layout, policy_hash: str) -> str:
    """Why the control plane's cached policy may not govern ('' when it may): it must be
    the version the server signed (runestone.remote.pinned)."""
    from runestone.remote import pinned

    return pinned.mismatch(layout, policy_hash) if pinned.governs(layout) else ""


# Pauses before reading a refused team policy and its record again (seconds).
_REREAD_PAUSES = (0.005, 0.02, 0.05)


def _load_team_policy(layout: Layout, cache: PolicyCache) -> CompiledPolicy:
    """The enrolled runtime's governing policy, refused unless it is the signed version.

    A pull replaces the cached file and then its signed record (two files, so not at once):
    a load between the two reads a file and a record that do not match. So a mismatch is
    read again, a few times within a tenth of a second, before the policy is refused; a
    file changed on disk still is, after those pauses. Reading a file again costs little:
    its parsed form is cached by its text (PolicyCache)."""
    for pause in (*_REREAD_PAUSES, None):
        policy = load_policy(layout.governing_policy_file(), cache=cache)
        refused = _cached_team_policy_refused(layout, policy.hash)
        if not refused:
            return policy
        if pause is not None:
            time.sleep(pause)
    raise PolicyError(refused)


class SessionState:
    """Remembers which sessions have read untrusted content (web pages, outside files).

    With a directory, the mark survives across hook processes (one small file per session,
    named by a hash of the session id); without one it lives in memory.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._memory: set[str] = set()

    def _file(self, session: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / (sha256(session.encode()).hexdigest()[:32] + ".tainted")

    def is_tainted(self, session: str) -> bool:
        if not session:
            return False
        if session in self._memory:
            return True
        path = self._file(session)
        return bool(path and path.exists())

    def mark_tainted(self, session: str, why: str) -> None:
        if not session or session in self._memory:
            return
        self._memory.add(session)
        path = self._file(session)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(why + "\n", encoding="utf-8")
            except OSError as exc:
                print(f"runestone: cannot record session taint: {exc}", file=sys.stderr)


def taint_reason(facts: Facts) -> str | None:
    """Why this action brings untrusted content into the session, if it does."""
    if facts.family in (Family.WEB_FETCH, Family.WEB_SEARCH):
        return f"{facts.action.tool} fetched web content"
    project = facts.project
    for part in facts.parts:
        if part.kind == "file" and part.path is not None and part.path.access in ("read", "list"):
            from runestone.actions.paths import is_within

            if any(not is_within(form, project) for form in part.path.forms):
                return f"read {part.path.raw} from outside the project"
        if part.kind == "command" and part.command and part.command.name in NETWORK_FETCHERS:
            return f"ran {part.command.name}, which fetches content from the network"
    return None


MALFORMED_TOOL = "(malformed input)"  # the tool of an audited refusal of non-actions
MALFORMED_KEPT = 4096  # characters of a malformed input kept in its request entry


def error_decision(reason: str, *, action_hash: str = "", policy_hash: str = "") -> Decision:
    """A deny for a failure: the caller still gets a well-formed, safe answer."""
    return Decision("deny", reason, (), policy_hash, action_hash)


class Gatekeeper:
    """Decides tool calls under one compiled policy."""

    def __init__(
        self,
        policy: CompiledPolicy,
        *,
        sessions: SessionState | None = None,
        labels: dict[str, str] | None = None,
        home: str | None = None,
        audit: AuditLog | None = None,
        approvals: Approvals | None = None,
        approvals_factory: Callable[[], Approvals | None] | None = None,
        approval_mode: str = "ask",
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        limits_file: Path | None = None,
    ) -> None:
        if approval_mode not in APPROVAL_MODES:
            raise ValueError(f"approval mode must be one of {', '.join(APPROVAL_MODES)}")
        self.policy = policy
        self.sessions = sessions or SessionState()
        self.labels = dict(labels or {})
        self.home = home
        self.audit = audit
        self._approvals = approvals
        self._approvals_factory = approvals_factory
        self._approvals_lock = threading.Lock()
        self.approval_mode = approval_mode
        self.wait_seconds = wait_seconds
        self.limits_file = limits_file  # None: counted in memory, for this process only
        self._limit_counter: LimitCounter | None = None
        # Where the sandbox probe remembers that bubblewrap works (None: probe each time).
        self.state_dir: Path | None = None
        self._memo: DecisionMemo | None = None  # made for the policy on first use
        # Per thread: while `check_batch` runs, the audit entries it has yet to write.
        self._local = threading.local()

    @property
    def approvals(self) -> Approvals | None:
        """The approvals service, made on first use: most calls are allowed or denied
        outright, and a hook process should not pay for a service it does not need."""
        if self._approvals_factory is not None:
            # Threads of the daemon or the MCP gateway may ask at once: one makes it, the
            # others wait for it rather than reading None as "no approvals here".
            with self._approvals_lock:
                if self._approvals_factory is not None:
                    self._approvals = self._approvals_factory()
                    self._approvals_factory = None
        return self._approvals

    @approvals.setter
    def approvals(self, value: Approvals | None) -> None:
        with self._approvals_lock:
            self._approvals, self._approvals_factory = value, None

    @classmethod
    def from_layout(
        cls,
        layout: Layout,
        *,
        policy_file: str | Path | None = None,
        preset: str | None = None,
        home: str | None = None,
        approval_mode: str | None = None,
        wait_seconds: float | None = None,
    ) -> Gatekeeper:
        """Load the configured policy. Raises PolicyError; callers deny on it."""
        cache = PolicyCache.of(layout)
        if preset:
            policy = load_preset(preset, cache=cache)
        elif policy_file:
            policy = load_policy(policy_file, cache=cache)
        elif layout.governing_policy_file().exists():
            # Enrolled: the last verified policy from the control plane governs.
            policy = _load_team_policy(layout, cache)
        else:
            print(
                f"runestone: no policy at {layout.policy_file}; using the 'default' preset "
                "(nothing is allowed, unknown actions ask). Run `runestone init` to create one.",
                file=sys.stderr,
            )
            policy = load_preset("default", cache=cache)
        audit = open_audit_log(layout)
        mode = approval_mode or os.environ.get("RUNESTONE_APPROVAL", "ask")
        if mode not in APPROVAL_MODES:
            print(f"runestone: unknown approval mode {mode!r}; using 'ask'", file=sys.stderr)
            mode = "ask"

        def approvals() -> Approvals | None:
            from runestone.approvals.service import Approvals

            try:
                return Approvals(layout, audit=audit)
            except Exception as exc:  # approvals are optional; policy decisions are not
                print(f"runestone: approvals unavailable ({exc})", file=sys.stderr)
                return None

        if wait_seconds is None:
            try:
                wait_seconds = float(os.environ.get("RUNESTONE_APPROVAL_WAIT",
                                                    DEFAULT_WAIT_SECONDS))
            except ValueError:
                wait_seconds = DEFAULT_WAIT_SECONDS
        keeper = cls(policy, sessions=SessionState(layout.sessions_dir),
                     labels=_labels_from_env(), home=home, audit=audit,
                     approvals_factory=approvals if audit is not None else None,
                     approval_mode=mode, wait_seconds=wait_seconds,
                     limits_file=layout.state_dir / "limits.sqlite")
        keeper.state_dir = layout.state_dir
        return keeper

    def context(self, action: Action) -> EvalContext:
        return EvalContext(tainted=self.sessions.is_tainted(action.session), labels=self.labels)

    def decide(self, action: Action) -> tuple[Facts, Decision]:
        """The policy's answer and the facts it judged, nothing recorded: remembered when
        this action was decided before under the same conditions (runestone.memo). Raises
        on an internal error; `check` and `explain` turn that into a deny."""
        memo = self._memo
        if memo is None or memo.policy is not self.policy:
            memo = self._memo = DecisionMemo(self.policy)
        return memo.decide(action, self.context(action), self.home)

    def forget_decisions(self) -> None:
        """Forget remembered decisions (benchmarks timing the decision itself)."""
        self._memo = None

    def check(self, action: Action, *, approval_mode: str | None = None,
              contain: bool = False) -> Decision:
        """Decide one action and audit it. Never raises: any failure is a deny that says so.

        With an audit log, the request and the decision are durable on disk before the
        answer is returned; if they cannot be written, the answer is deny (no audit, no
        allow).

        `contain`: the caller runs a `sandbox` answer inside `runestone sandbox run` (the
        Claude Code hook by rewriting the command, `runestone exec`, the shell tool). For
        any other caller, and wherever the sandbox cannot start, `sandbox` becomes `ask`:
        a command is never run uncontained because containing it was not possible.
        """
        facts = None
        try:
            facts, decision = self.decide(action)
        except Exception as exc:
            try:
                action_hash = action.hash
            except Exception:
                action_hash = ""
            decision = error_decision(
                f"Internal error while deciding ({type(exc).__name__}: {exc}); denied to be "
                "safe.",
                action_hash=action_hash,
                policy_hash=self.policy.hash,
            )
        if decision.decision == "sandbox":
            decision = self._containable(decision, contain)
        if decision.decision in ("allow", "sandbox") and self.policy.limits and \
                facts is not None:
            decision = self._within_limits(action, facts, decision)
        mode = approval_mode or self.approval_mode
        if decision.decision == "ask" and self.approvals is not None:
            decision = self._ask_a_human(action, facts, decision, mode)
        elif decision.decision == "ask" and mode != "ask":
            decision = self._record(action, decision._replace(
                decision="deny",
                reason=f"{decision.reason} This host cannot ask, and approvals need an "
                       "initialised runtime (`runestone init`); denied."))
        else:
            decision = self._record(action, decision)
        if facts is not None and decision.decision != "deny":
            why = taint_reason(facts)
            if why:
                self.sessions.mark_tainted(action.session, why)
        return decision

    def refuse_malformed(self, text: str, reason: str, **where: Any) -> Decision:
        """Deny input that is not an action, and audit the refusal like any decision: a
        request entry for tool MALFORMED_TOOL holding the input's beginning (redacted as
        every entry is) and its length, and the deny. The log says every request and
        decision is appended; a malformed line is a request too (perhaps a deliberate one).
        """
        kept = text[:MALFORMED_KEPT].encode("utf-8", "replace").decode("utf-8")
        action = Action(MALFORMED_TOOL, {"text": kept, "length": len(text), **where}, "")
        return self._record(action, error_decision(reason, action_hash=action.hash,
                                                   policy_hash=self.policy.hash))

    def explain(self, action: Action, *, contain: bool = False) -> Decision:
        """The decision `check` would make from the policy, with nothing recorded or
        changed: no audit entry, no approval request, no limit counted, no session marked.

        Why: `runestone explain` asks what would happen; its entries looked like real
        checks in the audit log (and an ask opened a real approval request). Limits are
        not counted here, so a call over a limit is explained as the policy alone decides.
        """
        try:
            _facts, decision = self.decide(action)
        except Exception as exc:
            return error_decision(f"Internal error while deciding ({type(exc).__name__}: "
                                  f"{exc}); denied to be safe.", policy_hash=self.policy.hash)
        if decision.decision == "sandbox":
            decision = self._containable(decision, contain)
        return decision

    def _write_deferred_now(self) -> None:
        """Inside `check_batch`, before an approval request is opened or waited for: write
        what is queued and record the rest of this action at once, as `check` does."""
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            self._flush(self._local.answers, pending)
            self._local.immediate = True

    def _containable(self, decision: Decision, contain: bool) -> Decision:
        """A `sandbox` decision as this caller can carry it out: contained, or asked with
        the reason it cannot be."""
        why = ""
        if not contain:
            why = "this host cannot run the command inside the sandbox"
        else:
            from runestone.sandbox.probe import unavailable

            why = unavailable(self.state_dir)
            if not why:
                try:
                    profile = self.policy.sandbox_profile(decision.profile)
                except PolicyError as exc:
                    why = f"its profile cannot be read ({exc.message})"
                else:
                    return decision._replace(profile_hash=profile.hash)
        return decision._replace(
            decision="ask", profile="", explained=False,
            reason=f"{decision.reason} It cannot be contained ({why}), so a human decides.")

    def _within_limits(self, action: Action, facts: Facts, decision: Decision) -> Decision:
        """Count an allowed call against the policy's limits; over one, the limit's decision
        (ask or deny) with the count in the reason. A counter that fails is over."""
        programs = {p.command.name for p in facts.parts if p.command is not None}
        for limit in self.policy.limits:
            if not limit.applies(action.tool, facts.family.value, programs, decision.rules):
                continue
            who = {"session": action.session, "agent": action.agent,
                   "runtime": "runtime"}[limit.per] or "(none)"
            key = f"{limit.per}:{who}" + (f":{action.hash}" if limit.repeat else "")
            if limit.budget:
                over = self._over_budget(limit, key, who, decision)
                if over is not None:
                    return over
                continue
            try:
                count = self._counter().count(limit.id, key, limit.max, limit.minutes)
            except Exception as exc:
                return decision._replace(
                    decision=limit.decision, rules=(*decision.rules, f"limit:{limit.id}"),
                    profile="", reason=f"Limit '{limit.id}' could not be counted ({exc}); "
                           f"{limit.decision} to be safe.")
            if count.over:
                what = "the same action" if limit.repeat else "calls"
                why = f" {limit.reason}" if limit.reason else ""
                return decision._replace(
                    decision=limit.decision, rules=(*decision.rules, f"limit:{limit.id}"),
                    profile="", reason=f"Limit '{limit.id}' reached: {what} per {limit.per} "
                           f"{who if limit.per != 'runtime' else ''}".rstrip()
                           + f", at most {limit.max} in {limit.minutes} min; this is call "
                           f"{count.calls}.{why} The policy had allowed it: {decision.reason}")
        return decision

    def _counter(self) -> LimitCounter:
        if self._limit_counter is None:
            from runestone.limit_counter import LimitCounter

            self._limit_counter = LimitCounter(self.limits_file or Path(":memory:"))
        return self._limit_counter

    def _over_budget(self, limit: Any, key: str, who: str,
                     decision: Decision) -> Decision | None:
        """A cost budget: the tokens the host reported in the window; at `max` or over, the
        budget's decision (a budget that cannot be read is over)."""
        try:
            spent = self._counter().spent(limit.id, key, limit.minutes)
        except Exception as exc:
            spent, problem = limit.max, f" (the budget could not be read: {exc})"
        else:
            problem = ""
        if spent < limit.max:
            return None
        why = f" {limit.reason}" if limit.reason else ""
        return decision._replace(
            decision=limit.decision, rules=(*decision.rules, f"limit:{limit.id}"), profile="",
            reason=f"Budget '{limit.id}' spent: {spent} {limit.budget} per {limit.per} "
                   f"{who if limit.per != 'runtime' else ''}".rstrip()
                   + f" in {limit.minutes} min, at most {limit.max}{problem}.{why} The policy "
                   f"had allowed it: {decision.reason}")

    def record_usage(self, action: Action, tokens: int) -> list[str]:
        """What a host reported as used (tokens, from a hook payload that carries them),
        counted against every budget of the policy for this session, agent and runtime;
        the ids of the budgets counted."""
        counted = []
        for limit in self.policy.limits:
            if limit.budget != "tokens":
                continue
            who = {"session": action.session, "agent": action.agent,
                   "runtime": "runtime"}[limit.per] or "(none)"
            self._counter().spend(limit.id, f"{limit.per}:{who}", tokens)
            counted.append(limit.id)
        return counted

    def _ask_a_human(self, action: Action, facts: Facts | None, decision: Decision,
                     mode: str) -> Decision:
        """Policy asked: spend an approval or grant for exactly this, or open a request."""
        assert self.approvals is not None
        try:
            redeemed = self.approvals.redeem(action, decision, home=self.home)
        except Exception as exc:  # a broken store must not turn into an allow
            print(f"runestone: approvals unavailable ({exc}); asking", file=sys.stderr)
            redeemed = None
        if redeemed is not None:
            kind, ident = redeemed
            allowed = decision._replace(
                decision="allow",
                reason=f"Approved by a human ({kind} {ident}); the policy had asked: "
                       f"{decision.reason}",
                approval=(("state", "consumed" if kind == "request" else "granted"),
                          (kind, ident)))
            return self._record(action, allowed)
        if mode == "ask":
            approvals = self.approvals
            # Enrolled: recorded on the server, once the entries are durable.
            return self._record(action, decision,
                                after=lambda asked: approvals.note_host_ask(action, asked))
        self._write_deferred_now()
        request_id = new_request_id()
        pending = decision._replace(approval=(("state", "pending"), ("mode", mode)))
        asked = self._record(action, pending, request_id=request_id)
        if asked.decision != "ask":
            return asked  # the audit failed: already a deny that says so
        try:
            request = self.approvals.open_request(action, decision, request_id,
                                                  analysis=_analysis(facts))
        except Exception as exc:
            return self._record(action, error_decision(
                f"Policy asked, and no approval request could be opened ({exc}); denied.",
                action_hash=decision.action_hash, policy_hash=decision.policy_hash),
                request_id=request_id, with_request=False)
        link = self.approvals.link(request)
        if mode == "defer":
            return decision._replace(
                decision="deny", request_id=request_id,
                reason=f"{decision.reason} A human must approve this exact action first: "
                       f"{self.approvals.how_to_approve(request)}; then retry the identical "
                       "call, which will be allowed once.",
                approval=(("state", "pending"), ("request", request_id), ("link", link)))
        print(f"runestone: approval needed for `{request.summary}`\n  "
              f"{self.approvals.how_to_approve(request)}", file=sys.stderr)
        try:
            final = self.approvals.wait(request_id, self.wait_seconds)
            consumed = final.state == "approved" and self.approvals.store.consume(
                request_id, final.action_hash, time.time())
        except Exception as exc:
            return self._record(action, error_decision(
                f"Policy asked, and waiting for the approval failed ({exc}); denied.",
                action_hash=decision.action_hash, policy_hash=decision.policy_hash),
                request_id=request_id, with_request=False)
        if consumed:
            answer = decision._replace(
                decision="allow",
                reason=f"Approved by {final.approver} ({request_id}); the policy had asked: "
                       f"{decision.reason}",
                approval=(("state", "consumed"), ("request", request_id),
                          ("approver", final.approver or "")))
        else:
            if final.state == "pending":
                self.approvals.give_up(request_id)
            why = {"denied": f"denied by {final.approver}"
                             + (f": {final.decision_reason}" if final.decision_reason else ""),
                   "expired": "the approval request expired",
                   "pending": f"no one decided within {self.wait_seconds:g} seconds"}.get(
                final.state, f"the request is {final.state}")
            answer = decision._replace(
                decision="deny", reason=f"Not approved ({why}). {decision.reason}",
                approval=(("state", final.state if final.state != "pending" else "cancelled"),
                          ("request", request_id)))
        return self._record(action, answer, request_id=request_id, with_request=False)

    def check_batch(self, actions: list[Action], *, contain: bool = False) -> list[Decision]:
        """Decide actions in order, as `check` does one by one, with their audit entries
        written together: one write and one fsync for the batch (group commit), each
        action's entries still failing alone if they cannot be sealed. Returns once every
        entry is durable; an action whose entries could not be written is denied, as
        `check` denies it. An ask that opens an approval request or waits for one is not
        deferred: what came before it is written first, and it is recorded at once."""
        if self.audit is None:
            return [self.check(action, contain=contain) for action in actions]
        answers: list[Decision] = []
        pending: list[tuple[int, list[dict[str, Any]], Callable[[Decision], None] | None]] = []
        local = self._local
        local.pending, local.answers = pending, answers
        try:
            for action in actions:
                local.index, local.immediate = len(answers), False
                answers.append(self.check(action, contain=contain))
        finally:
            local.pending = local.answers = None
            self._flush(answers, pending)
        return answers

    def _flush(self, answers: list[Decision],
               pending: list[tuple[int, list[dict[str, Any]], Callable[[Decision], None] | None]],
               ) -> None:
        """Write the deferred entries of `check_batch`; deny the answers they could not
        carry, then run what waited for them to be durable."""
        if not pending or self.audit is None:
            return
        batch, pending[:] = list(pending), []
        try:
            results: list[Any] = self.audit.append_many([entries for _, entries, _ in batch])
        except BaseException as exc:  # never answered as written
            results = [exc] * len(batch)
        for (index, _entries, after), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                answers[index] = _unaudited(answers[index], result)
            elif after is not None:
                after(answers[index])

    def _record(self, action: Action, decision: Decision, *, request_id: str | None = None,
                with_request: bool = True, after: Callable[[Decision], None] | None = None,
                ) -> Decision:
        """Write the request and decision entries durably, or deny. Inside `check_batch`
        they are queued for the batch's write instead; `after` runs once they are durable
        (at once when not deferred)."""
        if self.audit is None:
            if after is not None:
                after(decision)
            return decision
        request_id = request_id or new_request_id()
        decision = decision._replace(request_id=request_id)
        entries = [request_entry(action, request_id)] if with_request else []
        entry = decision_entry(action, decision, request_id)
        if decision.decision == "sandbox":
            entry["sandbox"] = {"profile": decision.profile, "profile_hash": decision.profile_hash}
        if decision.approval:
            entry["approval"] = dict(decision.approval)
        entries.append(entry)
        pending = getattr(self._local, "pending", None)
        if pending is not None and not self._local.immediate:
            pending.append((self._local.index, entries, after))
            return decision
        try:
            self.audit.append(entries)
        except (AuditWriteError, OSError, ValueError) as exc:
            return _unaudited(decision, exc)
        if after is not None:
            after(decision)
        return decision


def _unaudited(decision: Decision, exc: BaseException) -> Decision:
    """The answer when a decision's entries could not be written: no audit, no allow."""
    return decision._replace(
        decision="deny",
        rules=(),
        reason=f"The audit log could not be written ({exc}); no audit, no allow. "
               f"The policy had answered {decision.decision}: {decision.reason}",
    )


def _analysis(facts: Facts | None) -> dict[str, Any]:
    """What the approval page shows of how the action was read."""
    if facts is None:
        return {}
    return {
        "family": facts.family.value,
        "parts": [part.label for part in facts.parts],
        "opaque": [{"kind": o.kind, "reason": o.reason} for o in facts.opaque],
    }


def open_audit_log(layout: Layout) -> AuditLog | None:
    """The runtime's audit log, or None when the runtime was never initialised."""
    from runestone.identity import IdentityError, load_identity

    try:
        identity = load_identity(layout)
    except IdentityError:
        print("runestone: this runtime is not initialised, so decisions are not audited; "
              "run `runestone init`.", file=sys.stderr)
        return None
    from runestone.audit.checkpoint import Signer
    from runestone.audit.redact import Redactor

    try:
        key = layout.redaction_key_file.read_bytes()
    except OSError as exc:
        raise AuditWriteError(f"cannot read the redaction key: {exc}") from exc
    return AuditLog(layout.audit_dir, identity.runtime_id,
                    signer=Signer(layout.private_key_file), redactor=Redactor(key))


def _labels_from_env() -> dict[str, str]:
    """Runtime labels from RUNESTONE_LABELS (`key=value,key=value`)."""
    raw = os.environ.get("RUNESTONE_LABELS", "")
    labels: dict[str, str] = {}
    for item in raw.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            labels[key.strip()] = value.strip()
    return labels


def decision_json(decision: Decision, extra: dict[str, Any] | None = None) -> str:
    payload = dict(extra or {})
    payload.update(decision.to_json())
    return json.dumps(payload, ensure_ascii=False)


__all__ = ["Gatekeeper", "SessionState", "canonical_hash", "decision_json", "error_decision"]
