"""`runestone daemon`: run the local daemon in the foreground until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from runestone.home import layout
from runestone.policy import PolicyError


def run_daemon(args: argparse.Namespace) -> int:
    from runestone.daemon.server import Daemon

    try:
        daemon = Daemon(layout(), port=args.port, policy_file=args.policy, preset=args.preset,
                        approval_mode=args.approval)
    except (PolicyError, RuntimeError, OSError) as exc:
        print(f"runestone daemon: cannot start: {exc}", file=sys.stderr)
        return 2
    daemon.start()
    signal.signal(signal.SIGTERM, lambda *_: daemon._stop.set())
    print(f"runestone daemon: listening on http://127.0.0.1:{daemon.port} and "
          f"{daemon.unix.server_address if daemon.unix else '(no socket)'}; policy "
          f"sha256:{daemon.gatekeeper.policy.hash[:16]}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        daemon.wait()
    daemon.close()
    return 0
