"""Keeping an enrolled runtime's policy current while the daemon runs.

Every `interval` seconds the daemon asks the control plane for its assigned policy (a
conditional request, so an unchanged policy costs one 304). A pulled policy is written only
after its signature, compilation and hash check out (runestone.remote.client); the daemon's
policy watcher then reloads it. When the server does not answer, the last verified policy
stays in force and the error is said once, not every interval.
"""

from __future__ import annotations

import os
import sys
import threading

from runestone.home import Layout

DEFAULT_INTERVAL = 60.0


def pull_interval() -> float:
    """Seconds between pulls: $RUNESTONE_PULL_INTERVAL, else a minute; never below 1 s."""
    try:
        return max(1.0, float(os.environ.get("RUNESTONE_PULL_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class PolicySync:
    """A loop that pulls while the runtime is enrolled; it does nothing for one that is not."""

    def __init__(self, layout: Layout, stop: threading.Event,
                 interval: float | None = None) -> None:
        self.layout = layout
        self.stop = stop
        self.interval = interval if interval is not None else pull_interval()
        self.last_error = ""

    def run(self) -> None:
        self.pull_once()
        while not self.stop.wait(self.interval):
            self.pull_once()

    def pull_once(self) -> None:
        from runestone.remote.client import RemoteError, load_remote, pull

        if load_remote(self.layout) is None:
            return
        try:
            state = pull(self.layout)
        except (RemoteError, OSError, ValueError, KeyError) as exc:
            self._say(f"policy pull failed; the last verified policy stays in force: {exc}")
            return
        self._say(state.get("last_error", ""))

    def _say(self, error: str) -> None:
        if error and error != self.last_error:
            print(f"runestone daemon: {error}", file=sys.stderr)
        elif not error and self.last_error:
            print("runestone daemon: the control plane answers again", file=sys.stderr)
        self.last_error = error
