"""Start-up cost of the sandbox: a sandboxed `true` against a bare `true`, and a sandboxed
`pytest -q` of a small project against a bare one, in the same run, interleaved.

Rows, each the median of its samples:
  - bare: the command itself;
  - bwrap: the command under bubblewrap with the `default` profile's exact command line
    (what `runestone sandbox run` starts): the cost of the sandbox itself;
  - sandbox run: the whole `runestone sandbox run --profile default -- CMD` command line,
    which adds a Python interpreter's start-up, resolving the profile and the probe cache
    (what a rewritten Claude Code command pays);
  - python -c pass: an interpreter's bare start-up here, for scale.

Usage: python bench/sandbox.py [--samples 40] [--pytest-samples 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runestone.audit.records import new_request_id
from runestone.home import layout
from runestone.sandbox.handoff import write_pending
from runestone.sandbox.profiles import Profile, resolve
from runestone.sandbox.run import prepare

SMALL_TESTS = '''
def add(a, b):
    return a + b


def test_add():
    assert add(2, 3) == 5


def test_strings():
    assert "sand" + "box" == "sandbox"


def test_many():
    assert sum(range(100)) == 4950
'''


def timed(argv: list[str], cwd: str, env: dict[str, str] | None = None,
          fds: tuple[int, ...] = ()) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, pass_fds=fds)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]}... exited {done.returncode}")
    return elapsed


# A row: a command line and its environment, or a context manager factory giving them
# fresh for each sample (a hook's handed-over command runs once; bubblewrap reads the
# seccomp program's descriptor to its end).
Row = tuple[list[str], dict[str, str] | None] | Callable[[], Any]


def _sample(row: Row, cwd: str) -> float:
    if callable(row):
        with row() as (argv, env, fds):
            return timed(argv, cwd, env, fds)
    argv, env = row
    return timed(argv, cwd, env)


def measure(rows: dict[str, Row], cwd: str, samples: int) -> dict[str, list[float]]:
    """Every row once per round, rounds repeated: load on the machine hits all alike."""
    times: dict[str, list[float]] = {label: [] for label in rows}
    for row in rows.values():  # warm caches once, unrecorded
        _sample(row, cwd)
    for _ in range(samples):
        for label, row in rows.items():
            times[label].append(_sample(row, cwd))
    return times


def under_bwrap(command: list[str], profile: Profile, project: Path) -> Callable[[], Any]:
    """The command under bubblewrap exactly as `sandbox run` starts it (set up outside the
    timing: only bubblewrap and the command are measured)."""

    @contextmanager
    def make() -> Iterator[tuple[list[str], dict[str, str], tuple[int, ...]]]:
        with prepare(command, profile, project=str(project), cwd=str(project)) as ready:
            yield ready.argv, ready.env, ready.fds

    return make


def handed_over(state_dir: Path, command: str, project: Path, profile: Profile
                ) -> Callable[[], Any]:
    """What a Claude Code hook's rewritten command runs: a stored command, by request id."""

    @contextmanager
    def make() -> Iterator[tuple[list[str], None, tuple[int, ...]]]:
        request_id = new_request_id()
        write_pending(state_dir, request_id, {
            "command": command, "cwd": str(project), "project": str(project),
            "profile": profile.spec(), "profile_hash": profile.hash, "action_hash": ""})
        yield [sys.executable, "-m", "runestone", "sandbox", "run", "--request",
               request_id], None, ()

    return make


def report(title: str, times: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(times[baseline])
    print(f"\n{title}")
    for label, values in times.items():
        median = statistics.median(values)
        added = median - base
        print(f"  {label:34} {median:8.2f} ms   {median / base:6.2f}x   "
              f"{'+' if added >= 0 else ''}{added:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--pytest-samples", type=int, default=9)
    args = parser.parse_args()
    profile = resolve("default", {})
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as temp:
        project = Path(temp) / "project"
        project.mkdir()
        (project / "test_small.py").write_text(SMALL_TESTS)
        os.environ.setdefault("RUNESTONE_HOME", str(Path(temp) / "runestone-home"))
        # A normal install runs from bytecode; some machines forbid writing it.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        cli = [sys.executable, "-m", "runestone", "sandbox", "run", "--profile", "default",
               "--project", str(project), "--"]
        true = ["/bin/true"]
        # Without the plugins this checkout's environment installs (hypothesis,
        # schemathesis, playwright...): a small project's pytest, not this one's.
        pytest = ["/usr/bin/env", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1", sys.executable, "-m",
                  "pytest", "-q", "-p", "no:cacheprovider"]
        rows: dict[str, Row] = {
            "true (bare)": (true, None),
            "true under bwrap (default profile)": under_bwrap(true, profile, project),
            "runestone sandbox run -- true": ([*cli, *true], None),
            "sandbox run --request (hook's)": handed_over(layout().state_dir, "true",
                                                          project, profile),
            "python -c pass": ([sys.executable, "-c", "pass"], None),
        }
        report(f"true: median of {args.samples}, interleaved",
               measure(rows, str(project), args.samples), "true (bare)")
        rows = {
            "pytest -q (bare)": (pytest, None),
            "pytest -q under bwrap": under_bwrap(pytest, profile, project),
            "runestone sandbox run -- pytest -q": ([*cli, *pytest], None),
        }
        report(f"pytest -q of a 3-test project: median of {args.pytest_samples}, "
               "interleaved", measure(rows, str(project), args.pytest_samples),
               "pytest -q (bare)")


if __name__ == "__main__":
    main()
