"""`runestone exec -- CMD ...`: decide, wait for a human if policy asks, run, audit."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runestone.actions import Action
from runestone.cli.common import gatekeeper_from_args

if TYPE_CHECKING:
    from runestone.gatekeeper import Gatekeeper
    from runestone.policy import Decision


def run_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("runestone exec: give the command after --", file=sys.stderr)
        return 2
    if args.approval is None:
        args.approval = os.environ.get("RUNESTONE_APPROVAL") or "wait"
    gatekeeper = gatekeeper_from_args(args)
    if gatekeeper is None:
        return 126
    action = Action("Bash", {"command": shlex.join(argv)}, os.getcwd(), agent="runestone-exec",
                    session=os.environ.get("RUNESTONE_SESSION", ""),
                    user=os.environ.get("USER", ""))
    decision = gatekeeper.check(action, contain=True)
    if decision.decision not in ("allow", "sandbox"):
        print(f"runestone exec: {decision.decision}: {decision.reason}", file=sys.stderr)
        return 126
    audit = gatekeeper.audit
    if audit is not None:
        try:
            audit.append([{"kind": "execution", "request_id": decision.request_id,
                           "action_hash": decision.action_hash, "via": "runestone exec",
                           "pid": os.getpid()}])
        except Exception as exc:
            print(f"runestone exec: the execution could not be audited ({exc}); not run",
                  file=sys.stderr)
            return 126
    from runestone.integrations.execute import run

    if decision.decision == "sandbox":
        code, fields = _run_contained(gatekeeper, decision, argv)
    else:
        code, fields = _run(run, argv)
    if audit is not None:
        try:
            audit.append([{"kind": "result", "request_id": decision.request_id,
                           "action_hash": decision.action_hash, **fields}])
        except Exception as exc:
            print(f"runestone exec: the result could not be audited: {exc}", file=sys.stderr)
            return code or 1
    return code if code >= 0 else 128 - code


def _run_contained(gatekeeper: Gatekeeper, decision: Decision,
                   argv: list[str]) -> tuple[int, dict[str, object]]:
    """Run in the sandbox the policy named; if it cannot start, the command does not run."""
    from runestone.sandbox.bwrap import SandboxError
    from runestone.sandbox.run import NOT_RUN, explanation, run_contained

    profile = gatekeeper.policy.sandbox_profile(decision.profile)
    project = os.getcwd()
    try:
        outcome = run_contained(argv, profile, project=project, state_dir=gatekeeper.state_dir)
    except SandboxError as exc:
        print(f"runestone exec: the sandbox cannot start ({exc}); not run", file=sys.stderr)
        return NOT_RUN, {"exit_code": NOT_RUN, "sandbox": {
            "profile": profile.name, "profile_hash": profile.hash, "started": False,
            "error": str(exc)}}
    if outcome.blocked:
        sys.stderr.write(explanation(outcome, profile, project))
    return outcome.exit_code, outcome.audit_fields()


def _run(run: Callable[[list[str]], Any], argv: list[str]) -> tuple[int, dict[str, object]]:
    try:
        result = run(argv)
    except OSError as exc:
        print(f"runestone exec: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127, {"exit_code": 127, "error": str(exc)}
    return result.exit_code, result.audit_fields()
