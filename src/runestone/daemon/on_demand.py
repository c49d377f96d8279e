"""The daemon, started on demand: a hook that finds none decides in-process and starts one.

Opt in with `RUNESTONE_DAEMON=auto` in the hook's environment (as sccache, the Gradle daemon
and eslint_d do). The hook that finds no daemon answers from its own process as always,
then starts `runestone daemon --on-demand` in its own session with no terminal; later hooks
go through it (about half a cold hook's time here). The started daemon holds a lock, so one
runs per home however many hooks raced to start it, listens on an ephemeral port besides
its socket, and leaves after `RUNESTONE_DAEMON_IDLE` seconds without a request (default
900): its socket goes first, so a hook then decides in-process instead of reaching a
daemon on its way out. A daemon that dies mid-request is the hook's fail-closed deny, as
with a daemon started by hand.

Only `os` is imported here: this runs on the hook's path.
"""

from __future__ import annotations

import os
import sys

ENV = "RUNESTONE_DAEMON"
IDLE_ENV = "RUNESTONE_DAEMON_IDLE"
DEFAULT_IDLE_SECONDS = 900.0
STARTING = "daemon.starting"  # made by the hook that starts a daemon, removed once it listens
LOCK = "daemon.lock"  # held by the started daemon for its whole life
STALE_START_SECONDS = 30.0


def wanted() -> bool:
    return os.environ.get(ENV, "").strip().lower() == "auto"


def idle_seconds() -> float:
    try:
        value = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return value if value > 0 else DEFAULT_IDLE_SECONDS


def start_in_background(state_dir: str) -> bool:
    """Start `runestone daemon --on-demand` detached, unless another hook just did. Never
    raises: a daemon that does not start only means the next hook decides in-process too.
    Returns whether one was started."""
    marker = os.path.join(state_dir, STARTING)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                started = os.stat(marker).st_mtime
            except FileNotFoundError:
                return False
            import time

            if time.time() - started < STALE_START_SECONDS:
                return False  # another hook is starting one
            os.unlink(marker)  # a start that never finished: try again
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        log = os.path.join(state_dir, "daemon.log")
        os.posix_spawn(
            # -P: not the hook's working directory (the agent's project) on sys.path
            sys.executable, [sys.executable, "-P", "-m", "runestone", "daemon", "--on-demand"],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                          (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                           0o600)],
            setsid=True,
        )
    except OSError as exc:
        print(f"runestone: could not start the daemon ({exc}); deciding in-process",
              file=sys.stderr)
        return False
    return True
