"""Waking long-polls when a request is decided, within one replica and across replicas.

A waiting runtime does not hold a database connection: it re-reads its request in short
sessions and sleeps in between. The sleep ends early when the request changes:
- in this process, the code that decided calls `wake(approval_id)` after its commit;
- on PostgreSQL, deciding also runs `pg_notify(CHANNEL, id)` inside its transaction, and
  one listener thread per process and database (one connection, not one per waiter) turns
  those notifications into the same local wake-ups, so a decision taken on another replica
  is seen at once;
- on SQLite (one machine) the waiter re-checks every `SQLITE_RECHECK` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger("runestone_server.approvals")
CHANNEL = "runestone_approvals"
SQLITE_RECHECK = 0.25
POSTGRES_RECHECK = 5.0  # a safety net should a notification be lost while reconnecting

_waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
_lock = threading.Lock()
_listeners: dict[str, threading.Thread] = {}


def announce(db: Session, approval_id: int) -> None:
    """Inside the deciding transaction: tell other replicas once it commits."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_notify(:channel, :payload)"),
                   {"channel": CHANNEL, "payload": str(approval_id)})


def wake(approval_id: int) -> None:
    """Wake this process's waiters on the request (call after the commit)."""
    with _lock:
        waiters = list(_waiters.get(approval_id, ()))
    for loop, event in waiters:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to wake
            loop.call_soon_threadsafe(event.set)


async def wait(database_url: str, approval_id: int, timeout: float) -> None:
    """Sleep up to `timeout`, less if the request may have changed."""
    postgres = database_url.startswith("postgresql")
    if postgres:
        _ensure_listener(database_url)
    event = asyncio.Event()
    entry = (asyncio.get_running_loop(), event)
    with _lock:
        _waiters.setdefault(approval_id, set()).add(entry)
    try:
        limit = min(timeout, POSTGRES_RECHECK if postgres else SQLITE_RECHECK)
        await asyncio.wait_for(event.wait(), max(0.0, limit))
    except TimeoutError:
        pass
    finally:
        with _lock:
            bucket = _waiters.get(approval_id)
            if bucket is not None:
                bucket.discard(entry)
                if not bucket:
                    del _waiters[approval_id]


def _ensure_listener(database_url: str) -> None:
    with _lock:
        thread = _listeners.get(database_url)
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=_listen, args=(database_url,), daemon=True,
                                  name="runestone-approvals-listen")
        _listeners[database_url] = thread
    thread.start()


def _listen(database_url: str) -> None:
    """LISTEN on one connection until it fails; then this thread ends and the next waiter
    starts another (meanwhile waiters fall back to their periodic re-check)."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            while True:
                for notice in connection.notifies(timeout=30.0):
                    with contextlib.suppress(ValueError):
                        wake(int(notice.payload))
    except Exception as exc:
        log.warning("the approvals listener stopped (%s); the next long-poll restarts it", exc)
    finally:
        with _lock:
            if _listeners.get(database_url) is threading.current_thread():
                del _listeners[database_url]
