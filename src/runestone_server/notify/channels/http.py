"""One outbound POST: to a checked address, within a deadline, no redirects followed, any
non-2xx a failure.

- The URL is checked before each send after resolving (`targets.vet`), and the connection
  goes to an address that was checked: the URL's host is replaced by that address, while
  the Host header and TLS (SNI, certificate) still name the host.
- A whole attempt ends by `Limits.deadline`: httpx's timeouts are per phase, so a receiver
  answering a byte at a time would otherwise hold a send open for as long as it likes,
  past the claim's lease, and another replica would send the message again. The request
  runs under asyncio and is cancelled (its connection closed) at the deadline.
- A redirect is not followed: the receiver was configured by URL, and sending a signed
  payload somewhere else is exactly what must not happen.
- The error names the status and our own wording only. The response body is never read,
  and the receiver's reason phrase and Location are not kept (see SendError).
- Proxies from the environment are not used: the connection must go to the checked
  address. CA settings from the environment (SSL_CERT_FILE, SSL_CERT_DIR) still apply.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import httpx

from runestone_server.notify import settings, targets
from runestone_server.notify.channels import Limits, SendError

USER_AGENT = "runestone-server-notify/1"


def post(url: str, body: bytes, headers: dict[str, str], limits: Limits) -> None:
    try:
        target = targets.vet(url, allow_private=settings.allow_private_webhooks(),
                             seconds=limits.remaining())
    except (targets.TargetRefused, targets.Unresolved) as exc:
        raise SendError(str(exc)) from exc
    remaining = limits.remaining()
    if remaining <= 0:
        raise SendError("the time for this attempt ran out before the request was sent")
    request = _exchange(target, body, {"Content-Type": "application/json",
                                       "User-Agent": USER_AGENT, **headers}, limits.timeout)
    try:
        status = _run(asyncio.wait_for(request, remaining))
    except TimeoutError:
        raise SendError(f"no complete answer within the limit of one attempt "
                        f"({remaining:.3g} s)") from None
    except httpx.HTTPError as exc:
        raise SendError(describe(exc)) from None
    judge(status)


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    """`asyncio.run`, also where this thread already runs an event loop (a caller inside
    async code, or beside Playwright's sync API in one process), where `asyncio.run`
    refuses: the request then runs on a loop of its own in a short-lived thread, waited
    for, with its exceptions raised here as they would be."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-send") as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _exchange(target: targets.Target, body: bytes, headers: dict[str, str],
                    timeout: float) -> int:
    """POST to the first of the checked addresses that accepts a connection; the status.
    Only a failed connect moves on to the next address: nothing was sent through it."""
    url = httpx.URL(target.url)
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                 verify=_tls()) as client:
        failure = httpx.ConnectError(f"{target.host} has no address to connect to")
        for address in target.addresses:
            request = client.build_request("POST", url.copy_with(host=str(address)),
                                           content=body, headers=headers,
                                           extensions={"sni_hostname": target.host})
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = exc
                continue
            await response.aclose()  # the body is not read: it is not ours to keep
            return response.status_code
        raise failure


def _tls() -> ssl.SSLContext:
    """The CAs to trust, by SSL_CERT_FILE and SSL_CERT_DIR as they are now (loading them
    costs tens of milliseconds, so one context is kept per setting)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@lru_cache(maxsize=4)
def _context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=True)


def describe(exc: httpx.HTTPError) -> str:
    """A transport failure in words the receiver did not choose: the exception's kind, and
    for a failed connect the local system's reason (refused, unreachable, certificate)."""
    if isinstance(exc, httpx.ConnectError):
        return f"ConnectError: {exc}"
    return type(exc).__name__


def judge(status: int) -> None:
    """Raise SendError unless `status` is a success, naming it with the standard phrase."""
    if 200 <= status < 300:
        return
    try:
        phrase = f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = f"HTTP {status}"
    if 300 <= status < 400:
        raise SendError(f"{phrase}: redirects are not followed; set the channel's URL to "
                        f"where the receiver really is")
    raise SendError(phrase)
