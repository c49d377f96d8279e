"""`runestone daemon`: run the local daemon in the foreground until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import sys

from runestone.home import layout
from runestone.policy import PolicyError
from runestone.sigterm import TermSignal


def run_daemon(args: argparse.Namespace) -> int:
    if getattr(args, "on_demand", False):
        return _run_on_demand(args)
    from runestone.daemon.server import Daemon

    try:
        daemon = Daemon(layout(), port=args.port, policy_file=args.policy, preset=args.preset,
                        approval_mode=args.approval)
    except (PolicyError, RuntimeError, OSError) as exc:
        print(f"runestone daemon: cannot start: {exc}", file=sys.stderr)
        return 2
    daemon.start()
    term = TermSignal()
    print(f"runestone daemon: listening on http://127.0.0.1:{daemon.port} and "
          f"{daemon.unix.server_address if daemon.unix else '(no socket)'}; policy "
          f"sha256:{daemon.gatekeeper.policy.hash[:16]}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        term.wait(daemon.stopping)
    daemon.close()
    return 0


def _run_on_demand(args: argparse.Namespace) -> int:
    """A daemon a hook started (runestone.daemon.on_demand): one per home, held by a lock,
    on an ephemeral port, gone after a while without requests."""
    import fcntl
    import os
    import socket

    from runestone.daemon import on_demand
    from runestone.daemon.server import Daemon, socket_path

    where = layout()
    state = where.state_dir
    marker = state / on_demand.STARTING
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(state / on_demand.LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another started daemon runs (or is starting): nothing to do
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(socket_path(where)))
            return 0  # a daemon started by hand already answers there: leave it be
        except OSError:
            pass
        finally:
            probe.close()
        try:
            daemon = Daemon(where, port=0, policy_file=args.policy, preset=args.preset,
                            approval_mode=args.approval)
        except (PolicyError, RuntimeError, OSError) as exc:
            print(f"runestone daemon: cannot start: {exc}", file=sys.stderr)
            return 2
        daemon.start()
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()
    term = TermSignal()
    print(f"runestone daemon: started on demand (pid {os.getpid()}), listening on "
          f"http://127.0.0.1:{daemon.port} and {socket_path(where)}; leaving after "
          f"{on_demand.idle_seconds():g} s without a request", file=sys.stderr, flush=True)
    idle = on_demand.idle_seconds()
    with contextlib.suppress(KeyboardInterrupt):
        while not term.wait(daemon.stopping, min(idle, 5.0) / 2):
            if daemon.idle_for() >= idle:
                break
    daemon.close()
    return 0
