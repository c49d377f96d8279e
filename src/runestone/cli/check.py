"""`runestone check` and `runestone explain`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from runestone.actions import Action, ActionError, action_from_hook_json
from runestone.actions.canonical import loads_finite
from runestone.actions.winpaths import shown
from runestone.cli.common import gatekeeper_from_args
from runestone.facts import Facts, derive_facts
from runestone.gatekeeper import Gatekeeper, decision_json, error_decision
from runestone.policy import CompiledPolicy, Decision
from runestone.policy.engine import uncovered_detail


def _decide_line(gatekeeper: Gatekeeper, data: Any, text: str) -> str:
    extra = {"id": data["id"]} if isinstance(data, dict) and "id" in data else {}
    try:
        action = action_from_hook_json(data, default_cwd=os.getcwd())
    except ActionError as exc:
        return decision_json(gatekeeper.refuse_malformed(
            text, f"Malformed action: {exc}; denied."), extra)
    return decision_json(gatekeeper.check(action, contain=True), extra)


def run_check(args: argparse.Namespace) -> int:
    gatekeeper = gatekeeper_from_args(args)
    if gatekeeper is None:
        return 2
    if args.shell_command is not None:
        action = Action("Bash", {"command": args.shell_command}, args.cwd or os.getcwd())
        # `check` answers as a host that runs `sandbox` contained would be answered.
        print(decision_json(gatekeeper.check(action, contain=True)))
        return 0
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(decision_json(error_decision(f"Unreadable input: {exc}; denied.")))
        return 0
    if not text.strip():
        print(decision_json(error_decision("Empty input: expected a JSON action; denied.")))
        return 0
    try:
        document = loads_finite(text)
    except ValueError:  # not one document (JSON Lines?), or NaN/1e999 in it: line by line
        document = None
    if isinstance(document, dict):
        print(_decide_line(gatekeeper, document, text))
        return 0
    out = sys.stdout
    # JSON Lines: decided in chunks whose audit entries share one write and fsync; a chunk's
    # answers are printed once its entries are durable, in the order of the lines.
    chunk: list[tuple[str | Action, dict[str, Any]]] = []
    actions = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        # A malformed line is denied and audited (refuse_malformed) at once, in its place
        # among the answers; the lines after it are decided as usual.
        try:
            data = loads_finite(line)
        except json.JSONDecodeError as exc:
            reason = f"Malformed JSON on line {number}, column {exc.colno}: {exc.msg}; denied."
            refused = gatekeeper.refuse_malformed(line, reason, line=number)
            chunk.append((decision_json(refused, {"line": number}), {}))
            continue
        except ValueError as exc:  # NaN, 1e999, an integer of more than 4300 digits, depth
            reason = f"Malformed JSON on line {number}: {exc}; denied."
            refused = gatekeeper.refuse_malformed(line, reason, line=number)
            chunk.append((decision_json(refused, {"line": number}), {}))
            continue
        extra = {"id": data["id"]} if isinstance(data, dict) and "id" in data else {}
        try:
            chunk.append((action_from_hook_json(data, default_cwd=os.getcwd()), extra))
            actions += 1
        except ActionError as exc:
            refused = gatekeeper.refuse_malformed(line, f"Malformed action: {exc}; denied.",
                                                  line=number)
            chunk.append((decision_json(refused, extra), {}))
        if actions >= BATCH:
            _answer_chunk(gatekeeper, chunk, out)
            chunk, actions = [], 0
    _answer_chunk(gatekeeper, chunk, out)
    return 0


BATCH = 256  # actions per group commit: one fsync for up to this many decisions


def _answer_chunk(gatekeeper: Gatekeeper, chunk: list[tuple[str | Action, dict[str, Any]]],
                  out: Any) -> None:
    decisions = iter(gatekeeper.check_batch(
        [item for item, _ in chunk if isinstance(item, Action)], contain=True))
    for item, extra in chunk:
        line = item if isinstance(item, str) else decision_json(next(decisions), extra)
        out.write(line + "\n")
    out.flush()


def why_ask(policy: CompiledPolicy, facts: Facts, decision: Decision) -> str:
    """One line: the part that was not understood, or the effect or rule that needs a
    person."""
    if facts.opaque:
        item = facts.opaque[0]
        return f"not understood: {item.reason} ({item.snippet})"
    asked = [hit for hit in decision.hits if hit.rule.decision == "ask" and hit.certain]
    if asked:
        return f"rule {asked[0].rule.id}: {asked[0].rule.reason}"
    uncertain = [hit for hit in decision.hits if not hit.certain]
    if uncertain:
        return (f"`{uncertain[0].part_label}` may be what rule {uncertain[0].rule.id} denies "
                f"({uncertain[0].rule.reason}); only run time can tell")
    covered = {hit.part_label for hit in decision.hits if hit.rule.decision == "allow"}
    for part in facts.parts:
        if part.label not in covered:
            detail = uncovered_detail(policy, facts, part)
            if detail:
                return f"`{part.label}`: {detail}"
    return "no rule allows it, and the policy's default is ask"


def run_explain(args: argparse.Namespace) -> int:
    gatekeeper = gatekeeper_from_args(args)
    if gatekeeper is None:
        return 2
    cwd = args.cwd or os.getcwd()
    action = Action("Bash", {"command": args.shell_command}, cwd)
    facts = derive_facts(action, home=gatekeeper.home)
    decision = gatekeeper.explain(action, contain=True)  # audits nothing, asks nobody
    print(f"Command:  {args.shell_command}")
    print(f"Cwd:      {cwd}    Home: {facts.home}")
    shell = facts.shell
    commands = shell.commands if shell else ()
    print(f"\nSimple commands found: {len(commands)}")
    for index, command in enumerate(commands, start=1):
        tags = []
        if command.is_wrapper:
            tags.append("wrapper")
        if command.via:
            tags.append("via " + " > ".join(command.via))
        if command.code is not None:
            tags.append(f"runs {command.code_lang or 'inline'} code")
        if command.extra_args:
            tags.append("more arguments at run time")
        if command.piped_out:
            tags.append("output piped")
        dynamic = [w.raw for w in command.argv if w.dynamic]
        if dynamic:
            tags.append("run-time values: " + ", ".join(dynamic))
        print(f"  {index}. {command.line()}")
        print(f"     program: {command.name or '(unknown)'}   cwd: {command.cwd or '(unknown)'}")
        if tags:
            print(f"     {'; '.join(tags)}")
        reading = facts.reading(command)
        if not command.name:
            pass
        elif not reading.understood:
            print(f"     not understood: {reading.why}")
        else:
            if reading.canonical_line and reading.canonical_line != command.line():
                print(f"     read as: {reading.canonical_line}")
            effects = ", ".join(sorted(reading.effects)) or "none beyond its output"
            print(f"     effects: {effects}")
            for fact in facts.arg_paths(command):
                where = (shown(fact.forms[-1]) if fact.forms
                         else f"{fact.raw} (known only at run time)")
                print(f"     {fact.access}: {where}")
        for redirect in command.redirects:
            print(f"     {redirect.mode}s {redirect.target.text}  ({redirect.op})")
    if facts.opaque:
        print("\nOpaque (never auto-allowed):")
        for item in facts.opaque:
            print(f"  - {item.kind}: {item.reason}" + (f"  [{item.snippet}]" if item.snippet
                                                       else ""))
    else:
        print("\nOpaque: nothing; every part was understood.")
    print(f"\nDecision: {decision.decision.upper()}")
    print(f"  reason: {decision.reason}")
    if decision.decision == "sandbox":
        print(f"  profile: {decision.profile}  sha256:{decision.profile_hash}")
    if decision.decision == "ask":
        print(f"  why a human: {why_ask(gatekeeper.policy, facts, decision)}")
    if decision.hits:
        print("  rules:")
        for hit in decision.hits:
            certainty = "" if hit.certain else " (may match)"
            print(f"    - {hit.rule.id} [{hit.rule.decision}]{certainty} on `{hit.part_label}`"
                  f"  from {hit.rule.origin}")
    print(f"Policy:   {gatekeeper.policy.name}  sha256:{gatekeeper.policy.hash}")
    print("Not audited: explain decides nothing that runs" +
          (", and counts no limit." if gatekeeper.policy.limits else "."))
    return 0
