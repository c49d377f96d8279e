"""Periodic work of the control plane (escalations, notification retries, alert rules).

Each replica runs the same loop; a task must claim its rows in the database (a conditional
UPDATE, or SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL), so that several replicas over
one database do the work once. Nothing a task needs lives in process memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from runestone_server.db import Database

log = logging.getLogger("runestone_server.worker")
Task = Callable[[Database], None]
TASKS: dict[str, Task] = {}


def task(name: str) -> Callable[[Task], Task]:
    """Register a function run every tick with the app's Database."""

    def register(function: Task) -> Task:
        TASKS[name] = function
        return function

    return register


def run_once(db: Database) -> None:
    """One tick: every task, each failure logged and contained (the next tick retries)."""
    from runestone_server.metrics import TASK_RUNS, TASK_TIME

    for name, function in list(TASKS.items()):
        started = time.perf_counter()
        outcome = "ok"
        try:
            function(db)
        except Exception:
            outcome = "error"
            log.exception("worker task %s failed", name)
        TASK_RUNS.labels(name, outcome).inc()
        TASK_TIME.labels(name).observe(time.perf_counter() - started)


class Worker:
    """A daemon thread that ticks every `interval` seconds until stopped."""

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db = db
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runestone-worker",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            run_once(self.db)
