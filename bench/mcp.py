"""Latency the MCP gateway adds per `tools/call`, in one run, beside direct calls.

Three sessions of the official SDK's client are open at once on `mcp-server-time`: direct,
through `runestone mcp wrap` (policy decision and fsynced audit entries included), and
through the gateway of a runtime with no audit log (relay and decision only). Each round
calls all three in a rotating order, so a busy moment on the machine slows them alike; each
round gives one "added" sample per gateway. Medians and p99s are printed, then the decision
alone and with its durable audit entries, timed in-process on the same action and policy.

Usage: python bench/mcp.py [--calls 400]
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


async def rounds(servers: list[StdioServerParameters], calls: int) -> list[list[float]]:
    """Each round calls every server once, in a rotating order."""
    times: list[list[float]] = [[] for _ in servers]
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        for server in servers:
            streams = await stack.enter_async_context(stdio_client(server))
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
            sessions.append(session)
        for i in range(20 + calls):  # 20 warm-up rounds
            order = [(i + k) % len(servers) for k in range(len(servers))]
            for which in order:
                start = time.perf_counter()
                result = await sessions[which].call_tool("get_current_time", ARGS)
                elapsed = (time.perf_counter() - start) * 1000
                assert not result.is_error, result
                if i >= 20:
                    times[which].append(elapsed)
    return times


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
    args = parser.parse_args()
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
        direct, gated, relay = anyio.run(rounds, [
            StdioServerParameters(command="mcp-server-time", env=env),
            StdioServerParameters(command=sys.executable, env=env, args=gateway),
            StdioServerParameters(command=sys.executable, env=unaudited, args=gateway)],
            args.calls)
        bare, audited = decision_cost(policy, args.calls)
    added = [g - d for d, g in zip(direct, gated, strict=True)]
    print(f"tools/call to mcp-server-time, {args.calls} calls each, alternating")
    print(f"  {'':24}{'median':>9}{'p99':>10}")
    print(f"  {'direct':24}{statistics.median(direct):8.2f} {p99(direct):8.2f}  ms")
    print(f"  {'through the gateway':24}{statistics.median(gated):8.2f} {p99(gated):8.2f}  ms")
    print(f"  {'added (per pair)':24}{statistics.median(added):8.2f} {p99(added):8.2f}  ms"
          "   (target: <= 0.5 ms)")
    unaudited_added = [r - d for d, r in zip(direct, relay, strict=True)]
    print(f"  {'added, no audit log':24}{statistics.median(unaudited_added):8.2f} "
          f"{p99(unaudited_added):8.2f}  ms   (a runtime not initialised: relay + decision)")
    print("where the added time goes (medians, in-process, same action and policy):")
    print(f"  decision alone               {bare:6.3f} ms")
    print(f"  decision + durable audit     {audited:6.3f} ms   (request and decision "
          "entries, fsynced before the call is forwarded)")


if __name__ == "__main__":
    main()
