"""`runestone exec -- CMD ...`: decide, wait for a human if policy asks, run, audit."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from runestone.actions import Action
from runestone.cli.common import gatekeeper_from_args


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
    decision = gatekeeper.check(action)
    if decision.decision != "allow":
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

    try:
        result = run(argv)
    except OSError as exc:
        print(f"runestone exec: cannot run {argv[0]}: {exc}", file=sys.stderr)
        code = 127
        fields: dict[str, object] = {"exit_code": code, "error": str(exc)}
    else:
        code = result.exit_code
        fields = result.audit_fields()
    if audit is not None:
        try:
            audit.append([{"kind": "result", "request_id": decision.request_id,
                           "action_hash": decision.action_hash, **fields}])
        except Exception as exc:
            print(f"runestone exec: the result could not be audited: {exc}", file=sys.stderr)
            return code or 1
    return code if code >= 0 else 128 - code
