"""`runestone check` on JSON Lines decides in batches whose audit entries share one write and
one fsync (group commit): the same answers as deciding one by one, each printed only once
its entries are durable (kill -9 in the middle loses none), and a log that cannot be
written denies every answer of the batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from runestone.actions import Action
from runestone.audit import log as log_module
from runestone.audit.query import read_entries
from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.identity import create_identity

PROJECT = "/home/dev/project"
COMMANDS = ["git status", "ls -la", "rm -rf ~", "cat ~/.ssh/id_rsa", "npm test", "curl x.io",
            "python -c 'print(1)'", "git push --force", "echo hi > notes.txt", "terraform apply"]


def _actions(sessions: str = "s") -> list[Action]:
    # Sessions are remembered on disk (taint): each run names its own.
    return [Action("Bash", {"command": command}, PROJECT, session=f"{sessions}{n % 3}")
            for n, command in enumerate(COMMANDS * 3)]


def _segment_fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        if "segment-" in os.readlink(f"/proc/self/fd/{fd}"):
            calls.append(fd)
        real(fd)

    monkeypatch.setattr(log_module.os, "fsync", counting)
    return calls


def test_a_batch_answers_as_one_by_one_with_one_fsync(isolated_home, monkeypatch) -> None:
    create_identity(layout())
    one_by_one = Gatekeeper.from_layout(layout(), preset="developer", home="/home/dev")
    expected = [one_by_one.check(action, contain=True) for action in _actions("one")]
    batched = Gatekeeper.from_layout(layout(), preset="developer", home="/home/dev")
    fsyncs = _segment_fsyncs(monkeypatch)
    answers = batched.check_batch(_actions("batch"), contain=True)
    assert len(fsyncs) == 1
    assert [(a.decision, a.reason, a.rules) for a in answers] == \
        [(e.decision, e.reason, e.rules) for e in expected]
    assert {a.decision for a in answers} >= {"allow", "deny", "ask"}
    entries = list(read_entries(layout().audit_dir))[-2 * len(answers):]
    assert [(e["kind"], e["request_id"]) for e in entries] == [
        (kind, a.request_id) for a in answers for kind in ("request", "decision")]
    assert [e["decision"] for e in entries if e["kind"] == "decision"] == \
        [a.decision for a in answers]


def _lines(count: int) -> str:
    return "".join(json.dumps({"id": n, "tool_name": "Bash", "cwd": PROJECT, "tool_input": {
        "command": COMMANDS[n % len(COMMANDS)]}}) + "\n" for n in range(count))


def test_kill_9_during_a_batch_loses_no_answered_decision(isolated_home, tmp_path) -> None:
    create_identity(layout())
    source = tmp_path / "lines.jsonl"
    source.write_text(_lines(100_000), encoding="utf-8")
    with source.open("rb") as stdin:
        child = subprocess.Popen(
            [sys.executable, "-m", "runestone", "check", "--preset", "developer"],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    answered: list[dict] = []
    deadline = time.monotonic() + 120
    while len(answered) < 600 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        answered.append(json.loads(line))
    os.kill(child.pid, signal.SIGKILL)  # in the middle of the batches
    rest = child.stdout.read()
    assert child.wait(10) == -signal.SIGKILL  # killed while deciding, not finished
    answered += [json.loads(line) for line in rest.splitlines() if line.endswith("}")]
    assert len(answered) >= 600
    decided = {e["request_id"]: e["decision"] for e in read_entries(layout().audit_dir)
               if e.get("kind") == "decision"}
    lost = [a["id"] for a in answered if decided.get(a["request_id"]) != a["decision"]]
    assert not lost, lost[:10]


FULL_DISK = textwrap.dedent("""
    import io, resource, signal, sys
    from runestone.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
    sys.stdin = io.StringIO(sys.argv[1])
    sys.exit(main(["check", "--preset", "developer"]))
""")


def test_a_batch_the_log_cannot_take_is_denied_line_by_line(isolated_home) -> None:
    create_identity(layout())
    gatekeeper = Gatekeeper.from_layout(layout(), preset="developer", home="/home/dev")
    gatekeeper.check_batch(_actions()[:4])  # the segment is now larger than the limit below
    segment = sorted(layout().audit_dir.glob("segment-*.jsonl"))[-1]
    before = segment.read_bytes()
    result = subprocess.run([sys.executable, "-c", FULL_DISK, _lines(40)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["id"] for a in answers] == list(range(40))
    for answer in answers:
        assert answer["decision"] == "deny"
        assert "audit log could not be written" in answer["reason"]
    assert Path(segment).read_bytes() == before
