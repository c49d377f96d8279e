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
    timeout: float  # per phase of an outbound request (connect, each read, each write)
    lease: float  # how long a claimed delivery is left to its sender before it is due again
    # The wall-clock limit of one whole attempt (resolve, connect, send, answer). A per-phase
    # timeout alone does not bound a send: a receiver that answers a byte at a time resets
    # it on every byte. The lease is kept well above this, so a send always ends (or is cut
    # off) while its claim still holds, and no other replica sends the message meanwhile.
    send_limit: float


def retry() -> Retry:
    timeout = _float("RUNESTONE_NOTIFY_TIMEOUT", 10.0)
    send_limit = _float("RUNESTONE_NOTIFY_SEND_LIMIT", 3 * timeout)
    if timeout <= 0 or send_limit <= 0:
        raise ValueError("RUNESTONE_NOTIFY_TIMEOUT and _SEND_LIMIT must be above 0")
    # At least twice the send limit, whatever is configured: what is left after the send
    # covers recording its outcome on a slow database.
    lease = max(2 * send_limit, _float("RUNESTONE_NOTIFY_LEASE", max(60.0, 3 * send_limit)))
    return Retry(max_attempts=max(1, int(_float("RUNESTONE_NOTIFY_MAX_ATTEMPTS", 8))),
                 base_delay=_float("RUNESTONE_NOTIFY_BASE_DELAY", 5.0),
                 max_delay=_float("RUNESTONE_NOTIFY_MAX_DELAY", 3600.0),
                 timeout=timeout, lease=lease, send_limit=send_limit)


def allow_private_webhooks() -> bool:
    """RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS=1 lets webhook and Slack channels point at
    loopback, private and link-local addresses (receivers on the same host or network, as
    on-premises installs have). Off by default: the server sits inside a network a team
    admin could otherwise reach through a channel URL. Cloud metadata stays refused."""
    value = os.environ.get("RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS", "")
    return value.strip().lower() in ("1", "true", "yes")


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
