"""What the control plane's proposals cost over a team's history, beside a plain replay.

`GET /api/v1/teams/{id}/proposals` runs the runtime's `policy suggest` over the team's
ingested entries: learn a rule per approved ask, merge, then replay every request under the
policy with and without each proposal. Prints, for histories of growing size (half of the
requests asks approved by three people on two runtimes, 200 distinct calls over 20
domains, recurring as real agents' calls do), the median
seconds of the proposals run and of the baseline measured in the same run (deciding every
request once under the policy: what a simulation costs), and their ratio.

Usage: python bench/proposals.py [--sizes 200,1000,4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from runestone.facts import derive_facts
from runestone.policy import compile_policy_text
from runestone.policy.engine import evaluate
from runestone.policy.model import EvalContext
from runestone.policy.suggest import read_history, suggest

POLICY = '[policy]\nname = "bench"\ndefault = "ask"\ninclude = ["developer"]\n'


def history(size: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for n in range(size):
        asked = n % 2 == 1
        # Asks recur as they do in real histories: 200 distinct calls approved again and again.
        command = f"curl https://api{n % 20}.example.com/items/{n % 200}" if asked \
            else "git status"
        common = {"request_id": f"req_{n}", "_runtime": f"rt{n % 2}"}
        entries.append({"kind": "request", "tool": "Bash", "input": {"command": command},
                        "cwd": "/srv/app", "agent": "a", "session": "s", "summary": command,
                        **common})
        entries.append({"kind": "decision", "decision": "ask" if asked else "allow",
                        **common})
        if asked:
            entries.append({"kind": "approval", "decision": "approved",
                            "approver": f"p{n % 3}", **common})
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,4000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    policy = compile_policy_text(POLICY, source="bench")
    for size in (int(s) for s in args.sizes.split(",")):
        entries = history(size)
        proposals, baseline, found = [], [], 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            parsed = read_history(entries)
            for action, _summary, _decision in parsed.actions.values():
                evaluate(policy, derive_facts(action, home="/home/dev"), EvalContext())
            baseline.append(time.perf_counter() - started)
            started = time.perf_counter()
            found = len(suggest(read_history(entries), policy, home="/home/dev",
                                min_approvals=3, min_people=2).proposals)
            proposals.append(time.perf_counter() - started)
        base, cost = statistics.median(baseline), statistics.median(proposals)
        print(f"{size:>6} requests: proposals {cost:.2f} s ({found} proposal(s)), plain "
              f"replay {base:.2f} s, ratio {cost / base:.1f}x")


if __name__ == "__main__":
    main()
