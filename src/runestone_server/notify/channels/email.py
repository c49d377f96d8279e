"""E-mail over SMTP with the standard library, using the server's SMTP settings.

smtplib's timeout, like httpx's, bounds each socket operation, not the conversation: a
server answering a line at a time could keep a send going past the claim's lease. A
watchdog shuts the socket down at the attempt's deadline, which ends any read or write in
progress (the name lookup before the connect is the one part it cannot cut short).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from email.utils import make_msgid

from runestone_server.notify import settings
from runestone_server.notify.channels import Limits, SendError
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


@contextmanager
def _cut_off(smtp: smtplib.SMTP, limits: Limits) -> Iterator[threading.Event]:
    """Shut `smtp`'s socket down from the deadline on (repeatedly: a connect that was in
    progress may open one later); the event yielded tells whether that happened."""
    done, expired = threading.Event(), threading.Event()

    def watch() -> None:
        if done.wait(max(0.0, limits.remaining())):
            return
        expired.set()
        while not done.is_set():
            sock = smtp.sock
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            done.wait(0.05)

    watchdog = threading.Thread(target=watch, name="runestone-notify-smtp", daemon=True)
    watchdog.start()
    try:
        yield expired
    finally:
        done.set()
        watchdog.join()


def send(channel: Channel, delivery: Delivery, limits: Limits) -> None:
    try:
        config = settings.smtp()
    except (RuntimeError, ValueError) as exc:
        raise SendError(str(exc)) from exc
    mail = compose(config.sender, channel, delivery)
    smtp = smtplib.SMTP(timeout=limits.timeout)
    try:
        with _cut_off(smtp, limits) as expired, smtp:
            smtp.connect(config.host, config.port)
            if config.starttls:
                smtp.starttls()
            if config.user:
                smtp.login(config.user, config.password or "")
            refused = smtp.send_message(mail, to_addrs=recipients(channel.target))
    except (OSError, smtplib.SMTPException) as exc:
        if expired.is_set():
            raise SendError(f"SMTP {config.host}:{config.port}: no complete exchange within "
                            f"the limit of one attempt") from exc
        raise SendError(f"SMTP {config.host}:{config.port}: {type(exc).__name__}: {exc}") \
            from exc
    if refused:
        # Some recipients took it: a retry would send them a duplicate, so this is logged
        # rather than retried (when every recipient refuses, smtplib raises above).
        log.warning("delivery %s: SMTP refused %s", delivery.id, ", ".join(sorted(refused)))
