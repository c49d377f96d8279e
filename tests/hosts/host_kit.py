"""What the real-host tests share: the test's policy, the pinned host programs, and a
Runestone home governed by that policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runestone.home import layout
from runestone.identity import create_identity

# The marker files are the oracle: a test asks the host to `touch` one and checks whether
# it exists afterwards, so "did the tool run" is observed, not inferred from the hook's answer.
POLICY = """[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "test.allow"
decision = "allow"
reason = "the test allows this marker"
command = ["touch */allowed-marker"]

[[rule]]
id = "test.deny"
decision = "deny"
reason = "the test denies this marker"
command = ["touch */denied-marker"]
"""
BIN = Path(__file__).parent / "node_modules" / ".bin"


def host_program(name: str, title: str) -> Path:
    """The pinned program (tests/hosts/package.json); skipped when it is not installed,
    failed instead when RUNESTONE_TEST_HOSTS says it must be (as in CI)."""
    program = BIN / name
    if not program.exists():
        if os.environ.get("RUNESTONE_TEST_HOSTS"):
            pytest.fail(f"{program} is missing: run `npm ci --prefix tests/hosts`")
        pytest.skip(f"{title} is not installed (npm ci --prefix tests/hosts)")
    return program


def govern(policy: str = POLICY) -> None:
    """An identity and `policy` in the (temporary) Runestone home."""
    create_identity(layout())
    layout().policy_file.parent.mkdir(parents=True, exist_ok=True)
    layout().policy_file.write_text(policy)
