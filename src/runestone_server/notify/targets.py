"""Where a webhook may point: not into the network the server runs in, unless allowed.

A channel's URL is chosen by a team's admin, but the POST leaves from the server, inside
its network: a URL naming loopback, a private or link-local range or a cloud metadata
address would let that admin reach internal services (server-side request forgery). So
the URL is checked when the channel is made (the host as written, and what it resolves to
then) and again before every send, after resolving; the send then connects to an address
that was checked, so a second DNS answer cannot swap in another (rebinding).

The classification is the runtime's own, reused rather than copied: `runestone.actions.urls`
for a host as written (metadata names, `localhost`, every numeric spelling) and
`runestone.tools.http` for resolved addresses. RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS=1
allows private targets; cloud metadata stays refused, no receiver lives there.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from runestone.actions.urls import url_fact
from runestone.tools.http import METADATA, forbidden_reason

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CONFIGURE_RESOLVE_SECONDS = 3.0  # a channel is not refused because DNS is slow right now


class TargetRefused(ValueError):
    """The URL names, or resolves to, an address webhooks must not reach."""


class Unresolved(OSError):
    """The host did not resolve (now, or in the time there was)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: connect to one of `addresses`, speak to `host` (Host header, TLS)."""

    url: str
    host: str
    port: int
    addresses: tuple[Address, ...]


def _split(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the target must be an http:// or https:// URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the target's port is not a number from 0 to 65535") from None
    return scheme, parts.hostname.lower().rstrip("."), port


def refusal(address: Address, *, allow_private: bool) -> str:
    """Why webhooks may not go to `address` ("" when they may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in METADATA:
        return "a cloud metadata address"
    return "" if allow_private else forbidden_reason(address)


def _refuse_any(host: str, addresses: list[Address], allow_private: bool) -> None:
    for address in addresses:
        why = refusal(address, allow_private=allow_private)
        if why:
            hint = "" if allow_private or why == "a cloud metadata address" else (
                " (RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS=1 on the server allows private "
                "targets)")
            raise TargetRefused(f"{host} is {address}, {why}; webhooks are not sent there"
                                f"{hint}")


def resolve(host: str, port: int, seconds: float) -> list[Address]:
    """Every address `host` resolves to, in the resolver's order. A literal (in any spelling
    the C resolver reads) needs no lookup; a name is looked up in a daemon thread waited for
    at most `seconds`, since getaddrinfo itself has no timeout."""
    try:
        return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                             flags=socket.AI_NUMERICHOST))
    except socket.gaierror:
        pass
    found: dict[str, object] = {}

    def lookup() -> None:
        try:
            found["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    thread = threading.Thread(target=lookup, name="runestone-notify-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, seconds))
    if thread.is_alive():
        raise Unresolved(f"{host} did not resolve within {seconds:.3g} s")
    if "error" in found:
        error = found["error"]
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise Unresolved(f"{host} does not resolve ({reason})")
    return _addresses(found["infos"])  # type: ignore[arg-type]


def _addresses(infos: list[tuple]) -> list[Address]:  # type: ignore[type-arg]
    seen: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def check_configured(url: str, *, allow_private: bool) -> None:
    """At configuration time: refuse a URL whose host, as written or as it resolves now,
    is not allowed. A name that does not resolve yet is accepted: every send checks again."""
    _, host, port = _split(url)
    kind = url_fact(url).address
    if kind == "invalid":
        raise TargetRefused(f"{host} is not a valid host")
    if kind == "metadata" or (kind not in ("", "public-ip") and not allow_private):
        _refuse_name(host, kind)
    try:
        addresses = resolve(host, port, CONFIGURE_RESOLVE_SECONDS)
    except Unresolved:
        return
    _refuse_any(host, addresses, allow_private)


def _refuse_name(host: str, kind: str) -> None:
    raise TargetRefused(f"{host} names a {kind} address; webhooks are not sent there")


def vet(url: str, *, allow_private: bool, seconds: float) -> Target:
    """At send time: resolve within `seconds` and refuse the URL unless every address it
    resolves to is allowed (one bad answer among good ones is a refusal, not a choice)."""
    _, host, port = _split(url)
    if url_fact(url).address == "metadata":
        _refuse_name(host, "metadata")
    addresses = resolve(host, port, seconds)
    if not addresses:
        raise Unresolved(f"{host} resolved to no address")
    _refuse_any(host, addresses, allow_private)
    return Target(url=url, host=host, port=port, addresses=tuple(addresses))
