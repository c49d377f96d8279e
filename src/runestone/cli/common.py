"""Helpers shared by the subcommands: loading the gatekeeper the options ask for."""

from __future__ import annotations

import argparse
import sys

from runestone.audit import AuditWriteError
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.policy import PolicyError


def gatekeeper_from_args(args: argparse.Namespace) -> Gatekeeper | None:
    """The gatekeeper for --policy / --preset / the configured policy; None after an error."""
    try:
        return Gatekeeper.from_layout(
            layout(),
            policy_file=getattr(args, "policy", None),
            preset=getattr(args, "preset", None),
            home=getattr(args, "home_dir", None),
            approval_mode=getattr(args, "approval", None),
            wait_seconds=getattr(args, "wait_seconds", None),
        )
    except PolicyError as exc:
        print(f"runestone: policy refused, nothing can be decided:\n{exc}", file=sys.stderr)
        return None
    except AuditWriteError as exc:
        print(f"runestone: the audit log cannot be opened, nothing can be decided: {exc}",
              file=sys.stderr)
        return None
