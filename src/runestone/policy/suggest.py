"""`runestone policy suggest`: rules proposed from what humans approved, checked by replay.

The audit log holds every ask and how it ended. An ask was *approved* when a human approved
its request (on the approval page, with `runestone approvals approve`, or on the control
plane), or when the agent host asked its own user and the tool then ran (the host's
PostToolUse result is linked to the ask's request id). For each approved ask the smallest
general rule that would have allowed it is learned (`runestone.policy.learn`); rules that
agree on everything but their places are merged into one.

Each proposal is then replayed over the whole log against the policy with the rule added:
- how many asks it would have saved (asks the policy alone asks and policy + rule allows);
- every past action it would newly allow, with those a human denied first;
- safety: a proposal is refused if, in the log or in the deny rules' own examples, it would
  let through anything the policy denies or allow anything not fully understood. (Deny
  beats allow and an opaque action is never allowed, so the engine already guarantees
  both against a deny *rule*; the replay shows it on the team's own history, and refuses a
  rule that would let through what a policy denies by its `default = "deny"`.)

The same engine serves the control plane, over a team's ingested history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runestone.actions import Action, ActionError
from runestone.actions.canonical import canonical_json
from runestone.facts import derive_facts
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.learn import collapse_siblings, finish, learn_rule, to_toml
from runestone.policy.model import EvalContext, Rule
from runestone.policy.rules import compile_rule

MERGED_FIELDS = ("path", "domain")  # what a merge unites; every other field must agree


@dataclass(slots=True)
class Ask:
    """One ask in the history, and how it ended."""

    request_id: str
    action: Action
    summary: str
    approvers: set[str] = field(default_factory=set)
    denied_by: set[str] = field(default_factory=set)
    runtime: str = ""
    time: str = ""

    @property
    def approved(self) -> bool:
        return bool(self.approvers) and not self.denied_by


@dataclass(slots=True)
class History:
    """The requests of a log (every decided action) and its asks."""

    actions: dict[str, tuple[Action, str, str]] = field(default_factory=dict)  # id -> action
    asks: dict[str, Ask] = field(default_factory=dict)


def read_history(entries: Iterable[dict[str, Any]], runtime: str = "") -> History:
    """Asks and their outcomes from audit entries (oldest first). Entries may carry their
    runtime (`_runtime`, as the control plane gives them); else `runtime` is used."""
    history = History()
    requests: dict[str, dict[str, Any]] = {}
    for entry in entries:
        kind = entry.get("kind")
        request_id = str(entry.get("request_id") or "")
        if not request_id:
            continue
        source = str(entry.get("_runtime") or runtime)
        if kind == "request":
            requests[request_id] = entry
            action = _action(entry)
            if action is not None:
                history.actions[request_id] = (action, str(entry.get("summary", "")),
                                               str(entry.get("decision", "")))
        elif kind == "decision":
            known = history.actions.get(request_id)
            if known is not None:
                history.actions[request_id] = (known[0], known[1],
                                               str(entry.get("decision", "")))
            if entry.get("decision") == "ask" and known is not None \
                    and request_id not in history.asks:
                history.asks[request_id] = Ask(request_id, known[0], known[1], runtime=source,
                                               time=str(entry.get("time", "")))
            elif entry.get("decision") == "allow" and request_id in history.asks:
                approval = entry.get("approval") or {}
                if isinstance(approval, dict) and approval.get("approver"):
                    history.asks[request_id].approvers.add(str(approval["approver"]))
        elif kind == "approval" and request_id in history.asks:
            who = str(entry.get("approver") or "someone")
            if entry.get("decision") == "approved":
                history.asks[request_id].approvers.add(who)
            elif entry.get("decision") == "denied":
                history.asks[request_id].denied_by.add(who)
        elif kind == "result" and request_id in history.asks:
            ask = history.asks[request_id]
            if not ask.approvers:  # the host asked its user, who let it run
                ask.approvers.add(f"{entry.get('host') or 'agent host'} user")
    return history


def _action(entry: dict[str, Any]) -> Action | None:
    try:
        data = entry.get("input")
        if not isinstance(data, dict):
            return None
        return Action(str(entry.get("tool", "")), data, str(entry.get("cwd", "")),
                      agent=str(entry.get("agent", "")), session=str(entry.get("session", "")),
                      user=str(entry.get("user", "")))
    except ActionError:
        return None


@dataclass(slots=True)
class Proposal:
    """One proposed rule with the evidence for it and its replay."""

    rule: dict[str, Any]
    approvals: int = 0
    approvers: set[str] = field(default_factory=set)
    runtimes: set[str] = field(default_factory=set)
    learned_from: list[str] = field(default_factory=list)  # request ids
    saved: int = 0  # asks it would have saved
    newly_allowed: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.rule["id"])

    @property
    def refused(self) -> bool:
        return bool(self.conflicts)

    def toml(self) -> str:
        note = (f"Saves {self.saved} ask(s); learned from {self.approvals} approval(s) by "
                f"{', '.join(sorted(self.approvers)) or 'no one'}.")
        return to_toml(self.rule, note)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "toml": self.toml(), "saved": self.saved,
                "approvals": self.approvals, "approvers": sorted(self.approvers),
                "runtimes": sorted(self.runtimes), "learned_from": self.learned_from,
                "newly_allowed": self.newly_allowed, "conflicts": self.conflicts,
                "refused": self.refused}


@dataclass(slots=True)
class Suggestions:
    asks: int = 0
    approved: int = 0
    proposals: list[Proposal] = field(default_factory=list)
    not_learned: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"asks": self.asks, "approved": self.approved,
                "proposals": [p.to_json() for p in self.proposals],
                "not_learned": self.not_learned}


def suggest(history: History, policy: CompiledPolicy, *, home: str | None = None,
            min_approvals: int = 1, min_people: int = 1) -> Suggestions:
    """Proposals from the approved asks of a history, each replayed over all of it."""
    result = Suggestions(asks=len(history.asks))
    merged: dict[bytes, Proposal] = {}
    taken = {rule.id for rule in policy.rules}
    why_not: dict[str, dict[str, Any]] = {}
    learned_for: dict[str, Any] = {}  # an action approved again is learned once
    for ask in history.asks.values():
        if not ask.approved:
            continue
        result.approved += 1
        learned = learned_for.get(ask.action.hash)
        if learned is None:
            learned = learned_for[ask.action.hash] = learn_rule(policy, ask.action, home=home)
        if learned.refused:
            note = why_not.setdefault(learned.refused, {"reason": learned.refused,
                                                        "approvals": 0, "examples": []})
            note["approvals"] += 1
            if len(note["examples"]) < 3:
                note["examples"].append(ask.summary[:200])
            continue
        for table in learned.rules:
            key = canonical_json({k: v for k, v in table.items() if k not in MERGED_FIELDS})
            proposal = merged.get(key)
            if proposal is None:
                proposal = merged[key] = Proposal(rule=dict(table))
            else:
                for name in MERGED_FIELDS:
                    if name in table:
                        united = list(dict.fromkeys([*proposal.rule.get(name, []),
                                                     *table[name]]))
                        proposal.rule[name] = (collapse_siblings(united) if name == "path"
                                               else united)
            proposal.approvals += 1
            proposal.approvers |= ask.approvers
            if ask.runtime:
                proposal.runtimes.add(ask.runtime)
            proposal.learned_from.append(ask.request_id)
    result.not_learned = sorted(why_not.values(), key=lambda n: -n["approvals"])
    for proposal in merged.values():
        if proposal.approvals < min_approvals or len(proposal.approvers) < min_people:
            continue
        proposal.rule = finish(proposal.rule, taken)
        taken.add(proposal.id)
        replay(proposal, history, policy, home=home)
        result.proposals.append(proposal)
    result.proposals.sort(key=lambda p: (p.refused, -p.saved, p.id))
    return result


def with_rule(policy: CompiledPolicy, rule: Rule) -> CompiledPolicy:
    """The policy with one more allow rule (for replay; saving recompiles the file)."""
    return CompiledPolicy(name=policy.name, default=policy.default,
                          rules=(*policy.rules, rule), hash=policy.hash + "+" + rule.id,
                          limits=policy.limits,
                          source=policy.source, includes=policy.includes,
                          programs=policy.programs)


def replay(proposal: Proposal, history: History, policy: CompiledPolicy, *,
           home: str | None = None) -> None:
    """Fill the proposal's figures: asks saved, actions newly allowed, conflicts.

    Every action of the history, and every example of what the policy's deny rules deny, is
    decided under the policy and under the policy with the rule. A conflict (which refuses
    the proposal) is an action the policy denies that the rule would let through in any
    way, or an action not fully understood that it would allow.
    """
    rule = compile_rule(proposal.rule, "suggestion")
    candidate = with_rule(policy, rule)
    denied_by_human = {rid for rid, ask in history.asks.items() if ask.denied_by}
    newly: list[dict[str, Any]] = []
    # The same action (same hash: tool, input, place and identity) decides the same way
    # every time it recurs, and histories repeat themselves (an agent's `git status`).
    decided: dict[str, tuple[str, str, str]] = {}
    for request_id, (action, summary, _logged) in history.actions.items():
        key = action.hash
        if key not in decided:
            decided[key] = compare(policy, candidate, action, home)
        before, after, conflict = decided[key]
        if conflict:
            proposal.conflicts.append({"request_id": request_id, "summary": summary[:200],
                                       "why": conflict})
            continue
        if before == "allow" or after != "allow":
            continue
        if request_id in history.asks:
            proposal.saved += 1
        ask = history.asks.get(request_id)
        newly.append({"request_id": request_id, "summary": summary[:200], "before": before,
                      "human_denied": request_id in denied_by_human,
                      "denied_by": sorted(ask.denied_by) if ask else []})
    newly.sort(key=lambda item: not item["human_denied"])  # what a human denied comes first
    proposal.newly_allowed = newly
    # The deny rules' own examples run in their fixed context (docs/policy.md): the rule is
    # moved to that project, where its anchors (`{project}`, `~`) mean the same.
    from runestone.policy.selftest import EXAMPLE_HOME, EXAMPLE_PROJECT

    moved = with_rule(policy, compile_rule({**proposal.rule, "project": [EXAMPLE_PROJECT]},
                                           "suggestion"))
    for example in pack_deny_examples(policy):
        _before, _after, conflict = compare(policy, moved, example, EXAMPLE_HOME)
        if conflict:
            proposal.conflicts.append({"request_id": "", "summary": _summary(example),
                                       "why": conflict + " (a deny rule's own example)"})


def compare(policy: CompiledPolicy, candidate: CompiledPolicy, action: Action,
            home: str | None) -> tuple[str, str, str]:
    """The decision before and after, and why the change is unsafe ("" when it is not)."""
    ctx = EvalContext()
    before = evaluate(policy, derive_facts(action, home=home), ctx)
    facts = derive_facts(action, home=home)
    after = evaluate(candidate, facts, ctx)
    conflict = ""
    if before.decision == "deny" and after.decision != "deny":
        by = ", ".join(before.rules) or f"the policy's default ({policy.default})"
        conflict = f"it would let through what {by} denies"
    elif after.decision == "allow" and facts.opaque:
        conflict = f"it would allow an action not fully understood ({facts.opaque[0].reason})"
    return before.decision, after.decision, conflict


def pack_deny_examples(policy: CompiledPolicy) -> list[Action]:
    """The deny rules' own `match` examples and the tests that expect a deny, as actions in
    the examples' fixed context."""
    from runestone.policy.selftest import case_action, example_action

    active = {rule.id for rule in policy.rules}
    actions: list[Action] = []
    for rule, table, _source, _line in policy.examples:
        if rule.decision != "deny" or rule.id not in active:
            continue
        for example in table.get("match", []) or []:
            try:
                actions.append(example_action(rule, example))
            except ActionError:
                continue
    for case, _source, _line in policy.cases:
        if case.get("expect") == "deny":
            try:
                actions.append(case_action(case))
            except ActionError:
                continue
    return actions


def _summary(action: Action) -> str:
    from runestone.audit.records import summarize

    return summarize(action)[:200]
