"""Senders, one module per channel kind; each raises SendError when a message did not go."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from runestone_server.notify.models import Channel, Delivery

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
ERROR_CHARS = 300


class SendError(Exception):
    """This attempt failed; the message says why (kept on the delivery as last_error).

    Senders put no text from the receiver in it (no response body, no reason phrase, no
    Location): last_error is shown on the dashboard and stored, and a receiver must not be
    able to plant content there."""


@dataclass(frozen=True, slots=True)
class Limits:
    """`timeout` bounds each phase of a request (connect, each read or write); `deadline`
    (a time.monotonic() value) bounds the whole attempt, which the claim's lease outlasts."""

    timeout: float
    deadline: float

    @classmethod
    def starting_now(cls, timeout: float, send_limit: float) -> Limits:
        return cls(timeout=timeout, deadline=time.monotonic() + send_limit)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def clean(text: str) -> str:
    """An error as stored: printable ASCII on one line, at most ERROR_CHARS characters (a
    last defence; the senders already keep the receiver's words out)."""
    text = " ".join(_UNPRINTABLE.sub("?", text).split())
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 3] + "..."


Sender = Callable[[Channel, Delivery, Limits], None]


def sender(kind: str) -> Sender:
    """The send function for a channel kind (imported on use: e-mail needs no HTTP client)."""
    if kind == "webhook":
        from runestone_server.notify.channels.webhook import send
    elif kind == "slack":
        from runestone_server.notify.channels.slack import send
    elif kind == "email":
        from runestone_server.notify.channels.email import send
    else:
        raise SendError(f"unknown channel kind {kind!r}")
    return send
