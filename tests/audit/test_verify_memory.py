"""`audit verify` walks the chain in constant memory: ten times the entries, the same peak."""

from __future__ import annotations

import tracemalloc

from runestone.audit import AuditLog, verify_log
from runestone.audit.checkpoint import Signer
from runestone.home import layout
from runestone.identity import create_identity


def _peak_verifying(count: int, identity) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    where = layout()
    runtime_id = identity.runtime_id
    directory = where.audit_dir / str(count)
    log = AuditLog(directory, runtime_id, signer=Signer(where.private_key_file),
                   segment_bytes=1 << 20, checkpoint_every=500)
    for start in range(0, count, 500):
        log.append([{"kind": "note", "i": i, "pad": "x" * 200}
                    for i in range(start, min(count, start + 500))])
    log.checkpoint()
    log.close()
    public_key = identity.public_key
    tracemalloc.start()
    try:
        report = verify_log(directory, runtime_id, public_key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.problem
    assert report.entries > count
    return peak, report.segments


def test_peak_memory_does_not_grow_with_the_log(isolated_home) -> None:
    identity = create_identity(layout())
    small, _ = _peak_verifying(2_000, identity)
    large, segments = _peak_verifying(20_000, identity)
    assert segments > 3  # several segments of 1 MiB
    # Every hash kept and a whole segment read at once made this ~10x.
    assert large < small * 1.5 + 64 * 1024, (small, large)
