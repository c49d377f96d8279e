"""Shipping the audit log to the control plane, resumable and losing nothing.

The local log is the queue: entries are read from its segments after the last sequence
number the server acknowledged, in batches, and nothing is deleted locally. When the server
does not answer, the entries simply wait in the log; the next round (the daemon's loop, or
`runestone audit ship`) starts again from what the server says it has, so an entry arrives
exactly once however often a batch is retried (the server treats an identical re-send as
acknowledged).

Only committed entries are read (`logreader`: the writer's lock, shared, notes how far the
log is durable), and a round resumes from the byte offset the last one reached (kept in the
ship state, checked before it is trusted), so it costs what is new, not the whole segment.

Standard library only (urllib), like runestone.remote.client: the hook path stays light.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runestone.home import Layout
from runestone.remote.client import RemoteError, _request, credential_file, load_remote
from runestone.remote.logreader import (
    Committed,
    Position,
    committed,
    entries_after,
    local_head,
)

# The most entries any control-plane version takes in one request (its MAX_BATCH, 1000 since
# ingest began): each request also pays its lock, checks and commit, so on PostgreSQL
# 1000 a batch ingests 16-25% more a second than 500 did (bench/server.py --batch).
BATCH_ENTRIES = 1000
BATCH_BYTES = 2 * 1024 * 1024
DEFAULT_INTERVAL = 5.0
MAX_BACKOFF = 60.0


class ShipError(RuntimeError):
    """Shipping stopped; the message says why. The entries stay in the local log.

    `refused`: the server answered and said no (a revoked runtime, a broken chain), so
    trying again soon will not help; otherwise it did not answer and a later round may."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass
class ShipReport:
    acknowledged: int = 0
    local_head: int = 0
    sent: int = 0
    stored: int = 0
    duplicates: int = 0
    batches: int = 0
    position: Position | None = field(default=None, repr=False)  # after the last acknowledged

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "position"}


def ship_state_file(layout: Layout) -> Path:
    return layout.state_dir / "audit-ship.json"


def read_ship_state(layout: Layout) -> dict[str, Any]:
    try:
        return json.loads(ship_state_file(layout).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _write_ship_state(layout: Layout, state: dict[str, Any]) -> None:
    """Replace the state file; ShipError saying so when it cannot be written (a full disk
    made `audit ship` die here with a traceback)."""
    # A name of its own per writer: the daemon's loop and `runestone audit ship` may both
    # write at once, and each replace must find its own file.
    temporary = ship_state_file(layout).with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(temporary, ship_state_file(layout))
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ShipError(f"could not record how far shipping got in "
                        f"{ship_state_file(layout)}: {exc.strerror or exc} (is the disk "
                        "full?)") from exc


# --- reading the local log -------------------------------------------------------------------

class Batch(list[dict[str, Any]]):
    """Entries to send together, and where the log stands after the last of them."""

    def __init__(self, end: Position | None = None) -> None:
        super().__init__()
        self.end = end


def _batches(directory: Path, after: int, position: Position | None = None,
             log: Committed | None = None) -> Iterator[Batch]:
    """The committed entries after seq `after` (from `position` when it checks out), cut
    into batches of at most BATCH_ENTRIES and BATCH_BYTES (an entry larger than that goes
    alone)."""
    batch, size = Batch(), 0
    for entry, length, end in entries_after(directory, after, position, log):
        if batch and (len(batch) >= BATCH_ENTRIES or size + length > BATCH_BYTES):
            yield batch
            batch, size = Batch(), 0
        batch.append(entry)
        batch.end = end
        size += length
    if batch:
        yield batch


# --- talking to the server -------------------------------------------------------------------

class _Server:
    """The control plane's audit endpoints with retries and exponential back-off on
    connection errors and 5xx answers; 4xx answers are not retried."""

    def __init__(self, layout: Layout, retries: int, backoff: float,
                 sleep: Callable[[float], None]) -> None:
        config = load_remote(layout)
        if config is None:
            raise ShipError("this runtime is not enrolled; run `runestone enroll`")
        try:
            credential = credential_file(layout).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ShipError(f"the control-plane credential is unreadable: {exc}") from exc
        self.url = f"{config['server']}/api/v1/runtime/audit"
        self.server = config["server"]
        self.headers = {"Authorization": f"Bearer {credential}"}
        self.retries, self.backoff, self.sleep = retries, backoff, sleep

    def call(self, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                status, data, _ = _request(self.url, method=method, body=body,
                                           headers=self.headers)
            except RemoteError as exc:
                problem = str(exc)
            else:
                if status < 500:
                    try:
                        return status, json.loads(data or b"null")
                    except ValueError:
                        return status, {"detail": data.decode(errors="replace")[:300]}
                problem = f"the server at {self.server} answered HTTP {status}: " \
                          f"{data.decode(errors='replace')[:200]}"
            if attempt < self.retries:
                self.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        raise ShipError(problem)


def _detail(answer: Any) -> Any:
    return answer.get("detail", answer) if isinstance(answer, dict) else answer


def ship(layout: Layout, *, retries: int = 3, backoff: float = 0.5,
         sleep: Callable[[float], None] = time.sleep) -> ShipReport:
    """Ship every entry the server does not have yet; returns what happened.

    Raises ShipError when the server does not answer (after the retries) or refuses part
    of the log (a broken chain); the state file records the error either way.
    """
    state = read_ship_state(layout)
    report = ShipReport(position=Position.from_dict(state.get("position")))
    try:
        server = _Server(layout, retries, backoff, sleep)
        log = committed(layout.audit_dir)  # what this round may send; later entries wait
        report.local_head = log.head
        status, answer = server.call("GET")
        if status != 200:
            raise ShipError(f"the server refused (HTTP {status}): {_detail(answer)}",
                            refused=True)
        report.acknowledged = int(answer["acknowledged"])
        checkpoints = _latest_checkpoint(layout)
        for batch in _batches(layout.audit_dir, report.acknowledged, report.position, log):
            status, answer = server.call("POST", {"entries": batch,
                                                  "checkpoints": checkpoints})
            report.batches += 1
            report.sent += len(batch)
            detail = _detail(answer)
            if isinstance(detail, dict) and "acknowledged" in detail:
                report.acknowledged = int(detail["acknowledged"])
                report.stored += int(detail.get("stored", 0))
                report.duplicates += int(detail.get("duplicates", 0))
            if status == 409 and isinstance(detail, dict) and detail.get("problem"):
                problem = detail["problem"]
                raise ShipError(f"the server refused the log from seq {problem['seq']} "
                                f"({problem['problem']}): {problem['message']}", refused=True)
            if status != 200:
                raise ShipError(f"the server refused the batch (HTTP {status}): {detail}",
                                refused=True)
            if report.acknowledged < batch[-1]["seq"]:
                raise ShipError(f"the server acknowledged only up to seq "
                                f"{report.acknowledged} of {batch[-1]['seq']}")
            report.position = batch.end
    except (ShipError, KeyError, TypeError, ValueError, OSError) as exc:
        message = str(exc) if isinstance(exc, ShipError) else \
            f"the local log could not be read: {exc}" if isinstance(exc, OSError) else \
            f"unexpected answer from the server: {exc!r}"
        refused = getattr(exc, "refused", False)
        state.update({"last_error": message, "attempted": time.time(),
                      "position": _saved(report.position)})
        if refused:  # the server said no: kept until a round succeeds, for `status`
            state["refused"] = {"message": message, "at": time.time(),
                                "acknowledged": report.acknowledged}
        try:
            _write_ship_state(layout, state)
        except ShipError as unrecorded:
            message = f"{message}; and {unrecorded}"
        raise ShipError(message, refused=refused) from exc
    state.pop("refused", None)
    state.update({"acknowledged": report.acknowledged, "shipped": time.time(),
                  "last_error": "", "position": _saved(report.position)})
    try:
        _write_ship_state(layout, state)
    except ShipError as exc:  # the server has the entries; the next round asks it again
        raise ShipError(f"the server has every entry up to seq {report.acknowledged}, but "
                        f"{exc}") from exc
    return report


def _saved(position: Position | None) -> dict[str, Any] | None:
    """The position for the state file: where the next round starts reading (checked
    there before it is trusted, so a stale one costs a scan, never an entry)."""
    return position.as_dict() if position is not None else None


def _latest_checkpoint(layout: Layout) -> list[dict[str, Any]]:
    """The log's latest signed checkpoint record, so the server can hold the head to it."""
    try:
        record = json.loads((layout.audit_dir / "checkpoint.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [record] if isinstance(record, dict) else []


# --- the daemon's loop ---------------------------------------------------------------------

def ship_interval() -> float:
    """Seconds between rounds: $RUNESTONE_AUDIT_SHIP_INTERVAL, else 5; at least 0.2."""
    try:
        return max(0.2, float(os.environ.get("RUNESTONE_AUDIT_SHIP_INTERVAL",
                                             DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class ShipLoop:
    """Ships while the daemon runs and the runtime is enrolled. A failed round waits twice
    as long before the next; the error is said once, not every round."""

    def __init__(self, layout: Layout, stop: threading.Event,
                 interval: float | None = None) -> None:
        self.layout, self.stop = layout, stop
        self.interval = interval if interval is not None else ship_interval()
        self.last_error = ""

    def run(self) -> None:
        # Back-off doubles from the interval up to ten intervals (at most a minute), so a
        # server back from a restart is found again within a few rounds.
        ceiling = min(MAX_BACKOFF, 10 * self.interval)
        delay = 0.0
        while not self.stop.wait(delay):
            delay = self.interval if self.round() else min(max(delay, self.interval) * 2,
                                                            ceiling)

    def round(self) -> bool:
        """One round; False when the server could not take the log."""
        if load_remote(self.layout) is None:
            return True
        state = read_ship_state(self.layout)
        if not state.get("last_error") and state.get("acknowledged") == \
                local_head(self.layout.audit_dir):
            return True  # nothing new: no request at all
        try:
            ship(self.layout, retries=0)
        except (ShipError, OSError) as exc:
            self._say(str(exc))
            return False
        self._say("")
        return True

    def _say(self, error: str) -> None:
        if error and error != self.last_error:
            loud = "AUDIT REFUSED BY THE CONTROL PLANE: " \
                if read_ship_state(self.layout).get("refused") else ""
            print(f"runestone daemon: audit shipping: {loud}{error}", file=sys.stderr)
        elif not error and self.last_error:
            print("runestone daemon: audit shipping caught up", file=sys.stderr)
        self.last_error = error


# Said with every refusal: retrying will not help, and a refused chain may mean that the
# local log was changed after it was shipped (its tail no longer chains to what the server
# stored), which local verification alone cannot see for an unsigned tail.
REFUSED_ADVICE = ("Nothing more of this runtime's audit log reaches the control plane "
                  "until that is resolved; the entries stay in the local log. If the "
                  "server names a chain problem, the local log no longer matches what it "
                  "stored (it may have been changed): compare `runestone audit verify` with "
                  "the team's audit verify page and tell the team's admins.")


def run_ship(layout: Layout) -> int:
    """`runestone audit ship`: one round, said plainly; 1 when the server cannot take it."""
    try:
        report = ship(layout, retries=2)
    except ShipError as exc:
        if exc.refused:
            print(f"runestone audit ship: AUDIT REFUSED BY THE CONTROL PLANE: {exc}.\n"
                  f"{REFUSED_ADVICE}", file=sys.stderr)
            return 1
        print(f"runestone audit ship: {exc} (the entries stay in the local log; they are "
              "sent on the next round)", file=sys.stderr)
        return 1
    if report.sent:
        print(f"shipped {report.sent} entries in {report.batches} batch(es): {report.stored} "
              f"stored, {report.duplicates} already there; the server has up to seq "
              f"{report.acknowledged} of {report.local_head}")
    else:
        print(f"nothing to ship: the server has every entry up to seq {report.acknowledged}")
    return 0
