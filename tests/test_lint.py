"""The code base stays ruff-clean; the hook path stays free of heavy imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(["ruff", "check", "src", "tests", "bench"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deciding_imports_no_heavy_modules():
    code = (
        "import sys, runestone.gatekeeper, runestone.cli.check, runestone.cli.hook,"
        " runestone.integrations.hook, runestone.daemon.server, runestone.tools.runner;"
        "heavy = {'fastapi','sqlalchemy','pydantic','starlette','uvicorn','httpx','jinja2',"
        "'mcp','cryptography','requests'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_cold_hook_deciding_a_plain_call_loads_only_what_it_needs(tmp_path):
    """What a cold command hook would pay for on every tool call and not use: OpenSSL (through
    hashlib, hmac or secrets), dataclasses and inspect, the TOML parser and datetime once
    the policy's documents are cached, socket when no daemon runs (see bench/hook.py), and
    the tempfile, shutil and zipfile that tree_sitter_bash's package would import through
    importlib.resources."""
    import json
    import os

    env = {**os.environ, "RUNESTONE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "runestone", "init"], env=env, check=True,
                   capture_output=True)
    avoided = ["_hashlib", "hashlib", "hmac", "secrets", "dataclasses", "inspect", "tomli",
               "tomllib", "datetime", "socket", "http", "argparse", "sqlite3", "tempfile",
               "shutil", "zipfile"]
    code = ("import sys; from runestone.cli import main; main(['hook', 'claude-code']);"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {avoided!r}),"
            " file=sys.stderr)")
    call = json.dumps({"session_id": "s", "cwd": str(tmp_path), "hook_event_name": "PreToolUse",
                       "tool_name": "Bash", "tool_input": {"command": "git status"},
                       "tool_use_id": "toolu_1"})
    for _ in range(2):  # the first call fills the policy cache
        result = subprocess.run([sys.executable, "-c", code], input=call, env=env,
                                capture_output=True, text=True, check=True)
    assert '"allow"' in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


def test_a_cold_hook_that_asks_loads_no_control_plane_client(tmp_path):
    """A runtime that is not enrolled answers an ask without importing the control plane's
    HTTP client (urllib.request and what it brings): ~25 ms of every asked hook; nor
    OpenSSL (hmac, secrets) and socket, which only opening a request or a grant needs; nor
    dataclasses, which brings inspect, ast and dis (~10 ms) for the approvals' records."""
    import json
    import os

    env = {**os.environ, "RUNESTONE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "runestone", "init"], env=env, check=True,
                   capture_output=True)
    code = ("import sys; from runestone.cli import main; main(['hook', 'claude-code']);"
            "print(sorted(m for m in sys.modules if m in {'urllib.request',"
            " 'runestone.remote.approvals', 'runestone.remote.client', 'socket', 'hmac',"
            " 'secrets', '_hashlib', 'getpass', 'dataclasses', 'inspect'}), file=sys.stderr)")
    call = json.dumps({"session_id": "s", "cwd": str(tmp_path), "hook_event_name": "PreToolUse",
                       "tool_name": "Bash", "tool_use_id": "toolu_1",
                       "tool_input": {"command": "curl -s https://api.github.com/repos/a/b"}})
    for _ in range(2):  # the first call fills the policy cache
        result = subprocess.run([sys.executable, "-c", code], input=call, env=env,
                                capture_output=True, text=True, check=True)
    assert '"ask"' in result.stdout, result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
