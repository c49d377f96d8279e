"""Latency the MCP gateway adds per `tools/call`, in one run, beside direct calls.

Sessions of the official SDK's client are open at once on `mcp-server-time`: direct,
through `runestone mcp wrap` (policy decision and fsynced audit entries included), and
through the gateway of a runtime with no audit log (relay and decision only). Each gateway
call comes right after a direct call, its pair, which gives one "added" sample. The gateways
take turns in blocks of 10 pairs, rotating which goes first: a busy moment on the machine
slows them alike, and what one gateway writes in the background after answering (a result
entry) seldom lands on another gateway's calls, which would charge one for the other's disk
work. Medians and p99s are printed, then the decision alone and with its durable audit
entries, timed in-process on the same action and policy.

`--baseline SRC` adds another gateway: the same one run from another copy of the code
(`PYTHONPATH=SRC`, e.g. main's `src` extracted with `git archive`, with its own runtime and
log), taking its turns in the same run, so a change is measured against what it replaces
under the same load. `--back-to-back K` times the last of K calls in a row (a burst, as
an agent's parallel tool calls make). `--fsyncs N` counts the gateways' fsyncs per call
with strace.

Usage: python bench/mcp.py [--calls 400] [--baseline SRC] [--back-to-back K] [--fsyncs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file is named mcp.py, as the issue asks; keep its folder from shadowing the SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import anyio  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from mcp import ClientSession, StdioServerParameters  # noqa: E402

POLICY = """[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "bench.time"
decision = "allow"
reason = "reading the clock"
mcp_server = ["mcp-time"]
mcp_tool = ["get_current_time"]
"""
ARGS = {"timezone": "UTC"}


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


BLOCK = 10  # pairs a gateway gets in a row before the next one's turn


async def rounds(direct: StdioServerParameters, gateways: list[StdioServerParameters],
                 calls: int, burst: int = 1) -> list[tuple[list[float], list[float]]]:
    """Per gateway: its calls' times and the direct call's just before each (ms). With
    `burst` > 1 the gateway is called that many times in a row and the last call is timed:
    calls that follow one another closely (what writing after answering can slow)."""
    pairs: list[tuple[list[float], list[float]]] = [([], []) for _ in gateways]
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        for server in [direct, *gateways]:
            streams = await stack.enter_async_context(stdio_client(server))
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
            sessions.append(session)

        async def timed(session: ClientSession) -> float:
            start = time.perf_counter()
            result = await session.call_tool("get_current_time", ARGS)
            elapsed = (time.perf_counter() - start) * 1000
            assert not result.is_error, result
            return elapsed

        warm_up = 2 * BLOCK
        for turn, first in enumerate(range(0, warm_up + calls, BLOCK)):
            for k in range(len(gateways)):
                which = (turn + k) % len(gateways)
                for i in range(first, min(first + BLOCK, warm_up + calls)):
                    before = await timed(sessions[0])
                    for _ in range(burst - 1):
                        await timed(sessions[1 + which])
                    after = await timed(sessions[1 + which])
                    if i >= warm_up:
                        pairs[which][0].append(before)
                        pairs[which][1].append(after)
    return pairs


async def call_n(server: StdioServerParameters, calls: int, pause: float) -> None:
    async with stdio_client(server) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        for _ in range(calls):
            result = await session.call_tool("get_current_time", ARGS)
            assert not result.is_error, result
            await anyio.sleep(pause)


def fsyncs_per_call(server: StdioServerParameters, calls: int, pause: float) -> float:
    """fsync + fdatasync calls of the gateway (strace -f -c) per tools/call: a session of
    5 calls and one of 5 + `calls`, so start-up and exit do not count."""
    counts = []
    for n in (5, 5 + calls):
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
            traced = StdioServerParameters(
                command="strace", env=server.env,
                args=["-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out.name,
                      server.command, *server.args])
            anyio.run(call_n, traced, n, pause)
            rows = [line.split() for line in out.read().splitlines()]
            counts.append(sum(int(row[3]) for row in rows
                              if row and row[-1] in ("fsync", "fdatasync")))
    return (counts[1] - counts[0]) / calls


def decision_cost(policy: Path, runs: int) -> tuple[float, float]:
    """Median ms of the gate's decision in-process: without and with the audit write."""
    from runestone.actions import Action
    from runestone.gatekeeper import Gatekeeper
    from runestone.home import layout

    keeper = Gatekeeper.from_layout(layout(), policy_file=policy)
    action = Action("mcp__mcp-time__get_current_time", ARGS, "", agent="mcp:bench")
    audit = keeper.audit
    results = []
    for log in (None, audit):
        keeper.audit = log
        samples = []
        for i in range(runs + 20):
            start = time.perf_counter()
            decision = keeper.check(action, approval_mode="ask")
            if i >= 20:
                samples.append((time.perf_counter() - start) * 1000)
            assert decision.decision == "allow", decision
        results.append(statistics.median(samples))
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--baseline", metavar="SRC",
                        help="also time the gateway run with PYTHONPATH=SRC")
    parser.add_argument("--back-to-back", type=int, default=1, metavar="K",
                        help="call each gateway K times in a row and time the last call")
    parser.add_argument("--fsyncs", type=int, default=0, metavar="N",
                        help="also count the gateway's fsyncs per call with strace over N "
                             "calls, back to back and 0.1 s apart")
    args = parser.parse_args()
    if args.fsyncs and shutil.which("strace") is None:
        parser.error("--fsyncs needs strace")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "RUNESTONE_HOME": home}
        os.environ["RUNESTONE_HOME"] = home
        subprocess.run([sys.executable, "-m", "runestone", "init"], env=env, check=True,
                       capture_output=True)
        policy = Path(home) / "bench-policy.toml"
        policy.write_text(POLICY)
        unaudited = {**env, "RUNESTONE_HOME": str(Path(home) / "not-initialised")}
        gateway = ["-m", "runestone", "mcp", "wrap", "--policy", str(policy), "--",
                   "mcp-server-time"]
        direct_server = StdioServerParameters(command="mcp-server-time", env=env)
        servers = [
            StdioServerParameters(command=sys.executable, env=env, args=gateway),
            StdioServerParameters(command=sys.executable, env=unaudited, args=gateway)]
        if args.baseline:  # its own runtime and log: the two gateways never share a lock
            paths = [str(Path(args.baseline).resolve()), env.get("PYTHONPATH", "")]
            before = {**env, "RUNESTONE_HOME": str(Path(home) / "baseline"),
                      "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
            subprocess.run([sys.executable, "-m", "runestone", "init"], env=before,
                           check=True, capture_output=True)
            servers.append(StdioServerParameters(command=sys.executable, env=before,
                                                 args=gateway))
        measured = anyio.run(rounds, direct_server, servers, args.calls, args.back_to_back)
        bare, audited = decision_cost(policy, args.calls)
        gateways = [("this code", servers[0]), *(("baseline", b) for b in servers[2:])]
        fsyncs = {name: [fsyncs_per_call(server, args.fsyncs, pause) for pause in (0.0, 0.1)]
                  for name, server in gateways} if args.fsyncs else {}
    added = [[g - d for d, g in zip(*pair, strict=True)] for pair in measured]
    direct = [d for pair in measured for d in pair[0]]
    gated = measured[0][1]
    print(f"tools/call to mcp-server-time, {args.calls} calls each, in turns of {BLOCK}"
          + (f", the last of {args.back_to_back} back to back" if args.back_to_back > 1 else ""))
    print(f"  {'':24}{'median':>9}{'p99':>10}")
    print(f"  {'direct':24}{statistics.median(direct):8.2f} {p99(direct):8.2f}  ms")
    print(f"  {'through the gateway':24}{statistics.median(gated):8.2f} {p99(gated):8.2f}  ms")
    print(f"  {'added (per pair)':24}{statistics.median(added[0]):8.2f} {p99(added[0]):8.2f}  ms"
          "   (target: <= 0.5 ms)")
    print(f"  {'added, no audit log':24}{statistics.median(added[1]):8.2f} "
          f"{p99(added[1]):8.2f}  ms   (a runtime not initialised: relay + decision)")
    if args.baseline:
        print(f"  {'added, baseline code':24}{statistics.median(added[2]):8.2f} "
              f"{p99(added[2]):8.2f}  ms   (the gateway from {args.baseline})")
        # Turn by turn: each baseline block beside this code's block of the same turn.
        turns = [statistics.median(added[2][i:i + BLOCK])
                 - statistics.median(added[0][i:i + BLOCK]) for i in range(0, args.calls, BLOCK)]
        print(f"  {'baseline - this code':24}{statistics.median(turns):8.2f} "
              f"{'':8}  ms   (median over turns of the difference of block medians)")
    print("where the added time goes (medians, in-process, same action and policy):")
    print(f"  decision alone               {bare:6.3f} ms")
    print(f"  decision + durable audit     {audited:6.3f} ms   (request and decision "
          "entries, fsynced before the call is forwarded)")
    for name, (burst, spaced) in fsyncs.items():
        print(f"fsyncs per tools/call ({name}): {burst:.2f} back to back, {spaced:.2f} with "
              f"0.1 s between calls ({args.fsyncs} calls, strace -f -c)")


if __name__ == "__main__":
    main()
