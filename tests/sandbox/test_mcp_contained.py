"""`runestone mcp wrap --sandbox PROFILE -- SERVER`: a real stdio MCP server (mcp-server-git
from PyPI) started inside the sandbox. Policy allows every call here, so what stops a
write is the sandbox alone: reading the repository works, changing it does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import anyio
import pytest

pytestmark = pytest.mark.skipif(shutil.which("mcp-server-git") is None,
                                reason="mcp-server-git is not installed")


def test_a_wrapped_server_runs_contained(world):
    from mcp.client.stdio import stdio_client

    from mcp import ClientSession, StdioServerParameters

    repo = world.project
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    (repo / "new.txt").write_text("untracked\n")
    policy = world.base / "allow-all.toml"
    policy.write_text('[policy]\ndefault = "allow"\n')
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "runestone", "mcp", "wrap", "--policy", str(policy), "--sandbox",
              "default", "--", "mcp-server-git", "--repository", str(repo)],
        env={**os.environ, **world.env()}, cwd=str(repo))

    async def body(session: ClientSession) -> tuple[object, object]:
        status = await session.call_tool("git_status", {"repo_path": str(repo)})
        added = await session.call_tool("git_add", {"repo_path": str(repo),
                                                    "files": ["new.txt"]})
        return status, added

    async def session_run() -> tuple[object, object]:
        async with stdio_client(params) as streams, ClientSession(*streams) as session:
            await session.initialize()
            return await body(session)

    status, added = anyio.run(session_run)
    assert not status.is_error and "new.txt" in status.content[0].text
    assert added.is_error and "Read-only file system" in added.content[0].text
    staged = subprocess.run([*git, "diff", "--cached", "--name-only"], capture_output=True,
                            text=True, check=True).stdout
    assert staged == ""  # the index was not touched
