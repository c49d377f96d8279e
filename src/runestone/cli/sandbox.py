"""`runestone sandbox run` and `runestone sandbox check`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runestone.home import layout

if TYPE_CHECKING:  # `sandbox run --request` is reached without argparse (runestone.cli.main)
    import argparse


def _own_profiles(args: argparse.Namespace) -> dict[str, Any]:
    """The profiles the governing policy (or --policy/--preset) defines. The policy is
    compiled only when its text can define one (a `sandbox` table, or an included file):
    compiling loads the shell analyser, ~200 ms that a command run in the built-in profile
    should not pay."""
    from runestone.sandbox.profiles import ProfileError

    path = Path(args.policy) if getattr(args, "policy", None) else \
        layout().governing_policy_file()
    try:
        if getattr(args, "preset", None):
            from runestone.policy import load_preset

            return load_preset(args.preset, run_tests=False).profiles
        if not path.exists():
            return {}
        text = path.read_text(encoding="utf-8")
        if "sandbox" not in text and ".toml" not in text:
            return {}
        from runestone.policy import load_policy

        return load_policy(path, run_tests=False).profiles
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the policy {path}: {exc}") from None
    except Exception as exc:  # PolicyError: the profile cannot be known, so nothing runs
        if type(exc).__module__ != "runestone.policy.errors":
            raise
        raise ProfileError(str(exc)) from None


def run_sandbox(args: argparse.Namespace) -> int:
    if args.sandbox_command == "check":
        return _check()
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if args.request:
        if argv:
            print("runestone sandbox run: --request takes no command; the hook stored it",
                  file=sys.stderr)
            return 2
        return run_request(args.request)
    if not argv:
        print("runestone sandbox run: give the command after --", file=sys.stderr)
        return 2
    from runestone.sandbox.profiles import ProfileError, resolve
    from runestone.sandbox.run import NOT_RUN

    try:
        profile = resolve(args.profile, _own_profiles(args))
    except ProfileError as exc:
        print(f"runestone sandbox: {exc}; not run", file=sys.stderr)
        return NOT_RUN
    return _execute(argv, profile, os.path.realpath(args.project or os.getcwd()), os.getcwd(),
                    None)


def run_request(request_id: str) -> int:
    """`runestone sandbox run --request ID`: the command a hook rewrote (the hot path, which
    `runestone.cli.main` reaches without argparse)."""
    from runestone.sandbox import handoff
    from runestone.sandbox.profiles import ProfileError, from_spec
    from runestone.sandbox.run import NOT_RUN

    try:
        record = handoff.take_pending(layout().state_dir, request_id)
        profile = from_spec(record["profile"], record["profile_hash"])
        command = ["/bin/bash", "-c", str(record["command"])]
        project, cwd = str(record["project"]), str(record["cwd"])
    except (handoff.HandoffError, ProfileError, KeyError, ValueError) as exc:
        print(f"runestone sandbox: {exc}; not run", file=sys.stderr)
        return NOT_RUN
    return _execute(command, profile, project, cwd, request_id)


def _execute(command: list[str], profile: Any, project: str, cwd: str,
             request_id: str | None) -> int:
    from runestone.sandbox import handoff
    from runestone.sandbox.bwrap import SandboxError
    from runestone.sandbox.run import NOT_RUN, explanation, run_contained

    state = layout().state_dir
    try:
        outcome = run_contained(command, profile, project=project, cwd=cwd, state_dir=state)
    except SandboxError as exc:
        print(f"runestone sandbox: the sandbox cannot start ({exc}); the command was not run",
              file=sys.stderr)
        if request_id:
            handoff.write_result(state, request_id, {"exit_code": NOT_RUN, "sandbox": {
                "profile": profile.name, "profile_hash": profile.hash, "started": False,
                "error": str(exc)}})
        return NOT_RUN
    if outcome.blocked:
        sys.stderr.write(explanation(outcome, profile, project))
    if request_id:
        try:
            handoff.write_result(state, request_id, outcome.audit_fields())
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
