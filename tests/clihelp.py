"""Helpers shared by tests: running the real command line."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: str, stdin: str = "", env: dict[str, str] | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `runestone` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "runestone", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )
