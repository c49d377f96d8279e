"""Which audit request a tool call's result belongs to, across hook processes.

The pre-tool hook and the post-tool hook are separate processes (or separate requests to
the daemon). The host's own call id (Claude Code's `tool_use_id`) ties them: the pre hook
writes `call id -> request id`, the post hook reads it and links the result entry.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from runestone.digest import sha256

if TYPE_CHECKING:
    import queue

KEEP_SECONDS = 24 * 3600


class CallLinks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, call_id: str) -> Path:
        return self.directory / sha256(call_id.encode()).hexdigest()[:40]

    def remember(self, call_id: str, request_id: str) -> None:
        if not call_id or not request_id:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._file(call_id).write_text(request_id, encoding="utf-8")
            if os.urandom(1)[0] < 4:  # now and then, forget calls older than a day
                self.prune()
        except OSError:
            pass  # the link is a convenience; the result entry still carries the call id

    def recall(self, call_id: str) -> str:
        if not call_id:
            return ""
        try:
            return self._file(call_id).read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def prune(self, now: float | None = None) -> None:
        cutoff = (now or time.time()) - KEEP_SECONDS
        for path in self.directory.glob("*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue


class DeferredCallLinks(CallLinks):
    """The daemon's links: kept in memory for its own post-tool requests and written to disk
    by a background thread, off the hook's hot path (a file creation costs more than the
    decision). A link not yet on disk when the daemon dies is lost; the result entry still
    carries the call id, so nothing is unaccounted for."""

    MEMORY = 10_000

    def __init__(self, directory: Path) -> None:
        import queue  # only the daemon needs it; the command hook uses CallLinks

        super().__init__(directory)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
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

    def _drain(self) -> None:
        while True:
            call_id, request_id = self._pending.get()
            CallLinks.remember(self, call_id, request_id)
