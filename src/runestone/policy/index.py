"""Which rules can apply to a part: an index, so a decision does not try every rule.

Every rule used to be tried on every part of its kind: about 37 rules for each action of
the corpus, most of them path and URL rules that cannot fire on a command naming no path or
URL. Each rule now carries a `Gate`: conditions its matchers impose that a part's cheap
features decide (does the command name a path read, written or deleted? a URL? inline
code? is the session tainted? which tool family?). A gate only ever states what a matcher
already requires (every matcher of a rule must hold, so a part failing one condition makes
the rule answer False), so skipping a rule whose gate fails changes no decision; the
property test in tests/policy/test_rule_index.py checks that against trying every rule.

Rules are grouped by their gate, and a part's candidates are the union of the groups whose
gate its features pass, in declaration order. The union is cached per program name and
features, so a decision does work in the number of distinct gates (a handful), never in
the number of rules in the packs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from runestone.facts import Facts, Part
    from runestone.policy.model import EvalContext, Rule

_PATH_FIELDS = ("path", "path_outside", "path_contains", "access")
_URL_FIELDS = ("domain", "scheme", "address")
_CACHE_LIMIT = 4096


class Gate(NamedTuple):
    """Conditions a part must meet for a rule to answer anything but False.

    `accesses`: on a file part, its path's access is one of these; on a command part (deny
    and ask rules only), one of its argument paths has one. `needs_path`: a command part
    names at least one path. `needs_url`: a command part names at least one URL.
    `needs_code`: the command carries inline code. `tainted`: the session's taint is this.
    `families`: the tool's family is one of these."""

    accesses: frozenset[str] | None = None
    needs_path: bool = False
    needs_url: bool = False
    needs_code: bool = False
    tainted: bool | None = None
    families: frozenset[str] | None = None


OPEN = Gate()


def gate_of(table: Mapping[str, Any]) -> Gate:
    """The gate a validated rule table implies (see each matcher in `policy.rules`)."""
    every = table.get("decision") in ("allow", "sandbox")  # cover only when all hold
    access = table.get("access")
    accesses = frozenset(access) if isinstance(access, list) and access else None
    # A deny or ask rule's path matchers answer False on a command naming no path (an allow
    # rule's hold vacuously there, so they impose nothing on commands).
    needs_path = not every and any(k in table for k in _PATH_FIELDS)
    needs_url = any(k in table for k in _URL_FIELDS)
    tainted = table.get("tainted")
    family = table.get("family")
    return Gate(
        accesses=accesses,
        needs_path=needs_path,
        needs_url=needs_url,
        needs_code=table.get("code") is True,
        tainted=tainted if isinstance(tainted, bool) else None,
        families=frozenset(family) if isinstance(family, list) and family else None,
    )


class Features(NamedTuple):
    """What a gate looks at, for one part."""

    accesses: frozenset[str]
    has_url: bool
    has_code: bool
    tainted: bool
    family: str


def features(part: Part, facts: Facts, ctx: EvalContext) -> Features:
    if part.kind == "command" and part.command is not None:
        command = part.command
        accesses = frozenset(p.access for p in facts.arg_paths(command))
        return Features(accesses, bool(facts.arg_urls(command)), command.code is not None,
                        ctx.tainted, facts.family_name)
    accesses = frozenset((part.path.access,)) if part.path is not None else frozenset()
    return Features(accesses, False, False, ctx.tainted, facts.family_name)


def passes(gate: Gate, kind: str, seen: Features) -> bool:
    if gate.tainted is not None and gate.tainted != seen.tainted:
        return False
    if gate.families is not None and seen.family not in gate.families:
        return False
    if kind == "file":
        return gate.accesses is None or bool(gate.accesses & seen.accesses)
    if kind != "command":
        return True
    if gate.needs_code and not seen.has_code:
        return False
    if gate.needs_url and not seen.has_url:
        return False
    if gate.needs_path:
        if not seen.accesses:
            return False
        if gate.accesses is not None and not gate.accesses & seen.accesses:
            return False
    return True


class RuleIndex:
    """Rules of one kind (or the command rules of one program and those of any program),
    grouped by gate, with the union for each part's features cached."""

    __slots__ = ("_cache", "_groups", "_order")

    def __init__(self, order: Mapping[int, int]) -> None:
        self._order = order  # id(rule) -> its position in the policy
        self._groups: dict[Gate, list[Rule]] = {}
        self._cache: dict[tuple[Any, ...], tuple[Rule, ...]] = {}

    def add(self, rule: Rule) -> None:
        self._groups.setdefault(rule.gate or OPEN, []).append(rule)

    def all(self, extra: Sequence[Rule] = ()) -> tuple[Rule, ...]:
        """Every rule here (and `extra`), whatever the part: for callers without facts."""
        return self._merge([*self._groups.values(), extra])

    def select(self, kind: str, seen: Features, extra: Sequence[Rule] = (),
               key: Any = None) -> tuple[Rule, ...]:
        cache_key = (key, seen)
        found = self._cache.get(cache_key)
        if found is None:
            chosen = [rules for gate, rules in self._groups.items() if passes(gate, kind, seen)]
            extra_kept = [r for r in extra if passes(r.gate or OPEN, kind, seen)]
            found = self._merge([*chosen, extra_kept])
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[cache_key] = found
        return found

    def _merge(self, groups: Iterable[Sequence[Rule]]) -> tuple[Rule, ...]:
        unique = {id(rule): rule for group in groups for rule in group}
        return tuple(sorted(unique.values(), key=lambda r: self._order[id(r)]))
