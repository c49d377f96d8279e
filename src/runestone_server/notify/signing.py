"""The webhook signature: HMAC-SHA256 over "<timestamp>.<body>" with the channel's secret.

The timestamp is inside the MAC so a captured request cannot be replayed later with a new
timestamp; receivers check both the MAC and that the timestamp is recent. Kept free of
server imports so a receiver can copy or import just this module.
"""

from __future__ import annotations

import hashlib
import hmac
import time

PREFIX = "sha256="
TOLERANCE = 300  # seconds a receiver accepts between the timestamp and its own clock


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Runestone-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *,
                     tolerance: float | None = TOLERANCE, now: float | None = None) -> bool:
    """True if `header` (X-Runestone-Signature) signs `body` at `timestamp`
    (X-Runestone-Timestamp) with `secret`, and the timestamp is within `tolerance` seconds
    of now (None: no age check). Compares in constant time; any malformed input is False."""
    if not header.startswith(PREFIX) or not timestamp.isdigit():
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > tolerance:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)
