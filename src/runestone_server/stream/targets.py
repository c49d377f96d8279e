"""Which targets the stream goes to, from the server's configuration (docs/operations.md).

Targets are the operator's (the SIEM or collector the team already runs), set where the
server is configured, not through the API: a tenant cannot point the server at an address
inside its network. One syslog target and one OTLP target at most.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class TargetError(ValueError):
    """A stream setting cannot be used; said at start and by the worker, never ignored."""


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    name: str
    host: str
    port: int
    tls: bool
    ca_file: str | None = None

    def context(self) -> ssl.SSLContext:
        """TLS with the server's name checked, against the given CA or the system's."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


Target = SyslogTarget | OtlpTarget


def timeout() -> float:
    return float(os.environ.get("RUNESTONE_STREAM_TIMEOUT", "10"))


def batch_size() -> int:
    return max(1, int(os.environ.get("RUNESTONE_STREAM_BATCH", "500")))


def _syslog(url: str) -> SyslogTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
        raise TargetError(f"RUNESTONE_STREAM_SYSLOG must be tcp://HOST:PORT or "
                          f"tls://HOST:PORT, not {url!r}")
    return SyslogTarget("syslog", parts.hostname, parts.port, parts.scheme == "tls",
                        os.environ.get("RUNESTONE_STREAM_SYSLOG_CA") or None)


def _otlp(url: str) -> OtlpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"RUNESTONE_STREAM_OTLP must be an http(s) URL such as "
                          f"http://collector:4318/v1/logs, not {url!r}")
    headers = {}
    for item in filter(None, os.environ.get("RUNESTONE_STREAM_OTLP_HEADERS", "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TargetError("RUNESTONE_STREAM_OTLP_HEADERS is key=value,key=value")
        headers[key.strip()] = value.strip()
    return OtlpTarget("otlp", url, headers)


def configured() -> list[Target]:
    """The targets the environment names (none: streaming is off)."""
    found: list[Target] = []
    syslog = os.environ.get("RUNESTONE_STREAM_SYSLOG", "").strip()
    if syslog:
        found.append(_syslog(syslog))
    otlp = os.environ.get("RUNESTONE_STREAM_OTLP", "").strip()
    if otlp:
        found.append(_otlp(otlp))
    return found


def names() -> list[str]:
    """The configured targets' names, cheaply (enqueue runs in every ingest)."""
    return [name for name, variable in (("syslog", "RUNESTONE_STREAM_SYSLOG"),
                                        ("otlp", "RUNESTONE_STREAM_OTLP"))
            if os.environ.get(variable, "").strip()]
