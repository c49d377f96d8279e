"""Audit entries: their canonical form, their hash, and the chain's genesis value.

Each entry is one JSON object on one line. `hash` is SHA-256 over the canonical JSON of the
entry without its `hash` field; `prev` is the hash of the entry before it, and the first
entry of a log chains to `genesis(runtime_id)`. Changing, removing, inserting or reordering
any entry therefore breaks a link that `runestone audit verify` reports.
"""

from __future__ import annotations

import time
from typing import Any

from runestone.actions.canonical import canonical_json
from runestone.digest import sha256

KINDS = ("request", "decision", "approval", "execution", "result", "checkpoint", "recovery",
         "note")


def genesis(runtime_id: str) -> str:
    """The `prev` of a log's first entry, bound to the runtime that wrote it."""
    return sha256(f"runestone-audit-genesis:{runtime_id}".encode()).hexdigest()


# The second last formatted, and its text: a process that appends often (the daemon, a batch,
# the gateway) formats each second once. `strftime` after each wait on the disk cost an
# append ~12 µs, cold, against ~2.6 µs warm.
_last_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """UTC time, RFC 3339 with microseconds: 2026-11-24T10:15:00.123456Z.

    Formatted with `time`, not `datetime`: importing datetime costs a cold hook ~1 ms.
    """
    global _last_second
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    second, text = _last_second  # one tuple, so threads never see a second's wrong text
    if second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return f"{text}.{nanoseconds // 1000:06d}Z"


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return sha256(canonical_json(body)).hexdigest()


def seal(entry: dict[str, Any], *, seq: int, prev: str) -> dict[str, Any]:
    """Give an entry its place in the chain: sequence number, prev, and its own hash."""
    return sealed_line(entry, seq=seq, prev=prev)[0]


def sealed_line(entry: dict[str, Any], *, seq: int, prev: str) -> tuple[dict[str, Any], bytes]:
    """The sealed entry (as `seal` gives it) and its line (as `encode` gives it), with the
    entry encoded once instead of twice: once for the hash, once for the line.

    Canonical JSON writes an object's members in the code point order of their keys, so the
    members before `hash` and those after it encode apart to the same bytes as together;
    the hash is over both joined, and the line has `"hash":"..."` between them."""
    sealed = dict(entry)
    sealed.pop("hash", None)
    sealed["seq"] = seq
    sealed["prev"] = prev
    before = canonical_json({k: v for k, v in sealed.items() if k < "hash"})[1:-1]
    after = canonical_json({k: v for k, v in sealed.items() if k > "hash"})[1:-1]
    comma = b"," if before and after else b""
    digest = sha256(b"{" + before + comma + after + b"}").hexdigest()
    sealed["hash"] = digest
    member = b'"hash":"' + digest.encode("ascii") + b'"'
    line = b"{" + before + (b"," if before else b"") + member + (b"," if after else b"") \
        + after + b"}\n"
    return sealed, line


def encode(entry: dict[str, Any]) -> bytes:
    """One line of the log: canonical JSON and a newline."""
    return canonical_json(entry) + b"\n"
