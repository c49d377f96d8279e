"""What analysing a Windows shell command costs, beside bash and a bare interpreter.

  - cold: a fresh interpreter that imports the analyzer and analyses one command (the
    PowerShell grammar is loaded on first use only), median of N runs, beside a clean
    virtual environment's interpreter doing nothing (the baseline) in the same run;
  - warm: one analysis of a 120-character PowerShell if/pipeline in a running process.

Usage: python bench/windows_shell.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

SOURCE = str(Path(__file__).resolve().parent.parent / "src")
CASES = {
    "bash analysis, cold": "from runestone.shell import analyze; analyze('cat a | grep b')",
    "PowerShell analysis, cold": "from runestone.shell.pwsh.analyzer import analyze_powershell;"
                                 " analyze_powershell('gc a | sls b')",
    "cmd analysis, cold": "from runestone.shell.cmd import analyze_cmd; "
                          "analyze_cmd('type a | findstr b')",
}
WARM = ('cd "C:\\p"; if (Test-Path "a\\b.db") { Get-Item "a\\b.db" | '
        'Select-Object Length, LastWriteTime } else { Write-Host no }')


def _median(command: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=SOURCE)
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=False)
        baseline = _median([str(Path(tmp) / "bin" / "python"), "-c", "pass"], args.runs, env)
    print(f"{'baseline: clean venv, -c pass':34s} median {baseline * 1000:6.1f} ms  x1.00")
    for name, code in CASES.items():
        median = _median([sys.executable, "-c", code], args.runs, env)
        print(f"{name:34s} median {median * 1000:6.1f} ms  x{median / baseline:.2f}")
    sys.path.insert(0, SOURCE)
    from runestone.shell.pwsh.analyzer import analyze_powershell

    analyze_powershell("x")
    times = []
    for _ in range(200):
        start = time.perf_counter()
        analyze_powershell(WARM, cwd="C:\\p", home="C:\\Users\\u")
        times.append(time.perf_counter() - start)
    print(f"{'PowerShell analysis, warm':34s} median {statistics.median(times) * 1000:6.3f} ms")


if __name__ == "__main__":
    main()
