"""Decision latency: in-process per decision, and whole-process `runestone check`.

Prints, in one run:
  - median and p99 microseconds per decision in-process over the shared corpus with the
    `default` preset (shell analysis, facts and policy evaluation included): each action
    decided before (the decision memo), with that memo emptied, and as if new (every memo
    emptied);
  - the whole-process time of `runestone check` for one action on an initialised runtime
    (interpreter start-up, imports, policy loading and the fsynced audit write included),
    beside `python -c pass` measured in the same run.

Usage: python bench/decide.py [--corpus ../shared/corpus] [--rounds 30] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runestone.actions import action_from_hook_json
from runestone.corpus import infer_home
from runestone.effects.reader import forget_readings
from runestone.gatekeeper import Gatekeeper
from runestone.policy import load_preset
from runestone.shell.dialect import forget_analyses

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def bench_in_process(corpus: Path, preset: str, rounds: int) -> tuple[list[float], list[float]]:
    gatekeeper = Gatekeeper(load_preset(preset))
    cases = []
    for path in sorted(corpus.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                data = json.loads(line)
                cases.append((action_from_hook_json(data), infer_home(data.get("cwd", ""))))
    for action, home in cases:  # warm-up: parser, regex and glob caches
        gatekeeper.home = home
        gatekeeper.check(action)
    samples: list[float] = []
    unremembered: list[float] = []
    first_sight: list[float] = []
    baseline: list[float] = []
    for _ in range(rounds):
        # Each action decided again just after it was decided twice, as an agent repeats
        # `git status` between edits: the decision memo (runestone.memo, which keeps an
        # action from its second decision on) answers, once the action's paths resolve where
        # they did. (Cycling through the whole corpus instead would find nothing: it holds
        # more actions than the memo keeps.)
        for action, home in cases:
            gatekeeper.home = home
            gatekeeper.check(action)
            gatekeeper.check(action)
            start = time.perf_counter_ns()
            gatekeeper.check(action)
            samples.append((time.perf_counter_ns() - start) / 1000)
            start = time.perf_counter_ns()
            _ = action.hash
            baseline.append((time.perf_counter_ns() - start) / 1000)
        # The same decisions with the decision memo (runestone.memo) emptied before each:
        # the command's analysis and reading are still reused, its paths placed and its
        # rules tried again.
        for action, home in cases:
            gatekeeper.home = home
            gatekeeper.forget_decisions()
            start = time.perf_counter_ns()
            gatekeeper.check(action)
            unremembered.append((time.perf_counter_ns() - start) / 1000)
        # As if each command were new: the memos of shell analyses (runestone.shell.dialect)
        # and of readings (runestone.effects.reader) emptied too, so nothing is reused.
        for action, home in cases:
            gatekeeper.home = home
            gatekeeper.forget_decisions()
            forget_analyses()
            forget_readings()
            start = time.perf_counter_ns()
            gatekeeper.check(action)
            first_sight.append((time.perf_counter_ns() - start) / 1000)
        for action, home in cases:  # the memos as the first pass of the next round found them
            gatekeeper.home = home
            gatekeeper.check(action)
    return samples, unremembered, first_sight, baseline


def time_process(argv: list[str], stdin: bytes, runs: int, env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, check=True, env=env)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    samples, unremembered, first_sight, baseline = bench_in_process(
        Path(args.corpus), args.preset, args.rounds)
    median, base = statistics.median(samples), statistics.median(baseline)
    print(f"in-process decision ({args.preset} preset, {len(samples)} decisions over the corpus)")
    print(f"  median {median:8.1f} µs   p99 {percentile(samples, 0.99):8.1f} µs"
          f"   (each action decided again: remembered, its paths resolved anew; "
          "target ≤ 30 µs)")
    again = statistics.median(unremembered)
    print(f"  median {again:8.1f} µs   p99 {percentile(unremembered, 0.99):8.1f} µs"
          "   (the decision memo emptied before each: analysis and reading reused)")
    first = statistics.median(first_sight)
    print(f"  median {first:8.1f} µs   p99 {percentile(first_sight, 0.99):8.1f} µs"
          "   (each command as if new: both memos emptied before each decision)")
    print(f"  baseline: the action's own hash (canonical JSON + SHA-256), same actions: "
          f"median {base:.1f} µs; a decision costs {median / base:.0f}x that")

    action = json.dumps({"tool_name": "Bash", "tool_input": {"command": "git status"},
                         "cwd": str(ROOT)}).encode()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, RUNESTONE_HOME=home)
        # A normal install runs from bytecode; some sandboxes forbid writing it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # An initialised runtime, so the measured path includes the fsynced audit entries.
        subprocess.run([sys.executable, "-m", "runestone", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        check = [sys.executable, "-m", "runestone", "check", "--preset", args.preset]
        time_process(check, action, 2, env)  # warm the OS cache and the verified-policy cache
        bare = time_process([sys.executable, "-c", "pass"], b"", args.runs, env)
        whole = time_process(check, action, args.runs, env)
    bare_median, whole_median = statistics.median(bare), statistics.median(whole)
    print(f"whole process, {args.runs} runs each (median)")
    print(f"  python -c pass         {bare_median:8.1f} ms")
    print(f"  runestone check        {whole_median:8.1f} ms   ({whole_median / bare_median:.1f}x"
          " bare python)")


if __name__ == "__main__":
    main()
