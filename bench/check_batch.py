"""`runestone check` on a batch of JSON Lines: decisions per second, audited and not, beside a
20-regex filter doing the same JSON work, measured in the same run.

Each round times three whole processes over the same lines (the shared corpus, repeated):
  - `runestone check` on an initialised runtime (every decision and request audited: hash
    chained, redacted, fsynced before its answer is printed);
  - `runestone check` on a runtime never initialised (no audit);
  - baseline: a Python process that parses each line, runs twenty regexes over its command
    and prints a JSON answer per line (what a regex filter does, with the same JSON work).
Rounds rotate the order; the figures are medians, with ratios to the baseline.

`--baseline SRC` adds the two `runestone check` processes run from another copy of the code
(`PYTHONPATH=SRC`, e.g. a worktree's `src` at the commit before a change, with its own
runtime and log), taking their turns in the same rounds, so a change is measured against
what it replaces under the same load; each round's pair of times gives a ratio, and the
median of those ratios is printed.

Usage: python bench/check_batch.py [--copies 8] [--rounds 3] [--corpus ../shared/corpus]
                                   [--baseline SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REGEX_FILTER = textwrap.dedent(r"""
    import json, re, sys
    PATTERNS = [re.compile(p) for p in (
        r"\brm\s+-[a-z]*r[a-z]*f", r"\bgit\s+push\s+.*--force", r"\bcurl\b.*\|\s*(ba)?sh",
        r"\bwget\b.*\|\s*(ba)?sh", r"\bchmod\s+777", r"\bdd\s+.*of=/dev/", r"\bmkfs",
        r"~/\.ssh/", r"\.env\b", r"/etc/shadow", r"\bsudo\b", r"\bshutdown\b",
        r"\bnc\s+-e", r"/dev/tcp/", r"\beval\b", r"\bbase64\s+-d", r"\bnpm\s+publish",
        r"\bkubectl\s+delete", r"\bDROP\s+TABLE", r"\bgit\s+reset\s+--hard")]
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        data = json.loads(line)
        command = json.dumps(data.get("tool_input", {}))
        hits = [p.pattern for p in PATTERNS if p.search(command)]
        out.write(json.dumps({"id": data.get("id"), "decision": "deny" if hits else "allow",
                              "reason": "matched " + ", ".join(hits) if hits else "no match",
                              "rules": hits}) + "\n")
""")


def timed(argv: list[str], data: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env=env, check=True)
    seconds = time.perf_counter() - start
    answered, asked = done.stdout.count(b"\n"), data.count(b"\n")
    if answered != asked:
        raise SystemExit(f"{argv[:4]} answered {answered} of {asked} lines")
    return seconds


def _copies(lines: list[str], copies: int) -> list[str]:
    """The corpus `copies` times, each copy in its own working directory: no action repeats,
    so no memo (shell analyses, readings) serves a later copy from an earlier one."""
    out = []
    for copy in range(copies):
        for line in lines:
            data = json.loads(line)
            cwd = data.get("cwd") if isinstance(data, dict) else None
            if copy and isinstance(cwd, str) and cwd:
                data["cwd"] = cwd.rstrip("/\\") + ("\\" if "\\" in cwd else "/") + f"copy{copy}"
            out.append(json.dumps(data))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--baseline", metavar="SRC",
                        help="also run `runestone check` from this source tree (PYTHONPATH)")
    args = parser.parse_args()
    lines = [line for path in sorted(Path(args.corpus).glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = ("\n".join(_copies(lines, args.copies)) + "\n").encode()
    count = len(lines) * args.copies
    with tempfile.TemporaryDirectory() as tmp:
        audited_home, plain_home = Path(tmp) / "audited", Path(tmp) / "plain"
        base = dict(os.environ)
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        audited_env = dict(base, RUNESTONE_HOME=str(audited_home))
        plain_env = dict(base, RUNESTONE_HOME=str(plain_home))
        subprocess.run([sys.executable, "-m", "runestone", "init"], env=audited_env, check=True,
                       stdout=subprocess.DEVNULL)
        check = [sys.executable, "-m", "runestone", "check", "--preset", args.preset]
        runs = {
            "runestone check, audited": (check, audited_env),
            "runestone check, no audit": (check, plain_env),
            "baseline: 20-regex filter": ([sys.executable, "-c", REGEX_FILTER], base),
        }
        if args.baseline:  # its own runtime and log, initialised by its own code
            source = str(Path(args.baseline).resolve())
            path = os.pathsep.join(p for p in (source, base.get("PYTHONPATH", "")) if p)
            old_audited = dict(audited_env, PYTHONPATH=path,
                               RUNESTONE_HOME=str(Path(tmp) / "baseline-audited"))
            old_plain = dict(plain_env, PYTHONPATH=path,
                             RUNESTONE_HOME=str(Path(tmp) / "baseline-plain"))
            subprocess.run([sys.executable, "-m", "runestone", "init"], env=old_audited,
                           check=True, stdout=subprocess.DEVNULL)
            runs["code at SRC, audited"] = (check, old_audited)
            runs["code at SRC, no audit"] = (check, old_plain)
        for argv, env in runs.values():  # warm the OS cache and the verified-policy cache
            timed(argv, data[: data.index(b"\n") + 1], env)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                argv, env = runs[name]
                seconds[name].append(timed(argv, data, env))
    baseline = count / statistics.median(seconds["baseline: 20-regex filter"])
    print(f"{count:,} JSON lines in one process, {args.rounds} rounds (median; whole process, "
          "start-up included)")
    for name in names:
        rate = count / statistics.median(seconds[name])
        print(f"  {name:28s} {rate:10,.0f} decisions/s   ({baseline / rate:.2f}x the "
              "baseline's time)")
    if args.baseline:
        print(f"this code's time over the code at SRC ({args.baseline}), median of the "
              "rounds' ratios")
        for kind in ("audited", "no audit"):
            ratios = [new / old for new, old in zip(seconds[f"runestone check, {kind}"],
                                                    seconds[f"code at SRC, {kind}"],
                                                    strict=True)]
            print(f"  {kind:28s} {statistics.median(ratios):10.3f}")


if __name__ == "__main__":
    main()
