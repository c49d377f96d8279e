"""Concurrency, crashes and a full disk: the chain never forks and nothing acknowledged is
lost; when the log cannot be written, the gatekeeper denies and says why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from runestone.audit import verify_log
from runestone.audit.query import read_entries

WORKER = textwrap.dedent("""
    import sys
    from runestone.audit import AuditLog, Redactor
    from runestone.audit.checkpoint import Signer
    from runestone.home import layout
    from runestone.identity import load_identity
    where = layout()
    identity = load_identity(where)
    log = AuditLog(where.audit_dir, identity.runtime_id, signer=Signer(where.private_key_file),
                   redactor=Redactor(where.redaction_key_file.read_bytes()),
                   segment_bytes=64 * 1024, checkpoint_every=50)
    worker = sys.argv[1]
    for i in range(int(sys.argv[2])):
        log.append([{"kind": "note", "worker": worker, "i": i, "pad": "p" * 200}])
        print(worker, i, flush=True)
""")


def start(worker: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, worker, str(count)],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))


def test_concurrent_appends_with_repeated_sigkill(runtime):
    where, identity, log = runtime
    acknowledged: set[tuple[str, int]] = set()
    steady = [start(f"w{n}", 150) for n in range(3)]
    for round_number in range(6):
        victim = start(f"k{round_number}", 100_000)
        time.sleep(0.15 + 0.05 * round_number)
        victim.send_signal(signal.SIGKILL)
        out, _ = victim.communicate()
        # The kill can cut the last line of output short: only whole lines are acknowledged.
        acknowledged |= {(w, int(i)) for w, i in (line.split() for line in out.split("\n")[:-1])}
    for process in steady:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        acknowledged |= {(w, int(i)) for w, i in (line.split() for line in out.splitlines())}
    log.append([{"kind": "note", "final": True}])  # repairs a torn tail if one was left

    report = verify_log(where.audit_dir, identity.runtime_id, identity.public_key)
    assert report.ok, report.problem
    present = {(e["worker"], e["i"]) for e in read_entries(where.audit_dir) if "worker" in e}
    missing = acknowledged - present
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    assert {("w0", 149), ("w1", 149), ("w2", 149)} <= present


def test_a_writer_that_remembers_its_head_notices_other_writers(runtime):
    """Each log object skips re-reading the head it wrote itself; another writer's appends
    (another process, here another object) change the segment, so the chain stays one."""
    from runestone.audit import AuditLog

    where, identity, log = runtime
    other = AuditLog(where.audit_dir, identity.runtime_id, segment_bytes=2048)
    for i in range(40):
        (log if i % 3 else other).append([{"kind": "note", "i": i, "pad": "x" * 100}])
    entries = list(read_entries(where.audit_dir))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert [e["i"] for e in entries if e["kind"] == "note"] == list(range(40))
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


def test_only_the_logs_own_segments_are_listed(tmp_path):
    """The log's segments are `segment-` and eight ASCII digits, ordered by number: other
    files of the directory (the lock, checkpoints, torn tails moved aside, a name with
    digits of another script) are never read as segments, and a new writer continues the
    newest segment that holds an entry."""
    from runestone.audit import AuditLog
    from runestone.audit.log import list_segments, segment_numbers

    log = AuditLog(tmp_path, "rt_test", segment_bytes=600)
    for i in range(6):
        log.append([{"kind": "note", "i": i, "pad": "x" * 200}])
    ours = sorted(path.name for path in tmp_path.glob("segment-*.jsonl"))
    assert len(ours) >= 3
    for name in ("segment-\u0660\u0660\u0660\u0660\u0660\u0660\u0669\u0669.jsonl",
                 "segment-1.jsonl", "segment-00000099.jsonl.tmp", "torn-00000001-12.bin",
                 "checkpoint.json"):
        (tmp_path / name).write_bytes(b'{"seq": 999, "hash": "forged"}\n')
    assert [path.name for _, path in list_segments(tmp_path)] == ours
    assert segment_numbers(tmp_path) == [int(name[8:16]) for name in ours]
    AuditLog(tmp_path, "rt_test", segment_bytes=600).append([{"kind": "note", "i": 6}])
    entries = list(read_entries(tmp_path))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert [e["i"] for e in entries] == list(range(7))


def test_torn_tail_is_moved_aside_and_recorded(runtime):
    where, identity, log = runtime
    log.append([{"kind": "note", "n": 1}])
    segment = sorted(where.audit_dir.glob("segment-*.jsonl"))[-1]
    with segment.open("ab") as handle:
        handle.write(b'{"kind":"note","half')
    report = verify_log(where.audit_dir, identity.runtime_id, identity.public_key)
    assert report.ok and report.warnings
    log.append([{"kind": "note", "n": 2}])
    entries = list(read_entries(where.audit_dir))
    assert [e["kind"] for e in entries] == ["note", "recovery", "note"]
    assert entries[1]["torn_bytes"] == len(b'{"kind":"note","half')
    assert (where.audit_dir / entries[1]["moved_to"]).read_bytes() == b'{"kind":"note","half'
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    from runestone.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
    sys.exit(main(["check", "--preset", "developer", "--command", "ls", "--cwd", "/tmp/p"]))
""")


def test_full_disk_denies_with_the_reason(runtime):
    where, _identity, log = runtime
    for n in range(5):  # the segment is now larger than the file-size limit below
        log.append([{"kind": "note", "n": n}])
    before = Path(where.audit_dir / "segment-00000001.jsonl").read_bytes()
    result = subprocess.run([sys.executable, "-c", DISK_FULL], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["decision"] == "deny"
    assert "audit log could not be written" in decision["reason"]
    assert "no audit, no allow" in decision["reason"]
    assert "File too large" in decision["reason"] or "27" in decision["reason"]
    assert Path(where.audit_dir / "segment-00000001.jsonl").read_bytes() == before


PARTLY_FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from runestone.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
    sys.exit(main(["check", "--preset", "developer", "--command", "ls", "--cwd", "/tmp/p"]))
""")


def test_a_partly_written_append_is_cut_off_before_the_deny(runtime):
    """The disk fills in the middle of the request-and-decision write: the kernel takes the
    request line whole and part of the decision. The hook denies, so the log must not keep a
    request (or worse, an `allow` decision) the caller was told failed."""
    where, identity, log = runtime
    log.append([{"kind": "note", "n": 0}])
    segment = where.audit_dir / "segment-00000001.jsonl"
    before = segment.read_bytes()
    from runestone.actions import Action
    from runestone.gatekeeper import Gatekeeper

    # How long the request line is: decide the same call once, then put the segment back.
    probe = Gatekeeper.from_layout(where, preset="developer")
    probe.check(Action("Bash", {"command": "ls"}, "/tmp/p"))
    request_line = segment.read_bytes()[len(before):].split(b"\n")[0]
    segment.write_bytes(before)
    probe.audit.close()
    limit = len(before) + len(request_line) + 1 + 40  # the request whole, the decision not

    result = subprocess.run([sys.executable, "-c", PARTLY_FULL_DISK, str(limit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["decision"] == "deny" and "no audit, no allow" in decision["reason"]
    assert "short write" in decision["reason"]
    assert segment.read_bytes() == before

    log.append([{"kind": "note", "n": 1}])
    entries = list(read_entries(where.audit_dir))
    assert [e["kind"] for e in entries] == ["note", "note"]  # no recovery needed either
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


def test_a_failed_fsync_takes_the_append_back(runtime, monkeypatch):
    """`fsync` failing (EIO) means the kernel may have dropped the pages: the append is
    reported failed, so its lines are cut off and the next append continues the chain."""
    import errno

    from runestone.audit import AuditWriteError
    from runestone.audit import log as log_module

    where, identity, log = runtime
    log.append([{"kind": "note", "n": 0}])
    segment = where.audit_dir / "segment-00000001.jsonl"
    before = segment.read_bytes()
    real_fsync = os.fsync
    failures = iter([OSError(errno.EIO, "Input/output error")])

    def failing_fsync(fd: int) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        real_fsync(fd)

    monkeypatch.setattr(log_module.os, "fsync", failing_fsync)
    try:
        log.append([{"kind": "note", "n": "lost"}, {"kind": "note", "n": "lost too"}])
    except AuditWriteError as exc:
        assert "Input/output error" in str(exc)
    else:
        raise AssertionError("a failed fsync was acknowledged")
    assert segment.read_bytes() == before
    log.append([{"kind": "note", "n": 1}])
    assert [e["n"] for e in read_entries(where.audit_dir)] == [0, 1]
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


def test_a_failed_write_into_a_new_segment_leaves_the_chain_whole(runtime, monkeypatch):
    """The append that would open the next segment fails half-way: the new segment is left
    empty, and the chain goes on from the last segment's head."""
    from runestone.audit import AuditWriteError
    from runestone.audit import log as log_module

    where, identity, log = runtime
    log.append([{"kind": "note", "pad": "x" * 3000}])
    real_write = os.write

    def half_write(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(log_module.os, "write", half_write)
    try:
        log.append([{"kind": "note", "pad": "y" * 3000}])  # past the 4 KiB segment size
    except AuditWriteError as exc:
        assert "short write" in str(exc)
    else:
        raise AssertionError("a short write was acknowledged")
    monkeypatch.setattr(log_module.os, "write", real_write)
    assert (where.audit_dir / "segment-00000002.jsonl").read_bytes() == b""
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok
    log.append([{"kind": "note", "n": "after"}])
    entries = list(read_entries(where.audit_dir))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1]["n"] == "after"
    assert verify_log(where.audit_dir, identity.runtime_id, identity.public_key).ok


def test_unwritable_audit_directory_denies(runtime):
    where, _identity, log = runtime
    log.append([{"kind": "note"}])
    from runestone.actions import Action
    from runestone.gatekeeper import Gatekeeper

    gatekeeper = Gatekeeper.from_layout(where, preset="developer")
    assert gatekeeper.check(Action("Bash", {"command": "ls"}, "/tmp/p")).decision == "allow"
    segment = sorted(where.audit_dir.glob("segment-*.jsonl"))[-1]
    os.chmod(segment, 0o400)
    os.chmod(where.audit_dir, 0o500)
    try:
        if os.geteuid() == 0:
            # root ignores permission bits; point the log below a regular file, so every
            # write fails with an OS error the way a dead disk would.
            gatekeeper.audit.directory = segment / "not-a-directory"
            gatekeeper.audit.close()
        decision = gatekeeper.check(Action("Bash", {"command": "ls"}, "/tmp/p"))
    finally:
        os.chmod(where.audit_dir, 0o700)
        os.chmod(segment, 0o600)
    assert decision.decision == "deny"
    assert "no audit, no allow" in decision.reason


def test_gatekeeper_writes_request_and_decision_linked(runtime):
    where, _identity, _log = runtime
    from runestone.actions import Action
    from runestone.gatekeeper import Gatekeeper

    gatekeeper = Gatekeeper.from_layout(where, preset="developer")
    action = Action("Bash", {"command": "git push -f", "description": "publish my fix"},
                    "/tmp/p", session="s1", context={"purpose": "publish my fix",
                                                      "tool_use_id": "toolu_1"})
    decision = gatekeeper.check(action)
    entries = [e for e in read_entries(where.audit_dir) if e.get("request_id")
               == decision.request_id]
    assert [e["kind"] for e in entries] == ["request", "decision"]
    request, decided = entries
    assert request["purpose"] == "publish my fix" and request["tool_use_id"] == "toolu_1"
    assert request["action_hash"] == decided["action_hash"] == action.hash
    assert decided["policy_hash"] == gatekeeper.policy.hash
    assert decided["decision"] == "deny" and decided["rules"] == ["git.push-force"]
    assert decided["prev"] == request["hash"]
