"""What a hook process prints and how it exits; kept apart so the daemon path stays light."""

from __future__ import annotations

from typing import NamedTuple


class Reply(NamedTuple):
    """The hook's stdout (also the HTTP body), its exit code, and its stderr."""

    stdout: str
    exit_code: int = 0
    stderr: str = ""
