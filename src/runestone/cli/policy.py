"""`runestone policy test | validate | show | packs | simulate | suggest | import-claude`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runestone.home import layout
from runestone.policy import PolicyError, builtin_packs, load_policy, load_preset
from runestone.policy.engine import CompiledPolicy


def _load(args: argparse.Namespace, *, run_tests: bool) -> CompiledPolicy:
    if args.preset:
        return load_preset(args.preset, run_tests=run_tests)
    path = args.policy or layout().policy_file
    return load_policy(path, run_tests=run_tests)


def run_policy(args: argparse.Namespace) -> int:
    action = args.policy_command
    if action == "packs":
        for name in builtin_packs():
            print(name)
        return 0
    if action == "import-claude":
        return _import_claude(args.settings)
    if action == "simulate":
        return _simulate(args)
    if action == "suggest":
        from runestone.cli.suggest import run_suggest

        return run_suggest(args)
    if action == "pull":
        from runestone.cli.remote import run_pull

        return run_pull()
    try:
        policy = _load(args, run_tests=False)
    except PolicyError as exc:
        print(f"policy refused:\n{exc}", file=sys.stderr)
        return 1
    if action == "validate":
        print(f"valid: {policy.source}  {len(policy.rules)} rules  sha256:{policy.hash}")
        return 0
    if action == "show":
        print(f"# {policy.name}  default={policy.default}  sha256:{policy.hash}")
        print(f"# includes: {', '.join(policy.includes) or '(none)'}")
        for rule in policy.rules:
            print(f"{rule.decision:5}  {rule.id:40} {rule.reason}")
        return 0
    from runestone.policy.selftest import run_policy_tests

    results = run_policy_tests(policy)
    failed = [r for r in results if not r.passed]
    for result in results:
        if not result.passed:
            print(f"FAIL  {result.location}  {result.name}\n      {result.detail}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed  "
          f"({policy.name}, {len(policy.rules)} rules, sha256:{policy.hash[:16]})")
    return 1 if failed else 0


def _import_claude(settings_path: str) -> int:
    from runestone.policy.claude_import import import_claude_settings

    try:
        settings = json.loads(Path(settings_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {settings_path}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(settings, dict):
        print(f"{settings_path}: expected a JSON object", file=sys.stderr)
        return 1
    result = import_claude_settings(settings, settings_path=str(Path(settings_path).resolve()))
    sys.stdout.write(result.toml)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from runestone.audit.query import read_entries
    from runestone.home import layout
    from runestone.policy import load_policy
    from runestone.policy.simulate import simulate

    try:
        candidate = load_policy(args.candidate)
    except PolicyError as exc:
        print(f"candidate refused:\n{exc}", file=sys.stderr)
        return 1
    result = simulate(read_entries(layout().audit_dir), candidate,
                      home=getattr(args, "home_dir", None))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(f"replayed {result.replayed} decisions: {result.unchanged} unchanged")
    for transition, count in result.transitions.most_common():
        print(f"  {transition:14} {count}")
        for example in result.examples[transition]:
            print(f"      {example['summary'][:70]}  [{', '.join(example['rules'])}]")
    return 0
