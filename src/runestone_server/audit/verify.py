"""Re-verify a runtime's chain as stored on the server, from where it starts, and say the
truth about it.

The start is the genesis, or, once retention has pruned, the kept checkpoint whose signed
`(seq, hash)` the first remaining entry chains to: pruned history stays provable because the
runtime itself signed the hash the remaining chain continues from.

Every stored entry is checked (hash, link, in-chain checkpoint), and so is every stored
checkpoint record, not only the one retention kept: its signature, and that the stored
entry at its seq has the hash it signs. Retention prunes to these records and the chain's
latest checkpoint is shown from them, so a record changed in the database, or one that
never matched the chain, must not pass as proof.

A problem found here is confirmed with the chain locked (so a batch or a prune landing
mid-walk is not mistaken for one) and then kept on the chain like one found on ingest: the
chain list, the dashboard and the report say `broken` with the first problem, and an
`audit.chain_problem` event is raised. The report's status is the chain's: a chain that
broke on ingest is reported broken even when what was stored re-verifies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone.actions.canonical import CanonicalJSONError
from runestone.audit.entry import entry_hash, genesis
from runestone_server.audit.ingest import DERIVED, check_checkpoint, derived, lock_chain
from runestone_server.audit.models import AuditChain, AuditCheckpoint, AuditEntry
from runestone_server.audit.problems import mark_broken
from runestone_server.models import Runtime


@dataclass
class ChainReport:
    """`status` is `verified` or `broken`; `problem` is the chain's first problem, whoever
    found it; `stored_problem` is what this verification found in what is stored."""

    runtime_id: str
    ok: bool = True
    status: str = "verified"
    entries: int = 0
    checkpoints: int = 0
    start_seq: int = 0
    head_seq: int = 0
    head_hash: str = ""
    problem: str = ""
    problem_seq: int | None = None
    stored_problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Found:
    """The first problem in what is stored, in seq order."""

    kind: str  # one of ingest.PROBLEMS
    seq: int
    message: str


STORED = tuple(getattr(AuditEntry, name) for name in DERIVED)


def _same(name: str, stored: Any, expected: Any) -> bool:
    if name != "time":
        return stored == expected
    # SQLite hands times back naive (they are stored as UTC); an entry without a readable
    # time of its own was stored with the time it arrived, which the entry cannot confirm.
    if expected is None:
        return True
    if isinstance(stored, datetime) and stored.tzinfo is None:
        stored = stored.replace(tzinfo=UTC)
    return stored == expected


def altered_column(seq: int, entry: dict[str, Any], stored: list[Any]) -> Found | None:
    """A stored column that says something other than the hashed entry it was derived
    from: search, export, the story view and the compliance report read the columns, so a
    changed `decision` or `approver` would otherwise pass as verified."""
    expected = derived(entry) if isinstance(entry, dict) else {}
    for name, value in zip(DERIVED, stored, strict=True):
        if not _same(name, value, expected.get(name)):
            return Found("bad_hash", seq, f"seq {seq}: the stored column '{name}' does not "
                                          "match the hashed entry (the row was altered)")
    return None


class _Walk:
    """One pass over a runtime's stored entries and checkpoint records, in seq order."""

    def __init__(self, db: Session, runtime: Runtime, chain: AuditChain | None) -> None:
        self.db, self.runtime, self.chain = db, runtime, chain
        self.report = ChainReport(runtime.runtime_id)
        self.records: dict[int, tuple[str, str]] = {
            seq: (digest, signature) for seq, digest, signature in db.execute(
                select(AuditCheckpoint.seq, AuditCheckpoint.hash, AuditCheckpoint.signature)
                .where(AuditCheckpoint.runtime_id == runtime.runtime_id))}
        self.signed: set[tuple[int, str, str]] = set()  # each signature verified once

    def signature(self, seq: int, digest: str, signature: str) -> str:
        if (seq, digest, signature) in self.signed:
            return ""
        why = check_checkpoint({"runtime": self.runtime.runtime_id, "seq": seq,
                                "hash": digest, "signature": signature}, self.runtime)
        if not why:
            self.signed.add((seq, digest, signature))
        return why

    def signed_record(self, record: Any) -> str:
        """'' when an in-chain checkpoint record is this runtime's and its signature
        verifies; else what is wrong with it (check_checkpoint's words)."""
        if not isinstance(record, dict) or record.get("runtime") != self.runtime.runtime_id:
            return check_checkpoint(record, self.runtime)
        try:
            seq, digest = int(record["seq"]), str(record["hash"])
            signature = str(record["signature"])
        except (KeyError, TypeError, ValueError):
            return check_checkpoint(record, self.runtime)
        return self.signature(seq, digest, signature)

    def record_at(self, seq: int, digest: str) -> Found | None:
        """The stored checkpoint record at `seq`, if any, against the chain's hash there."""
        if seq not in self.records:
            return None
        named, signature = self.records[seq]
        if named != digest:
            return Found("fork", seq, f"the stored checkpoint at seq {seq} names another "
                                      "hash than the stored chain has there")
        why = self.signature(seq, named, signature)
        return Found("bad_signature", seq, f"the stored checkpoint at seq {seq}: {why}") \
            if why else None

    def start(self) -> tuple[int, str] | Found:
        chain, seq, prev = self.chain, 0, genesis(self.runtime.runtime_id)
        if chain is not None and chain.base_seq:
            seq, prev = chain.base_seq, chain.base_hash
            if seq not in self.records or self.records[seq][0] != prev:
                return Found("bad_signature", seq, f"no kept checkpoint for the pruned start "
                                                   f"at seq {seq}")
        for pruned in sorted(s for s in self.records if s < seq):
            why = self.signature(pruned, *self.records[pruned])
            if why:
                return Found("bad_signature", pruned, f"the kept checkpoint at seq {pruned}: "
                                                      f"{why}")
        return self.record_at(seq, prev) or (seq, prev)

    def run(self, chunk: int) -> Found | None:
        started = self.start()
        if isinstance(started, Found):
            return started
        seq, prev = started
        self.report.start_seq = seq
        while True:
            rows = self.db.execute(
                select(AuditEntry.seq, AuditEntry.hash, AuditEntry.entry, *STORED).where(
                    AuditEntry.runtime_id == self.runtime.runtime_id, AuditEntry.seq > seq)
                .order_by(AuditEntry.seq).limit(chunk)).all()
            if not rows:
                break
            for stored_seq, stored_hash, entry, *stored in rows:
                found = self.entry(seq, prev, stored_seq, stored_hash, entry) \
                    or altered_column(stored_seq, entry, stored) \
                    or self.record_at(stored_seq, stored_hash)
                if found:
                    return found
                seq, prev = stored_seq, stored_hash
                self.report.entries += 1
        self.report.head_seq, self.report.head_hash = seq, prev
        return self.end(seq, prev)

    def entry(self, seq: int, prev: str, stored_seq: int, stored_hash: str,
              entry: dict[str, Any]) -> Found | None:
        where = f"seq {stored_seq}"
        if stored_seq != seq + 1:
            return Found("gap", seq + 1, f"{where}: expected seq {seq + 1} (entries are "
                                         "missing)")
        try:
            computed = entry_hash(entry)
        except CanonicalJSONError:
            computed = ""
        if computed != stored_hash or entry.get("hash") != stored_hash:
            return Found("bad_hash", stored_seq, f"{where}: the stored entry does not match "
                                                 "its hash")
        if entry.get("prev") != prev:
            return Found("fork", stored_seq, f"{where}: does not chain to seq {seq}")
        if entry.get("kind") == "checkpoint":
            record = entry.get("checkpoint")
            why = self.signed_record(record)
            if not why and (record["seq"] != seq or record["hash"] != prev):
                why = "the checkpoint does not sign the entry before it"
            if why:
                return Found("bad_signature", stored_seq, f"{where}: {why}")
        return None

    def end(self, seq: int, prev: str) -> Found | None:
        beyond = sorted(s for s in self.records if s > seq)
        if beyond:
            return Found("fork", beyond[0], f"the stored checkpoint at seq {beyond[0]} is "
                                            f"beyond the stored head (seq {seq})")
        chain = self.chain
        if chain is None:
            return None
        if chain.checkpoint_seq is not None and self.records.get(chain.checkpoint_seq) != \
                (chain.checkpoint_hash, chain.checkpoint_signature):
            return Found("fork", chain.checkpoint_seq, f"the chain's latest checkpoint (seq "
                         f"{chain.checkpoint_seq}) is not a stored checkpoint")
        if (chain.last_seq, chain.last_hash) != (seq, prev):
            return Found("gap" if chain.last_seq > seq else "fork", min(chain.last_seq, seq),
                         f"the chain's recorded head (seq {chain.last_seq}) is not the "
                         f"stored head (seq {seq})")
        return None


def _walk(db: Session, runtime: Runtime, chain: AuditChain | None,
          chunk: int) -> tuple[ChainReport, Found | None]:
    walk = _Walk(db, runtime, chain)
    found = walk.run(chunk)
    walk.report.checkpoints = len({seq for seq, _, _ in walk.signed})
    return walk.report, found


def verify_stored(db: Session, runtime: Runtime, *, chunk: int = 5000,
                  found_by: str = "verification") -> ChainReport:
    """Every stored entry's hash and link and every stored checkpoint, in seq order; a
    problem found is kept on the chain (committed, the event saying `found_by`), and the
    report carries the chain's status and first problem."""
    chain = db.scalar(select(AuditChain).where(AuditChain.runtime_ref == runtime.id))
    report, found = _walk(db, runtime, chain, chunk)
    if found is not None and chain is not None:
        # Walked without a lock, so a batch or a prune may have landed mid-walk: confirm
        # with the chain locked (ingest and retention lock it first) before keeping it.
        chain = lock_chain(db, runtime)
        report, found = _walk(db, runtime, chain, chunk)
        if found is not None:
            mark_broken(db, runtime, chain, found.kind, found.seq, found.message,
                        found_by=found_by)
        db.commit()
    if found is not None:
        report.stored_problem = found.message
        report.problem, report.problem_seq = found.message, found.seq
    if chain is not None and chain.status == "broken":  # its first problem, whoever found it
        report.problem = chain.problem or report.problem or "the chain is marked broken"
        report.problem_seq = chain.problem_seq
    report.ok = not report.problem
    report.status = "verified" if report.ok else "broken"
    return report
