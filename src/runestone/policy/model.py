"""The compiled policy and the decisions it produces.

The value records on the hook path (here, in `shell.model`, `actions`, `facts`) are
`typing.NamedTuple`s, not frozen dataclasses: Python 3.11 builds a frozen dataclass by
compiling its methods at import, about 0.9 ms a class, and the cold command hook paid that
for 27 classes (about 20 ms of every call) before deciding anything. The few mutable ones
(`Facts`, `CompiledPolicy`, `Semantics`) are plain classes with `__slots__`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from runestone.facts import Facts, Part
    from runestone.policy.index import Gate

DecisionValue = Literal["allow", "deny", "ask", "sandbox"]
# Strongest first: deny beats ask beats sandbox (allowed, but contained) beats allow.
DECISIONS: tuple[DecisionValue, ...] = ("deny", "ask", "sandbox", "allow")

# A matcher answers True (matches), False (does not) or None (cannot tell statically).
Tri = bool | None
Matcher = Callable[["Part", "Facts", "EvalContext"], Tri]
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


class EvalContext(NamedTuple):
    """Who is acting and what the session has done: facts that are not in the action."""

    tainted: bool = False
    labels: Mapping[str, str] = _NO_LABELS


class Rule(NamedTuple):
    """One compiled rule. `spec` is its normalised source form (what the policy hash covers)."""

    id: str
    decision: DecisionValue
    reason: str
    instead: str
    severity: str
    origin: str
    kinds: frozenset[str]
    programs: frozenset[str] | None
    matchers: tuple[Matcher, ...]
    spec: Mapping[str, Any]
    tainted_only: bool = False
    profile: str = ""  # a sandbox rule's profile
    # What a part must show for the rule to answer anything but False (policy.index).
    gate: Gate | None = None
    # Every field is a command field (program, command, subcommand, flags, effects...): the
    # answer depends only on the command and its reading (policy.engine memoises it).
    command_only: bool = False

    def match(self, part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        """All matchers must hold; any False ends it, any None makes the answer uncertain."""
        uncertain = False
        for matcher in self.matchers:
            result = matcher(part, facts, ctx)
            if result is False:
                return False
            if result is None:
                uncertain = True
        return None if uncertain else True


class Hit(NamedTuple):
    """A rule that fired on a part; `certain` is False when it only may have matched."""

    rule: Rule
    part_label: str
    certain: bool


class Decision(NamedTuple):
    """The answer for one action: what to do, why, which rules, and which policy decided."""

    decision: DecisionValue
    reason: str
    rules: tuple[str, ...]
    policy_hash: str
    action_hash: str
    opaque: tuple[dict[str, str], ...] = ()
    hits: tuple[Hit, ...] = ()
    severity: str = ""
    # An ask its ask rules fully account for (every part allowed or definitely asked by a
    # rule, nothing opaque, no deny rule that might apply): only such an ask may be answered
    # by a standing grant of its rules.
    explained: bool = False
    request_id: str = ""
    # How a human is (or was) involved: {"state", "request", "link", "grant", "approver"}.
    approval: tuple[tuple[str, str], ...] = ()
    # A `sandbox` decision's profile: the command runs contained by it (and the hash of the
    # resolved profile, once the gatekeeper has looked it up).
    profile: str = ""
    profile_hash: str = ""

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"request_id": self.request_id} if self.request_id else {}
        if self.approval:
            extra["approval"] = dict(self.approval)
        if self.profile and self.decision == "sandbox":
            extra["profile"] = self.profile
        return {
            **extra,
            "decision": self.decision,
            "reason": self.reason,
            "rules": list(self.rules),
            "policy_hash": self.policy_hash,
            "action_hash": self.action_hash,
            "opaque": [dict(o) for o in self.opaque],
        }
