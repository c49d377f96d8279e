"""The daemon's own figures in the Prometheus text exposition format: decisions by outcome
and host, and the hook's answer time by host.

Written by hand (a few lines of the format) rather than with prometheus_client: the
runtime stays free of dependencies it does not need on the hook path, and these are the
only metrics it has. Counts are since the daemon started; Prometheus handles the reset.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

# Seconds; a hook answered from a warm daemon takes about a millisecond, an approval minutes.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class DaemonMetrics:
    """Thread-safe counters the daemon's handler threads add to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], int] = {}
        self._hooks: dict[str, list[int]] = {}  # host -> per-bucket counts (+Inf last)
        self._sums: dict[str, float] = {}

    def decision(self, host: str, outcome: str) -> None:
        with self._lock:
            key = (host, outcome)
            self._decisions[key] = self._decisions.get(key, 0) + 1

    def hook(self, host: str, seconds: float) -> None:
        with self._lock:
            counts = self._hooks.setdefault(host, [0] * (len(BUCKETS) + 1))
            counts[bisect_left(BUCKETS, seconds)] += 1
            self._sums[host] = self._sums.get(host, 0.0) + seconds

    def render(self) -> str:
        with self._lock:
            decisions = dict(self._decisions)
            hooks = {host: list(counts) for host, counts in self._hooks.items()}
            sums = dict(self._sums)
        lines = ["# HELP runestone_daemon_decisions_total decisions answered by this daemon, "
                 "by host and outcome",
                 "# TYPE runestone_daemon_decisions_total counter"]
        for (host, outcome), count in sorted(decisions.items()):
            lines.append(f'runestone_daemon_decisions_total{{host="{_label(host)}",'
                         f'outcome="{_label(outcome)}"}} {count}')
        lines += ["# HELP runestone_daemon_hook_duration_seconds time to answer one hook call",
                  "# TYPE runestone_daemon_hook_duration_seconds histogram"]
        for host, counts in sorted(hooks.items()):
            name = f'host="{_label(host)}"'
            running = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'runestone_daemon_hook_duration_seconds_bucket{{{name},'
                             f'le="{le}"}} {running}')
            lines.append(f"runestone_daemon_hook_duration_seconds_sum{{{name}}} {sums[host]!r}")
            lines.append(f"runestone_daemon_hook_duration_seconds_count{{{name}}} {running}")
        return "\n".join(lines) + "\n"
