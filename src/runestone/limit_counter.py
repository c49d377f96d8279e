"""Counting calls against a policy's limits, safely across concurrent hook processes.

Every hook process (and the daemon) counts in one SQLite file in the state directory. A
call is checked and counted in one `BEGIN IMMEDIATE` transaction: the write lock is taken
before the count is read, so of any number of processes racing for the last place under a
cap exactly one gets it. Entries older than a limit's window are dropped as it is counted.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (limit_id TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_by_key ON calls (limit_id, key, at);
CREATE TABLE IF NOT EXISTS spent (limit_id TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL,
                                  amount INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS spent_by_key ON spent (limit_id, key, at);
"""


class Count(NamedTuple):
    """The calls in the window (this one included when it was counted) and whether the
    call is over the limit (then it was not counted)."""

    calls: int
    over: bool


class LimitCounter:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()  # the daemon's threads share one connection

    def count(self, limit_id: str, key: str, maximum: int, minutes: int,
              now: float | None = None) -> Count:
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM calls WHERE limit_id = ? AND key = ? AND at <= ?",
                                 (limit_id, key, now - minutes * 60))
                (calls,) = self._db.execute(
                    "SELECT COUNT(*) FROM calls WHERE limit_id = ? AND key = ?",
                    (limit_id, key)).fetchone()
                if calls >= maximum:
                    self._db.execute("COMMIT")
                    return Count(calls + 1, True)
                self._db.execute("INSERT INTO calls VALUES (?, ?, ?)", (limit_id, key, now))
                self._db.execute("COMMIT")
                return Count(calls + 1, False)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def spend(self, limit_id: str, key: str, amount: int, now: float | None = None) -> None:
        """Record what a host reported as used (tokens) against a budget."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("INSERT INTO spent VALUES (?, ?, ?, ?)",
                             (limit_id, key, now, amount))

    def spent(self, limit_id: str, key: str, minutes: int, now: float | None = None) -> int:
        """The amount recorded against a budget in its window (older rows are dropped)."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("DELETE FROM spent WHERE limit_id = ? AND key = ? AND at <= ?",
                             (limit_id, key, now - minutes * 60))
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM spent WHERE limit_id = ? AND key = ?",
                (limit_id, key)).fetchone()
        return int(total)

    def close(self) -> None:
        self._db.close()
