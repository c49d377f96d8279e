"""Export of audit entries as JSON Lines or CSV, streamed.

An export can be millions of rows, so it is produced batch by batch (each batch one keyset
query, see `search.walk`) and sent as it is produced; the server never holds the whole
export. JSON Lines carries each runtime entry whole (so its hash can be recomputed by
anyone); CSV carries the searchable columns for spreadsheets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from runestone_server.audit.search import LISTED, Filters, Scope, full, listed, walk

FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
CSV_COLUMNS = tuple(column.key for column in LISTED)


def _jsonl(rows: Iterator[Any]) -> Iterator[bytes]:
    for entry in rows:
        yield json.dumps(full(entry), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _csv(rows: Iterator[Any]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    for count, entry in enumerate(rows, 1):
        writer.writerow({k: ("" if v is None else v) for k, v in listed(entry).items()})
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def stream(sessions: sessionmaker[Session], scope: Scope, filters: Filters, fmt: str,
           *, descending: bool = False) -> Iterator[bytes]:
    """The export's bytes. It opens its own session: the response outlives the request's."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    with sessions() as db:
        rows = walk(db, scope, filters, descending=descending)
        yield from (_jsonl(rows) if fmt == "jsonl" else _csv(rows))
