"""E-mail over SMTP with the standard library, using the server's SMTP settings."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from runestone_server.notify import settings
from runestone_server.notify.channels import SendError
from runestone_server.notify.models import Channel, Delivery

log = logging.getLogger("runestone_server.notify")


def recipients(target: str) -> list[str]:
    return [address.strip() for address in target.split(",") if address.strip()]


def compose(sender: str, channel: Channel, delivery: Delivery) -> EmailMessage:
    payload = delivery.payload
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(recipients(channel.target))
    # One line: a subject carries text from runtimes (tool names, summaries), and a line
    # break in a header is refused by the email package (or would be header injection).
    mail["Subject"] = " ".join(str(payload.get("subject", delivery.subject)).split())[:300]
    mail["Message-ID"] = make_msgid(f"runestone.{delivery.id}")
    text = str(payload.get("text", ""))
    if payload.get("link"):
        text += f"\n\n{payload['link']}\n"
    mail.set_content(text)
    return mail


def send(channel: Channel, delivery: Delivery, timeout: float) -> None:
    try:
        config = settings.smtp()
    except (RuntimeError, ValueError) as exc:
        raise SendError(str(exc)) from exc
    mail = compose(config.sender, channel, delivery)
    try:
        with smtplib.SMTP(config.host, config.port, timeout=timeout) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.user:
                smtp.login(config.user, config.password or "")
            refused = smtp.send_message(mail, to_addrs=recipients(channel.target))
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"SMTP {config.host}:{config.port}: {type(exc).__name__}: {exc}") \
            from exc
    if refused:
        # Some recipients took it: a retry would send them a duplicate, so this is logged
        # rather than retried (when every recipient refuses, smtplib raises above).
        log.warning("delivery %s: SMTP refused %s", delivery.id, ", ".join(sorted(refused)))
