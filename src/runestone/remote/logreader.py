"""Reading the local audit log for shipping: committed entries only, from where the last
round stopped.

The writer (`runestone.audit.log.AuditLog`) appends under an exclusive `flock` on the log's
`.lock` file, in one `write`, and `fsync`s before it lets go. Reading the segments without
that lock can meet an append in flight: a line that is complete but not yet durable (if the
machine dies now it is gone, the runtime writes a different entry at that seq, and the
server, which already has the first, sees a fork), or a torn tail a recovering writer is
about to cut off and overwrite. So the reader takes the same lock, shared, only long enough
to note how far the log is committed: the segments, and the newest one's size up to its
last newline. Everything before that point never changes again (segments are only appended
to, and a recovery only cuts bytes after the last newline), so it is read after the lock is
released: a slow read or a slow server never holds up a hook.

A round resumes from a `Position` (segment, byte offset, and the seq and hash of the entry
that ends there), so it reads what is new instead of the whole segment. The position is
trusted only once it checks out: the offset is inside the committed part of its segment, at
a line boundary, and the entry there is the next seq and chains to the remembered hash (or,
with nothing after it, the log's head is the remembered seq). Anything else (a log rewritten
or replaced, a server that has fewer entries than the position) falls back to a scan from
the segment holding the next seq, as if no position were known.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runestone.audit.log import LOCK_FILE, last_complete_line, list_segments


class UnreadableLog(OSError):
    """A committed line of the log is not an entry; `runestone audit verify` says more."""


@dataclass(frozen=True)
class Position:
    """Entry `seq` (hash `hash`) ends at byte `offset` of segment number `segment`."""

    segment: int
    offset: int
    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> Position | None:
        """The position saved in the ship state, or None when there is none or it is not
        one (a state file from an older version, or damaged)."""
        if not isinstance(value, dict):
            return None
        try:
            numbers = [value[k] for k in ("segment", "offset", "seq")]
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in numbers) or not isinstance(value["hash"], str):
                return None
            return cls(*numbers, value["hash"])
        except KeyError:
            return None


@dataclass(frozen=True)
class Segment:
    number: int
    path: Path
    committed: int  # bytes of complete, committed lines


@dataclass(frozen=True)
class Committed:
    """The log as it stood while the writer's lock was held: what may be read."""

    segments: tuple[Segment, ...]
    head: int  # the seq of the last committed entry (0 for an empty log)


@contextlib.contextmanager
def _shared_lock(directory: Path) -> Iterator[None]:
    """The writer's lock, shared: no append is in flight while it is held."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        # A log that was never appended to by this version, or copied without its lock
        # file: create it as the writer would, so both lock the same file from now on.
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _seq_of(line: bytes | None) -> int | None:
    try:
        entry = json.loads(line) if line is not None else None
        return int(entry["seq"]) if isinstance(entry, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def committed(directory: Path) -> Committed:
    """How far the log is committed, noted under the writer's lock (held for a `stat` per
    segment and a read of the newest one's last line)."""
    if not directory.is_dir():
        return Committed((), 0)
    with _shared_lock(directory):
        found = list_segments(directory)
        segments: list[Segment] = []
        head = 0
        for index, (number, path) in enumerate(found):
            size = path.stat().st_size
            if index == len(found) - 1:  # the only one an append may be in flight on
                line, size = last_complete_line(path, size)
                head = _seq_of(line) or 0
            segments.append(Segment(number, path, size))
    if head == 0 and len(segments) > 1:  # the newest segment holds no complete line yet
        for segment in reversed(segments[:-1]):
            head = _seq_of(last_complete_line(segment.path, segment.committed)[0]) or 0
            if head:
                break
    return Committed(tuple(segments), head)


Item = tuple[dict[str, Any], int, Position]


def _lines(segment: Segment, offset: int) -> Iterator[Item]:
    """Every committed entry of a segment from byte `offset`, with its size and the position
    after it. Stops at a line that is not complete within the committed part."""
    with segment.path.open("rb") as handle:
        handle.seek(offset)
        while offset < segment.committed:
            line = handle.readline(segment.committed - offset)
            if not line.endswith(b"\n"):
                return  # a torn tail: not an entry (the next append moves it aside)
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise UnreadableLog(f"{segment.path.name}: an unreadable entry at byte "
                                    f"{offset} ({exc}); run `runestone audit verify`") from exc
            offset += len(line)
            if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
                yield entry, len(line), Position(segment.number, offset, entry["seq"],
                                                 str(entry.get("hash")))


def _read(log: Committed, index: int, offset: int) -> Iterator[Item]:
    for segment in log.segments[index:]:
        yield from _lines(segment, offset)
        offset = 0


def _first(log: Committed, index: int, offset: int) -> Item | None:
    """The first committed entry at or after (segment index, offset), or None."""
    items = _read(log, index, offset)
    try:
        return next(items, None)
    finally:
        items.close()  # closes the segment now, not when collected


def _resume(log: Committed, position: Position | None, after: int) -> int | None:
    """The index of the position's segment when the position checks out, else None."""
    if position is None or position.seq > after:
        return None  # nothing remembered, or the server lacks entries sent from before it
    index = next((i for i, s in enumerate(log.segments) if s.number == position.segment), None)
    if index is None or position.offset > log.segments[index].committed:
        return None  # the segment is gone, or shorter than the offset
    if position.offset:
        with log.segments[index].path.open("rb") as handle:
            handle.seek(position.offset - 1)
            if handle.read(1) != b"\n":
                return None  # not a line boundary
    following = _first(log, index, position.offset)
    if following is None:
        return index if log.head == position.seq else None
    entry = following[0]
    if entry["seq"] != position.seq + 1 or entry.get("prev") != position.hash:
        return None
    return index


def _scan_start(log: Committed, after: int) -> int:
    """The index of the last segment whose first entry is at or before seq `after` + 1."""
    start = 0
    for index in range(len(log.segments)):
        try:
            first = _first(log, index, 0)
        except UnreadableLog:
            continue  # said if it is ever read for shipping; the scan looks past it
        if first is None or first[0]["seq"] > after + 1:
            break  # seqs only grow: no later segment starts at or before it either
        start = index
    return start


def entries_after(directory: Path, after: int, position: Position | None = None,
                  log: Committed | None = None) -> Iterator[Item]:
    """(entry, its size in bytes, the position after it) for every committed entry with a
    seq above `after`, in order: from `position` when it checks out, else from a scan."""
    log = log if log is not None else committed(directory)
    index = _resume(log, position, after)
    if index is not None and position is not None:
        items = _read(log, index, position.offset)
    else:
        items = _read(log, _scan_start(log, after), 0)
    for item in items:
        if item[0]["seq"] > after:
            yield item


def local_head(directory: Path) -> int:
    """The seq of the log's last committed entry (0 for an empty log)."""
    return committed(directory).head
