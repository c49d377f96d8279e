"""Tamper with the log in every way; `verify` must catch each one and say where."""

from __future__ import annotations

import json

import pytest

from runestone.audit import verify_log
from runestone.audit.entry import entry_hash
from runestone.audit.log import list_segments


def fill(log, count=60):
    for index in range(count):
        log.append([{"kind": "request", "request_id": f"r{index}", "summary": "x" * 40}])


def verify(where, identity):
    return verify_log(where.audit_dir, identity.runtime_id, identity.public_key)


def lines_of(path):
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_untouched_log_verifies(runtime):
    where, identity, log = runtime
    fill(log)
    report = verify(where, identity)
    assert report.ok, report.problem
    assert report.entries > 60 and report.segments > 1 and report.checkpoints >= 5


def test_flipped_byte(runtime):
    where, identity, log = runtime
    fill(log)
    path = list_segments(where.audit_dir)[0][1]
    data = bytearray(path.read_bytes())
    position = data.index(b"xxxx")
    data[position] = ord("y")
    path.write_bytes(bytes(data))
    report = verify(where, identity)
    assert not report.ok
    assert "segment-00000001.jsonl line" in report.problem and "altered" in report.problem


def test_edited_field_with_recomputed_hash(runtime):
    where, identity, log = runtime
    fill(log)
    path = list_segments(where.audit_dir)[0][1]
    lines = lines_of(path)
    entry = json.loads(lines[2])
    entry["summary"] = "nothing to see"
    entry["hash"] = entry_hash(entry)
    lines[2] = json.dumps(entry).encode()
    write_lines(path, lines)
    report = verify(where, identity)
    assert not report.ok
    assert "line 4" in report.problem and "chain link" in report.problem


def test_deleted_entry(runtime):
    where, identity, log = runtime
    fill(log)
    path = list_segments(where.audit_dir)[0][1]
    lines = lines_of(path)
    del lines[3]
    write_lines(path, lines)
    report = verify(where, identity)
    assert not report.ok and "line 4 (seq 4)" in report.problem
    assert "expected 4, found 5" in report.problem


def test_swapped_entries(runtime):
    where, identity, log = runtime
    fill(log)
    path = list_segments(where.audit_dir)[0][1]
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(path, lines)
    report = verify(where, identity)
    assert not report.ok and "line 2 (seq 2)" in report.problem


def test_truncated_segment(runtime):
    where, identity, log = runtime
    fill(log)
    path = list_segments(where.audit_dir)[0][1]
    write_lines(path, lines_of(path)[:-3])
    report = verify(where, identity)
    assert not report.ok and "segment-00000002.jsonl line 1" in report.problem


def test_truncated_last_segment_is_caught_by_the_signed_checkpoint(runtime):
    where, identity, log = runtime
    fill(log)
    log.checkpoint()
    path = list_segments(where.audit_dir)[-1][1]
    write_lines(path, lines_of(path)[:-2])
    report = verify(where, identity)
    assert not report.ok and "cut off the end" in report.problem


def test_removed_segment(runtime):
    where, identity, log = runtime
    fill(log)
    segments = list_segments(where.audit_dir)
    segments[1][1].unlink()
    report = verify(where, identity)
    assert not report.ok and "a segment was removed" in report.problem
    segments[0][1].unlink()
    report = verify(where, identity)
    assert not report.ok


def test_removed_last_segment(runtime):
    where, identity, log = runtime
    fill(log)
    log.checkpoint()
    list_segments(where.audit_dir)[-1][1].unlink()
    report = verify(where, identity)
    assert not report.ok


@pytest.mark.parametrize("where_to_forge", ["entry", "latest"])
def test_forged_checkpoint(runtime, where_to_forge):
    where, identity, log = runtime
    fill(log, 25)
    log.checkpoint()
    if where_to_forge == "latest":
        latest = where.audit_dir / "checkpoint.json"
        record = json.loads(latest.read_text())
        record["signature"] = "00" * 64
        latest.write_text(json.dumps(record))
    else:
        for _, path in list_segments(where.audit_dir):
            lines = lines_of(path)
            for index, raw in enumerate(lines):
                entry = json.loads(raw)
                if entry["kind"] == "checkpoint":
                    entry["checkpoint"]["signature"] = "ab" * 64
                    entry["hash"] = entry_hash(entry)
                    lines[index] = json.dumps(entry).encode()
                    write_lines(path, lines)
                    break
            else:
                continue
            break
    report = verify(where, identity)
    assert not report.ok and "signature" in report.problem


def test_another_runtimes_key_does_not_verify(runtime, tmp_path):
    where, identity, log = runtime
    fill(log, 12)
    from runestone.home import Layout
    from runestone.identity import create_identity

    other = create_identity(Layout(tmp_path / "o", tmp_path / "o" / "state"))
    report = verify_log(where.audit_dir, identity.runtime_id, other.public_key)
    assert not report.ok and "signature" in report.problem
