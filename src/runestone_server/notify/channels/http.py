"""One outbound POST: a timeout, no redirects followed, any non-2xx is a failure.

A redirect is not followed because the receiver was configured by URL; silently sending a
signed payload somewhere else is exactly what must not happen. The failure names the
Location so the operator can fix the channel's URL.
"""

from __future__ import annotations

import httpx

from runestone_server.notify.channels import SendError

USER_AGENT = "runestone-server-notify/1"


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, content=body, headers={
                "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    except httpx.HTTPError as exc:
        raise SendError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    if response.is_redirect:
        raise SendError(f"POST {url}: redirected ({response.status_code}) to "
                        f"{response.headers.get('Location', '?')}; redirects are not followed")
    if not response.is_success:
        raise SendError(f"POST {url}: HTTP {response.status_code} "
                        f"{response.text[:200]!r}")
