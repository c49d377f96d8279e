"""Browser tests: Playwright drives Debian's headless Chromium against a real server
process.

`.ci/run` installs /usr/bin/chromium and sets RUNESTONE_TEST_BROWSER=1: then a missing
browser or Playwright is a failure. Without it (the README's test command on a machine
without Chromium) these tests are skipped with the reason. Playwright never downloads a
browser of its own here: it is pointed at the system's Chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from web_helpers import Live

pytest.importorskip("fastapi", reason="the [server] extra is not installed")

REQUIRED = os.environ.get("RUNESTONE_TEST_BROWSER", "") not in ("", "0")
CHROMIUM = os.environ.get("RUNESTONE_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("RUNESTONE_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"RUNESTONE_TEST_BROWSER is set but {reason}")
    pytest.skip(f"{reason}; install Debian's chromium and `pip install playwright`, then set "
                "RUNESTONE_TEST_BROWSER=1 to run the browser tests")


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module's tests. Per module, not per session: Playwright's sync API
    runs an event loop in this thread while it is open, and a later module's test that
    starts one of its own (`asyncio.run`: the MCP client, the SDK adapters) would be refused
    in a test worker that ran a browser module first."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    """Screenshots of each page, kept as the run's artefacts (ignored by git)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    return SHOTS


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    server = Live(tmp_path_factory.mktemp("web-server"))
    yield server
    server.stop()


