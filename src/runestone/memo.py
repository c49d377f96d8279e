"""Decisions remembered, for an action decided again under the same conditions.

Agents repeat themselves: `git status`, the test command, the same file read, many times a
session. A long-lived gatekeeper (the daemon, the MCP gateway, `runestone check` on a batch,
an SDK) decided each of them from scratch: ~75 µs for a command whose analysis was already
memoised, most of it spent placing paths and trying rules again.

A decision is a function of:
- the action's identity (what its hash covers: tool, input, cwd, agent, session, user) and
  its project directory;
- the home paths are placed against, whether the session is tainted, the gatekeeper's
  labels, and the environment the runtime's own places are read from;
- the compiled policy;
- and the file system's answers: where each path the action names resolves through
  symlinks (`actions.paths.real_path`, the only place a decision asks the file system).

The memo keys an entry on the first two, is kept per policy (`Gatekeeper.decide` makes a
new one for a new policy), and records the last while the decision is made
(`actions.paths.Resolutions`); it remembers an action from its second decision on
(`DecisionMemo._seen_before`). A remembered decision is given again only after every one
of those paths has been resolved anew and found where it was: a
symlink retargeted between two calls is seen as a fresh decision would see it. Everything
else a decision reads (the shell analysis, the programs' readings, the globs) depends only
on the inputs in the key.

What a decision leads to afterwards is never remembered: limits are counted, approvals
redeemed or asked, the entries written and the session marked for every call, as before.
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import TYPE_CHECKING, Any, NamedTuple

from runestone.actions.canonical import canonical_json, sha256_hex
from runestone.actions.paths import Resolutions, still_resolve
from runestone.facts import derive_facts
from runestone.policy import evaluate
from runestone.policy.globs import places_key, runestone_places

if TYPE_CHECKING:
    from runestone.actions import Action
    from runestone.facts import Facts
    from runestone.policy import CompiledPolicy, Decision, EvalContext

# What is kept is bounded. An entry holds the action's facts (its analysis, each part's
# reading and paths): tracemalloc measures ~8 KiB for a two-command line and ~55 KiB for
# one of 1.2 KB naming a hundred paths, and ~1.2 MiB for an 8 KB chain of 500 commands. So
# an action of more than MEMO_ACTION_BYTES (a file's whole content, a long script) or of more
# than MEMO_PARTS parts (its commands, files and URLs) is decided every time, and at most
# MEMO_ENTRIES are kept, the oldest forgotten first: ~4 MiB of everyday commands, ~22 MiB at
# worst. What a session repeats (`git status`, its test command) is far smaller.
MEMO_ENTRIES = 512
MEMO_ACTION_BYTES = 1024
MEMO_PARTS = 8
MEMO_SEEN = 4096  # keys decided once, remembered from their second decision (a few bytes each)


class _Remembered(NamedTuple):
    facts: Facts
    decision: Decision
    resolutions: tuple[tuple[str, str], ...]


class DecisionMemo:
    """The decisions of one compiled policy, by action and conditions (see the module)."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self._entries: dict[tuple[Any, ...], _Remembered] = {}
        self._seen: dict[int, None] = {}  # keys decided once, by their hash (_seen_before)
        self.hits = 0

    def decide(self, action: Action, ctx: EvalContext, home: str | None) -> tuple[Facts, Decision]:
        """The facts and decision for `action`: remembered if its conditions hold still,
        else derived and evaluated (and remembered when the action is small enough).
        Raises what derive_facts or evaluate raise; nothing is remembered then."""
        canonical = canonical_json(action.identity())
        action_hash = sha256_hex(canonical)
        place = home or os.environ.get("HOME") or "/"
        environment = places_key()
        key = (action_hash, action.project_dir, place, ctx.tainted,
               tuple(ctx.labels.items()) if ctx.labels else (), environment)
        known = self._entries.get(key)
        if known is not None and still_resolve(known.resolutions):
            self.hits += 1
            return known.facts, known.decision
        places = tuple(runestone_places(environment).values())
        if len(canonical) > MEMO_ACTION_BYTES or not (known or self._seen_before(key)):
            facts = derive_facts(action, home=home, action_hash=action_hash, places=places)
            return facts, evaluate(self.policy, facts, ctx)
        with Resolutions() as resolutions:
            facts = derive_facts(action, home=home, action_hash=action_hash, places=places)
            decision = evaluate(self.policy, facts, ctx)
        if len(facts.parts) <= MEMO_PARTS:
            self._remember(key, _Remembered(facts, decision, tuple(resolutions.answers)))
        return facts, decision

    def _seen_before(self, key: tuple[Any, ...]) -> bool:
        """Was this key decided before (among the last MEMO_SEEN)? If not, it is noted now.
        An action is remembered from its second decision on: most actions come once (a batch
        of distinct calls would otherwise fill the memo with facts kept for nothing, ~5% of
        its time in a `check` batch), and what an agent repeats comes back soon."""
        mark = hash(key)
        seen = self._seen
        if mark in seen:
            return True
        if len(seen) >= MEMO_SEEN:
            with suppress(StopIteration, RuntimeError, KeyError):
                seen.pop(next(iter(seen)))
        seen[mark] = None
        return False

    def _remember(self, key: tuple[Any, ...], entry: _Remembered) -> None:
        entries = self._entries
        if len(entries) >= MEMO_ENTRIES and key not in entries:
            # Another thread may change the entries meanwhile: forgetting one is enough.
            with suppress(StopIteration, RuntimeError):
                entries.pop(next(iter(entries)), None)
        entries[key] = entry
