"""`runestone policy suggest` and `approvals approve --save-rule`: rules learned from what
humans approved, shown as TOML, saved only when asked."""

from __future__ import annotations

import argparse
import json
import sys

from runestone.home import Layout, layout
from runestone.policy import PolicyError
from runestone.policy.offer import governing_policy


def run_suggest(args: argparse.Namespace) -> int:
    from runestone.audit.query import read_entries
    from runestone.identity import IdentityError, load_identity
    from runestone.policy.save import SaveError, append_rules, save_target
    from runestone.policy.suggest import read_history, suggest

    where = layout()
    try:
        policy = governing_policy(where, args.policy, args.preset)
    except PolicyError as exc:
        print(f"policy refused:\n{exc}", file=sys.stderr)
        return 1
    try:
        runtime = load_identity(where).runtime_id
    except IdentityError:
        runtime = ""
    history = read_history(read_entries(where.audit_dir), runtime)
    result = suggest(history, policy, home=args.home_dir,
                     min_approvals=max(1, args.min_approvals))
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(result)
    if not args.save:
        return 0
    wanted = {p.id: p for p in result.proposals}
    missing = [i for i in args.save if i not in wanted]
    if missing:
        print(f"runestone: no proposal {', '.join(missing)}", file=sys.stderr)
        return 1
    refused = [i for i in args.save if wanted[i].refused]
    if refused:
        print(f"runestone: {', '.join(refused)} failed the replay's safety check; not saved",
              file=sys.stderr)
        return 1
    if args.preset:
        print("runestone: a preset is built in; name a policy file to save to (--policy)",
              file=sys.stderr)
        return 1
    try:
        target = save_target(where, args.policy)
        text = "\n".join(wanted[i].toml() for i in args.save)
        saved = append_rules(target, text)
    except SaveError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 1
    print(f"saved {', '.join(args.save)} to {target} (policy sha256:{saved.hash[:16]})")
    return 0


def _print(result: object) -> None:
    from runestone.policy.suggest import Suggestions

    assert isinstance(result, Suggestions)
    print(f"{result.asks} asks in the audit log, {result.approved} approved by a human; "
          f"{len(result.proposals)} proposal(s)\n")
    for proposal in result.proposals:
        status = "REFUSED by the replay" if proposal.refused else "safe in replay"
        print(f"## {proposal.id}: saves {proposal.saved} ask(s), learned from "
              f"{proposal.approvals} approval(s), {status}")
        print(proposal.toml())
        denied = [n for n in proposal.newly_allowed if n["human_denied"]]
        for item in denied:
            print(f"  ! would allow what {', '.join(item['denied_by'])} denied: "
                  f"{item['summary'][:90]}")
        for conflict in proposal.conflicts[:3]:
            print(f"  x {conflict['why']}: {conflict['summary'][:80]}")
        print()
    for note in result.not_learned:
        print(f"no rule for {note['approvals']} approval(s): {note['reason']}")
        for example in note["examples"]:
            print(f"    {example[:100]}")


def offer_rule(where: Layout, request_action: dict[str, object], *, save: bool,
               approver: str = "", policy_file: str | None = None) -> int:
    """After an approval: print the rule that would have allowed it; save it if asked."""
    from runestone.policy.offer import offer_for
    from runestone.policy.save import SaveError, append_rules, save_target

    offer = offer_for(where, request_action, approver=approver, policy_file=policy_file)
    if not offer.text:
        print(f"no rule offered: {offer.refused}")
        return 1 if save else 0
    verb = "saving" if save else "to stop asking for this, save"
    print(f"{verb} this rule" + ("" if save else
                                   " (approve --save-rule, or `runestone policy suggest`)")
          + ":\n\n" + offer.text)
    if offer.refused:
        print(f"the replay refuses it: {offer.refused}")
        return 1 if save else 0
    if not save:
        return 0
    try:
        target = save_target(where, policy_file)
        saved = append_rules(target, offer.text)
    except SaveError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 1
    print(f"saved to {target} (policy sha256:{saved.hash[:16]})")
    return 0
