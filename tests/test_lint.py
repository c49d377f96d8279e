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
