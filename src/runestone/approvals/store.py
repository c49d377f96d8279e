"""The local approval store: requests and grants in SQLite (WAL), spent atomically.

Many hook processes, the approval page and the CLI share one database file. Every state
change is one conditional UPDATE inside `BEGIN IMMEDIATE`, so two processes racing to spend
one approval cannot both win: the loser's UPDATE matches no row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

STATES = ("pending", "approved", "denied", "expired", "consumed", "cancelled")
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL,
    action_hash TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    rules TEXT NOT NULL,
    reason TEXT NOT NULL,
    analysis TEXT NOT NULL,
    agent TEXT NOT NULL,
    session TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,
    token TEXT NOT NULL,
    nonce TEXT NOT NULL,
    approver TEXT,
    decided REAL,
    decision_reason TEXT,
    scope TEXT,
    grant_id TEXT,
    consumed REAL
);
CREATE INDEX IF NOT EXISTS requests_by_hash ON requests (action_hash, state);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    action_hash TEXT,
    rule_id TEXT,
    session TEXT,
    summary TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    uses_left INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    request_id TEXT,
    revoked REAL,
    revoked_by TEXT
);
"""


class Request(NamedTuple):
    """One approval request as stored."""

    id: str
    tool: str
    action: dict[str, Any]
    summary: str
    action_hash: str
    policy_hash: str
    rules: tuple[str, ...]
    reason: str
    analysis: dict[str, Any]
    agent: str
    session: str
    user: str
    host: str
    created: float
    expires: float
    state: str
    token: str
    nonce: str
    approver: str | None = None
    decided: float | None = None
    decision_reason: str | None = None
    scope: str | None = None
    grant_id: str | None = None
    consumed: float | None = None


class Grant(NamedTuple):
    """Permission given ahead of (or beyond) one request.

    `kind` is `action` (one exact action hash) or `rule` (whatever that rule asks about, in
    one session when `session` is set). `uses_left` None means unlimited until expiry.
    """

    id: str
    kind: str
    action_hash: str | None
    rule_id: str | None
    session: str | None
    summary: str
    created: float
    expires: float
    uses_left: int | None
    uses: int
    created_by: str
    request_id: str | None
    revoked: float | None
    revoked_by: str | None

    def active(self, now: float) -> bool:
        return self.revoked is None and now < self.expires and (
            self.uses_left is None or self.uses_left > 0)


class ApprovalStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        # The `data_version` at which nothing was found to spend (see `spendable`), or None.
        self._nothing_at: int | None = None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # One connection serves every thread of a process (the daemon): the lock keeps one
        # transaction at a time on it; BEGIN IMMEDIATE does the same across processes.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:  # this connection's own commits leave its data_version as it was
                self._nothing_at = None
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- requests -------------------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        row = _request_row(request)
        with self._write() as db:
            db.execute(f"INSERT INTO requests ({', '.join(row)}) VALUES "
                       f"({', '.join('?' for _ in row)})", tuple(row.values()))

    def request(self, request_id: str) -> Request | None:
        rows = self._read("SELECT * FROM requests WHERE id = ?", (request_id,))
        return _request(rows[0]) if rows else None

    def requests(self, states: tuple[str, ...] = STATES, limit: int = 200) -> list[Request]:
        marks = ", ".join("?" for _ in states)
        rows = self._read(f"SELECT * FROM requests WHERE state IN ({marks}) "
                          "ORDER BY created DESC LIMIT ?", (*states, limit))
        return [_request(r) for r in rows]

    def decide(self, request_id: str, state: str, approver: str, reason: str, scope: str,
               now: float, grant_id: str | None = None) -> bool:
        """Move a pending, unexpired request to approved or denied. False if it was not."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE requests SET state = ?, approver = ?, decided = ?, decision_reason = ?, "
                "scope = ?, grant_id = ? WHERE id = ? AND state = 'pending' AND expires > ?",
                (state, approver, now, reason, scope, grant_id, request_id, now))
            return cursor.rowcount == 1

    def consume(self, request_id: str, action_hash: str, now: float) -> bool:
        """Spend an approved request for this exact action, once. Exactly one caller wins."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE requests SET state = 'consumed', consumed = ? WHERE id = ? AND "
                "state = 'approved' AND action_hash = ? AND expires > ?",
                (now, request_id, action_hash, now))
            return cursor.rowcount == 1

    def spendable(self, now: float) -> bool:
        """False only when no request is approved and no grant can be used, as most asks
        find: they then skip the lookups and the write transaction that spending takes.

        Once found empty, the answer holds until a connection writes. Another
        connection's commit changes SQLite's `data_version` (one pragma, no table read), and
        this one's go through `_write`; both make the next call look again. Neither
        approvals nor grants appear without a write (an expiry only takes them away), and
        the answer can only ever be stale towards True, which looks, or towards a request
        approved an instant later, which an ask made an instant earlier would also miss.
        """
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if self._nothing_at == version:
                return False
            found = self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM requests WHERE state = 'approved') OR EXISTS "
                "(SELECT 1 FROM grants WHERE revoked IS NULL AND expires > ? AND "
                "(uses_left IS NULL OR uses_left > 0))", (now,)).fetchone()[0]
            self._nothing_at = None if found else version
            return bool(found)

    def approved_for(self, action_hash: str) -> list[Request]:
        rows = self._read("SELECT * FROM requests WHERE action_hash = ? AND "
                          "state = 'approved' ORDER BY decided", (action_hash,))
        return [_request(r) for r in rows]

    def cancel(self, request_id: str) -> bool:
        with self._write() as db:
            cursor = db.execute("UPDATE requests SET state = 'cancelled' WHERE id = ? AND "
                                "state = 'pending'", (request_id,))
            return cursor.rowcount == 1

    def expire_due(self, now: float) -> int:
        with self._write() as db:
            cursor = db.execute("UPDATE requests SET state = 'expired' WHERE state IN "
                                "('pending', 'approved') AND expires <= ?", (now,))
            return cursor.rowcount

    # --- grants ---------------------------------------------------------------------------

    def add_grant(self, grant: Grant) -> None:
        row = grant._asdict()
        with self._write() as db:
            db.execute(f"INSERT INTO grants ({', '.join(row)}) VALUES "
                       f"({', '.join('?' for _ in row)})", tuple(row.values()))

    def grant(self, grant_id: str) -> Grant | None:
        rows = self._read("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return Grant(**dict(rows[0])) if rows else None

    def grants(self, *, active_at: float | None = None) -> list[Grant]:
        rows = self._read("SELECT * FROM grants ORDER BY created DESC")
        grants = [Grant(**dict(r)) for r in rows]
        return [g for g in grants if active_at is None or g.active(active_at)]

    def revoke(self, grant_id: str, by: str, now: float) -> bool:
        with self._write() as db:
            cursor = db.execute("UPDATE grants SET revoked = ?, revoked_by = ? WHERE id = ? AND "
                                "revoked IS NULL", (now, by, grant_id))
            return cursor.rowcount == 1

    def use_grant(self, action_key: str, rules: tuple[str, ...], session: str,
                  now: float) -> Grant | None:
        """Spend one use of active grants that cover this action; None if none do.

        An `action` grant names the action by its key (tool, input and working directory).
        Rule grants answer an ask only when every one of its `rules` has one (the caller
        passes no rules for an ask its rules do not fully account for); one use of each is
        spent. Either kind may be limited to a session.
        """
        active = ("revoked IS NULL AND expires > ? AND (uses_left IS NULL OR uses_left > 0) "
                  "AND (session IS NULL OR session = ?)")
        with self._write() as db:
            rows = [db.execute(f"SELECT * FROM grants WHERE {active} AND kind = 'action' AND "
                               "action_hash = ? ORDER BY expires LIMIT 1",
                               (now, session, action_key)).fetchone()]
            if rows[0] is None:
                rows = [db.execute(f"SELECT * FROM grants WHERE {active} AND kind = 'rule' "
                                   "AND rule_id = ? ORDER BY expires LIMIT 1",
                                   (now, session, rule)).fetchone() for rule in rules]
                if not rows or any(row is None for row in rows):
                    return None
            for row in rows:
                db.execute("UPDATE grants SET uses = uses + 1, uses_left = CASE WHEN "
                           "uses_left IS NULL THEN NULL ELSE uses_left - 1 END WHERE id = ?",
                           (row["id"],))
            first = rows[0]
            return Grant(**{**dict(first), "uses": first["uses"] + 1,
                            "uses_left": None if first["uses_left"] is None
                            else first["uses_left"] - 1})


def _request_row(request: Request) -> dict[str, Any]:
    row = request._asdict()
    row["action"] = json.dumps(request.action, sort_keys=True)
    row["rules"] = json.dumps(list(request.rules))
    row["analysis"] = json.dumps(request.analysis, sort_keys=True)
    return row


def _request(row: sqlite3.Row) -> Request:
    data = dict(row)
    data["action"] = json.loads(data["action"])
    data["rules"] = tuple(json.loads(data["rules"]))
    data["analysis"] = json.loads(data["analysis"])
    return Request(**data)


def now() -> float:
    return time.time()
