"""The rule offered when a human approves one request (CLI and approval page alike).

The offer is learned from the approved action under the policy that governs, named like
the rules of `policy suggest`, and replayed over the audit log with the same safety check;
its TOML text is what the person sees and what is saved, never anything else.
"""

from __future__ import annotations

from typing import NamedTuple

from runestone.home import Layout
from runestone.policy.engine import CompiledPolicy
from runestone.policy.loader import load_policy, load_preset


class Offer(NamedTuple):
    """The rules' TOML text ("" when none), and why it is refused or not offered."""

    text: str
    refused: str = ""
    saved_asks: int = 0


def governing_policy(where: Layout, policy_file: str | None = None,
                     preset: str | None = None) -> CompiledPolicy:
    """The policy that decided: the one named, else the governing file, else `default`."""
    if preset:
        return load_preset(preset)
    if policy_file:
        return load_policy(policy_file)
    governing = where.governing_policy_file()
    return load_policy(governing) if governing.exists() else load_preset("default")


def offer_for(where: Layout, request_action: dict[str, object], *, approver: str = "",
              policy_file: str | None = None) -> Offer:
    """The rule that would have allowed this request's action (the redacted identity the
    approval store keeps: tool, input, cwd, agent, session, user)."""
    from runestone.actions import Action, ActionError
    from runestone.audit.query import read_entries
    from runestone.policy.errors import PolicyError
    from runestone.policy.learn import finish, learn_rule
    from runestone.policy.suggest import Proposal, read_history, replay

    try:
        data = request_action.get("input")
        if not isinstance(data, dict):
            return Offer("", "the request carries no tool input")
        action = Action(str(request_action.get("tool", "")), data,
                        str(request_action.get("cwd", "")),
                        agent=str(request_action.get("agent", "")),
                        session=str(request_action.get("session", "")),
                        user=str(request_action.get("user", "")))
        policy = governing_policy(where, policy_file)
    except (ActionError, PolicyError) as exc:
        return Offer("", str(exc))
    learned = learn_rule(policy, action)
    if learned.refused:
        return Offer("", learned.refused)
    history = read_history(read_entries(where.audit_dir))
    taken = {rule.id for rule in policy.rules}
    proposals = []
    for table in learned.rules:
        proposal = Proposal(rule=finish(table, taken), approvals=1,
                            approvers={approver} if approver else set())
        taken.add(proposal.id)
        replay(proposal, history, policy)
        proposals.append(proposal)
    text = "\n".join(p.toml() for p in proposals)
    conflicts = [c for p in proposals for c in p.conflicts]
    refused = f"{conflicts[0]['why']} ({conflicts[0]['summary'][:80]})" if conflicts else ""
    return Offer(text, refused, sum(p.saved for p in proposals))
