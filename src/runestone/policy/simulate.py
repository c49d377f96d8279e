"""Simulation: replay recorded tool calls against a candidate policy, before publishing it.

Every request in an audit log is decided again under the candidate; the decisions that
would change are counted by transition (allow->ask, ask->deny, ...) with examples. Inputs
in the log are redacted, so a rule about a secret's exact value cannot be replayed; a rule
about anything else can.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runestone.actions import Action
from runestone.facts import derive_facts
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.model import EvalContext


@dataclass(slots=True)
class Simulation:
    replayed: int = 0
    unchanged: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "unchanged": self.unchanged,
                "changed": dict(self.transitions), "examples": self.examples}


def simulate(entries: Iterable[dict[str, Any]], candidate: CompiledPolicy, *,
             home: str | None = None, examples: int = 5) -> Simulation:
    requests: dict[str, dict[str, Any]] = {}
    result = Simulation()
    for entry in entries:
        kind = entry.get("kind")
        if kind == "request":
            requests[entry.get("request_id", "")] = entry
        elif kind == "decision" and entry.get("request_id") in requests:
            request = requests.pop(entry["request_id"])
            if not isinstance(request.get("input"), dict):
                continue
            action = Action(str(request.get("tool", "")), request["input"],
                            str(request.get("cwd", "")), agent=str(request.get("agent", "")),
                            session=str(request.get("session", "")),
                            user=str(request.get("user", "")))
            before = entry.get("decision", "")
            after = evaluate(candidate, derive_facts(action, home=home), EvalContext())
            result.replayed += 1
            if after.decision == before:
                result.unchanged += 1
                continue
            transition = f"{before}->{after.decision}"
            result.transitions[transition] += 1
            bucket = result.examples.setdefault(transition, [])
            if len(bucket) < examples:
                bucket.append({"request_id": entry["request_id"],
                               "summary": request.get("summary", ""),
                               "rules": list(after.rules), "reason": after.reason})
    return result
