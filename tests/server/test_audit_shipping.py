"""The audit shipper against a real `runestone-server serve` process, on SQLite and
PostgreSQL: it sends only committed entries (never an append still in flight, never a torn
line), every entry arrives exactly once while other processes keep appending, and a round
reads what is new, not the whole segment.

The runtime is made by the real command line (`runestone init`, `runestone enroll`); the
log is the runtime's real `AuditLog` (real hashing, real signed checkpoints) in this
process or in writer processes of their own, as hook processes are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveserver import ServerProcess, api, enroll_runtime, request
from runestone.audit.checkpoint import Signer
from runestone.audit.entry import encode, now_rfc3339, seal
from runestone.audit.log import AuditLog, list_segments
from runestone.audit.query import read_entries
from runestone.home import Layout, layout
from runestone.identity import load_identity
from runestone.remote import shipper
from runestone.remote.shipper import ShipLoop, read_ship_state, ship


@dataclass
class Enrolled:
    server: ServerProcess
    token: str  # the admin's
    team: int
    layout: Layout
    runtime_id: str
    credential: str

    def log(self, **options: int) -> AuditLog:
        """The runtime's audit log, as its hook processes open it."""
        return AuditLog(self.layout.audit_dir, self.runtime_id,
                        signer=Signer(self.layout.private_key_file), **options)

    def acknowledged(self) -> int:
        """What the server says it has, asked as the runtime."""
        status, answer = request(self.server.base, "GET", "/api/v1/runtime/audit",
                                 self.credential)
        assert status == 200, answer
        return answer["acknowledged"]

    def verified(self) -> dict:
        reports = api(self.server.base, "GET", f"/api/v1/teams/{self.team}/audit/verify",
                      self.token)
        return next(r for r in reports if r["runtime_id"] == self.runtime_id)

    def local(self) -> list[dict]:
        return list(read_entries(self.layout.audit_dir))


@pytest.fixture
def rt(database_url, tmp_path, isolated_home):
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    try:
        token = server.login()
        team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
        enrolled = enroll_runtime(server.base, token, team, isolated_home)
        assert enrolled.returncode == 0, enrolled.stderr
        where = layout()
        credential = (where.keys_dir / "remote.credential").read_text().strip()
        yield Enrolled(server, token, team, where, load_identity(where).runtime_id, credential)
    finally:
        server.stop()


def _server_has_every_local_entry_once(rt: Enrolled) -> None:
    local = rt.local()
    report = rt.verified()
    assert report["ok"] and report["status"] == "verified", report
    assert (report["entries"], report["head_seq"], report["head_hash"]) == \
        (len(local), local[-1]["seq"], local[-1]["hash"])
    assert [e["seq"] for e in local] == list(range(1, len(local) + 1))


def test_an_append_in_flight_is_not_shipped_until_the_writer_commits_it(rt):
    """The writer's own steps for one append (take the log's lock, one write, fsync, let
    go), stopped half-way: one entry written whole, the next torn. Neither is the log's
    until the writer lets go; the shipper must not send the whole one early."""
    log = rt.log()
    for n in range(5):
        log.append([{"kind": "note", "n": n}])
    head = ship(rt.layout).acknowledged
    assert head == rt.local()[-1]["seq"]
    last = rt.local()[-1]
    done: dict[str, object] = {}
    with log._locked:
        first = seal({"kind": "note", "n": "a", "time": now_rfc3339(),
                      "runtime": rt.runtime_id}, seq=head + 1, prev=last["hash"])
        second = seal({"kind": "note", "n": "b", "time": now_rfc3339(),
                       "runtime": rt.runtime_id}, seq=head + 2, prev=first["hash"])
        data = encode(first) + encode(second)
        cut = len(encode(first)) + 10
        segment = list_segments(rt.layout.audit_dir)[-1][1]
        fd = os.open(segment, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data[:cut])
            shipping = threading.Thread(target=lambda: done.update(report=ship(rt.layout)))
            shipping.start()
            shipping.join(timeout=1.5)
            assert rt.acknowledged() == head, "an entry of an append in flight was shipped"
            os.write(fd, data[cut:])
            os.fsync(fd)
        finally:
            os.close(fd)
    shipping.join(timeout=60)
    report = done["report"]
    assert report.sent == 2 and report.acknowledged == head + 2  # type: ignore[attr-defined]
    _server_has_every_local_entry_once(rt)


def test_a_torn_line_at_the_end_of_the_segment_is_not_shipped(rt):
    """A writer died mid-write: its whole lines stay in the log (the next append keeps
    them), its torn last line does not (the next append moves it aside)."""
    log = rt.log()
    for n in range(5):
        log.append([{"kind": "note", "n": n}])
    head = ship(rt.layout).acknowledged
    last = rt.local()[-1]
    whole = seal({"kind": "note", "n": "whole", "time": now_rfc3339(),
                  "runtime": rt.runtime_id}, seq=head + 1, prev=last["hash"])
    torn = seal({"kind": "note", "n": "torn", "time": now_rfc3339(),
                 "runtime": rt.runtime_id}, seq=head + 2, prev=whole["hash"])
    segment = list_segments(rt.layout.audit_dir)[-1][1]
    with segment.open("ab") as handle:
        handle.write(encode(whole) + encode(torn)[:-25])
    for _ in range(2):  # the torn line stays unsent however often a round runs
        ship(rt.layout)
        assert rt.acknowledged() == head + 1

    log.append([{"kind": "note", "n": "after"}])  # moves the torn bytes aside
    kinds = [e["kind"] for e in rt.local()[head + 1:]]
    assert kinds == ["recovery", "note"]
    assert ship(rt.layout).sent == 2
    _server_has_every_local_entry_once(rt)
    assert all(e.get("n") != "torn" for e in rt.local())


WRITER = """
import random, sys
from pathlib import Path
from runestone.audit.checkpoint import Signer
from runestone.audit.log import AuditLog
directory, runtime_id, key, name, count, stop = sys.argv[1:7]
log = AuditLog(Path(directory), runtime_id, signer=Signer(Path(key)), segment_bytes=12000,
               checkpoint_every=16)
rng = random.Random(name)
n = 0
while n < int(count) or not Path(stop).exists():
    log.append([{"kind": "note", "writer": name, "n": n, "pad": "x" * rng.randrange(400)}
                for _ in range(rng.randrange(1, 5))])
    n += 1
"""


def test_entries_appended_while_shipping_arrive_exactly_once(rt, monkeypatch, tmp_path):
    """Writers append at least 300 times each and go on until told to stop, which the test
    does once three rounds have shipped something while they were writing: on a busy
    machine, a fixed count could end before the shipper's first rounds did."""
    monkeypatch.setattr(shipper, "BATCH_ENTRIES", 7)  # batches end all over the segments
    stop = tmp_path / "stop-writing"
    writers = [subprocess.Popen(
        [sys.executable, "-c", WRITER, str(rt.layout.audit_dir), rt.runtime_id,
         str(rt.layout.private_key_file), name, "300", str(stop)]) for name in ("one", "two")]
    reports = []
    deadline = time.monotonic() + 120
    try:
        while any(w.poll() is None for w in writers):
            reports.append(ship(rt.layout))
            if sum(1 for r in reports if r.sent) >= 3 or time.monotonic() > deadline:
                stop.touch()
    finally:
        stop.touch()
    assert all(w.wait(timeout=60) == 0 for w in writers)
    during = sum(1 for r in reports if r.sent)
    reports.append(ship(rt.layout))

    local = rt.local()
    assert len(list_segments(rt.layout.audit_dir)) > 5  # many segment rolls while shipping
    assert during >= 3, "the shipper did not ship while the writers appended"
    # Every entry was sent once: none skipped, none sent again.
    assert sum(r.sent for r in reports) == sum(r.stored for r in reports) == len(local)
    assert sum(r.duplicates for r in reports) == 0
    assert reports[-1].acknowledged == local[-1]["seq"]
    assert read_ship_state(rt.layout)["position"]["seq"] == local[-1]["seq"]
    _server_has_every_local_entry_once(rt)
    assert sum(e["kind"] == "checkpoint" for e in local) > 10


def _read_bytes() -> int:
    """Bytes this thread has read through read(2) so far (the kernel's count)."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/thread-self/io")


def test_a_round_reads_what_is_new_not_the_whole_segment(rt):
    log = rt.log()
    for n in range(30):  # about 3 MB in one segment (the default is 8 MiB)
        log.append([{"kind": "note", "n": n, "i": i, "pad": "x" * 900} for i in range(100)])
    segments = list_segments(rt.layout.audit_dir)
    assert len(segments) == 1 and segments[0][1].stat().st_size > 3_000_000
    loop = ShipLoop(rt.layout, threading.Event(), interval=1.0)
    assert loop.round()  # the first round reads it all
    assert rt.acknowledged() == rt.local()[-1]["seq"]

    log.append([{"kind": "note", "n": "new"}])
    before = _read_bytes()
    assert loop.round()
    cost = _read_bytes() - before
    assert rt.acknowledged() == rt.local()[-1]["seq"]
    assert cost < 200_000, f"one new entry cost {cost} bytes read"
    before = _read_bytes()
    assert loop.round()  # nothing new
    assert _read_bytes() - before < 50_000


def _entry_ends(directory: Path) -> dict[int, tuple[int, int]]:
    """seq -> (segment number, the byte offset where its line ends)."""
    ends = {}
    for number, path in list_segments(directory):
        offset = 0
        for line in path.read_bytes().splitlines(keepends=True):
            offset += len(line)
            ends[json.loads(line)["seq"]] = (number, offset)
    return ends


def test_a_position_that_does_not_check_out_falls_back_to_a_scan(rt):
    """The remembered offset is a shortcut, never the truth: whatever is wrong with it, the
    round finds its place by a scan and sends exactly what the server lacks."""
    log = rt.log(segment_bytes=4000)
    for n in range(40):
        log.append([{"kind": "note", "n": n, "pad": "x" * 200}])
    ship(rt.layout)
    state_file = shipper.ship_state_file(rt.layout)
    for stale in ("ahead", "beyond", "mid_line", "other_hash", "junk"):
        state = json.loads(state_file.read_text())
        position = state["position"]
        assert position["seq"] == rt.local()[-1]["seq"]
        for n in range(3):
            log.append([{"kind": "note", "n": f"{stale} {n}"}])
        segment, after_next = _entry_ends(rt.layout.audit_dir)[position["seq"] + 1]
        position.update({
            # past an entry the server lacks (trusting it would skip that entry)
            "ahead": {"segment": segment, "offset": after_next},
            "beyond": {"offset": position["offset"] + 10_000},  # the segment is shorter
            "mid_line": {"offset": position["offset"] - 7},
            "other_hash": {"hash": "0" * 64},  # the next entry does not chain to it
            "junk": {"segment": "one"},
        }[stale])
        state_file.write_text(json.dumps(state))
        report = ship(rt.layout)
        assert (report.sent, report.duplicates) == (3, 0), stale
        assert read_ship_state(rt.layout)["position"]["seq"] == rt.local()[-1]["seq"]
    _server_has_every_local_entry_once(rt)


def test_a_rewritten_unsigned_tail_is_refused_loudly_by_ship_and_status(rt, isolated_home):
    """Issue 17: entries after the last checkpoint rewritten (a deny made an allow, hashes
    recomputed) still verify locally, and shipping then halted for good with no warning on
    the runtime. `audit ship` and `runestone status` now say loudly that the control plane
    refused the chain, and why."""
    from liveserver import runestone

    home = isolated_home
    log = rt.log()
    for n in range(3):
        log.append([{"kind": "decision", "decision": "deny", "n": n, "time": now_rfc3339()}])
    log.close()
    ship(rt.layout)
    assert rt.acknowledged() == len(rt.local())
    # Rewrite the shipped, unsigned tail: the last deny becomes an allow, the hash redone.
    segment = list_segments(rt.layout.audit_dir)[-1][1]
    lines = segment.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    assert last["decision"] == "deny" and "checkpoint" not in last["kind"]
    forged = seal({k: v for k, v in last.items() if k not in ("seq", "prev", "hash")}
                  | {"decision": "allow"}, seq=last["seq"], prev=last["prev"])
    lines[-1] = encode(forged)
    segment.write_bytes(b"".join(lines))
    assert runestone(home, "audit", "verify").returncode == 0  # locally: fine
    log = rt.log()
    log.append([{"kind": "decision", "decision": "deny", "n": 9, "time": now_rfc3339()}])
    log.close()
    shipped = runestone(home, "audit", "ship")
    assert shipped.returncode == 1
    assert "AUDIT REFUSED BY THE CONTROL PLANE" in shipped.stderr, shipped.stderr
    assert f"from seq {last['seq'] + 1}" in shipped.stderr  # the server says where, and why
    assert "may have been changed" in shipped.stderr
    status = runestone(home, "status")
    assert status.returncode == 0
    assert "AUDIT REFUSED BY THE CONTROL PLANE" in status.stdout, status.stdout
    assert f"from seq {last['seq'] + 1}" in status.stdout
    assert rt.acknowledged() == last["seq"]  # nothing after the fork was stored
