"""Call links (pre hook -> post hook): append-only hourly segments whose upkeep is flat."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from runestone.integrations.links import (
    HOUR,
    KEEP_SECONDS,
    CallLinks,
    DeferredCallLinks,
    _chunks,
)

START = 1_800_000_000.0  # a fixed instant, so segment names are known


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_recall_finds_what_was_remembered_and_the_newest_wins(tmp_path: Path) -> None:
    links = CallLinks(tmp_path / "calls", Clock())
    links.remember("toolu_1", "req_aaa")
    links.remember("toolu_2", "req_bbb")
    links.remember("toolu_1", "req_ccc")
    other = CallLinks(tmp_path / "calls", Clock())  # another hook process
    assert other.recall("toolu_1") == "req_ccc"
    assert other.recall("toolu_2") == "req_bbb"
    assert other.recall("toolu_3") == ""
    assert other.recall("") == ""


def test_a_link_is_found_across_hours_until_it_is_a_day_old(tmp_path: Path) -> None:
    clock = Clock()
    links = CallLinks(tmp_path / "calls", clock)
    links.remember("early", "req_early")
    clock.now += 5 * HOUR
    links.remember("later", "req_later")
    assert links.recall("early") == "req_early"
    clock.now += KEEP_SECONDS + 2 * HOUR
    links.remember("new", "req_new")  # starts a segment, which prunes
    assert links.recall("early") == ""
    assert links.recall("new") == "req_new"
    assert sorted(os.listdir(tmp_path / "calls")) == [
        name for name in sorted(os.listdir(tmp_path / "calls")) if name.startswith("links-")]
    assert len(os.listdir(tmp_path / "calls")) == 1


def test_the_directory_stays_small_however_many_links(tmp_path: Path) -> None:
    """The per-call layout left one file per call for a day, and scanned them all to prune:
    100k links meant a 100k-entry directory. Segments keep it at about 26 files."""
    clock = Clock()
    links = CallLinks(tmp_path / "calls", clock)
    for hour in range(60):
        for n in range(50):
            links.remember(f"call-{hour}-{n}", f"req_{hour:04d}{n:04d}")
        clock.now += HOUR
    names = os.listdir(tmp_path / "calls")
    assert len(names) <= KEEP_SECONDS // HOUR + 2
    assert links.recall("call-59-49") == "req_00590049"
    assert links.recall("call-10-0") == ""  # older than a day


def test_refuses_a_request_id_that_would_break_the_line(tmp_path: Path) -> None:
    links = CallLinks(tmp_path / "calls", Clock())
    links.remember("a", "req_x\nfake")
    links.remember("b", "req y")
    assert links.recall("a") == "" and links.recall("b") == ""
    links.remember("a", "req_ok")
    assert links.recall("a") == "req_ok"


def test_a_link_of_the_per_call_layout_is_still_recalled_and_old_ones_go(tmp_path: Path) -> None:
    from runestone.digest import sha256

    directory = tmp_path / "calls"
    directory.mkdir()
    legacy = directory / sha256(b"toolu_old").hexdigest()[:40]
    legacy.write_text("req_legacy", encoding="utf-8")
    stale = directory / sha256(b"toolu_stale").hexdigest()[:40]
    stale.write_text("req_stale", encoding="utf-8")
    os.utime(stale, (START - 2 * KEEP_SECONDS, START - 2 * KEEP_SECONDS))
    os.utime(legacy, (START, START))
    links = CallLinks(directory, Clock())
    assert links.recall("toolu_old") == "req_legacy"
    links.remember("toolu_new", "req_new")  # first segment: prunes
    assert not stale.exists()
    assert legacy.exists()


def test_an_unwritable_directory_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "calls"
    blocker.write_text("not a directory")
    links = CallLinks(blocker, Clock())
    links.remember("a", "req_a")
    assert links.recall("a") == ""


def _append_many(directory: str, worker: int, count: int) -> None:
    links = CallLinks(Path(directory), Clock())
    for n in range(count):
        links.remember(f"w{worker}-{n}", f"req_{worker:02d}{n:06d}")


def _assert_every_link_whole(reader: CallLinks, prefix: str, workers: int, each: int) -> None:
    """Links `{prefix}{w}-{n}` -> `req_{w:02d}{n:06d}` from `workers` writers of `each`: the
    first, middle and last of each are found, and the segments hold every line, whole."""
    for w in range(workers):
        for n in (0, each // 2, each - 1):
            assert reader.recall(f"{prefix}{w}-{n}") == f"req_{w:02d}{n:06d}"
    lines = b"".join(path.read_bytes() for path in reader.directory.iterdir()).splitlines()
    assert len(lines) == workers * each
    assert all(len(line) == 40 + 1 + 12 for line in lines)


def test_concurrent_hook_processes_never_tear_a_line(tmp_path: Path) -> None:
    directory = tmp_path / "calls"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(directory), w, 400))
               for w in range(6)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    _assert_every_link_whole(CallLinks(directory, Clock()), "w", workers=6, each=400)


def test_the_daemons_links_reach_the_disk_in_whole_lines(tmp_path: Path) -> None:
    """The daemon queues links and a thread writes them in batches: every one arrives, in
    whole lines, for a hook process that reads the disk; `flush` waits for them."""
    directory = tmp_path / "calls"
    links = DeferredCallLinks(directory)
    threads = [threading.Thread(target=lambda w=w: [links.remember(f"d{w}-{n}",
                                                                   f"req_{w:02d}{n:06d}")
                                                    for n in range(300)])
               for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert links.recall("d3-299") == "req_03000299"  # from memory, at once
    assert links.flush()
    _assert_every_link_whole(CallLinks(directory), "d", workers=4, each=300)


def test_a_queued_link_is_written_without_a_flush(tmp_path: Path) -> None:
    links = DeferredCallLinks(tmp_path / "calls")
    links.remember("toolu_x", "req_x")
    reader = CallLinks(tmp_path / "calls")
    deadline = time.monotonic() + 5
    while reader.recall("toolu_x") != "req_x":
        assert time.monotonic() < deadline, "the link never reached the disk"
        time.sleep(0.01)


@given(st.lists(st.binary(min_size=1, max_size=120), max_size=60),
       st.integers(min_value=1, max_value=300))
def test_chunks_keep_every_line_whole_and_in_order(lines: list[bytes], limit: int) -> None:
    """Each write is whole lines, in order, at most `limit` bytes unless one line is longer."""
    left = list(lines)
    for chunk in _chunks(lines, limit):
        taken: list[bytes] = []
        while sum(map(len, taken)) < len(chunk):
            taken.append(left.pop(0))
        assert b"".join(taken) == chunk
        assert len(chunk) <= limit or len(taken) == 1
    assert left == []


def test_a_call_id_with_a_lone_surrogate_is_linked_and_stops_nothing(tmp_path: Path) -> None:
    """JSON may carry `"\\ud800"`, which plain UTF-8 refuses: the in-process hook denied
    with an internal error, and the daemon's writer thread died, leaving every later link
    unwritten and its queue to grow."""
    odd = "toolu_\ud800"
    links = CallLinks(tmp_path / "plain")
    links.remember(odd, "req_odd")
    assert CallLinks(tmp_path / "plain").recall(odd) == "req_odd"
    deferred = DeferredCallLinks(tmp_path / "daemon")
    deferred.remember(odd, "req_odd")
    assert deferred.flush()
    deferred.remember("toolu_after", "req_after")
    assert deferred.flush()
    reader = CallLinks(tmp_path / "daemon")
    assert reader.recall(odd) == "req_odd"
    assert reader.recall("toolu_after") == "req_after"
