"""`runestone sandbox run` and `runestone sandbox check`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from runestone.home import layout


def _own_profiles(args: argparse.Namespace) -> dict[str, Any]:
    """The profiles the governing policy (or --policy/--preset) defines."""
    from runestone.policy import load_policy, load_preset

    if getattr(args, "preset", None):
        return load_preset(args.preset, run_tests=False).profiles
    path = Path(args.policy) if getattr(args, "policy", None) else \
        layout().governing_policy_file()
    if not path.exists():
        return {}
    return load_policy(path, run_tests=False).profiles


def run_sandbox(args: argparse.Namespace) -> int:
    if args.sandbox_command == "check":
        return _check()
    from runestone.policy import PolicyError
    from runestone.sandbox import handoff
    from runestone.sandbox.bwrap import SandboxError
    from runestone.sandbox.profiles import from_spec, resolve
    from runestone.sandbox.run import NOT_RUN, explanation, run_contained

    state = layout().state_dir
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    try:
        if args.request:
            if argv:
                print("runestone sandbox run: --request takes no command; the hook stored it",
                      file=sys.stderr)
                return 2
            record = handoff.take_pending(state, args.request)
            profile = from_spec(record["profile"], record["profile_hash"])
            command = ["/bin/bash", "-c", str(record["command"])]
            project, cwd = str(record["project"]), str(record["cwd"])
        else:
            if not argv:
                print("runestone sandbox run: give the command after --", file=sys.stderr)
                return 2
            profile = resolve(args.profile, _own_profiles(args))
            project = os.path.realpath(args.project or os.getcwd())
            command, cwd = argv, os.getcwd()
    except (handoff.HandoffError, PolicyError, KeyError, ValueError) as exc:
        print(f"runestone sandbox: {exc}; not run", file=sys.stderr)
        return NOT_RUN
    try:
        outcome = run_contained(command, profile, project=project, cwd=cwd, state_dir=state)
    except SandboxError as exc:
        print(f"runestone sandbox: the sandbox cannot start ({exc}); the command was not run",
              file=sys.stderr)
        if args.request:
            handoff.write_result(state, args.request, {"exit_code": NOT_RUN, "sandbox": {
                "profile": profile.name, "profile_hash": profile.hash, "started": False,
                "error": str(exc)}})
        return NOT_RUN
    if outcome.blocked:
        sys.stderr.write(explanation(outcome, profile, project))
    if args.request:
        try:
            handoff.write_result(state, args.request, outcome.audit_fields())
        except OSError as exc:
            print(f"runestone sandbox: the sandbox's report could not be kept ({exc})",
                  file=sys.stderr)
    return outcome.exit_code


def _check() -> int:
    from runestone.sandbox.probe import bwrap_path, unavailable

    why = unavailable(layout().state_dir)
    if why:
        print(f"sandbox: unavailable: {why}. `sandbox` decisions become `ask`.")
        return 1
    print(f"sandbox: works (bubblewrap at {bwrap_path()}, user namespaces available)")
    return 0
