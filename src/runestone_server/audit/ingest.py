"""Ingest of a runtime's audit entries: verify every link against the stored chain, store
each entry exactly once, and mark the chain broken (with an event for the alerts) when a
batch shows a gap, a fork, an altered entry or a forged checkpoint.

Verification uses the runtime's own functions (`entry_hash`, `genesis`,
`checkpoint_message`, `verify_signature`), so the server and `runestone audit verify` agree
on what an intact chain is. A checkpoint is stored only once it names the hash the chain
has at its seq; one that arrives for a seq whose stored checkpoint names another hash breaks
the chain (the stored record was changed). The chain keeps its first problem
(`problems.mark_broken`). The chain row is locked first (an UPDATE), so two batches of one
runtime arriving at once are applied one after the other, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from runestone.actions.canonical import CanonicalJSONError
from runestone.audit.checkpoint import checkpoint_message, verify_signature
from runestone.audit.entry import entry_hash, genesis
from runestone_server import metrics
from runestone_server.audit.models import AuditChain, AuditCheckpoint, AuditEntry
from runestone_server.audit.problems import mark_broken
from runestone_server.audit.store import RowWriter
from runestone_server.models import Runtime
from runestone_server.stream.outbox import enqueue_audit

PROBLEMS = ("gap", "fork", "bad_hash", "bad_signature")
MAX_SEQ = 2**63 - 1  # the BigInteger columns' range on every database


def valid_seq(value: Any) -> bool:
    """A sequence number the chain can hold: an int (not a bool, not a float: JSON reads
    1e999 as infinity) from 1 to the columns' limit, so nothing a runtime sends reaches a
    query as a number the database refuses."""
    return type(value) is int and 1 <= value <= MAX_SEQ


@dataclass
class Problem:
    """Why (part of) a batch was refused; `seq` is the first refused entry."""

    kind: str  # one of PROBLEMS
    seq: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"problem": self.kind, "seq": self.seq, "message": self.message}


@dataclass
class IngestResult:
    runtime_id: str
    acknowledged: int  # the last seq stored: the runtime resumes after it
    last_hash: str
    stored: int = 0
    duplicates: int = 0
    checkpoints: int = 0
    problem: Problem | None = None
    status: str = "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"runtime_id": self.runtime_id, "acknowledged": self.acknowledged,
                "last_hash": self.last_hash, "stored": self.stored,
                "duplicates": self.duplicates, "checkpoints": self.checkpoints,
                "status": self.status,
                "problem": self.problem.as_dict() if self.problem else None}


def lock_chain(db: Session, runtime: Runtime) -> AuditChain:
    """The runtime's chain row, created at genesis if new, locked for this transaction.

    The UPDATE takes SQLite's write lock or PostgreSQL's row lock before anything is read,
    so the head read below cannot go stale under a concurrent batch. A concurrent creation
    of the row fails one of the two inserts; the caller retries the whole batch.
    """
    now = datetime.now(UTC)
    locked = db.execute(update(AuditChain).where(AuditChain.runtime_ref == runtime.id)
                        .values(updated=now)).rowcount
    if not locked:
        start = genesis(runtime.runtime_id)
        db.add(AuditChain(org_id=runtime.org_id, team_id=runtime.team_id,
                          runtime_ref=runtime.id, runtime_id=runtime.runtime_id, last_seq=0,
                          last_hash=start, base_seq=0, base_hash=start, status="ok",
                          updated=now, reverified=now))  # nothing stored yet to re-walk
        db.flush()
    chain = db.scalar(select(AuditChain).where(AuditChain.runtime_ref == runtime.id)
                      .execution_options(populate_existing=True))
    assert chain is not None
    return chain


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any, size: int) -> str | None:
    """A column value: strings only, without NUL (PostgreSQL refuses it), cut to size."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        value = str(value)
    return value.replace("\x00", "")[:size] or None


# The columns search, export, the story view and the compliance report read, each derived
# from the hashed entry; verification checks every stored row against them (verify.py).
DERIVED = ("kind", "request_id", "time", "tool", "decision", "severity", "rule", "agent",
           "user", "approver", "summary", "action_hash", "policy_hash", "reason", "purpose")

# Fields of the entry that only the full-text document reads (fulltext.py), kept in columns
# of their own (migration 1101_audit_text_columns).
DOCUMENT_FIELDS = ("reason", "purpose")


def _holds_nul(value: Any) -> bool:
    """Does a NUL character occur in any string of `value` (keys included)?"""
    kind = type(value)
    if kind is str:
        return "\x00" in value
    if kind is dict:
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if kind is list:
        return any(_holds_nul(item) for item in value)
    return False


def document_fields(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """The `reason` and `purpose` columns: exactly the text PostgreSQL's
    `runestone_json_text(entry, key)` gives for the stored entry, which is what the
    full-text document read from the `json` text before these columns existed, so search
    finds what it found then and the migration's backfill (in SQL) stores the same values
    ingest does. That is: a string as it is, any other JSON value as its JSON text (the
    stored text is `json.dumps` of the entry), a missing field or null as None, and None
    for both when the entry holds a NUL anywhere (PostgreSQL cannot read such a document
    as text: migration 1001_json_text_nul). Not cut to a size, as the document was not."""
    found = [entry.get(key) for key in DOCUMENT_FIELDS]
    if all(value is None for value in found) or _holds_nul(entry):
        return None, None
    reason, purpose = (value if value is None or type(value) is str else json.dumps(value)
                       for value in found)
    return reason, purpose


def derived(entry: dict[str, Any]) -> dict[str, Any]:
    """The values of the `DERIVED` columns for one entry (`time` is None when the entry's
    own time cannot be read; ingest then stores the time it arrived)."""
    rules = entry.get("rules")
    rule = rules[0] if isinstance(rules, list) and rules else entry.get("rule")
    reason, purpose = document_fields(entry)
    return {
        "kind": _text(entry.get("kind"), 20) or "unknown",
        "request_id": _text(entry.get("request_id"), 64),
        "time": parse_time(entry.get("time")),
        "tool": _text(entry.get("tool"), 200),
        "decision": _text(entry.get("decision"), 20),
        "severity": _text(entry.get("severity"), 20),
        "rule": _text(rule, 200),
        "agent": _text(entry.get("agent"), 200),
        "user": _text(entry.get("user"), 200),
        "approver": _text(entry.get("approver"), 200),
        "summary": _text(entry.get("summary") or entry.get("reason"), 10_000),
        "action_hash": _text(entry.get("action_hash"), 64),
        "policy_hash": _text(entry.get("policy_hash"), 64),
        "reason": reason,
        "purpose": purpose,
    }


def columns(entry: dict[str, Any], runtime: Runtime, now: datetime) -> dict[str, Any]:
    """The searchable columns of one entry; the entry itself is kept whole in `entry`."""
    values = derived(entry)
    values["time"] = values["time"] or now
    return {"org_id": runtime.org_id, "team_id": runtime.team_id,
            "runtime_id": runtime.runtime_id, "seq": int(entry["seq"]), **values,
            "hash": str(entry["hash"]), "entry": entry, "received": now}


def _own_hash(entry: dict[str, Any]) -> str | None:
    """The entry's recomputed hash, or None when it cannot be hashed at all."""
    try:
        return entry_hash(entry)
    except CanonicalJSONError:
        return None


def check_checkpoint(record_: Any, runtime: Runtime) -> str:
    """'' when `record_` is a checkpoint of this runtime signed by its enrolled key."""
    if not isinstance(record_, dict):
        return "the checkpoint record is not an object"
    if not valid_seq(record_.get("seq")):
        return "the checkpoint record's seq is not a whole number from 1"
    try:
        seq, head = record_["seq"], str(record_["hash"])
        signature = str(record_["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"the checkpoint record is malformed ({exc})"
    if record_.get("runtime") != runtime.runtime_id:
        return f"the checkpoint names runtime {record_.get('runtime')!r}"
    if not verify_signature(runtime.public_key, checkpoint_message(runtime.runtime_id, seq, head),
                            signature):
        return "the checkpoint's signature does not verify with the runtime's enrolled key"
    return ""


class _Batch:
    """One batch applied to a locked chain: the state that moves as entries are accepted."""

    def __init__(self, db: Session, runtime: Runtime, chain: AuditChain) -> None:
        self.db, self.runtime, self.chain = db, runtime, chain
        self.seq, self.head = chain.last_seq, chain.last_hash
        self.rows: list[dict[str, Any]] = []
        self.new_checkpoints: list[dict[str, Any]] = []
        self.result = IngestResult(runtime.runtime_id, chain.last_seq, chain.last_hash)
        self.now = datetime.now(UTC)

    def stored_hashes(self, low: int, high: int) -> dict[int, str]:
        if high < low:
            return {}
        return dict(self.db.execute(select(AuditEntry.seq, AuditEntry.hash).where(
            AuditEntry.runtime_id == self.runtime.runtime_id, AuditEntry.seq >= low,
            AuditEntry.seq <= high)).all())

    def resent(self, entries: list[dict[str, Any]]) -> dict[int, str]:
        """The stored hashes of the batch's seqs at or below the head (resends)."""
        seqs = [e.get("seq") for e in entries if valid_seq(e.get("seq"))]
        return self.stored_hashes(min(seqs, default=1), min(max(seqs, default=0), self.seq))

    def apply(self, entries: list[dict[str, Any]], stored: dict[int, str],
              writer: RowWriter) -> Problem | None:
        """Verify the entries in order, handing each new one to `writer` once it verified;
        stop at the first problem. Makes no query (the writer may hold a COPY open)."""
        for entry in entries:
            seq = entry.get("seq")
            if not valid_seq(seq) or not isinstance(entry.get("hash"), str):
                return Problem("bad_hash", self.seq + 1, "an entry without an integer seq "
                               "and a hash")
            if seq <= self.seq:
                problem = self._resent(entry, seq, stored)
                if problem:
                    return problem
                continue
            if seq > self.seq + 1:
                return Problem("gap", self.seq + 1, f"expected seq {self.seq + 1}, got {seq}: "
                               "entries are missing")
            problem = self._next(entry, seq)
            if problem:
                return problem
            writer.add(self.rows[-1])
        return None

    def _resent(self, entry: dict[str, Any], seq: int, stored: dict[int, str]) -> Problem | None:
        """An entry at or below the head: a harmless resend if identical, else a fork."""
        if seq <= self.chain.base_seq:
            if seq == self.chain.base_seq and entry["hash"] != self.chain.base_hash:
                return Problem("fork", seq, f"seq {seq} differs from the kept checkpoint")
            self.result.duplicates += 1  # pruned by retention; the kept checkpoint stands
            return None
        known = stored.get(seq)
        if known is None:  # accepted earlier in this same batch
            known = next((r["hash"] for r in self.rows if r["seq"] == seq), None)
        if known == entry["hash"]:
            if _own_hash(entry) != known:
                return Problem("bad_hash", seq, f"seq {seq} was resent altered under its "
                               "stored hash")
            self.result.duplicates += 1
            return None
        return Problem("fork", seq, f"seq {seq} was stored with hash {str(known)[:16]}…, this "
                       f"batch has {entry['hash'][:16]}… (two histories)")

    def _next(self, entry: dict[str, Any], seq: int) -> Problem | None:
        if entry.get("runtime") != self.runtime.runtime_id:
            return Problem("fork", seq, f"seq {seq} is an entry of runtime "
                           f"{str(entry.get('runtime'))[:80]!r}, not of this runtime")
        if _own_hash(entry) != entry["hash"]:
            return Problem("bad_hash", seq, f"seq {seq}: the hash does not match the entry "
                           "(the entry was altered)")
        if entry.get("prev") != self.head:
            return Problem("fork", seq, f"seq {seq} does not chain to seq {seq - 1} (prev "
                           f"{str(entry.get('prev'))[:16]}…, expected {self.head[:16]}…)")
        if entry.get("kind") == "checkpoint":
            checkpoint = entry.get("checkpoint")
            why = check_checkpoint(checkpoint, self.runtime)
            if not why and (checkpoint["seq"] != seq - 1 or checkpoint["hash"] != self.head):
                why = "the checkpoint does not sign the entry before it"
            if why:
                return Problem("bad_signature", seq, f"seq {seq}: {why}")
            self.new_checkpoints.append({**checkpoint, "time": entry.get("time")})
        self.rows.append(columns(entry, self.runtime, self.now))
        self.seq, self.head = seq, entry["hash"]
        return None

    def extra_checkpoints(self, records: list[dict[str, Any]]) -> Problem | None:
        """Standalone checkpoints (the runtime's latest `checkpoint.json`): each must be
        signed by the runtime and name a hash the chain has at that seq."""
        for item in records:
            why = check_checkpoint(item, self.runtime)
            if why:
                where = item.get("seq") if isinstance(item, dict) else None
                return Problem("bad_signature", where if valid_seq(where) else 0,
                               f"checkpoint: {why}")
            seq = int(item["seq"])
            if seq > self.seq or seq <= self.chain.base_seq:
                continue  # not stored yet (comes with a later batch) or pruned
            known = self.head if seq == self.seq else (
                next((r["hash"] for r in self.rows if r["seq"] == seq), None)
                or self.stored_hashes(seq, seq).get(seq))
            if known != item["hash"]:
                return Problem("fork", seq, f"a signed checkpoint names another hash for seq "
                               f"{seq} than the stored chain (two histories)")
            self.new_checkpoints.append(item)
        return None

    def save(self) -> Problem | None:
        """Store the new checkpoints (the entries went to the writer in `apply`) and move
        the chain's head. Returns a problem when a checkpoint the chain confirms was already
        stored naming another hash: the batch is good (it is stored), the stored record is
        not, and the chain is broken."""
        known: dict[int, str] = dict(self.db.execute(
            select(AuditCheckpoint.seq, AuditCheckpoint.hash).where(
                AuditCheckpoint.runtime_id == self.runtime.runtime_id,
                AuditCheckpoint.seq.in_([int(c["seq"]) for c in self.new_checkpoints]))).all()
        ) if self.new_checkpoints else {}
        conflict: Problem | None = None
        for item in self.new_checkpoints:
            seq = int(item["seq"])
            if seq in known:
                if known[seq] != item["hash"] and conflict is None:
                    conflict = Problem("fork", seq, f"the stored checkpoint at seq {seq} names "
                                       "another hash than the chain (the stored record was "
                                       "changed)")
                continue
            known[seq] = str(item["hash"])
            self.db.add(AuditCheckpoint(org_id=self.runtime.org_id,
                                        runtime_id=self.runtime.runtime_id,
                                        seq=int(item["seq"]), hash=str(item["hash"]),
                                        signature=str(item["signature"]),
                                        time=parse_time(item.get("time")), received=self.now))
            self.result.checkpoints += 1
            if self.chain.checkpoint_seq is None or int(item["seq"]) > self.chain.checkpoint_seq:
                self.chain.checkpoint_seq = int(item["seq"])
                self.chain.checkpoint_hash = str(item["hash"])
                self.chain.checkpoint_signature = str(item["signature"])
        self.chain.last_seq, self.chain.last_hash = self.seq, self.head
        self.result.stored = len(self.rows)
        self.result.acknowledged, self.result.last_hash = self.seq, self.head
        return conflict


def ingest(db: Session, runtime: Runtime, entries: list[dict[str, Any]],
           checkpoints: list[dict[str, Any]] | None = None) -> IngestResult:
    """Apply one batch (in seq order) and commit. Everything before the first problem is
    stored; the problem and everything after it are refused, the chain is marked broken (it
    keeps its first problem) and an `audit.chain_problem` event is recorded (not again for
    a repeat of the last one). `status` is the chain's, so a batch that is fine still says
    `broken` when an earlier one was not."""
    chain = lock_chain(db, runtime)
    before = chain.last_seq
    batch = _Batch(db, runtime, chain)
    stored = batch.resent(entries)
    with RowWriter(db.connection()) as writer:  # a COPY on PostgreSQL (audit/store.py)
        problem = batch.apply(entries, stored, writer)
    if problem is None:
        problem = batch.extra_checkpoints(checkpoints or [])
    stored_conflict = batch.save()
    if batch.rows:  # the stream's outbox, in this same transaction
        enqueue_audit(db, runtime.runtime_id, before, batch.seq)
    result = batch.result
    for found in (problem, stored_conflict):
        if found is not None:
            mark_broken(db, runtime, chain, found.kind, found.seq, found.message,
                        found_by="ingest")
    result.problem = problem
    result.status = chain.status
    runtime.last_seen = batch.now
    labels = metrics.team_label(db, runtime.team_id) if batch.rows else None
    db.commit()
    if labels:
        metrics.count_decisions(*labels, batch.rows)
    return result


def chain_state(db: Session, runtime: Runtime) -> dict[str, Any]:
    """Where the runtime resumes: the last seq stored, its hash, and the chain's health."""
    chain = db.scalar(select(AuditChain).where(AuditChain.runtime_ref == runtime.id))
    if chain is None:
        start = genesis(runtime.runtime_id)
        return {"runtime_id": runtime.runtime_id, "acknowledged": 0, "last_hash": start,
                "status": "ok", "problem": None}
    return {"runtime_id": runtime.runtime_id, "acknowledged": chain.last_seq,
            "last_hash": chain.last_hash, "status": chain.status,
            "problem": {"message": chain.problem, "seq": chain.problem_seq}
            if chain.problem else None}
