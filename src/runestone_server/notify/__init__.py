"""Notifications: signed webhooks, Slack-compatible messages and e-mail, with retries.

Other domains call `enqueue` inside their own transaction; the worker task in `delivery`
sends. Receivers of the generic webhook check requests with `verify_signature`.
"""

from runestone_server.notify.outbox import UnknownChannel, enqueue
from runestone_server.notify.signing import verify_signature

__all__ = ["UnknownChannel", "enqueue", "verify_signature"]
