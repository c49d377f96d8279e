"""Audit log throughput and its cost on the decision path, printed side by side in one run.

  - durable appends per second (each append written and fsynced) for one process, and for
    8 concurrent processes sharing one log;
  - decision latency with the audit write included vs without, over the same actions.

  - `audit verify` time and peak memory (the child process's max RSS) at each size of
    --verify-sizes, beside a baseline in the same run: a child that only reads every line
    of the same segments and parses it as JSON (the floor for any JSON-lines verifier).

`--baseline SRC` adds the threads' appends of another copy of the code (`PYTHONPATH=SRC`,
e.g. main's `src` extracted with `git archive`): each round runs this code's paired raw and
log appends, then SRC's, in two child processes taking turns, so a change is measured
against what it replaces under the same disk's drift.

Usage: python bench/audit.py [--appends 2000] [--rounds 10] [--processes 8] [--decisions 300]
                             [--verify-sizes 10000,100000,1000000] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from runestone.actions import Action
from runestone.gatekeeper import Gatekeeper
from runestone.home import Layout
from runestone.identity import create_identity
from runestone.policy import load_preset

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from runestone.audit import AuditLog
    log = AuditLog(Path(sys.argv[1]), sys.argv[2])
    for i in range(int(sys.argv[3])):
        log.append([{"kind": "note", "i": i, "pad": "x" * 300}])
""")

ACTIONS = [
    Action("Bash", {"command": "git status"}, "/home/dev/app", session="bench"),
    Action("Bash", {"command": "npm test 2>&1 | tail -50"}, "/home/dev/app", session="bench"),
    Action("Bash", {"command": "rm -rf ~"}, "/home/dev/app", session="bench"),
    Action("Read", {"file_path": "/home/dev/app/src/app.py"}, "/home/dev/app", session="bench"),
]


VERIFY = textwrap.dedent("""
    import resource, sys, time
    from pathlib import Path
    start = time.perf_counter()
    if sys.argv[1] == "verify":
        from runestone.audit import verify_log
        report = verify_log(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        assert report.ok, report.problem
    else:
        import json
        for path in sorted(Path(sys.argv[2]).glob("segment-*.jsonl")):
            with open(path, "rb") as file:
                for line in file:
                    json.loads(line)
    seconds = time.perf_counter() - start
    print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def verify_figures(root: Path, sizes: list[int]) -> None:
    from runestone.audit import AuditLog
    from runestone.audit.checkpoint import Signer

    layout = Layout(root / "verify-home", root / "verify-home" / "state")
    identity = create_identity(layout)
    print("audit verify: whole chain, time and peak memory (max RSS of the process)")
    for size in sizes:
        directory = root / f"verify-{size}"
        log = AuditLog(directory, identity.runtime_id, signer=Signer(layout.private_key_file))
        for start in range(0, size, 5000):
            log.append([{"kind": "decision", "i": i, "tool": "Bash", "decision": "allow",
                         "summary": "git status " + "x" * 150}
                        for i in range(start, min(size, start + 5000))])
        log.checkpoint()
        log.close()
        figures = {}
        for mode in ("baseline", "verify"):
            out = subprocess.run([sys.executable, "-c", VERIFY, mode, str(directory),
                                  identity.runtime_id, identity.public_key],
                                 capture_output=True, text=True, check=True).stdout.split()
            figures[mode] = (float(out[0]), int(out[1]) / 1024)
        (base_s, base_mb), (verify_s, verify_mb) = figures["baseline"], figures["verify"]
        print(f"  {size:>9,} entries   verify {verify_s:7.2f} s {verify_mb:6.1f} MiB   "
              f"baseline (read + parse) {base_s:7.2f} s {base_mb:6.1f} MiB   "
              f"({verify_s / base_s:.1f}x time)")


FSYNCS: list[int] = []  # fsyncs of the audit log's segments during `threaded` runs


LOGS: dict[Path, object] = {}


def logged_line() -> bytes:
    """A line as the audit log writes the bench's entry (sealed: seq, prev, hash, time,
    runtime; ~550 bytes), so raw write + fsync makes as many bytes durable as the log does
    (the baseline wrote 322-byte lines before: less for the disk to do than the log)."""
    from runestone.audit import AuditLog

    with tempfile.TemporaryDirectory() as tmp:
        AuditLog(Path(tmp), "rt_bench").append([{"kind": "note", "i": 0, "pad": "x" * 300}])
        return next(Path(tmp).glob("segment-*.jsonl")).read_bytes()


def threaded(directory: Path, threads: int, each: int, raw: bool) -> float:
    """Appends per second from `threads` threads of one process (the daemon's case): through
    the audit log (group commit), or raw write + fsync of a line of the same size. The log's
    fsyncs are counted in FSYNCS (how many appends share one)."""
    import threading

    from runestone.audit import AuditLog
    from runestone.audit import log as log_module

    directory.mkdir(parents=True, exist_ok=True)
    # One log per directory across rounds, as a daemon keeps its own: a new AuditLog reads
    # the head back from disk on its first append, a cost a round of a few dozen appends
    # would otherwise carry every time.
    log = LOGS.setdefault(directory, AuditLog(directory, "rt_bench"))
    line = logged_line()

    def work() -> None:
        if raw:
            fd = os.open(directory / "raw.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            for _ in range(each):
                os.write(fd, line)
                os.fsync(fd)
            os.close(fd)
        else:
            for i in range(each):
                log.append([{"kind": "note", "i": i, "pad": "x" * 300}])

    real_fsync = os.fsync

    def counted(fd: int) -> None:
        FSYNCS.append(fd)
        real_fsync(fd)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    if not raw:
        log_module.os.fsync = counted  # the os module itself: restored below
    try:
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - start
    finally:
        log_module.os.fsync = real_fsync
    return threads * each / seconds


def paired_round(directory: Path, threads: int, each: int) -> tuple[float, float]:
    """One round of raw write+fsync then the log's appends, from `threads` threads: the
    log's rate over the raw rate, and appends per fsync."""
    FSYNCS.clear()
    raw = threaded(directory / f"raw-{threads}", threads, each, raw=True)
    log = threaded(directory / f"log-{threads}", threads, each, raw=False)
    return log / raw, threads * each / max(1, len(FSYNCS))


def versus_baseline(root: Path, source: str, rounds: int, appends: int) -> None:
    """This code's paired rounds beside SRC's, in child processes taking turns."""
    trees = {"this code": os.environ.get("PYTHONPATH", ""),
             "code at SRC": os.pathsep.join(
                 p for p in (str(Path(source).resolve()), os.environ.get("PYTHONPATH", ""))
                 if p)}
    print(f"threads' appends beside raw write+fsync, this code and the code at SRC ({source}) "
          f"in turns ({rounds} rounds, median of paired ratios)")
    for count in (1, 8):
        each = max(20, appends // count // rounds)
        ratios: dict[str, list[float]] = {name: [] for name in trees}
        for number in range(rounds):
            for name in (list(trees) if number % 2 == 0 else list(trees)[::-1]):
                out = subprocess.run(
                    [sys.executable, __file__, "--paired-round", str(root / name), str(count),
                     str(each)], env={**os.environ, "PYTHONPATH": trees[name]},
                    capture_output=True, text=True, check=True).stdout.split()
                ratios[name].append(float(out[0]))
        mine, theirs = (statistics.median(ratios[name]) for name in trees)
        print(f"  {count} writer{'s' if count > 1 else ' '}   this code {mine:.2f}x raw   "
              f"code at SRC {theirs:.2f}x raw   (this code's rate over SRC's: "
              f"{mine / theirs:.3f})")


def appends_per_second(directory: Path, count: int) -> float:
    from runestone.audit import AuditLog

    log = AuditLog(directory, "rt_bench")
    start = time.perf_counter()
    for i in range(count):
        log.append([{"kind": "note", "i": i, "pad": "x" * 300}])
    return count / (time.perf_counter() - start)


def concurrent_appends_per_second(directory: Path, processes: int, each: int) -> float:
    start = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(directory), "rt_bench",
                                 str(each)]) for _ in range(processes)]
    for worker in workers:
        if worker.wait() != 0:
            raise SystemExit("a worker failed")
    return processes * each / (time.perf_counter() - start)


def decision_latency(gatekeeper: Gatekeeper, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        for action in ACTIONS:
            start = time.perf_counter_ns()
            gatekeeper.check(action)
            samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved rounds of raw and audit-log appends (fsync times "
                             "drift on a shared disk, so each round pairs the two)")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--verify-sizes", default="10000,100000,1000000")
    parser.add_argument("--only-verify", action="store_true")
    parser.add_argument("--baseline", metavar="SRC",
                        help="also run the threads' appends with PYTHONPATH=SRC, in turns")
    parser.add_argument("--paired-round", nargs=3, help=argparse.SUPPRESS)  # a child's round
    args = parser.parse_args()
    if args.paired_round:
        directory, threads, each = args.paired_round
        ratio, per_fsync = paired_round(Path(directory), int(threads), int(each))
        print(ratio, per_fsync)
        return
    if args.only_verify:
        with tempfile.TemporaryDirectory() as tmp:
            verify_figures(Path(tmp), [int(n) for n in args.verify_sizes.split(",")])
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = appends_per_second(root / "one", args.appends)
        many = concurrent_appends_per_second(root / "many", args.processes,
                                             args.appends // 2)
        print("durable appends per second (write + fsync each)")
        print(f"  1 process            {one:10.0f} /s")
        print(f"  {args.processes} processes          {many:10.0f} /s  (one shared log, flock)")
        print("durable appends per second, threads of one process (group commit) beside raw "
              f"write + fsync on the same disk ({args.rounds} interleaved rounds, medians)")
        for count in (1, 8):
            each = max(20, args.appends // count // args.rounds)
            raws, ours, ratios = [], [], []
            fsyncs = 0
            for _ in range(args.rounds):
                FSYNCS.clear()
                raw = threaded(root / f"raw-{count}", count, each, raw=True)
                log = threaded(root / f"log-{count}", count, each, raw=False)
                fsyncs += len(FSYNCS)
                raws.append(raw)
                ours.append(log)
                ratios.append(log / raw)
            print(f"  {count} writer{'s' if count > 1 else ' '}            "
                  f"{statistics.median(ours):10.0f} /s   raw write+fsync "
                  f"{statistics.median(raws):8.0f} /s   (median of paired ratios "
                  f"{statistics.median(ratios):.2f}x; "
                  f"{count * each * args.rounds / fsyncs:.1f} appends per fsync)")
        if args.baseline:
            versus_baseline(root, args.baseline, args.rounds, args.appends)

        layout = Layout(root / "home", root / "home" / "state")
        os.environ["RUNESTONE_HOME"] = str(root / "home")
        create_identity(layout)
        policy = load_preset("developer")
        plain = Gatekeeper(policy, home="/home/dev")
        audited = Gatekeeper.from_layout(layout, preset="developer", home="/home/dev")
        rounds = max(1, args.decisions // len(ACTIONS))
        decision_latency(plain, 3)
        decision_latency(audited, 3)
        without = decision_latency(plain, rounds)
        with_audit = decision_latency(audited, rounds)
        median_without = statistics.median(without)
        median_with = statistics.median(with_audit)
        print("decision latency, median over the same actions")
        print(f"  without audit        {median_without:10.1f} µs")
        print(f"  with audit (fsync)   {median_with:10.1f} µs   "
              f"(+{median_with - median_without:.1f} µs, {median_with / median_without:.1f}x)")
        verify_figures(root, [int(n) for n in args.verify_sizes.split(",")])


if __name__ == "__main__":
    main()
