"""Which audit request a tool call's result belongs to, across hook processes.

The pre-tool hook and the post-tool hook are separate processes (or separate requests to
the daemon). The host's own call id (Claude Code's `tool_use_id`) ties them: the pre hook
writes `call id -> request id`, the post hook reads it and links the result entry.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

KEEP_SECONDS = 24 * 3600


class CallLinks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, call_id: str) -> Path:
        return self.directory / hashlib.sha256(call_id.encode()).hexdigest()[:40]

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
