"""`runestone audit verify`: every link, every hash, every checkpoint signature.

The first broken place is reported precisely: segment, line, sequence number, and what was
expected against what was found. Detected: a changed byte (the hash no longer matches), an
edited entry with its hash recomputed (the next entry's `prev` no longer matches), a deleted,
inserted or swapped entry (sequence and `prev`), a truncated or removed segment (a gap in
sequence, segment numbers or the chain's start, or the signed latest checkpoint pointing past
the end), and a forged checkpoint (its signature).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runestone.audit.checkpoint import checkpoint_message, verify_signature
from runestone.audit.entry import entry_hash, genesis
from runestone.audit.log import list_segments


@dataclass
class VerifyReport:
    ok: bool = True
    entries: int = 0
    segments: int = 0
    checkpoints: int = 0
    head_seq: int = 0
    head_hash: str = ""
    problem: str = ""
    warnings: list[str] = field(default_factory=list)

    def fail(self, where: str, message: str) -> VerifyReport:
        self.ok = False
        self.problem = f"{where}: {message}"
        return self


def _check_checkpoint(record: Any, public_key: str, runtime_id: str) -> str:
    if not isinstance(record, dict):
        return "checkpoint record is not an object"
    try:
        message = checkpoint_message(runtime_id, int(record["seq"]), str(record["hash"]))
        signature = str(record["signature"])
    except (KeyError, ValueError, TypeError) as exc:
        return f"checkpoint record is malformed ({exc})"
    if record.get("runtime") != runtime_id:
        return f"checkpoint is for runtime {record.get('runtime')!r}, expected {runtime_id!r}"
    if not verify_signature(public_key, message, signature):
        return "checkpoint signature does not verify with the runtime's public key"
    return ""


def _latest_checkpoint(directory: Path) -> tuple[dict[str, Any] | None, str]:
    """The signed latest checkpoint (checkpoint.json) and a problem with it, if any."""
    latest = directory / "checkpoint.json"
    if not latest.exists():
        return None, ""
    try:
        record = json.loads(latest.read_text(encoding="utf-8"))
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    return record, ""


def verify_log(directory: Path, runtime_id: str, public_key: str) -> VerifyReport:
    """Walk the whole chain in constant memory: segments are read line by line, and of all
    the hashes only the ones the latest checkpoint names are kept (an earlier version kept
    every hash and read each segment whole: 81 MiB at 100k entries)."""
    report = VerifyReport()
    segments = list_segments(directory)
    report.segments = len(segments)
    latest, latest_problem = _latest_checkpoint(directory)
    try:
        latest_seq = int(latest["seq"]) if isinstance(latest, dict) else -1
    except (KeyError, ValueError, TypeError):
        latest_seq = -1  # reported by _check_checkpoint below
    latest_hash: str | None = None  # the log's hash at latest_seq
    latest_entry_signature: str | None = None  # the checkpoint entry at latest_seq + 1
    expected_prev = genesis(runtime_id)
    expected_seq = 1
    for position, (number, path) in enumerate(segments):
        if number != position + 1:
            return report.fail(path.name, f"segment number {number}, expected {position + 1} "
                               "(a segment was removed)")
        tail = b""
        with open(path, "rb") as file:
            for index, line in enumerate(file, start=1):
                if not line.endswith(b"\n"):
                    tail = line  # the last line, never finished
                    break
                raw = line[:-1]
                where = f"{path.name} line {index} (seq {expected_seq})"
                try:
                    entry = json.loads(raw)
                except ValueError as exc:
                    return report.fail(where, f"not valid JSON ({exc.msg})")
                if not isinstance(entry, dict):
                    return report.fail(where, "not a JSON object")
                found_hash = entry.get("hash")
                if entry.get("seq") != expected_seq:
                    return report.fail(where, f"sequence: expected {expected_seq}, found "
                                       f"{entry.get('seq')!r} (an entry was deleted, inserted "
                                       "or moved)")
                if entry.get("prev") != expected_prev:
                    return report.fail(where, f"chain link: expected prev "
                                       f"{expected_prev[:16]}…, found "
                                       f"{str(entry.get('prev'))[:16]}…")
                computed = entry_hash(entry)
                if found_hash != computed:
                    return report.fail(where, f"hash: computed {computed[:16]}…, entry says "
                                       f"{str(found_hash)[:16]}… (the entry was altered)")
                if entry.get("runtime") != runtime_id:
                    return report.fail(where, f"runtime: expected {runtime_id}, found "
                                       f"{entry.get('runtime')!r}")
                if entry.get("kind") == "checkpoint":
                    record = entry.get("checkpoint")
                    problem = _check_checkpoint(record, public_key, runtime_id)
                    if problem:
                        return report.fail(where, problem)
                    if record["seq"] != expected_seq - 1 or record["hash"] != expected_prev:
                        return report.fail(where, "checkpoint does not sign the entry before it")
                    report.checkpoints += 1
                    if expected_seq == latest_seq + 1:
                        latest_entry_signature = str(record["signature"])
                if expected_seq == latest_seq:
                    latest_hash = computed
                expected_prev = computed
                expected_seq += 1
                report.entries += 1
        if tail:
            if position != len(segments) - 1:
                return report.fail(path.name, "an earlier segment ends in a torn line")
            report.warnings.append(f"{path.name} ends with a torn line of {len(tail)} bytes, "
                                   "never acknowledged; the next append moves it aside")
    report.head_seq = expected_seq - 1
    report.head_hash = expected_prev
    name = "checkpoint.json"
    if latest_problem:
        return report.fail(name, latest_problem)
    if latest is not None:
        problem = _check_checkpoint(latest, public_key, runtime_id)
        if problem:
            return report.fail(name, problem)
        seq = int(latest["seq"])
        if seq > report.head_seq:
            return report.fail(name, f"the signed checkpoint is at seq {seq} but the log "
                               f"ends at seq {report.head_seq} (entries were cut off the end)")
        if latest_hash != latest["hash"]:
            return report.fail(name, f"the signed checkpoint's hash for seq {seq} does "
                               "not match the log")
        if latest_entry_signature != latest["signature"]:
            return report.fail(name, f"the checkpoint entry at seq {seq + 1} is missing "
                               "from the log (entries were cut off the end)")
    return report
