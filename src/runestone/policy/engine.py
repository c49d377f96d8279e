"""The one place a decision is made: deny beats ask beats sandbox beats allow.

An action is split into parts (see `runestone.facts`). Every deny and ask rule that applies
to a part is tried; an allow or sandbox rule covers a part only when it certainly matches.
The action is allowed only when every part is covered and nothing was opaque; if any part
is covered only by a sandbox rule, it is allowed contained (`sandbox`, with the rule's
profile). Anything else falls to the policy's default, which is `ask` unless the policy
says otherwise: unknown means a human decides. A default of `sandbox` contains a shell
command no rule covers; what is opaque still asks, and what is not a shell command (a file
tool, a fetch, an MCP call) cannot be contained, so it asks too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runestone.actions import Action
from runestone.actions.paths import is_within
from runestone.actions.tools import Family
from runestone.actions.winpaths import shown
from runestone.facts import Facts, Part, derive_facts
from runestone.policy.index import RuleIndex, features
from runestone.policy.model import Decision, DecisionValue, EvalContext, Hit, Rule
from runestone.policy.path_index import PathIndexes, narrowed

if TYPE_CHECKING:
    from runestone.effects import Catalogue

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}
KINDS = ("command", "file", "url", "mcp", "tool")


class CompiledPolicy:
    """A validated policy with its rules indexed for fast lookup."""

    __slots__ = ("_allowed_effects", "_answers", "_by_kind", "_by_program", "_catalogue", "_merged",
                 "_path_indexes",
                 "_resolved", "cases", "default", "examples", "hash", "includes", "limits",
                 "name", "profile", "profiles", "programs", "rules", "source")

    def __init__(self, *, name: str, default: DecisionValue, rules: tuple[Rule, ...],
                 hash: str, source: str = "", includes: tuple[str, ...] = (),
                 examples: tuple[tuple[Rule, dict[str, Any], str, int | None], ...] = (),
                 cases: tuple[tuple[dict[str, Any], str, int | None], ...] = (),
                 programs: dict[str, Any] | None = None,
                 limits: tuple[Any, ...] = (), profile: str = "default",
                 profiles: dict[str, Any] | None = None) -> None:
        self.programs = programs or {}
        self.profile = profile  # the sandbox profile of `default = "sandbox"`
        self.profiles = profiles or {}  # the policy's own [sandbox."NAME"] tables
        self._resolved: dict[str, Any] = {}
        self.limits = limits  # runestone.policy.limits.Limit: counted by the gatekeeper
        self._catalogue: Catalogue | None = None
        self._allowed_effects: frozenset[str] | None = None
        # Command-only rules' answers by command (see _command_answers).
        self._answers: dict[int, tuple[Any, Any, str, dict[int, Any]]] = {}
        self._path_indexes = PathIndexes()
        self.name = name
        self.default = default
        self.rules = rules
        self.hash = hash
        self.source = source
        self.includes = includes
        self.examples = examples
        self.cases = cases
        order = {id(rule): i for i, rule in enumerate(rules)}
        self._by_kind: dict[str, RuleIndex] = {kind: RuleIndex(order) for kind in KINDS}
        self._by_program: dict[str, list[Rule]] = {}
        self._merged: dict[str, tuple[Rule, ...]] = {}
        for rule in rules:
            for kind in rule.kinds:
                if kind == "command" and rule.programs:
                    for program in rule.programs:
                        self._by_program.setdefault(program, []).append(rule)
                else:  # command rules of any program sit in the command index
                    self._by_kind[kind].add(rule)

    @property
    def allowed_effects(self) -> frozenset[str]:
        """Every effect some allow rule names: computed once, not per uncovered part."""
        if self._allowed_effects is None:
            self._allowed_effects = frozenset(
                effect for rule in self.rules if rule.decision == "allow"
                for effect in _strings(rule.spec.get("effects")))
        return self._allowed_effects

    @property
    def catalogue(self) -> Catalogue:
        """The programs catalogue: the built-in one, with the policy's own entries."""
        if self._catalogue is None:
            from runestone.effects import builtin

            catalogue = builtin()
            if self.programs:
                catalogue = catalogue.extended(self.programs, self.source)
            self._catalogue = catalogue
        return self._catalogue

    def sandbox_profile(self, name: str) -> Any:
        """The resolved sandbox profile `name` (runestone.sandbox.profiles.Profile), read
        only when a decision needs it. Raises PolicyError for an unknown name."""
        profile = self._resolved.get(name)
        if profile is None:
            from runestone.policy.errors import PolicyError
            from runestone.sandbox.profiles import ProfileError, resolve

            try:
                profile = self._resolved[name] = resolve(name, self.profiles, self.source)
            except ProfileError as exc:
                raise PolicyError(exc.message, source=exc.source, field=exc.field,
                                  hint=exc.hint) from None
        return profile

    def __repr__(self) -> str:
        return f"CompiledPolicy(name={self.name!r}, hash={self.hash!r}, rules={len(self.rules)})"

    def candidates(self, part: Part, facts: Facts | None = None,
                   ctx: EvalContext | None = None) -> Sequence[Rule]:
        """The rules that can apply to a part, in declaration order. With the part's facts
        and context, only those whose gate the part passes (see `policy.index`)."""
        index = self._by_kind[part.kind]
        name = part.command.name if part.kind == "command" and part.command else ""
        specific = self._by_program.get(name, ()) if part.kind == "command" else ()
        if facts is not None:
            seen = features(part, facts, ctx or EvalContext())
            chosen = index.select(part.kind, seen, specific, key=name)
            return narrowed(chosen, part, facts, self._path_indexes)
        if part.kind != "command":
            return index.all()
        merged = self._merged.get(name)
        if merged is None:
            merged = index.all(specific)
            if len(self._merged) < 4096:
                self._merged[name] = merged
        return merged

    def decide(
        self, action: Action, ctx: EvalContext | None = None, *, home: str | None = None
    ) -> Decision:
        """Analyse and decide one action."""
        return evaluate(self, derive_facts(action, home=home), ctx or EvalContext())


_UNSEEN = object()
_COMMANDS_KEPT = 4096


def _command_answers(policy: CompiledPolicy, part: Part, facts: Facts) -> dict[int, Any]:
    """The command-only rules' answers for a command part (Rule.command_only), by rule id.

    Such an answer depends on the command and its reading alone, and the reading on the
    command, the catalogue and the home. Shell analyses are memoised (shell.dialect), so a
    command seen again is the same object and its answers are reused. Kept per policy,
    which pins its rules (their ids stay theirs), by the command's id, with the command in
    the value so no id is reused while its entry lives. A part of kind command is made of
    its command alone (its label is the command's line)."""
    command = part.command
    catalogue = facts.catalogue
    entry = policy._answers.get(id(command))
    if entry is None or entry[0] is not command or entry[1] is not catalogue \
            or entry[2] != facts.home:
        if len(policy._answers) >= _COMMANDS_KEPT:
            policy._answers.clear()
        entry = policy._answers[id(command)] = (command, catalogue, facts.home, {})
    return entry[3]


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return "`" + (text if len(text) <= limit else text[: limit - 1] + "…") + "`"


def _unique_ids(hits: Sequence[Hit]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.rule.id, None)
    return tuple(seen)


def _rule_reason(hit: Hit) -> str:
    reason = hit.rule.reason.rstrip(".")
    text = f"{reason}: {_quote(hit.part_label)}."
    if hit.rule.instead:
        text += f" Instead: {hit.rule.instead}"
    return text


def _severity(hits: Sequence[Hit]) -> str:
    if not hits:
        return ""
    return max((h.rule.severity for h in hits), key=lambda s: SEVERITY_ORDER.get(s, 0))


def evaluate(policy: CompiledPolicy, facts: Facts, ctx: EvalContext) -> Decision:
    """Decide one analysed action under a policy."""
    if policy.programs:
        facts.use_catalogue(policy.catalogue)
    denies: list[Hit] = []
    maybe_denies: list[Hit] = []
    asks: list[Hit] = []
    allows: list[Hit] = []
    sandboxes: list[Hit] = []
    uncovered: list[Part] = []
    unasked: list[Part] = []  # parts neither allowed nor definitely asked by a rule
    asked_wrappers: set[str] = set()  # wrappers (ssh, sudo...) a rule definitely asked
    mcp_allowed = False  # an MCP call's own part comes first; the paths it names follow

    for part in facts.parts:
        covered = asked = contained = False
        answers = (_command_answers(policy, part, facts)
                   if part.kind == "command" and part.command is not None else None)
        for rule in policy.candidates(part, facts, ctx):
            if (rule.decision == "allow" and covered) or (rule.decision == "sandbox"
                                                          and contained):
                continue
            if rule.command_only and answers is not None:
                result = answers.get(id(rule), _UNSEEN)
                if result is _UNSEEN:
                    result = answers[id(rule)] = rule.match(part, facts, ctx)
            else:
                result = rule.match(part, facts, ctx)
            if result is False:
                continue
            hit = Hit(rule, part.label, result is True)
            if rule.decision == "deny":
                (denies if result else maybe_denies).append(hit)
            elif rule.decision == "ask":
                asks.append(hit)
                asked = asked or result is True
            elif rule.decision == "sandbox":
                if result:
                    sandboxes.append(hit)
                    covered = contained = True
            elif result:
                allows.append(hit)
                covered = True
        if part.kind == "mcp":
            mcp_allowed = covered
        elif part.in_mcp and mcp_allowed and not covered and not asked:
            covered = True  # the rule that allows the MCP call allows what it names
        if asked and part.command is not None and part.command.is_wrapper:
            asked_wrappers.add(part.command.name)
        if not covered:
            uncovered.append(part)
            if not asked:
                unasked.append(part)

    action_hash = facts.action_hash
    opaque = tuple(
        {"kind": o.kind, "reason": o.reason, "snippet": o.snippet} for o in facts.opaque
    )

    def make(decision: DecisionValue, reason: str, hits: Sequence[Hit],
             explained: bool = False) -> Decision:
        return Decision(
            decision=decision,
            reason=reason,
            rules=_unique_ids(hits),
            policy_hash=policy.hash,
            action_hash=action_hash,
            opaque=opaque,
            hits=tuple(hits),
            severity=_severity(hits),
            explained=explained,
        )

    if denies:
        reason = _rule_reason(denies[0])
        others = [r for r in _unique_ids(denies) if r != denies[0].rule.id]
        if others:
            reason += f" (also: {', '.join(others)})"
        return make("deny", reason, denies)

    if asks or maybe_denies:
        pieces = [_rule_reason(h) for h in asks[:2]]
        for hit in maybe_denies[:2]:
            pieces.append(
                f"Could not tell statically whether {_quote(hit.part_label)} is covered by "
                f"'{hit.rule.id}' ({hit.rule.reason.rstrip('.')}), so a human decides."
            )
        if facts.opaque:
            pieces.append(_opaque_reason(facts))
        # Only an ask that its ask rules fully account for may be answered by a grant of
        # those rules: nothing opaque, no deny rule that might apply, no part left over.
        # A part that runs inside an asked wrapper (the remote command of an asked `ssh`)
        # is what that ask is about.
        explained = not (maybe_denies or facts.opaque or any(
            not _inside(part, asked_wrappers) for part in unasked))
        return make("ask", " ".join(pieces), [*asks, *maybe_denies], explained)

    if facts.opaque:
        fallback: DecisionValue = "deny" if policy.default == "deny" else "ask"
        return make(fallback, _opaque_reason(facts), [])

    if not facts.parts:
        return make(
            policy.default if policy.default in ("ask", "deny") else "ask",
            "Nothing to judge in this tool call (no command, path or URL found); "
            f"the policy default applies: {policy.default}.",
            [],
        )

    if uncovered and policy.default == "sandbox":
        return _contain(policy, facts, make, [*sandboxes, *allows], uncovered)

    if uncovered:
        labels = ", ".join(_quote(p.label, 60) for p in uncovered[:3])
        more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
        if policy.default == "allow":
            return make("allow", f"No rule matched {labels}{more}; the policy default is "
                        "allow.", allows)
        verb = "a human decides" if policy.default == "ask" else "so it is denied"
        details = [d for d in (uncovered_detail(policy, facts, p) for p in uncovered[:3]) if d]
        why = (": " + "; ".join(dict.fromkeys(details))) if details else ""
        return make(
            policy.default,
            f"No rule allows {labels}{more}{why}. The policy default is {policy.default}, "
            f"{verb}.",
            allows,
        )

    if sandboxes:
        return _contain(policy, facts, make, [*sandboxes, *allows], [])

    ids = _unique_ids(allows)
    return make("allow", f"Allowed by {', '.join(ids)}.", allows)


def _contain(policy: CompiledPolicy, facts: Facts, make: Any, hits: list[Hit],
             uncovered: list[Part]) -> Decision:
    """The `sandbox` answer: the parts sandbox rules cover, and those no rule covers under
    `default = "sandbox"`, run contained by one profile. Only a shell command can be
    contained; two parts that need different profiles, or anything else, asks."""
    profiles = dict.fromkeys(h.rule.profile for h in hits if h.rule.decision == "sandbox")
    if uncovered:
        profiles.setdefault(policy.profile, None)
    ids = _unique_ids([h for h in hits if h.rule.decision == "sandbox"])
    why = (f"contained by {', '.join(ids)}" if ids else "")
    if uncovered:
        labels = ", ".join(_quote(p.label, 60) for p in uncovered[:3])
        more = f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else ""
        why = "; ".join(w for w in (why, f"no rule allows {labels}{more} and the policy "
                                    "default is sandbox") if w)
    if not _containable(facts):
        what = (f"a {facts.family.value} call" if facts.family is not Family.SHELL
                else "a Windows shell's command")
        return make("ask", f"Only a POSIX shell command can run in the sandbox, and this is "
                    f"{what} ({why}), so a human decides.", hits)
    contained = [*uncovered, *(p for p in facts.parts if any(
        h.part_label == p.label and h.rule.decision == "sandbox" for h in hits))]
    for part in contained:
        reach = _reaches_project(facts, part)
        if reach:
            return make("ask", f"The sandbox leaves the project writable, and "
                        f"{_quote(part.label, 60)} {reach}, so containing it protects "
                        f"nothing there ({why}); a human decides.", hits)
    if len(profiles) > 1:
        return make("ask", f"Its parts need different sandbox profiles "
                    f"({', '.join(profiles)}), and one command runs in one sandbox ({why}); "
                    "a human decides.", hits)
    profile = next(iter(profiles))
    return make("sandbox", f"Runs in the sandbox (profile {profile}): {why}.", hits
                )._replace(profile=profile)


def _reaches_project(facts: Facts, part: Part) -> str:
    """How a part deletes or writes the project as a whole (the project directory or one
    above it: `rsync --delete empty/ /`, `find / -delete`), in words, or ''. The sandbox
    protects everything but the project, so such a command is not one to contain."""
    if part.command is None:
        return ""
    reading = facts.reading(part.command)
    destructive = reading.understood and bool(reading.effects & {"delete", "write"})
    for fact in facts.arg_paths(part.command):
        explicit = fact.access in ("delete", "write", "edit")
        if not explicit and not (destructive and fact.access == "arg"):
            continue
        for form in fact.forms:
            base = form.split("*", 1)[0].split("?", 1)[0].rstrip("/") or "/"
            # The project itself counts for a delete (`rsync --delete empty/ .`), not for
            # a write (`git pull` writes its own worktree, which is what projects are for).
            itself = base.rstrip("/") == facts.project.rstrip("/")
            if is_within(facts.project, base) and not (itself and fact.access in (
                    "write", "edit")):
                verb = "deletes or changes" if fact.access in ("arg", "delete") else "writes"
                return f"{verb} {shown(base)}, which holds the project"
    return ""


def _containable(facts: Facts) -> bool:
    """Whether the action is a bash command on a POSIX machine: what bubblewrap can run."""
    if facts.family is not Family.SHELL:
        return False
    from runestone.actions.tools import shell_command_of
    from runestone.shell.dialect import dialect_of, is_windows_cwd

    action = facts.action
    source = shell_command_of(action.input)
    if source is None or is_windows_cwd(action.cwd):
        return False
    return dialect_of(source, tool=action.tool, agent=action.agent, cwd=action.cwd) == "bash"


def uncovered_detail(policy: CompiledPolicy, facts: Facts, part: Part) -> str:
    """Why no allow rule covers a part, in a few words a person reads at a glance: what was
    not understood, which of its effects no rule allows, or which path lies outside what
    the rules allow."""
    from runestone.effects import EFFECTS

    if part.kind == "command" and part.command is not None:
        reading = facts.reading(part.command)
        if not reading.understood:
            return f"not understood ({reading.why})"
        extra = sorted(reading.effects - policy.allowed_effects)
        if extra:
            return "it " + ", ".join(EFFECTS[e] for e in extra if e in EFFECTS)
        for fact in facts.arg_paths(part.command):
            if fact.dynamic or not fact.forms:
                return f"`{fact.raw}` is a path known only at run time"
            if not any(is_within(form, facts.project) for form in fact.forms):
                return f"it {_ACCESS_VERB.get(fact.access, 'uses')} {shown(fact.forms[-1])}"
        return ""
    if part.path is not None:
        if part.path.dynamic or not part.path.forms:
            return f"`{part.path.raw}` is a path known only at run time"
        return f"it {_ACCESS_VERB.get(part.path.access, 'uses')} {shown(part.path.forms[-1])}"
    return ""


_ACCESS_VERB = {"read": "reads", "write": "writes", "edit": "edits", "delete": "deletes",
                "list": "lists", "exec": "runs", "use": "uses", "arg": "names"}


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _inside(part: Part, wrappers: set[str]) -> bool:
    """Whether the part's command runs inside one of these wrappers."""
    via = part.command.via if part.command is not None else ()
    return any(step.split(" ", 1)[0] in wrappers for step in via)


def _opaque_reason(facts: Facts) -> str:
    reasons = "; ".join(f"{o.reason} ({_quote(o.snippet, 40)})" if o.snippet else o.reason
                        for o in facts.opaque[:3])
    return f"Not fully understood, so it cannot be auto-allowed: {reasons}."
