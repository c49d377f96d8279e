"""Idempotency keys for the runtime's own tools (`shell.exec`, `files.write`,
`http.request`): a retried call with the same key and the same call returns the first
result instead of running twice; another call under a used key is refused.

Agents retry: a timeout on their side, a dropped connection, a restarted loop. A command
that creates, pays, pushes or sends must not run twice because the answer was lost. The
caller names the attempt with a key; the runtime remembers, per key, what was asked (a
hash over the tool and its parameters) and the response it gave.

Keys live in one SQLite file in the state directory (beside the limit counters), claimed in
a `BEGIN IMMEDIATE` transaction, so of concurrent calls with one key (threads of the daemon
or separate processes) exactly one runs; the others are told it is running. A claim whose
call was not allowed (asked, denied) is released, so the retry after an approval runs. A
call that started and never finished (the process died) keeps its claim: the runtime cannot
know whether it ran, so a retry under that key is refused, saying so (fail closed); the
caller chooses a new key once it has checked. Keys are forgotten after `KEEP_SECONDS`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from runestone.actions.canonical import canonical_json

KEEP_SECONDS = 24 * 3600
MAX_KEY = 200
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  key TEXT PRIMARY KEY, call_hash TEXT NOT NULL, state TEXT NOT NULL,
  response TEXT, at REAL NOT NULL);
"""


class BadKey(ValueError):
    """A key that is not a short printable string."""


def check_key(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY or \
            any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadKey(f"'idempotency_key' must be a string of 1 to {MAX_KEY} printable "
                        "characters")
    return value


def call_hash(tool: str, params: dict[str, Any], cwd: str) -> str:
    """What "the same call" means: the tool, every parameter but the key, and the working
    directory it defaults to."""
    return hashlib.sha256(canonical_json({"tool": tool, "params": params, "cwd": cwd})
                          ).hexdigest()


class Claim(NamedTuple):
    """`owned`: this call may run (and must finish or release); else `response` is the
    first call's stored response, or None with `problem` saying why it is refused."""

    owned: bool
    response: dict[str, Any] | None = None
    problem: str = ""


class IdempotencyStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def claim(self, key: str, digest: str, now: float | None = None) -> Claim:
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM keys WHERE at <= ?", (now - KEEP_SECONDS,))
                row = self._db.execute("SELECT call_hash, state, response FROM keys "
                                       "WHERE key = ?", (key,)).fetchone()
                if row is None:
                    self._db.execute("INSERT INTO keys VALUES (?, ?, 'running', NULL, ?)",
                                     (key, digest, now))
                    self._db.execute("COMMIT")
                    return Claim(True)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        first_hash, state, response = row
        if first_hash != digest:
            return Claim(False, problem="this idempotency key was used for a different call "
                                        "(another tool, parameters or directory); a "
                                        "different call needs its own key")
        if state == "done":
            return Claim(False, response=json.loads(response))
        return Claim(False, problem="a call with this idempotency key started and has not "
                                    "finished (still running, or interrupted, so it may have "
                                    "run); check its effect, then retry with a new key")

    def finish(self, key: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("UPDATE keys SET state = 'done', response = ? WHERE key = ?",
                             (json.dumps(response, ensure_ascii=False), key))

    def release(self, key: str) -> None:
        """The call did not run (not allowed): the key is free for the retry."""
        with self._lock:
            self._db.execute("DELETE FROM keys WHERE key = ? AND state = 'running'", (key,))


_stores: dict[str, IdempotencyStore] = {}
_stores_lock = threading.Lock()


def store_for(state_file: Path | None) -> IdempotencyStore:
    """The store beside `state_file`'s directory (the gatekeeper's limit counters), one per
    file in a process; without one, a store in this process's memory."""
    where = str(state_file.parent / "idempotency.sqlite") if state_file else ":memory:"
    with _stores_lock:
        if where not in _stores:
            _stores[where] = IdempotencyStore(where)
        return _stores[where]
