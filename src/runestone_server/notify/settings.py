"""Delivery settings from the environment, read when used (so tests and operators can
change them without a restart of anything but the worker's next tick)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None


@dataclass(frozen=True, slots=True)
class Retry:
    """Exponential back-off: attempt n waits base * 2**(n-1), capped, with jitter."""

    max_attempts: int
    base_delay: float
    max_delay: float
    timeout: float  # per outbound request (HTTP or SMTP)
    lease: float  # how long a claimed delivery is left to its sender before it is due again


def retry() -> Retry:
    timeout = _float("RUNESTONE_NOTIFY_TIMEOUT", 10.0)
    return Retry(max_attempts=max(1, int(_float("RUNESTONE_NOTIFY_MAX_ATTEMPTS", 8))),
                 base_delay=_float("RUNESTONE_NOTIFY_BASE_DELAY", 5.0),
                 max_delay=_float("RUNESTONE_NOTIFY_MAX_DELAY", 3600.0),
                 timeout=timeout,
                 lease=max(60.0, 4 * timeout))


def keep_days() -> float:
    """How long sent and failed deliveries are kept (the outbox is not the archive: every
    alert and approval keeps its own history)."""
    return _float("RUNESTONE_NOTIFY_KEEP_DAYS", 30.0)


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str
    user: str | None
    password: str | None
    starttls: bool


def smtp() -> Smtp:
    """The server's SMTP settings; a missing host or sender is an error, not a silent drop."""
    host = os.environ.get("RUNESTONE_SMTP_HOST", "")
    sender = os.environ.get("RUNESTONE_SMTP_FROM", "")
    if not host or not sender:
        raise RuntimeError("e-mail needs RUNESTONE_SMTP_HOST and RUNESTONE_SMTP_FROM set on "
                           "the server")
    starttls = os.environ.get("RUNESTONE_SMTP_STARTTLS", "").lower() in ("1", "true", "yes")
    return Smtp(host=host, port=int(_float("RUNESTONE_SMTP_PORT", 587 if starttls else 25)),
                sender=sender, user=os.environ.get("RUNESTONE_SMTP_USER") or None,
                password=os.environ.get("RUNESTONE_SMTP_PASSWORD") or None,
                starttls=starttls)
