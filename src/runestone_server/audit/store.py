"""Writing a batch's verified rows into `audit_entries` inside the ingest's transaction: a
COPY stream on PostgreSQL, fed while the batch is still being verified; one executemany
elsewhere.

Why COPY: SQLAlchemy sends an INSERT without RETURNING through psycopg's `executemany`,
which is one INSERT statement per row (pipelined, but each parsed, bound and executed on
the server, each parameter adapted by SQLAlchemy and psycopg in Python). COPY sends the
rows as one stream of text lines. Measured over 100,000 stored rows with every index in
place, the server's CPU per row fell from ~68 to ~50 us and the client's from ~21 to ~5
us; what is left on the server is the indexes (the full-text expression alone is ~16 us),
the foreign keys and the heap, which COPY runs exactly as INSERT does (the same
constraints and triggers fire).

Why while verifying: the database works on the rows already sent (psycopg sends every
~32 KiB) while Python hashes and derives the next ones, so a batch costs about the larger
of the two instead of their sum. Rows are written only after they verified, in seq order,
so a batch that stops at a problem stores exactly the rows before it, as before.

The row values are those the INSERT would have sent: the `entry` column gets the text the
JSON type's bind processor writes (the dialect's JSON serializer, `json.dumps` unless the
engine was given another), the times are timezone-aware. A database error during COPY is
raised as SQLAlchemy's exception of the same class (IntegrityError, OperationalError...),
so the endpoint's retry after a lost race works as it did with INSERT.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from operator import itemgetter
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy import exc as sa_exc

from runestone_server.audit.models import AuditEntry

# Every column ingest writes (`id` comes from the sequence), in the table's order.
COLUMNS = tuple(c.name for c in AuditEntry.__table__.columns if c.name != "id")
_QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)  # "user" is a reserved word
COPY_SQL = f"COPY {AuditEntry.__tablename__} ({_QUOTED}) FROM STDIN"
_VALUES = itemgetter(*COLUMNS)
_ENTRY = COLUMNS.index("entry")


class _NoError(Exception):
    """Never raised: what the writer catches when it has no driver's errors to translate."""


class RowWriter:
    """Takes rows (dicts with every column of COLUMNS) one by one; they are stored when the
    writer closes without an exception. Use as a context manager; while a COPY is open the
    connection runs nothing else, so no query may be made inside the `with`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.copying = (connection.dialect.name == "postgresql"
                        and connection.dialect.driver == "psycopg")
        self.pending: list[dict[str, Any]] = []
        self._stack = ExitStack()
        self._copy: Any = None
        self._dumps: Callable[[Any], str] = \
            getattr(connection.dialect, "_json_serializer", None) or json.dumps
        self._driver_error: type[Exception] = _NoError
        if self.copying:
            import psycopg  # the PostgreSQL driver, loaded by then

            self._driver_error = psycopg.Error

    def add(self, row: dict[str, Any]) -> None:
        if not self.copying:
            self.pending.append(row)
            return
        values = list(_VALUES(row))
        values[_ENTRY] = self._dumps(values[_ENTRY])
        try:
            if self._copy is None:  # opened by the first row: a batch of resends sends none
                driver = self.connection.connection.driver_connection
                assert driver is not None
                cursor = self._stack.enter_context(driver.cursor())
                self._copy = self._stack.enter_context(cursor.copy(COPY_SQL))
            self._copy.write_row(values)
        except self._driver_error as error:
            raise _translated(error) from error

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:  # the COPY is abandoned (the transaction will roll back)
            self._stack.__exit__(kind, error, trace)
            return
        try:
            self._stack.close()  # ends the COPY: the server has stored every row
        except self._driver_error as error:
            raise _translated(error) from error
        if self.pending:
            # A Core executemany: one statement for the batch (the ORM's bulk path would
            # emit one INSERT per row here).
            self.connection.execute(insert(AuditEntry.__table__), self.pending)


def _translated(error: Exception) -> sa_exc.DBAPIError:
    """The driver's error as SQLAlchemy's wrapper of it, as `Connection.execute` raises."""
    import psycopg

    wrapper: type[sa_exc.DBAPIError] = sa_exc.DatabaseError
    for driver_kind, ours in ((psycopg.IntegrityError, sa_exc.IntegrityError),
                              (psycopg.OperationalError, sa_exc.OperationalError),
                              (psycopg.DataError, sa_exc.DataError),
                              (psycopg.InternalError, sa_exc.InternalError),
                              (psycopg.ProgrammingError, sa_exc.ProgrammingError)):
        if isinstance(error, driver_kind):
            wrapper = ours
            break
    return wrapper(COPY_SQL, None, error)
