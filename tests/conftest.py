"""Shared fixtures: an isolated RUNESTONE_HOME, the shared corpus, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("RUNESTONE_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own runtime home, so nothing leaks between tests or into ~."""
    home = tmp_path / "runestone-home"
    monkeypatch.setenv("RUNESTONE_HOME", str(home))
    return home


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set RUNESTONE_CORPUS)")
    return CORPUS
