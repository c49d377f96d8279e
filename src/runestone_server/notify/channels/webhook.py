"""The generic webhook: the message as JSON, signed with the channel's secret.

Headers: X-Runestone-Timestamp (Unix seconds), X-Runestone-Signature
(sha256=HMAC(secret, timestamp + "." + body)) and X-Runestone-Delivery (the delivery id,
the same on every retry, so a receiver can drop duplicates).
"""

from __future__ import annotations

import json
import time

from runestone_server.notify.channels import Limits
from runestone_server.notify.channels.http import post
from runestone_server.notify.models import Channel, Delivery
from runestone_server.notify.signing import sign


def body(delivery: Delivery) -> bytes:
    payload = delivery.payload
    document = {"id": delivery.id, "subject": payload.get("subject", delivery.subject),
                "text": payload.get("text", ""), "link": payload.get("link"),
                "data": payload.get("data", {}), "created": delivery.created.isoformat()}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def send(channel: Channel, delivery: Delivery, limits: Limits) -> None:
    content = body(delivery)
    timestamp = str(int(time.time()))
    post(channel.target, content, {
        "X-Runestone-Timestamp": timestamp,
        "X-Runestone-Signature": sign(channel.secret, timestamp, content),
        "X-Runestone-Delivery": str(delivery.id),
    }, limits)
