"""How decision time grows: by command length (10 to 10,000 characters) and by `$( )` nesting
depth, each beside `bash -n` parsing the same command, measured in the same run.

The baseline is bash's own parser: a script holding the command REPEAT times is checked with
`bash -n`, less the same run on an empty script, divided by REPEAT (so process start-up is
not counted). The decision is in-process (`Gatekeeper.check`, default preset, no audit),
median of --runs.

Usage: python bench/growth.py [--runs 30] [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from runestone.actions import Action
from runestone.effects.reader import forget_readings
from runestone.gatekeeper import Gatekeeper
from runestone.policy import load_preset
from runestone.shell.dialect import forget_analyses

PIECES = ["git status", "ls -la src/", "grep -rn 'TODO' src/ | head -20", "npm test",
          "cat README.md", "python -m pytest -q tests/", "echo \"done: $HOME\"",
          "find . -name '*.py' -newer setup.cfg"]


def command_of_length(length: int) -> str:
    """Everyday commands joined by `&&`, as many as fit, padded with spaces to `length`."""
    parts = [PIECES[0]]
    while len(" && ".join([*parts, PIECES[len(parts) % len(PIECES)]])) <= length:
        parts.append(PIECES[len(parts) % len(PIECES)])
    return " && ".join(parts).ljust(length)


def nested(depth: int) -> str:
    text = "echo hi"
    for _ in range(depth):
        text = f"echo $({text})"
    return text


def decision_us(gatekeeper: Gatekeeper, command: str, runs: int) -> float:
    action = Action("Bash", {"command": command}, "/tmp/project", session="bench")
    gatekeeper.check(action)
    samples = []
    for _ in range(runs):
        forget_analyses()  # the command's analysis is what grows: never a memo hit here
        forget_readings()
        start = time.perf_counter_ns()
        gatekeeper.check(action)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def bash_n_us(command: str, repeat: int, runs: int = 5) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        full, empty = os.path.join(tmp, "full.sh"), os.path.join(tmp, "empty.sh")
        with open(full, "w", encoding="utf-8") as file:
            file.write((command + "\n") * repeat)
        with open(empty, "w", encoding="utf-8") as file:
            file.write("")

        def timed(path: str) -> float:
            values = []
            for _ in range(runs):
                start = time.perf_counter_ns()
                subprocess.run(["bash", "-n", path], check=False)
                values.append(time.perf_counter_ns() - start)
            return statistics.median(values)

        return max(0.01, (timed(full) - timed(empty)) / repeat / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    gatekeeper = Gatekeeper(load_preset("default"), home="/tmp/home")
    print("decision time by command length (median µs; bash -n on the same command)")
    for length in (10, 100, 1000, 5000, 10_000):
        command = command_of_length(length)
        ours = decision_us(gatekeeper, command, args.runs)
        base = bash_n_us(command, max(args.repeat, 400_000 // length))
        print(f"  {len(command):>6} chars   decision {ours:9.1f} µs   bash -n {base:8.1f} µs"
              f"   ({ours / base:6.1f}x)   {ours / len(command):5.2f} µs/char")
    print("decision time by $( ) nesting depth")
    for depth in (1, 2, 4, 8, 16, 32):
        command = nested(depth)
        ours = decision_us(gatekeeper, command, args.runs)
        base = bash_n_us(command, max(args.repeat, 400_000 // len(command)))
        print(f"  depth {depth:>3}   decision {ours:9.1f} µs   bash -n {base:8.1f} µs"
              f"   ({ours / base:6.1f}x)")


if __name__ == "__main__":
    main()
