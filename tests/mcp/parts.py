"""The real MCP parts the gateway tests drive, installed by `.ci/run` with
`npm ci --prefix tests/mcp/npm` (pinned in tests/mcp/npm/package-lock.json): the MCP
Inspector CLI, server-filesystem and server-everything. With RUNESTONE_TEST_MCP set, a
missing part fails the tests instead of skipping them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BIN = HERE / "npm" / "node_modules" / ".bin"
REQUIRED = os.environ.get("RUNESTONE_TEST_MCP", "") not in ("", "0")


def npm_bin(name: str) -> str:
    path = BIN / name
    if shutil.which("node") is None or not path.exists():
        why = (f"{path} is missing (run `npm ci --prefix tests/mcp/npm`)"
               if shutil.which("node") else "node is not installed")
        if REQUIRED:
            pytest.fail(f"RUNESTONE_TEST_MCP is set but {why}")
        pytest.skip(why)
    return str(path)


def wrap(policy: Path, *server: str, name: str | None = None) -> list[str]:
    """The gateway's command line in front of a server."""
    named = ["--name", name] if name else []
    return [sys.executable, "-m", "runestone", "mcp", "wrap", "--policy", str(policy), *named,
            "--", *server]
