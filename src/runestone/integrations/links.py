"""Which audit request a tool call's result belongs to, across hook processes.

The pre-tool hook and the post-tool hook are separate processes (or separate requests to
the daemon). The host's own call id (Claude Code's `tool_use_id`) ties them: the pre hook
records `call id -> request id`, the post hook reads it and links the result entry.

The links are kept in append-only segment files, one per hour (`links-YYYYMMDDHH` in UTC),
one fixed-width line per link. Remembering is one `O_APPEND` write (atomic between
processes for a line this short), recalling searches the newest segments from their end
(the post hook usually comes seconds after the pre hook), and forgetting deletes whole
segments older than a day. So no step's cost grows with the number of links kept: an
earlier version wrote a file per call and scanned the whole directory to prune it, which
took 629 ms at 100k links on the hook's path.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from runestone.digest import sha256

if TYPE_CHECKING:
    import queue
    from collections.abc import Callable, Iterator

KEEP_SECONDS = 24 * 3600
HOUR = 3600
PREFIX = "links-"
KEY_LENGTH = 40
# Files of the per-call layout this replaced, removed a few at a time when a segment starts.
LEGACY_BATCH = 256
# Bytes of whole lines in one write: below PIPE_BUF, as a single short line always was.
WRITE_LIMIT = 4096


def _segment_name(hour: int) -> str:
    return PREFIX + time.strftime("%Y%m%d%H", time.gmtime(hour * HOUR))


def _key(call_id: str) -> bytes:
    """The id's fixed-width key. `surrogatepass`: a host's JSON may carry a lone surrogate
    (`"\\ud800"`), which plain UTF-8 refuses; the hook must not fail on it."""
    return sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_LENGTH].encode(
        "ascii")


def _valid_request_id(request_id: str) -> bool:
    return request_id.isascii() and request_id.isprintable() and " " not in request_id


class CallLinks:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock

    def _hour(self) -> int:
        return int(self._clock()) // HOUR

    def remember(self, call_id: str, request_id: str) -> None:
        self.remember_many([(call_id, request_id)])

    def remember_many(self, links: list[tuple[str, str]]) -> None:
        """Append links to this hour's segment: one open and as few writes as the lines
        allow (each write at most WRITE_LIMIT bytes of whole lines, so a reader or another
        process never meets a torn one)."""
        lines = [_key(call_id) + b" " + request_id.encode("ascii") + b"\n"
                 for call_id, request_id in links
                 if call_id and request_id and _valid_request_id(request_id)]
        if not lines:
            return
        hour = self._hour()
        path = self.directory / _segment_name(hour)
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
                new_segment = True
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                new_segment = False
            except FileNotFoundError:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                new_segment = True
            try:
                for chunk in _chunks(lines, WRITE_LIMIT):
                    os.write(fd, chunk)
            finally:
                os.close(fd)
            if new_segment:  # once an hour: forget the segments older than a day
                self.prune()
        except OSError:
            pass  # the link is a convenience; the result entry still carries the call id

    def recall(self, call_id: str) -> str:
        if not call_id:
            return ""
        key = _key(call_id)
        hour = self._hour()
        for back in range(KEEP_SECONDS // HOUR + 2):
            found = _search(self.directory / _segment_name(hour - back), key)
            if found:
                return found
        try:  # a link written by the per-call layout, before an upgrade
            return (self.directory / key.decode()).read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def prune(self, now: float | None = None) -> None:
        """Delete segments older than a day, and a batch of the old layout's files.

        The directory holds about 26 segments, so listing it costs the same at any volume."""
        now = self._clock() if now is None else now
        keep_from = _segment_name(int(now - KEEP_SECONDS) // HOUR - 1)
        legacy_cutoff = now - KEEP_SECONDS
        legacy_seen = 0
        try:
            entries = os.scandir(self.directory)
        except OSError:
            return
        with entries:
            for entry in entries:
                try:
                    if entry.name.startswith(PREFIX):
                        if entry.name < keep_from:
                            os.unlink(entry.path)
                    elif len(entry.name) == KEY_LENGTH and legacy_seen < LEGACY_BATCH:
                        legacy_seen += 1
                        if entry.stat().st_mtime < legacy_cutoff:
                            os.unlink(entry.path)
                except OSError:
                    continue


def _chunks(lines: list[bytes], limit: int) -> Iterator[bytes]:
    """Whole lines joined into runs of at most `limit` bytes (a longer line goes alone)."""
    run: list[bytes] = []
    size = 0
    for line in lines:
        if run and size + len(line) > limit:
            yield b"".join(run)
            run, size = [], 0
        run.append(line)
        size += len(line)
    if run:
        yield b"".join(run)


def _search(path: Path, key: bytes) -> str:
    """The newest request id recorded for `key` in one segment, read from its end."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                return ""
            with mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) as view:
                at = view.rfind(b"\n" + key + b" ")
                start = at + 1 if at >= 0 else (0 if view[:KEY_LENGTH + 1] == key + b" "
                                                else -1)
                if start < 0:
                    return ""
                end = view.find(b"\n", start)
                if end < 0:  # a line still being written
                    return ""
                return view[start + KEY_LENGTH + 1:end].decode("ascii", "replace")
    except (OSError, ValueError):
        return ""


class DeferredCallLinks(CallLinks):
    """The daemon's links: kept in memory for its own post-tool requests and written to disk
    by a background thread, off the hook's hot path. The thread waits GATHER_SECONDS after
    a link arrives and writes every link queued by then at once: woken per link, it
    competed with the next request for the interpreter (80-140 µs of the daemon's CPU per
    hook). A post hook reaching the daemon finds the link in memory; one deciding in
    another process reads the disk, and a tool call lasts longer than the wait. A link not
    yet on disk when the daemon dies is lost; the result entry still carries the call id,
    so nothing is unaccounted for. `flush` (the daemon calls it when it stops) writes what
    is queued."""

    MEMORY = 10_000
    GATHER_SECONDS = 0.02

    def __init__(self, directory: Path) -> None:
        import queue  # only the daemon needs it; the command hook uses CallLinks

        super().__init__(directory)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: queue.SimpleQueue[tuple[str, str] | threading.Event] = \
            queue.SimpleQueue()
        threading.Thread(target=self._drain, name="runestone-links", daemon=True).start()

    def remember(self, call_id: str, request_id: str) -> None:
        if not call_id or not request_id:
            return
        with self._lock:
            self._recent[call_id] = request_id
            while len(self._recent) > self.MEMORY:
                self._recent.popitem(last=False)
        self._pending.put((call_id, request_id))

    def recall(self, call_id: str) -> str:
        with self._lock:
            found = self._recent.get(call_id, "")
        return found or super().recall(call_id)

    def flush(self, timeout: float = 5.0) -> bool:
        """Write every link queued so far; whether that finished within `timeout`."""
        written = threading.Event()
        self._pending.put(written)
        return written.wait(timeout)

    def _drain(self) -> None:
        import contextlib
        import queue

        while True:
            first = self._pending.get()
            if not isinstance(first, threading.Event):
                time.sleep(self.GATHER_SECONDS)  # a burst's links go out in one write
            batch, flushes = [], []
            item: tuple[str, str] | threading.Event | None = first
            while item is not None:
                (flushes if isinstance(item, threading.Event) else batch).append(item)
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    item = None
            # The thread outlives any batch: links are a convenience, and a writer that died
            # would leave the queue to grow for the daemon's whole life.
            with contextlib.suppress(Exception):
                CallLinks.remember_many(self, batch)
            for written in flushes:
                written.set()
