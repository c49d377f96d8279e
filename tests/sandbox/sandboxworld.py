"""A small world outside /tmp for sandbox tests (conftest.py offers its fixtures): a home
with secrets, a git project in it, the runtime's own home, and a directory beside the
project.

Outside /tmp on purpose: the sandbox gives every command a private, empty /tmp, so a secret
kept under /tmp would be invisible anyway and prove nothing. The world lives in a hidden
directory of this checkout and is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest

from runestone.sandbox.probe import unavailable

ROOT = Path(__file__).resolve().parents[2]
SSH_SECRET = "SSH-PRIVATE-KEY-sandbox-test"
AWS_SECRET = "aws_secret_access_key=sandbox-test"


class World(NamedTuple):
    base: Path
    home: Path
    project: Path
    runestone: Path
    outside: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RUNESTONE_HOME",)}
        env.update(HOME=str(self.home), RUNESTONE_HOME=str(self.runestone), **extra)
        return env

    def run(self, script: str, *, profile: str = "default", policy: Path | None = None,
            stdin: object = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`runestone sandbox run -- bash -c SCRIPT` in the project, as an agent's call
        would run."""
        args = [sys.executable, "-m", "runestone", "sandbox", "run", "--profile", profile,
                "--project", str(self.project)]
        if policy is not None:
            args += ["--policy", str(policy)]
        return subprocess.run([*args, "--", "bash", "-c", script], cwd=self.project,
                              env=self.env(), capture_output=True, text=True,
                              stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              timeout=timeout)


@pytest.fixture(scope="session")
def sandbox_works() -> None:
    why = unavailable()
    if why:
        if os.environ.get("RUNESTONE_TEST_SANDBOX"):
            pytest.fail(f"RUNESTONE_TEST_SANDBOX is set and the sandbox cannot run: {why}")
        pytest.skip(f"sandboxing unavailable here: {why}")


@pytest.fixture
def world(sandbox_works) -> World:
    base = Path(tempfile.mkdtemp(prefix=".sandbox-test-", dir=ROOT))
    try:
        home = base / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "id_ed25519").write_text(SSH_SECRET + "\n")
        (home / ".aws").mkdir()
        (home / ".aws" / "credentials").write_text(AWS_SECRET + "\n")
        (home / ".bashrc").write_text("# the user's own\n")
        project = home / "project"
        project.mkdir()
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        (project / "README").write_text("project\n")
        (project / ".env").write_text("API_TOKEN=dotenv-secret\n")
        outside = base / "outside"
        outside.mkdir()
        (outside / "file").write_text("outside\n")
        runestone = base / "runestone-home"
        world = World(base, home, project, runestone, outside)
        done = subprocess.run([sys.executable, "-m", "runestone", "init"], env=world.env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        yield world
    finally:
        shutil.rmtree(base, ignore_errors=True)
