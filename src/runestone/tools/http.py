"""`http.request`: fetch a URL without reaching what must not be reached.

Every hop (the first request and each redirect) is checked the same way: http or https
only, the domain lists, and every address the name resolves to must be public (private,
loopback, link-local, metadata, multicast, reserved and unspecified ranges are refused,
unless `allow_networks` exempts them). The connection then goes to the address that was
checked, so a second DNS answer cannot swap in another (rebinding). Responses are capped.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from runestone.tools.settings import HttpSettings
from runestone.tools.shell import ToolRefused

REDIRECTS = (301, 302, 303, 307, 308)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("169.254.170.2")}


def prepare(params: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise ToolRefused("http.request needs a 'url'")
    method = str(params.get("method", "GET")).upper()
    if method not in METHODS:
        raise ToolRefused(f"method {method} is not one of {', '.join(METHODS)}")
    headers = params.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in headers.items()):
        raise ToolRefused("'headers' must map names to strings")
    body = params.get("body")
    if body is not None and not isinstance(body, str):
        raise ToolRefused("'body' must be a string")
    return url, method, headers, body.encode("utf-8") if body is not None else None


def _domain_listed(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d.lower() or host.endswith("." + d.lower().lstrip("*.")) for d in domains)


def check_target(url: str, settings: HttpSettings
                 ) -> tuple[str, str, int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """(scheme, host, port, the address to connect to) for a URL allowed to be fetched."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ToolRefused(f"only http and https URLs are fetched, not {scheme or 'no scheme'}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ToolRefused(f"{url} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise ToolRefused(f"{url} has an invalid port") from exc
    if _domain_listed(host, settings.deny_domains):
        raise ToolRefused(f"{host} is on the deny list")
    if settings.allow_domains and not _domain_listed(host, settings.allow_domains):
        raise ToolRefused(f"{host} is not on the allow list")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolRefused(f"{host} does not resolve ({exc.strerror})") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    exempt = [ipaddress.ip_network(n, strict=False) for n in settings.allow_networks]
    for address in addresses:
        if any(address in network for network in exempt):
            continue
        why = forbidden_reason(address)
        if why:
            raise ToolRefused(f"{host} resolves to {address}, {why}; refused")
    return scheme, host, port, addresses[0]


def forbidden_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if address in METADATA:
        return "a cloud metadata address"
    for label, test in (("a loopback address", address.is_loopback),
                        ("a link-local address", address.is_link_local),
                        ("a private address", address.is_private),
                        ("a multicast address", address.is_multicast),
                        ("an unspecified address", address.is_unspecified),
                        ("a reserved address", address.is_reserved)):
        if test:
            return label
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network(
            "100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    return ""


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(url: str, method: str, headers: dict[str, str], body: bytes | None,
          settings: HttpSettings, approve_hop: Callable[[str], None]) -> dict[str, Any]:
    """Fetch with manual redirects; `approve_hop(url)` asks the policy about each new hop."""
    hops = []
    for _ in range(settings.max_redirects + 1):
        scheme, host, port, address = check_target(url, settings)
        kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        connection = kind(host, port, str(address), settings.timeout_seconds)
        try:
            connection.request(method, _path(url), body=body, headers=headers)
            response = connection.getresponse()
            data = response.read(settings.max_response_bytes + 1)
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise ToolRefused(f"fetching {url} failed: {exc}") from exc
        finally:
            connection.close()
        hops.append({"url": url, "status": response.status, "address": str(address)})
        location = response.getheader("Location")
        if response.status in REDIRECTS and location:
            url = urljoin(url, location)
            approve_hop(url)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            continue
        truncated = len(data) > settings.max_response_bytes
        data = data[: settings.max_response_bytes]
        return {"status": response.status, "url": url, "hops": hops,
                "headers": {k: v for k, v in response.getheaders()
                            if k.lower() in ("content-type", "content-length", "etag",
                                             "last-modified", "location")},
                "body": data.decode("utf-8", "replace"), "body_bytes": len(data),
                "truncated": truncated,
                "_audit": {"status": response.status, "hops": len(hops),
                           "body_bytes": len(data), "final_address": str(address)}}
    raise ToolRefused(f"more than {settings.max_redirects} redirects")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
