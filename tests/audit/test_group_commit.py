"""Group commit: concurrent appenders share an fsync, each answered only once durable."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest

from runestone.audit import AuditLog, AuditWriteError
from runestone.audit import log as log_module


def _entries_on_disk(directory: Path) -> list[dict]:
    found = []
    for path in sorted(directory.glob("segment-*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            if line:
                with contextlib.suppress(ValueError):  # a torn last line, never answered
                    found.append(json.loads(line))
    return found


class _HeldFlush(NamedTuple):
    calls: list[int]  # every fsync of the log, in order
    flushing: threading.Event  # set once the first is under way
    release: threading.Event  # lets the first go on


def _hold_first_fsync(monkeypatch, failure: BaseException | None = None) -> _HeldFlush:
    """Hold the log's first fsync until released (then fail it with `failure`), so that
    callers can be queued behind it whatever the threads' scheduling."""
    held = _HeldFlush([], threading.Event(), threading.Event())
    real = os.fsync

    def held_fsync(fd: int) -> None:
        held.calls.append(fd)
        if len(held.calls) == 1:
            held.flushing.set()
            assert held.release.wait(60), "the held fsync was never released"
            if failure is not None:
                raise failure
        real(fd)

    monkeypatch.setattr(log_module.os, "fsync", held_fsync)
    return held


def test_a_single_caller_pays_one_fsync_per_append(tmp_path, monkeypatch) -> None:
    log = AuditLog(tmp_path / "log", "rt_test")
    log.append([{"kind": "note", "i": -1}])  # creates the segment (and fsyncs the directory)
    calls = []
    real = os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: calls.append(fd) or real(fd))
    for i in range(20):
        log.append([{"kind": "note", "i": i}])
    assert len(calls) == 20


def test_concurrent_appenders_share_fsyncs(tmp_path, monkeypatch) -> None:
    """Writers that queue while a flush is under way share the next one.

    Deterministic: the first writer's fsync is held until the seven others are queued
    behind it, so the count does not depend on how the threads are scheduled."""
    log = AuditLog(tmp_path / "log", "rt_test")
    log.append([{"kind": "note", "start": True}])
    calls, flushing, release = _hold_first_fsync(monkeypatch)
    answered: list[int] = []

    def worker(w: int) -> None:
        sealed = log.append([{"kind": "note", "w": w, "i": 0}])
        assert sealed[-1]["w"] == w
        answered.append(w)

    first = threading.Thread(target=worker, args=(0,))
    first.start()
    assert flushing.wait(60)
    others = [threading.Thread(target=worker, args=(w,)) for w in range(1, 8)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 60
    while len(log._pending) < 7 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(log._pending) == 7
    assert not answered  # nobody is answered while the first flush is held
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert len(calls) == 2  # the first writer's flush, then one shared by the other seven
    assert sorted(answered) == list(range(8))
    entries = _entries_on_disk(tmp_path / "log")
    assert {e.get("w") for e in entries if "w" in e} == set(range(8))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


@pytest.mark.parametrize("failure", [OSError(errno.EIO, "Input/output error"),
                                     KeyboardInterrupt()], ids=["eio", "interrupt"])
def test_a_failed_flush_fails_its_group_and_hands_the_lead_on(tmp_path, monkeypatch,
                                                              failure) -> None:
    """The first writer's flush fails (a dead disk, or the leading thread interrupted)
    while seven others queue behind it: the first hears of it, nothing of its group is
    left on disk, and the seven are written together by the next leader. No caller is left
    asleep."""
    log = AuditLog(tmp_path / "log", "rt_test")
    log.append([{"kind": "note", "start": True}])
    calls, flushing, release = _hold_first_fsync(monkeypatch, failure)
    outcome: dict[int, object] = {}

    def worker(w: int) -> None:
        try:
            outcome[w] = log.append([{"kind": "note", "w": w}])[-1]["w"]
        except BaseException as exc:  # what the caller would hear
            outcome[w] = exc

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    threads[0].start()
    assert flushing.wait(60)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 60
    while len(log._pending) < 7 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a caller was left asleep"
    expected = AuditWriteError if isinstance(failure, OSError) else KeyboardInterrupt
    assert isinstance(outcome[0], expected)
    assert {w: outcome[w] for w in range(1, 8)} == {w: w for w in range(1, 8)}
    # the failed flush, the flush of its take-back (the group cut off), one for the seven
    assert len(calls) == 3
    entries = _entries_on_disk(tmp_path / "log")
    assert sorted(e["w"] for e in entries if "w" in e) == list(range(1, 8))
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


class _Interrupted(Exception):
    """Stands for Ctrl-C: raised in the main thread where it waits."""


@pytest.mark.parametrize("when", ["asleep", "handed the lead"])
def test_a_caller_interrupted_while_it_waits_leaves_the_queue(tmp_path, monkeypatch,
                                                              when) -> None:
    """The main thread's append waits behind another thread's write, with a third caller
    queued behind it, and is interrupted: while asleep (a signal), or just as the lead is
    handed to it. It hears of it and its entry is not written; the caller behind it is
    written by the next leader, and the log goes on. Nobody waits for a leader that never
    comes."""
    log = AuditLog(tmp_path / "log", "rt_test")
    log.append([{"kind": "note", "start": True}])
    _, flushing, release = _hold_first_fsync(monkeypatch)
    main = threading.main_thread()
    real_lock = threading.Lock

    class InterruptedOnWaking:
        """The main thread's wake lock: woken, it raises as a signal arriving then would."""

        def __init__(self) -> None:
            self.lock, self.taken = real_lock(), False

        def acquire(self) -> bool:
            self.lock.acquire()
            if self.taken:
                raise _Interrupted()
            self.taken = True
            return True

        def release(self) -> None:
            self.lock.release()

    if when == "handed the lead":  # the log's own locks only, not the threading module's
        monkeypatch.setattr(log_module, "threading", SimpleNamespace(
            Lock=lambda: InterruptedOnWaking() if threading.current_thread() is main
            else real_lock(), RLock=threading.RLock))
    signal.signal(signal.SIGUSR1, lambda *_: (_ for _ in ()).throw(_Interrupted()))
    answered: dict[str, object] = {}

    def append(name: str) -> None:
        answered[name] = log.append([{"kind": "note", "who": name}])[-1]["who"]

    def queued(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(log._pending) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(log._pending) == count

    def conduct() -> None:
        queued(1)  # the main thread waits behind the first writer's held flush
        behind.start()
        queued(2)
        if when == "asleep":
            signal.pthread_kill(main.ident, signal.SIGUSR1)
            while log._pending and log._pending[0].entries[0]["who"] == "main":
                time.sleep(0.001)
        release.set()

    first = threading.Thread(target=append, args=("first",))
    behind = threading.Thread(target=append, args=("behind",))
    conductor = threading.Thread(target=conduct)
    try:
        first.start()
        assert flushing.wait(60)
        conductor.start()
        with pytest.raises(_Interrupted):
            append("main")
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        release.set()
    for thread in (conductor, first, behind):
        thread.join(60)
        assert not thread.is_alive(), "a caller was left waiting"
    assert answered == {"first": "first", "behind": "behind"}
    log.append([{"kind": "note", "who": "after"}])  # the lead was not lost
    written = [e.get("who") for e in _entries_on_disk(tmp_path / "log")]
    assert written == [None, "first", "behind", "after"]


def test_a_bad_entry_fails_only_its_own_caller(tmp_path) -> None:
    log = AuditLog(tmp_path / "log", "rt_test")
    errors: list[BaseException] = []
    done: list[int] = []

    def good(i: int) -> None:
        log.append([{"kind": "note", "i": i}])
        done.append(i)

    def bad() -> None:
        try:
            log.append([{"kind": "note", "value": object()}])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=good, args=(i,)) for i in range(6)]
    threads.insert(3, threading.Thread(target=bad))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1 and sorted(done) == list(range(6))
    assert len(_entries_on_disk(tmp_path / "log")) == 6


CHILD = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from runestone.audit import AuditLog
    log = AuditLog(Path(sys.argv[1]), "rt_kill")
    out = sys.stdout
    lock = threading.Lock()
    def worker(w):
        i = 0
        while True:
            log.append([{"kind": "note", "w": w, "i": i, "pad": "x" * 200}])
            with lock:
                out.write(f"{w} {i}\\n")
                out.flush()
            i += 1
    for w in range(8):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    threading.Event().wait()
""")


def test_kill_9_during_group_commit_loses_no_acknowledged_entry(tmp_path) -> None:
    directory = tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory)],
                             stdout=subprocess.PIPE, text=True)
    acknowledged: list[tuple[int, int]] = []
    deadline = time.monotonic() + 30
    assert child.stdout is not None
    while len(acknowledged) < 400 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        w, i = line.split()
        acknowledged.append((int(w), int(i)))
    os.kill(child.pid, signal.SIGKILL)  # in the middle of group writes
    rest = child.stdout.read()  # acknowledgements already written before the kill
    child.wait(10)
    for line in rest.splitlines():
        if len(line.split()) == 2:
            w, i = line.split()
            acknowledged.append((int(w), int(i)))
    assert len(acknowledged) >= 400
    on_disk = {(e.get("w"), e.get("i")) for e in _entries_on_disk(directory)}
    missing = [pair for pair in acknowledged if pair not in on_disk]
    assert not missing, missing[:10]
    # And the log is whole: the next writer repairs any torn tail and the chain verifies.
    AuditLog(directory, "rt_kill").append([{"kind": "note", "after": True}])
    seqs = [e["seq"] for e in _entries_on_disk(directory)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_append_many_writes_every_batch_with_one_fsync(tmp_path, monkeypatch) -> None:
    log = AuditLog(tmp_path / "log", "rt_test")
    log.append([{"kind": "note", "start": True}])
    calls = []
    real = os.fsync
    monkeypatch.setattr(log_module.os, "fsync", lambda fd: calls.append(fd) or real(fd))
    results = log.append_many([[{"kind": "note", "i": 0}],
                               [{"kind": "note", "bad": object()}],
                               [{"kind": "note", "i": 1}, {"kind": "note", "i": 2}]])
    assert len(calls) == 1
    assert isinstance(results[1], Exception)  # the entry that is not JSON fails alone
    assert [e["i"] for e in results[0]] == [0] and [e["i"] for e in results[2]] == [1, 2]
    assert [e.get("i") for e in _entries_on_disk(tmp_path / "log")] == [None, 0, 1, 2]
