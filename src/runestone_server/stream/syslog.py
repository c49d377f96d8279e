"""RFC 5424 syslog over TCP or TLS (RFC 5425), framed by octet counting (RFC 6587 3.4.1).

Each record is one message: facility 13 (log audit); severity warning for a deny, notice
for an ask, info otherwise; APP-NAME `runestone`; MSGID the entry's kind; one structured
data element `runestone@32473` with the chain position (runtime, seq, hash) and the
organisation, team and decision; the message is the entry as JSON. 32473 is the private
enterprise number RFC 5612 sets aside for documentation: an SD-ID a receiver can match on.

Syslog has no acknowledgements. A batch counts as delivered only when the receiver, after
our last byte and our end of stream (TCP FIN), closes its side in an orderly way: it has
read everything we sent. rsyslog processes what it read before closing a session (with a
direct main queue, synchronously; see docs/operations.md). A reset or a timeout instead
fails the batch, and it is sent again (at-least-once: the receiver drops resends by
runtime and seq).
"""

from __future__ import annotations

import socket
import time

from runestone_server.stream.records import Record
from runestone_server.stream.targets import SyslogTarget

FACILITY = 13  # log audit
SD_ID = "runestone@32473"
SEVERITY = {"deny": 4, "ask": 5}


class SyslogError(OSError):
    pass


def _param(value: object) -> str:
    """An SD-PARAM value with `"`, `\\` and `]` escaped (RFC 5424 6.3.3)."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, size: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:size]
    return cleaned or "-"


def message(record: Record, hostname: str) -> bytes:
    """One RFC 5424 message (without the frame)."""
    pri = FACILITY * 8 + SEVERITY.get(record.decision, 6)
    stamp = record.time.isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = {"runtime": record.runtime, "seq": record.seq, "source": record.source,
              "org": record.org, "team": record.team}
    if record.hash:
        params["hash"] = record.hash
    if record.decision:
        params["decision"] = record.decision
    sd = "[" + SD_ID + "".join(f' {key}="{_param(value)}"' for key, value in params.items()) \
        + "]"
    header = f"<{pri}>1 {stamp} {_token(hostname, 255)} runestone - " \
             f"{_token(record.kind, 32)} {sd} "
    return header.encode("ascii") + b"\xef\xbb\xbf" + record.body().encode("utf-8")


def frame(payload: bytes) -> bytes:
    return str(len(payload)).encode("ascii") + b" " + payload


def send(target: SyslogTarget, records: list[Record], timeout: float) -> None:
    """Send the records on one connection and wait for the receiver's orderly close."""
    hostname = socket.gethostname()
    data = b"".join(frame(message(r, hostname)) for r in records)
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        raise SyslogError(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
    connection = raw
    try:
        if target.tls:
            # wrap_socket takes over the descriptor: from here on `connection` owns it.
            connection = target.context().wrap_socket(raw, server_hostname=target.host)
        connection.sendall(data)
        # Our end of stream: on TLS, SSLSocket.shutdown leaves TLS and reads the bare TCP
        # socket from then on (the receiver's close_notify, if any, is read and ignored).
        connection.shutdown(socket.SHUT_WR)
        while True:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = connection.recv(4096)
            if not chunk:
                return  # the receiver read everything and closed: delivered
            if time.monotonic() > deadline:
                raise SyslogError("the receiver did not close the connection in time")
    except OSError as exc:
        raise SyslogError(f"{target.host}:{target.port}: {exc}") from exc
    finally:
        connection.close()
        raw.close()
