"""A Slack-compatible incoming webhook: `text` (the fallback) and Block Kit `blocks`, with
the link as a button so an approver lands on the request in one click."""

from __future__ import annotations

import json
from typing import Any

from runestone_server.notify.channels import Limits
from runestone_server.notify.channels.http import post
from runestone_server.notify.models import Channel, Delivery


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so user-supplied text cannot forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(delivery: Delivery) -> dict[str, Any]:
    payload = delivery.payload
    subject = escape(str(payload.get("subject", delivery.subject)))
    text = escape(str(payload.get("text", "")))
    link = payload.get("link")
    fallback = f"{subject}: {text}" + (f" <{link}|Open>" if link else "")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{subject}*\n{text}"}}]
    if link:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open in Runestone"},
            "url": link}]})
    return {"text": fallback, "blocks": blocks}


def send(channel: Channel, delivery: Delivery, limits: Limits) -> None:
    post(channel.target, json.dumps(message(delivery)).encode(), {}, limits)
