"""The append-only audit log: JSON Lines segments, hash-chained, fsynced, shared safely.

Many hook processes append at once. Each append takes an exclusive `flock` on the log's
lock file, reads the head (last sequence number and hash) from the newest segment, writes
its entries in one `write`, and `fsync`s before releasing the lock: the chain never forks,
and an entry the caller was told about is on disk.

A crash in the middle of a write leaves at most one torn final line (no newline). The next
append finds it, copies the torn bytes to a side file, cuts them off, and records a
`recovery` entry; nothing that was acknowledged is lost, because acknowledged lines always
end with a newline. An append that fails while the writer lives (a short write on a full
disk, an `fsync` error) is cut off again before the caller hears of the failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, NamedTuple

from runestone.audit.checkpoint import Signer, checkpoint_message
from runestone.audit.entry import genesis, now_rfc3339, sealed_line
from runestone.audit.redact import Redactor
from runestone.digest import sha256

SEGMENT = re.compile(r"^segment-([0-9]{8})\.jsonl$")
# Writers hold it exclusively to append; readers that must see only committed entries
# (the shipper) hold it shared.
LOCK_FILE = ".lock"
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
DEFAULT_CHECKPOINT_EVERY = 256


class AuditWriteError(OSError):
    """The log could not be written; the caller must deny (no audit, no allow)."""


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.jsonl"


def segment_numbers(directory: Path) -> list[int]:
    """The numbers of the log's segments, in order. A new process's first append asks
    for them; building a path for every segment as well cost it ~2 µs a segment."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(name[8:16]) for name in names if SEGMENT.match(name))


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The log's segments in order."""
    return [(number, directory / segment_name(number)) for number in segment_numbers(directory)]


class _Batch:
    """One caller's entries in a group write, and what became of them."""

    __slots__ = ("done", "entries", "error", "leads", "sealed", "wake")

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.sealed: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = False
        # Held while its caller sleeps behind another's write: released by the leader
        # (None for a caller that led at once), which has written the batch or handed its
        # caller the lead (`leads`).
        self.wake: threading.Lock | None = None
        self.leads = False


class _Lock:
    """Held while the head is read and entries written. Threads of one process share the
    log's open files (the daemon serves hooks from many threads), so a thread lock comes
    first; then an exclusive `flock` of the lock file serialises processes. A class, not a
    generator context manager, because every append takes it."""

    __slots__ = ("directory", "fd", "thread_lock")

    def __init__(self, directory: Path, thread_lock: threading.RLock) -> None:
        self.directory = directory
        self.thread_lock = thread_lock
        self.fd: int | None = None

    def __enter__(self) -> None:
        self.thread_lock.acquire()
        try:
            if self.fd is None:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.thread_lock.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.fd is not None:  # opened by __enter__
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.thread_lock.release()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Head(NamedTuple):
    segment: int
    seq: int
    hash: str


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_back(fd: int, size: int) -> None:
    """Cut a failed append off the segment, whole lines included.

    The caller is told the append failed (and the gatekeeper denies), so none of its entries
    may stay: a decision entry saying `allow` for an action that was refused would be a false
    record. Best effort: if even the truncation fails, the next append moves a torn last line
    aside, and `runestone audit verify` still checks whatever whole lines remain.
    """
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass


def last_complete_line(path: Path, size: int | None = None) -> tuple[bytes | None, int]:
    """The last complete line of a segment (or of its first `size` bytes), and where its
    complete part ends. Read backwards a block at a time: a long log costs what its end
    does. (None, 0) when no line is complete."""
    with path.open("rb") as handle:
        if size is None:
            size = handle.seek(0, os.SEEK_END)
        data, position, block = b"", size, 4096
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
            body_end = data.rfind(b"\n")
            if body_end != -1:
                previous = data.rfind(b"\n", 0, body_end)
                if previous != -1 or position == 0:
                    return data[previous + 1:body_end], position + body_end + 1
            block *= 2
    return None, 0


def _last_line(path: Path) -> tuple[bytes | None, int, bytes]:
    """(last complete line, size of the complete part, torn tail bytes) of a segment."""
    line, good_size = last_complete_line(path)
    with path.open("rb") as handle:
        handle.seek(good_size)
        return line, good_size, handle.read()


class AuditLog:
    """Appends entries to one runtime's hash-chained log."""

    def __init__(
        self,
        directory: Path,
        runtime_id: str,
        *,
        signer: Signer | None = None,
        redactor: Redactor | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        self._thread_lock = threading.RLock()
        self._locked = _Lock(directory, self._thread_lock)
        self.directory = directory
        self.runtime_id = runtime_id
        self.signer = signer
        self.redactor = redactor
        self.segment_bytes = segment_bytes
        self.checkpoint_every = checkpoint_every
        # Group commit: batches queue here for the next group write. One caller at a time
        # leads (`_committing`) and writes them; the others sleep on their batch's own lock
        # until it is written or the lead is handed to them.
        self._queue_lock = threading.Lock()
        self._pending: list[_Batch] = []
        self._committing = False
        # The head this process wrote last, with the segment's identity and size right after:
        # if the newest segment is still that file at that size, nobody appended since, and
        # the head need not be read back (what makes a long-lived daemon's append cheap).
        self._written: tuple[int, int, int, Head] | None = None
        # The newest segment kept open between appends, with its number, while the head
        # read under the current lock is the one this process wrote (`_read_head` checks).
        self._segment_fd: int | None = None
        self._segment_number = 0
        self._head_is_ours = False

    @property
    def directory(self) -> Path:
        return self._directory

    @directory.setter
    def directory(self, directory: Path) -> None:
        # The paths built from it are kept (the lock file's, the newest segments'): moved
        # with it.
        self._directory = directory
        self._locked.directory = directory
        self._segment_paths: dict[int, str] = {}

    # --- locking and the head ---------------------------------------------------------------

    def close(self) -> None:
        self._close_segment()
        self._locked.close()

    def _close_segment(self) -> None:
        if self._segment_fd is not None:
            os.close(self._segment_fd)
            self._segment_fd = None

    def _read_head(self) -> tuple[Head, list[dict[str, Any]]]:
        """The chain's head, repairing a torn tail; returns recovery entries to write first."""
        recoveries: list[dict[str, Any]] = []
        self._head_is_ours = False
        if self._written is not None:
            # Fast path, two stats instead of listing the directory: the segment this process
            # wrote last is the same file at the same size, and no later segment exists
            # (segments are only ever created one after the newest), so nobody appended.
            number, inode, size, head = self._written
            try:
                stat = os.stat(self._segment_path(number))
                # `access` answers a missing file without raising, as `exists` does inside
                later = os.access(self._segment_path(number + 1), os.F_OK)
            except OSError:
                stat, later = None, True
            if stat is not None and not later and (stat.st_ino, stat.st_size) == (inode, size):
                self._head_is_ours = True
                return head, recoveries
        numbers = segment_numbers(self.directory)
        if not numbers:
            return Head(1, 0, genesis(self.runtime_id)), recoveries
        current = numbers[-1]
        for number in reversed(numbers):  # the newest that holds an entry: most often the last
            path = self.directory / segment_name(number)
            line, good_size, tail = _last_line(path)
            if tail:
                recoveries.append(self._move_torn_tail(number, path, good_size, tail))
            if line is None:
                continue
            try:
                last = json.loads(line)
                return Head(current, int(last["seq"]), str(last["hash"])), recoveries
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditWriteError(
                    f"the last entry of {path.name} is not a valid entry ({exc}); "
                    "run `runestone audit verify`"
                ) from exc
        return Head(current, 0, genesis(self.runtime_id)), recoveries

    def _move_torn_tail(self, number: int, path: Path, good_size: int, tail: bytes) -> dict:
        side = self.directory / f"torn-{number:08d}-{good_size}.bin"
        with side.open("wb") as handle:
            handle.write(tail)
            handle.flush()
            os.fsync(handle.fileno())
        with path.open("r+b") as handle:
            handle.truncate(good_size)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.directory)
        return {
            "kind": "recovery",
            "reason": "a torn final line (an interrupted write, never acknowledged) was moved "
                      "aside",
            "segment": path.name,
            "offset": good_size,
            "torn_bytes": len(tail),
            "torn_sha256": sha256(tail).hexdigest(),
            "moved_to": side.name,
        }

    # --- appending ------------------------------------------------------------------------

    def append(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append entries durably. Raises AuditWriteError when it cannot.

        Group commit: threads of one process that append while another thread's write is
        under way share the next write and fsync (as a database's log does). Each caller
        returns only once its own entries are on disk, and a caller alone pays one write
        and one fsync. A batch that cannot be sealed (an entry that is not JSON) fails
        alone; a write that fails fails every batch in it."""
        batch = _Batch(entries)
        with self._queue_lock:
            self._pending.append(batch)
            if self._committing:  # a write is under way: ours goes in a later group
                batch.wake = threading.Lock()
                batch.wake.acquire()
            else:  # none is: we lead
                self._committing = True
        if batch.wake is not None:
            try:
                batch.wake.acquire()  # a leader lets us go: ours is written, or we lead next
            except BaseException:  # interrupted in its sleep (Ctrl-C, in the main thread)
                self._abandon(batch)
                raise
        if not batch.done:
            self._lead(batch)
        if batch.error is not None:
            raise batch.error
        return batch.sealed

    def _lead(self, mine: _Batch) -> None:
        """Write every batch queued so far, `mine` among them; then let their callers go,
        and hand the lead to the first caller that queued meanwhile. Only those threads are
        woken: the others sleep on until their own group is written."""
        with self._queue_lock:
            group, self._pending = self._pending, []
        successor = None
        try:
            with self._thread_lock:
                self._commit(group)
        finally:
            with self._queue_lock:
                if self._pending:
                    successor = self._pending[0]
                    successor.leads = True
                else:
                    self._committing = False
            for batch in group:
                if batch.wake is not None and batch is not mine:
                    batch.wake.release()
            if successor is not None and successor.wake is not None:  # it queued: it has one
                successor.wake.release()

    def _abandon(self, batch: _Batch) -> None:
        """A caller was interrupted while it waited. Its batch leaves the queue unwritten if
        no leader has taken it yet, and a lead handed to it passes to the next caller
        queued: otherwise every later caller would wait for a leader that never comes."""
        successor = None
        with self._queue_lock:
            if batch in self._pending:
                self._pending.remove(batch)
            if not batch.leads:
                return
            if self._pending:
                successor = self._pending[0]
                successor.leads = True
            else:
                self._committing = False
        if successor is not None and successor.wake is not None:
            successor.wake.release()

    def append_many(self, batches: list[list[dict[str, Any]]]
                    ) -> list[list[dict[str, Any]] | BaseException]:
        """Append several callers' entries with one write and one fsync (a batch of
        decisions made in one go). Each batch's answer is its sealed entries, or the error
        that kept it off the log: as with `append`, a batch that cannot be sealed fails alone
        and a write that fails fails them all. Returns once all are durable."""
        group = [_Batch(entries) for entries in batches]
        with self._thread_lock:
            self._commit(group)
        return [batch.error if batch.error is not None else batch.sealed for batch in group]

    def _commit(self, group: list[_Batch]) -> None:
        try:
            with self._locked:
                head, recoveries = self._read_head()
                sealed: list[dict[str, Any]] = []
                lines: list[bytes] = []  # each sealed entry's line
                seq, prev = head.seq, head.hash
                for position, batch in enumerate(group):
                    mark = (len(sealed), seq, prev)
                    try:
                        mine = [*recoveries, *batch.entries] if position == 0 else batch.entries
                        for entry in mine:
                            seq, prev = self._seal_one(entry, seq, prev, sealed, lines)
                    except Exception as exc:  # this batch only: not JSON, redaction failed
                        del sealed[mark[0]:], lines[mark[0]:]
                        _, seq, prev = mark
                        batch.error = exc
                        if position == 0 and recoveries:
                            for entry in recoveries:
                                seq, prev = self._seal_one(entry, seq, prev, sealed, lines)
                        continue
                    batch.sealed = sealed[mark[0]:]
                if sealed:
                    self._write(head.segment, b"".join(lines), seq, prev)
                    self._after_write(sealed)
        except AuditWriteError as exc:
            self._written = None
            for batch in group:
                batch.error = batch.error or exc
        except OSError as exc:
            self._written = None
            error = AuditWriteError(exc.errno, f"audit log not writable: {exc.strerror or exc}",
                                    str(self.directory))
            error.__cause__ = exc
            for batch in group:
                batch.error = batch.error or error
        except BaseException as exc:
            self._written = None
            for batch in group:
                batch.error = batch.error or exc
            raise
        finally:
            for batch in group:
                batch.done = True

    def _seal_one(self, entry: dict[str, Any], seq: int, prev: str,
                  sealed: list[dict[str, Any]], lines: list[bytes]) -> tuple[int, str]:
        """Seal `entry` after (seq, prev), and a checkpoint after it when one is due, onto
        `sealed` and their `lines`; returns the new head."""
        body = self.redactor.value(entry) if self.redactor else dict(entry)
        body.setdefault("time", now_rfc3339())
        body["runtime"] = self.runtime_id
        seq += 1
        item, line = sealed_line(body, seq=seq, prev=prev)
        prev = item["hash"]
        sealed.append(item)
        lines.append(line)
        if self.signer and seq % self.checkpoint_every == 0:
            seq += 1
            item, line = sealed_line(self._checkpoint(seq - 1, prev), seq=seq, prev=prev)
            prev = item["hash"]
            sealed.append(item)
            lines.append(line)
        return seq, prev

    def checkpoint(self) -> dict[str, Any]:
        """Write a signed checkpoint of the current head now."""
        if self.signer is None:
            raise AuditWriteError("no signing key: run `runestone init`")
        with self._locked:
            head, recoveries = self._read_head()
            sealed, lines = [], []
            seq, prev = head.seq, head.hash
            for entry in recoveries:
                seq += 1
                item, line = sealed_line({**entry, "time": now_rfc3339(),
                                          "runtime": self.runtime_id}, seq=seq, prev=prev)
                prev = item["hash"]
                sealed.append(item)
                lines.append(line)
            item, line = sealed_line(self._checkpoint(seq, prev), seq=seq + 1, prev=prev)
            sealed.append(item)
            lines.append(line)
            self._write(head.segment, b"".join(lines), seq + 1, item["hash"])
            self._after_write(sealed)
            return item

    def _checkpoint(self, seq: int, head_hash: str) -> dict[str, Any]:
        assert self.signer is not None
        signature = self.signer.sign(checkpoint_message(self.runtime_id, seq, head_hash))
        record = {"runtime": self.runtime_id, "seq": seq, "hash": head_hash,
                  "signature": signature}
        return {"kind": "checkpoint", "time": now_rfc3339(), "runtime": self.runtime_id,
                "checkpoint": record}

    def _after_write(self, sealed: list[dict[str, Any]]) -> None:
        """Only once the entries are durable may the latest checkpoint point at them."""
        for entry in reversed(sealed):
            if entry.get("kind") == "checkpoint":
                self._save_latest_checkpoint(entry["checkpoint"])
                break

    def _save_latest_checkpoint(self, record: dict[str, Any]) -> None:
        path = self.directory / "checkpoint.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record) + "\n", encoding="utf-8")
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _segment_path(self, number: int) -> str:
        # Every append asks for the newest segment's path and the next one's: both are kept.
        paths = self._segment_paths
        if number not in paths:
            paths = self._segment_paths = {n: f"{self.directory}/{segment_name(n)}"
                                           for n in (number, number + 1)}
        return paths[number]

    def _write(self, segment: int, data: bytes, seq: int, head_hash: str) -> None:
        """Append `data` (ending at entry `seq` with hash `head_hash`) durably.

        A process appending alone keeps the newest segment open and knows its size from its
        own last write (checked by `_read_head` under the lock), so an append is one write
        and one fsync; otherwise the segment is looked up and opened again."""
        known = self._written if self._head_is_ours else None
        self._written = None
        self._head_is_ours = False
        if known is not None and self._segment_fd is not None \
                and self._segment_number == known[0] == segment:
            size = known[2]
        else:
            self._close_segment()
            try:
                size = os.stat(self._segment_path(segment)).st_size
            except FileNotFoundError:
                size = 0
        created = False
        if size and size + len(data) > self.segment_bytes:
            self._close_segment()
            segment, size = segment + 1, 0
        if self._segment_fd is None:
            path = self._segment_path(segment)
            created = not os.path.exists(path)
            self._segment_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                       | os.O_CLOEXEC, 0o600)
            self._segment_number = segment
            size = os.fstat(self._segment_fd).st_size  # where this append starts: we hold the lock
        fd = self._segment_fd
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise AuditWriteError(f"short write to {segment_name(segment)}: {written} of "
                                      f"{len(data)} bytes")
            os.fsync(fd)
        except BaseException:
            _take_back(fd, size)
            self._close_segment()
            raise
        if created:
            _fsync_dir(self.directory)
        inode = os.fstat(fd).st_ino if known is None else known[1]
        self._written = (segment, inode, size + written, Head(segment, seq, head_hash))
