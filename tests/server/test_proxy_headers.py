"""X-Forwarded-Proto and X-Forwarded-For are believed only with
RUNESTONE_SERVER_TRUST_PROXY=1 (issue 17): uvicorn's own default believed them from
loopback, so a local client could claim TLS, or rotate its address past the per-address
sign-in throttle. A real `runestone-server serve`, signed into through the dashboard form."""

from __future__ import annotations

import re

import httpx
import pytest

from liveserver import PASSWORD, ServerProcess
from runestone_server import throttle

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def form_login(base: str, password: str, headers: dict[str, str]) -> httpx.Response:
    """Cookies are carried by hand: a Secure one is what a browser behind the TLS proxy
    would send back, and httpx will not send it over plain HTTP."""
    page = httpx.get(f"{base}/login", headers=headers)
    token = CSRF.search(page.text).group(1)
    prelogin = page.headers["set-cookie"].split(";")[0]
    return httpx.post(f"{base}/login", headers={**headers, "Cookie": prelogin}, data={
        "csrf": token, "organisation": "acme", "username": "alice", "password": password,
        "next": "/"}, follow_redirects=False)


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_headers_count_only_behind_a_trusted_proxy(database_url, tmp_path,
                                                             trusted):
    server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0",
                           RUNESTONE_SERVER_TRUST_PROXY="1" if trusted else "0")
    server.init()
    server.start()
    try:
        signed_in = form_login(server.base, PASSWORD, {"X-Forwarded-Proto": "https"})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "runestone_session=" in cookie
        assert ("secure" in cookie.lower()) is trusted, cookie
        # Guesses spread over made-up client addresses: one address (loopback) to an
        # untrusting server, so it is blocked; many to a trusting one, so it is not.
        answers = []
        for n in range(throttle.ADDRESS_FREE + 2):
            answer = httpx.post(f"{server.base}/api/v1/login",
                                headers={"X-Forwarded-For": f"198.51.100.{n}"},
                                json={"organisation": "acme", "username": f"nobody{n}",
                                      "password": "Winter2026!"})
            answers.append(answer.status_code)
        assert answers[:throttle.ADDRESS_FREE + 1] == [401] * (throttle.ADDRESS_FREE + 1)
        assert answers[-1] == (401 if trusted else 429)
    finally:
        server.stop()
