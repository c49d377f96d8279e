"""Re-verify a runtime's chain as stored on the server, from where it starts.

The start is the genesis, or, once retention has pruned, the kept checkpoint whose signed
`(seq, hash)` the first remaining entry chains to: pruned history stays provable because the
runtime itself signed the hash the remaining chain continues from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runestone.actions.canonical import CanonicalJSONError
from runestone.audit.entry import entry_hash, genesis
from runestone_server.audit.ingest import check_checkpoint
from runestone_server.audit.models import AuditChain, AuditCheckpoint, AuditEntry
from runestone_server.models import Runtime


@dataclass
class ChainReport:
    runtime_id: str
    ok: bool = True
    entries: int = 0
    checkpoints: int = 0
    start_seq: int = 0
    head_seq: int = 0
    head_hash: str = ""
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_stored(db: Session, runtime: Runtime, *, chunk: int = 5000) -> ChainReport:
    """Every stored entry's hash, link and checkpoint signature, in seq order."""
    report = ChainReport(runtime.runtime_id)
    chain = db.scalar(select(AuditChain).where(AuditChain.runtime_ref == runtime.id))
    seq, prev = 0, genesis(runtime.runtime_id)
    if chain is not None and chain.base_seq:
        kept = db.scalar(select(AuditCheckpoint).where(
            AuditCheckpoint.runtime_id == runtime.runtime_id,
            AuditCheckpoint.seq == chain.base_seq))
        if kept is None or kept.hash != chain.base_hash:
            return _fail(report, f"no kept checkpoint for the pruned start at seq "
                                 f"{chain.base_seq}")
        why = check_checkpoint({"runtime": runtime.runtime_id, "seq": kept.seq,
                                "hash": kept.hash, "signature": kept.signature}, runtime)
        if why:
            return _fail(report, f"kept checkpoint at seq {kept.seq}: {why}")
        seq, prev = chain.base_seq, chain.base_hash
    report.start_seq = seq
    while True:
        rows = db.execute(select(AuditEntry.seq, AuditEntry.hash, AuditEntry.entry).where(
            AuditEntry.runtime_id == runtime.runtime_id, AuditEntry.seq > seq)
            .order_by(AuditEntry.seq).limit(chunk)).all()
        if not rows:
            break
        for stored_seq, stored_hash, entry in rows:
            where = f"seq {stored_seq}"
            if stored_seq != seq + 1:
                return _fail(report, f"{where}: expected seq {seq + 1} (entries are missing)")
            try:
                computed = entry_hash(entry)
            except CanonicalJSONError:
                computed = ""
            if computed != stored_hash or entry.get("hash") != stored_hash:
                return _fail(report, f"{where}: the stored entry does not match its hash")
            if entry.get("prev") != prev:
                return _fail(report, f"{where}: does not chain to seq {seq}")
            if entry.get("kind") == "checkpoint":
                record = entry.get("checkpoint")
                why = check_checkpoint(record, runtime)
                if not why and (record["seq"] != seq or record["hash"] != prev):
                    why = "the checkpoint does not sign the entry before it"
                if why:
                    return _fail(report, f"{where}: {why}")
                report.checkpoints += 1
            seq, prev = stored_seq, stored_hash
            report.entries += 1
    report.head_seq, report.head_hash = seq, prev
    if chain is not None and (chain.last_seq, chain.last_hash) != (seq, prev):
        return _fail(report, f"the chain's recorded head (seq {chain.last_seq}) is not the "
                             f"stored head (seq {seq})")
    return report


def _fail(report: ChainReport, message: str) -> ChainReport:
    report.ok = False
    report.problem = message
    return report
