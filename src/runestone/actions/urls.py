"""URLs as policy sees them: scheme, host, registrable domain, and what kind of address.

Exfiltration and server-side request forgery hide in how a host is written:
`http://169.254.169.254/`, `http://0xa9fea9fe/`, `http://[::ffff:169.254.169.254]/`,
`http://metadata.google.internal/`. Every spelling that the C resolver accepts is decoded
to the address it reaches, so `address = "metadata"` holds for all of them.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from runestone.lazy_pattern import lazy

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.azure.com",
                            "instance-data", "instance-data.ec2.internal"})
METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
})
_URL_START = lazy(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class UrlFact(NamedTuple):
    """One URL an action fetches or names.

    `address` says what the host is: `metadata` (cloud instance metadata), `link-local`,
    `loopback`, `private`, `public-ip` (a literal public address), `unspecified`,
    `invalid` (unparseable), or "" for an ordinary host name.
    """

    raw: str
    scheme: str
    host: str
    port: int | None
    domain: str
    address: str
    path: str


def looks_like_url(text: str) -> bool:
    """Does a command argument name a URL (`https://...`, `file://...`)?"""
    return bool(_URL_START.match(text))


@lru_cache(maxsize=4096)  # a function of the text alone; the same URLs come back call after call
def url_fact(raw: str) -> UrlFact:
    """Parse `raw` into a UrlFact. Never raises: an unparseable URL has address `invalid`."""
    text = raw.strip()
    if not looks_like_url(text) and not text.startswith("//"):
        text = "http://" + text  # `curl example.com` means http
    try:
        parts = urlsplit(text)
        host = unquote(parts.hostname or "").lower().rstrip(".")
        try:
            port = parts.port
        except ValueError:
            port = None
        scheme = parts.scheme.lower()
        path = unquote(parts.path)
    except ValueError:
        return UrlFact(raw, "", "", None, "", "invalid", "")
    if scheme == "file":
        return UrlFact(raw, scheme, host, port, "", "", path)
    if not host:
        return UrlFact(raw, scheme, "", port, "", "invalid", path)
    address = _address_kind(host)
    domain = "" if address else registrable_domain(host)
    return UrlFact(raw, scheme, host, port, domain, address, path)


def _parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host):
        # 0xa9fea9fe, 2852039166, 0251.0376.0251.0376, 169.254.43518: inet_aton reads them.
        import socket  # here, not at the top: rarely needed, and costly for a cold hook

        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _address_kind(host: str) -> str:
    if host in METADATA_HOSTS:
        return "metadata"
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    address = _parse_address(host)
    if address is None:
        if re.fullmatch(r"[0-9.]+|0x[0-9a-f.x]+", host):
            return "invalid"
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private or address.is_reserved or address in _SHARED:
        return "private"
    return "public-ip"


_SHARED = ipaddress.ip_network("100.64.0.0/10")


@lru_cache(maxsize=256)
def _public_suffixes(last_two: str):  # type: ignore[no-untyped-def]
    """The Public Suffix List's rules that can apply to a host ending in `last_two` (its
    last two labels, or its only one), or the whole list ("").

    Building the whole list costs about 100 ms (it parses and IDNA-encodes some 10,000
    rules), and even the rules of one top-level domain cost a cold hook a few milliseconds
    (`com` has some 1,300). A rule applies to a host only when its labels are the host's
    last labels, `*` standing for any one label and only as the first: so it is the last
    label, the last two, or a longer rule ending in `.` and the last two, each also as an
    exception (`!`) or after `*.`. Those lines are found by substring searches in the
    list's bytes, and the library gets just them. An ASCII host with no punycode label
    needs no encoded forms of the rules (the encoded form of a non-ASCII rule holds
    `xn--`)."""
    from publicsuffixlist import PSLFILE, PublicSuffixList

    if not last_two:
        return PublicSuffixList()
    text = _list_bytes(PSLFILE)
    wanted = last_two.encode("ascii")
    last = wanted.rpartition(b".")[2]
    exact = [last, b"!" + last, b"*." + last]
    if last != wanted:
        exact += [wanted, b"!" + wanted]
    lines = [rule for rule in exact if b"\n" + rule + b"\n" in text]
    if last != wanted:
        needle = b"." + wanted + b"\n"  # the longer rules, `!` and `*.` forms among them
        at = text.find(needle)
        while at >= 0:
            lines.append(text[text.rfind(b"\n", 0, at) + 1:at + len(needle) - 1])
            at = text.find(needle, at + 1)
    return PublicSuffixList([line.decode("utf-8") for line in lines],
                            accept_encoded_idn=False)


@lru_cache(maxsize=1)
def _list_bytes(path: str) -> bytes:
    """The list's lines, each between newlines (bytes: decoding the whole 330 KB list and
    copying it as text cost more than the searches)."""
    with open(path, "rb") as file:
        return b"\n" + file.read() + b"\n"


def _suffix_list_for(host: str):  # type: ignore[no-untyped-def]
    labels = host.split(".")
    plain = host.isascii() and "xn--" not in host and labels[-1].isalnum()
    return _public_suffixes(".".join(labels[-2:]) if plain else "")


@lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str:
    """`api.github.com` -> `github.com`, `a.b.co.uk` -> `b.co.uk` (Public Suffix List)."""
    try:
        return _suffix_list_for(host).privatesuffix(host) or host
    except Exception:
        return host
