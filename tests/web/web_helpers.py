"""What the dashboard's browser tests share: a real `runestone-server serve` process, the
runtime CLI, the JSON API, and signing in through the form."""

from __future__ import annotations

import subprocess
from pathlib import Path

from liveserver import PASSWORD, ServerProcess, api, runestone

__all__ = ["PASSWORD", "Live", "runestone", "sign_in"]


class Live(ServerProcess):
    """A real `runestone-server serve` on SQLite, its organisation made by `init`, its
    output in server.log, signed in as the admin."""

    def __init__(self, tmp: Path) -> None:
        self.log_file = (tmp / "server.log").open("w")
        super().__init__(f"sqlite:///{tmp / 'web.sqlite3'}", tmp / "server",
                         log=self.log_file, RUNESTONE_SERVER_TICK="0.5")
        self.init()
        self.start()
        self.token = self.login()

    def api(self, method: str, path: str, body=None, token: str | None = None):
        return api(self.base, method, path, token or self.token, body)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        try:  # uvicorn waits for open long-polls; do not wait for them for long
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log_file.close()


def sign_in(page, live: Live, username: str) -> None:
    """Fill the sign-in form the browser was sent to."""
    page.wait_for_selector("form[action='/login']")
    page.fill("input[name=organisation]", "acme")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
