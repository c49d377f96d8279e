"""Limits: how many calls a session, an agent or the runtime may make over a window.

A policy's `[[limit]]` tables cap calls that policy would allow: all of them, or those of a
tool, a family, a program, or those a rule allowed (at most 20 `git push` an hour, 200 web
fetches per session), and `repeat = true` counts one exact action (same hash) so a session
looping on the same call is stopped at `max`. Over a limit the decision becomes `ask` (or
`deny`, as the limit says) with the count in the reason. `budget = "tokens"` makes a limit
a cost budget: `max` tokens per session, agent or runtime over the window, as the agent
host reports them (only hosts whose hook payloads carry usage: see docs/policy.md); once
spent, the calls the policy would allow ask (or are denied). Counting happens in the
gatekeeper (`runestone.limit_counter`); here is only what a limit says.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from runestone.policy.errors import PolicyError

PER = ("session", "agent", "runtime")
LIMIT_KEYS = frozenset({"id", "max", "minutes", "per", "decision", "tool", "family",
                        "program", "rule", "repeat", "reason", "budget"})
BUDGETS = ("tokens",)  # what a host reports that a budget can count


class Limit(NamedTuple):
    id: str
    max: int
    minutes: int
    per: str
    decision: str
    tools: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    repeat: bool = False
    reason: str = ""
    # "" counts calls; "tokens" is a cost budget: `max` tokens the host reported as used
    # (runestone.gatekeeper.Gatekeeper.record_usage) per session, agent or runtime.
    budget: str = ""

    def spec(self) -> dict[str, Any]:
        spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._asdict().items()}
        if not self.budget:
            del spec["budget"]  # a limit on calls keeps the hash it had before budgets
        return spec

    def applies(self, tool: str, family: str, programs: set[str], rules: tuple[str, ...]) -> bool:
        """Whether a call counts against this limit (every selector given must hold)."""
        if self.tools and not any(fnmatchcase(tool, t) for t in self.tools):
            return False
        if self.families and family not in self.families:
            return False
        if self.programs and not programs & set(self.programs):
            return False
        return not (self.rules and not set(rules) & set(self.rules))


def compile_limits(tables: Any, source: str) -> tuple[Limit, ...]:
    """Validate `[[limit]]` tables; a PolicyError names the limit and the field."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise PolicyError("'limit' must be an array of tables: write [[limit]]", source=source)
    limits: list[Limit] = []
    for table in tables:
        ident = table.get("id")
        if not isinstance(ident, str) or not ident:
            raise PolicyError("a [[limit]] needs an 'id'", source=source, field="id")
        unknown = sorted(set(table) - LIMIT_KEYS)
        if unknown:
            raise PolicyError(f"limit '{ident}' has unknown field {unknown[0]!r}",
                              source=source, field=unknown[0])
        limits.append(Limit(
            id=ident,
            max=_whole(table, "max", ident, source, 1, 10**9, None),
            minutes=_whole(table, "minutes", ident, source, 1, 7 * 24 * 60, 60),
            per=_choice(table, "per", PER, "session", ident, source),
            decision=_choice(table, "decision", ("ask", "deny"), "ask", ident, source),
            tools=_strings(table, "tool", ident, source),
            families=_strings(table, "family", ident, source),
            programs=_strings(table, "program", ident, source),
            rules=_strings(table, "rule", ident, source),
            repeat=_bool(table, "repeat", ident, source),
            reason=str(table.get("reason", "")),
            budget=_choice(table, "budget", ("", *BUDGETS), "", ident, source),
        ))
        if limits[-1].budget and limits[-1].repeat:
            raise PolicyError(f"limit '{ident}': a budget counts tokens, not repeats",
                              source=source, field="repeat")
    ids = [limit.id for limit in limits]
    if len(set(ids)) != len(ids):
        raise PolicyError("limit ids must be unique", source=source, field="id")
    return tuple(limits)


def _whole(table: dict[str, Any], key: str, ident: str, source: str, low: int, high: int,
           default: int | None) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"limit '{ident}': '{key}' must be a whole number from {low} to "
                          f"{high}", source=source, field=key)
    return value


def _choice(table: dict[str, Any], key: str, choices: tuple[str, ...], default: str,
            ident: str, source: str) -> str:
    value = table.get(key, default)
    if value not in choices:
        raise PolicyError(f"limit '{ident}': '{key}' must be one of {', '.join(choices)}",
                          source=source, field=key)
    return str(value)


def _strings(table: dict[str, Any], key: str, ident: str, source: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"limit '{ident}': '{key}' must be a list of strings",
                          source=source, field=key)
    return tuple(value)


def _bool(table: dict[str, Any], key: str, ident: str, source: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"limit '{ident}': '{key}' must be true or false", source=source,
                          field=key)
    return value
