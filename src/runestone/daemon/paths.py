"""Where the daemon listens, importable without the daemon itself (the hook path)."""

from __future__ import annotations

from pathlib import Path

from runestone.home import Layout


def daemon_socket(layout: Layout) -> Path:
    return layout.state_dir / "daemon.sock"
