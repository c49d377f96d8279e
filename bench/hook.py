"""Hook latency, in one run, beside bare Python start-up:

  - `python -c pass` (the floor for any command hook);
  - the command hook as `runestone install claude-code` writes it, cold, with no daemon
    (decides in-process);
  - the same command hook with the daemon running (forwards over the Unix socket), beside
    the `python -m runestone hook` form installed before (runpy's imports);
  - the daemon's HTTP hook endpoint, from a kept-alive client (what Claude Code's `http`
    hook costs);
  - bare start-up and the cold hook again with `python -S` (no site, so no `.pth` start-up
    hooks): how much of the baseline is this machine's own start-up work, which a cold
    hook would otherwise pay for the stdlib modules it needs.

The interpreter is a clean virtualenv's, built by the bench in a temporary directory (no
site `.pth` files; the project and its dependencies reach it through PYTHONPATH, which runs
no `.pth` either): the interpreter an installed hook runs under, not the machine's, whose
site start-up may import certifi and more (55 ms for `python -c pass` in this sandbox).
A command naming a URL is timed too (it needs the registrable domain), beside a command
that asks as it does but names no URL (an ask opens the approvals store and signs a token).

Each command run is interleaved with a bare-Python run, so a busy moment on the machine
slows both alike. Each figure also has the child's CPU time (user + system), which a
machine shared with other work barely changes (through the daemon: the hook process's
only, not the daemon's).

Every run goes through an initialised runtime, so the audit write (fsync) is included.
Usage: python bench/hook.py [--runs 20] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from runestone.integrations.install import hook_command

URL_ACTION = {"session_id": "bench", "transcript_path": "", "cwd": "/tmp", "permission_mode":
              "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
              "tool_input": {"command": "curl -s https://api.github.com/repos/a/b"},
              "tool_use_id": "toolu_bench_url"}
ASK_ACTION = {"session_id": "bench", "transcript_path": "", "cwd": "/tmp", "permission_mode":
              "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
              "tool_input": {"command": "git push"}, "tool_use_id": "toolu_bench_ask"}
ACTION = {"session_id": "bench", "transcript_path": "", "cwd": "/tmp", "permission_mode":
          "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
          "tool_input": {"command": "git status"}, "tool_use_id": "toolu_bench"}


CPU_MS: dict[int, list[float]] = {}  # id(series) -> the child's CPU time (user + system)


def timed_run(argv: list[str], stdin: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the child): CPU time barely moves with the machine's load, so it
    tells a change apart where wall time on a shared machine cannot."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000


def interleaved(commands: list[tuple[list[str], str]], runs: int,
                env: dict[str, str]) -> list[list[float]]:
    """Run the commands in turn, `runs` rounds: a busy moment on the machine then slows every
    command of that round alike instead of one command's whole series."""
    samples: list[list[float]] = [[] for _ in commands]
    for series in samples:
        CPU_MS[id(series)] = []
    for _ in range(runs):
        for series, (argv, stdin) in zip(samples, commands, strict=True):
            wall, cpu = timed_run(argv, stdin, env)
            series.append(wall)
            CPU_MS[id(series)].append(cpu)
    return samples


def http_latency(port: int, requests: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(ACTION).encode()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        connection.request("POST", "/hooks/claude-code", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - start) * 1000)
    connection.close()
    return samples


def clean_interpreter(directory: str) -> tuple[str, str]:
    """A fresh virtualenv's python, and the PYTHONPATH that gives it this project."""
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(directory)
    python = os.path.join(directory, "bin", "python")
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)
                           and not p.startswith(sys.base_prefix))
    return python, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as where:
        python, path = clean_interpreter(where)
        env = dict(os.environ, RUNESTONE_HOME=home, PYTHONPATH=path)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a normal install runs from bytecode
        subprocess.run([python, "-m", "runestone", "init"], env=env, check=True,
                       capture_output=True)
        # The command `runestone install claude-code` writes, and the `-m` form it replaced.
        hook = shlex.split(hook_command("claude-code", python=python))
        module_hook = [python, "-m", "runestone", "hook", "claude-code"]
        stdin = json.dumps(ACTION)
        url_stdin = json.dumps(URL_ACTION)
        ask_stdin = json.dumps(ASK_ACTION)
        bare_python = ([python, "-c", "pass"], "")
        cold_commands = [bare_python, (hook, stdin), (hook, url_stdin), (hook, ask_stdin)]
        interleaved(cold_commands, 2, env)  # warm caches
        bare, cold, cold_url, cold_ask = interleaved(cold_commands, args.runs, env)
        # The same without `site`: no `.pth` start-up hooks (some machines, this sandbox
        # among them, import certifi and with it pathlib, re, tempfile... before any
        # script, which inflates the baseline). The path stays, through PYTHONPATH.
        plain_env = env
        plain = ([python, "-S", "-c", "pass"], "")
        plain_hook = ([python, "-S", "-m", "runestone", "hook", "claude-code"], stdin)
        interleaved([plain, plain_hook], 2, plain_env)
        bare_plain, cold_plain = interleaved([plain, plain_hook], args.runs, plain_env)
        daemon = subprocess.Popen([python, "-m", "runestone", "daemon", "--port", "0"],
                                  env=env, stderr=subprocess.PIPE, text=True)
        try:
            port = int(re.search(r":(\d+) ", daemon.stderr.readline()).group(1))
            http_latency(port, 20)  # warm-up
            bare_again, via_daemon, via_daemon_m = interleaved(
                [bare_python, (hook, stdin), (module_hook, stdin)], args.runs, env)
            over_http = http_latency(port, args.requests)
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
    print(f"command hooks, {args.runs} runs each, each run beside a `python -c pass` run; "
          f"HTTP, {args.requests} requests (medians)")
    print(f"  {'python -c pass (clean virtualenv)':38} "
          f"{statistics.median(bare + bare_again):8.1f} ms            CPU "
          f"{statistics.median(CPU_MS[id(bare)] + CPU_MS[id(bare_again)]):6.1f} ms")
    for label, samples, baseline, target in (
            ("command hook, no daemon", cold, bare, "target: within 2x bare Python"),
            ("command hook naming a URL, no daemon", cold_url, bare, "(it asks)"),
            ("  an ask without a URL (`git push`)", cold_ask, bare,
             "(the URL's own cost: the row above less this one)"),
            ("command hook, through the daemon", via_daemon, bare_again,
             "(CPU: the hook process only) target: within 1.3x"),
            ("  the same, as `python -m runestone hook`", via_daemon_m, bare_again,
             "(the form installed before)"),
            ("without site: python -S -c pass", bare_plain, bare_plain, ""),
            ("without site: command hook, no daemon", cold_plain, bare_plain, "")):
        median = statistics.median(samples)
        ratio = median / statistics.median(baseline)
        cpu = statistics.median(CPU_MS[id(samples)])
        cpu_ratio = cpu / statistics.median(CPU_MS[id(baseline)])
        print(f"  {label:38} {median:8.1f} ms   ({ratio:.2f}x)   CPU {cpu:6.1f} ms "
              f"({cpu_ratio:.2f}x) {target}")
    median = statistics.median(over_http)
    p99 = sorted(over_http)[int(len(over_http) * 0.99) - 1]
    print(f"  {'daemon HTTP hook endpoint':38} {median:8.2f} ms   p99 {p99:.2f} ms "
          "(target: median < 2 ms)")


if __name__ == "__main__":
    main()
