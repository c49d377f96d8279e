"""Path rules indexed by what their globs name, so a path is tried only against the rules
that could match it.

After the gates (`policy.index`), a command naming a path is still tried against every deny
and ask rule about paths of that access: the credential files, the browser profiles, the
persistence files, `/dev`, `/proc`... each testing its globs against each form of each path.
Their globs are mostly literal paths, directories (`~/.ssh/**`), base names (`.env`) and
base-name suffixes or prefixes (`*.pem`, `.env.*`) (see `rules._GlobSet`): set lookups. So,
for one place (project, home and the runtime's own places), every such rule's literal
pieces go into one index: a path form looks up itself, each directory above it, its base
name and the base name's short suffixes and prefixes, and learns the few rules that could
match. A glob that needs a regex is filed under the literal directory it starts with (`/proc/*/
environ` under `/proc/`), or under the literal start of its base name (`secrets.y*ml`); one
with neither (`**/.git/hooks/**`) keeps its rule a candidate for every path.

Only deny and ask rules whose `path` globs alone decide whether they can fire on a path are
indexed (no `path_contains` or `path_outside`). A part with a path known only at run time,
a path that cannot be placed, or a shell glob keeps every candidate, since such a path is
matched as "may be" rather than by lookup. An index covers one candidate set (see
`narrowed`), so its globs are expanded only for rules a call could meet. The property test
of `tests/policy/test_rule_index.py` checks decisions against trying every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from runestone.policy.globs import is_windows_place, names_project, project_key
from runestone.policy.rules import _glob_set, _own_places

if TYPE_CHECKING:
    from runestone.facts import Facts, Part
    from runestone.policy.model import Rule

_INDEXES_KEPT = 1024  # (place, candidate set) pairs
_FORMS_KEPT = 4096  # path forms remembered per index...
# ...and by one policy's indexes together: 1,024 full indexes would otherwise keep 4M forms
# (hundreds of MB) in a long-lived daemon. A form not remembered is looked up again.
_FORMS_KEPT_IN_ALL = 65536
_WILDCARDS = "*?["


def _literal(text: str) -> bool:
    return not any(c in text for c in _WILDCARDS)


def _first_wildcard(text: str) -> int:
    return min((i for i in (text.find(c) for c in _WILDCARDS) if i != -1), default=len(text))


def decided_by_globs(rule: Rule) -> tuple[str, ...] | None:
    """The `path` globs of a deny or ask rule that they alone decide for paths, else None."""
    spec = rule.spec
    if rule.decision == "allow" or "path" not in spec or "path_contains" in spec \
            or "path_outside" in spec:
        return None
    globs = spec["path"]
    return (globs,) if isinstance(globs, str) else tuple(globs)


def _filing(expanded: str) -> tuple[tuple[str, str], ...]:
    """Where one expanded glob is filed, as (table, key) pairs, as `rules._glob_set` sorts
    globs: a base-name glob (`**/NAME`) is matched against the base name, any other against
    the whole path; a glob matches only strings that start with its literal text up to its
    first wildcard (`*`, `?` or `[`). `always`: a candidate for every path."""
    rest = expanded[3:]
    if expanded.startswith("**/") and "/" not in rest and "**" not in rest:
        if _literal(rest):
            return (("names", rest),)
        if rest.startswith("*") and rest[1:] and _literal(rest[1:]):
            return (("suffixes", rest[1:]),)
        prefix = rest[:_first_wildcard(rest)]
        return (("prefixes", prefix),) if prefix else (("always", ""),)
    if _literal(expanded):
        return (("exact", expanded),)
    if expanded.endswith("/**") and len(expanded) > 3 and _literal(expanded[:-3]):
        return (("exact", expanded[:-3]), ("under", expanded[:-3] + "/"))
    head = expanded[:_first_wildcard(expanded)]
    directory = head[:head.rfind("/") + 1]
    return (("under", directory),) if directory else (("always", ""),)


@lru_cache(maxsize=4096)
def _split_by_project(globs: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A rule's globs in two: those that expand alike in every project, and those that read
    the project (`globs.names_project`)."""
    return (tuple(g for g in globs if not names_project(g)),
            tuple(g for g in globs if names_project(g)))


@lru_cache(maxsize=4096)
def _rule_filing(globs: tuple[str, ...], project: str, home: str,
                 places: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Where a rule's globs are filed for one place (keyed as `rules._glob_set`, with the
    project left out when they do not name it): the same rules are filed in index after
    index, one per candidate set and project a call meets."""
    found = _glob_set(globs, project, home, places)
    return tuple(entry for expanded in found.expanded for entry in _filing(expanded))


class PathIndexes(dict):  # type: ignore[type-arg]
    """One policy's path indexes by (place, candidate set), and how many more path forms
    they may remember between them (a new policy, on reload, starts a new count)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms_left = _FORMS_KEPT_IN_ALL


class PathIndex:
    """For one place: rule ids by exact path, directory, base name, suffix and prefix."""

    __slots__ = ("_possible", "always", "exact", "indexed", "names", "prefix_length",
                 "prefixes", "project_rules", "suffix_length", "suffixes", "under")

    def __init__(self, rules: Sequence[Rule], project: str, home: str,
                 naming_project: bool | None = None) -> None:
        """Index `rules` for one place; with `naming_project`, only the globs that read the
        project (True) or only the others (False), which then keeps the rules that have
        globs of the first kind in `project_rules`, for the index of each project. A rule
        may then be in both indexes, each holding some of its globs: a path can match the
        rule when either index finds it (see `narrowed`)."""
        self.exact: dict[str, set[int]] = {}
        self.under: dict[str, set[int]] = {}
        self.names: dict[str, set[int]] = {}
        self.suffixes: dict[str, set[int]] = {}
        self.prefixes: dict[str, set[int]] = {}
        self.always: set[int] = set()
        tables = {"exact": self.exact, "under": self.under, "names": self.names,
                  "suffixes": self.suffixes, "prefixes": self.prefixes}
        indexed: set[int] = set()
        left_out: list[Rule] = []
        for rule in rules:
            globs = decided_by_globs(rule)
            if globs is None:
                continue
            alike, reading = _split_by_project(globs)
            if naming_project is None:
                names = bool(reading)
            else:
                if reading and not naming_project:
                    left_out.append(rule)
                globs, names = (reading if naming_project else alike), naming_project
                if not globs:
                    continue
            places = _own_places() if any(g.startswith("{runestone-") for g in globs) else ()
            key = id(rule)
            indexed.add(key)
            place = project_key(project, home, names)
            for table, text in _rule_filing(globs, place, home, places):
                if table == "always":
                    self.always.add(key)
                else:
                    tables[table].setdefault(text, set()).add(key)
        self.indexed = frozenset(indexed)
        self.project_rules: tuple[Rule, ...] = tuple(left_out)
        self.suffix_length = max(map(len, self.suffixes), default=0)
        self.prefix_length = max(map(len, self.prefixes), default=0)
        # The index is not changed once built, so what a path form could match is worked out
        # once per form: the same paths come back call after call (the project, its files).
        self._possible: dict[str, frozenset[int]] = {}

    def add_possible(self, form: str, found: set[int], kept: PathIndexes) -> None:
        """Add the ids of the rules whose globs could match `form` (as `_GlobSet.fullmatch`
        tests it: the path, a directory it is under, its base name). `kept`: the indexes
        this one belongs to, whose count of remembered forms it shares."""
        possible = self._possible.get(form)
        if possible is None:
            possible = frozenset(self._look_up(form))
            if len(self._possible) < _FORMS_KEPT and kept.forms_left > 0:
                self._possible[form] = possible
                kept.forms_left -= 1
        found |= possible

    def _look_up(self, form: str) -> set[int]:
        found: set[int] = set()
        hit = self.exact.get(form)
        if hit:
            found |= hit
        probe = form + "/"
        slash = probe.find("/")
        while slash != -1:
            hit = self.under.get(probe[:slash + 1])
            if hit:
                found |= hit
            slash = probe.find("/", slash + 1)
        name = form[form.rfind("/") + 1:]
        hit = self.names.get(name)
        if hit:
            found |= hit
        for length in range(1, min(len(name), self.suffix_length) + 1):
            hit = self.suffixes.get(name[-length:])
            if hit:
                found |= hit
        for length in range(1, min(len(name), self.prefix_length) + 1):
            hit = self.prefixes.get(name[:length])
            if hit:
                found |= hit
        return found


def narrowed(rules: Sequence[Rule], part: Part, facts: Facts,
             indexes: PathIndexes) -> Sequence[Rule]:
    """`rules` without the indexed path rules no path of the part could match.

    The index covers these candidate rules only (kept per place and candidate set): a cold
    hook then expands the globs of the few rules its call could meet, as trying them would,
    not those of every path rule in the packs."""
    if part.kind == "command" and part.command is not None:
        paths = facts.arg_paths(part.command)
    elif part.kind == "file" and part.path is not None:
        paths = (part.path,)
    else:
        return rules
    if not paths or any(p.dynamic or not p.forms or p.glob for p in paths):
        return rules
    parts = _indexes_for(rules, facts, indexes)
    if not any(index.indexed for index in parts):
        return rules
    found: set[int] = set()
    for index in parts:
        found |= index.always
        for path in paths:
            for form in path.forms:
                index.add_possible(form, found, indexes)
    if len(parts) == 1:
        indexed = parts[0].indexed
        return [rule for rule in rules if id(rule) not in indexed or id(rule) in found]
    # A rule may be in both (some of its globs in each): found by either, it stays.
    first, second = parts[0].indexed, parts[1].indexed
    return [rule for rule in rules
            if id(rule) in found or (id(rule) not in first and id(rule) not in second)]


def _indexes_for(rules: Sequence[Rule], facts: Facts,
                 indexes: PathIndexes) -> tuple[PathIndex, ...]:
    """The indexes of this candidate set for the call's place, built on first need.

    In POSIX places the candidate set's globs are indexed in two: those that name no
    project (`globs.names_project`: `~/.ssh/**`, `/etc/**`, `.env`) expand alike in every
    project, so one index of them serves every project; those that read it (`./deploy/**`)
    get an index per project. A daemon or a batch meets many projects, and each new one
    would otherwise file every path rule of the set again to the same result (~0.25 ms a
    candidate set); split by rule rather than by glob, it filed all 40 globs of a rule with
    5 that read the project (~0.1 ms a project). A Windows place changes every expansion:
    one index per project."""
    ids = tuple(map(id, rules))
    places = _own_places(facts)
    project, home = facts.project, facts.home
    if is_windows_place(project) or is_windows_place(home):
        return (_kept(indexes, (project, home, places, ids, None),
                      lambda: PathIndex(rules, project, home)),)
    shared = _kept(indexes, ("", home, places, ids, False),
                   lambda: PathIndex(rules, project, home, naming_project=False))
    if not shared.project_rules:
        return (shared,)
    own = _kept(indexes, (project, home, places, ids, True),
                lambda: PathIndex(shared.project_rules, project, home, naming_project=True))
    return (shared, own)


def _kept(indexes: PathIndexes, key: tuple, build: Callable[[], PathIndex]) -> PathIndex:
    index = indexes.get(key)
    if index is None:
        index = build()
        if len(indexes) < _INDEXES_KEPT:
            indexes[key] = index
    return index
