"""Senders, one module per channel kind; each raises SendError when a message did not go."""

from __future__ import annotations

from collections.abc import Callable

from runestone_server.notify.models import Channel, Delivery


class SendError(Exception):
    """This attempt failed; the message says why (kept on the delivery as last_error)."""


Sender = Callable[[Channel, Delivery, float], None]


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
