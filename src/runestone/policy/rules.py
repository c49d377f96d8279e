"""Compile one rule table into matchers.

A rule's matchers are grouped by what they look at: shell commands, file paths, URLs,
MCP calls, tool arguments, and who is acting. Which parts a rule applies to follows from
the groups it uses, so a rule about `rm` never judges a URL.

Quantifiers follow the decision: a deny or ask rule fires when *any* path or URL of a part
matches; an allow rule covers a part only when *all* of them match. A value the analyzer
could not know (`rm -rf $X`) makes the answer uncertain: an uncertain deny becomes an ask,
an uncertain allow allows nothing.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from runestone.actions.paths import PathFact, is_within
from runestone.actions.urls import UrlFact
from runestone.facts import Facts, Part, input_field
from runestone.policy.errors import PolicyError
from runestone.policy.globs import (
    CommandPatterns,
    anchor_dir,
    command_pattern_program,
    expand_anchor,
    glob_as_regex,
    glob_base,
    glob_source,
    names_project,
    path_glob_source,
    project_key,
    runestone_places,
)
from runestone.policy.index import gate_of
from runestone.policy.model import DECISIONS, EvalContext, Matcher, Rule, Tri
from runestone.shell.model import SimpleCommand

COMMAND_FIELDS = ("command", "program", "subcommand", "flags", "all_flags", "without_flags",
                  "args", "code", "code_lang", "via", "piped", "effects")
PATH_FIELDS = ("path", "path_except", "path_outside", "path_contains", "access")
URL_FIELDS = ("domain", "scheme", "address")
MCP_FIELDS = ("mcp_server", "mcp_tool")
ARGUMENT_FIELDS = ("arguments",)
GENERAL_FIELDS = ("tool", "family", "text", "agent", "session", "labels", "tainted",
                  "project")
META_FIELDS = ("id", "decision", "reason", "instead", "severity", "match", "not_match",
               "profile")
ALL_FIELDS = frozenset(
    COMMAND_FIELDS + PATH_FIELDS + URL_FIELDS + MCP_FIELDS + ARGUMENT_FIELDS
    + GENERAL_FIELDS + META_FIELDS
)
# A rule naming only these reads nothing but the command and what its program's table says
# of it (the reading, flags, command line, positionals): see Rule.command_only.
_COMMAND_ONLY = frozenset(COMMAND_FIELDS + META_FIELDS)
SEVERITIES = ("low", "medium", "high", "critical")
ACCESS_KINDS = ("read", "write", "edit", "delete", "list", "exec", "use", "arg")
ADDRESS_KINDS = ("metadata", "link-local", "loopback", "private", "public-ip", "unspecified",
                 "invalid")
FAMILIES = ("shell", "file_read", "file_write", "file_edit", "web_fetch", "web_search", "mcp",
            "agent", "generic")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")

# Options that take a value before a subcommand, so `git -C dir push` has subcommand `push`.
GLOBAL_OPTIONS_WITH_VALUE: dict[str, frozenset[str]] = {
    "git": frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path",
                      "--config-env"}),
    "kubectl": frozenset({"-n", "--namespace", "--context", "--kubeconfig", "-s", "--server",
                          "--cluster", "--user", "-l", "--selector"}),
    "docker": frozenset({"-H", "--host", "--context", "-c", "--config", "-l", "--log-level"}),
    "helm": frozenset({"-n", "--namespace", "--kube-context", "--kubeconfig"}),
    "aws": frozenset({"--profile", "--region", "--output", "--endpoint-url", "--query"}),
    "gcloud": frozenset({"--project", "--account", "--configuration", "--format"}),
    "npm": frozenset({"--prefix", "-w", "--workspace"}),
    "make": frozenset({"-C", "-f", "--file", "--directory", "-j", "--jobs"}),
    "terraform": frozenset(),
    "redis-cli": frozenset({"-h", "-p", "-a", "-n", "-u", "--user", "--pass"}),
}


class RuleError(PolicyError):
    """A rule table is malformed."""


def _strings(value: Any, field: str, rule_id: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RuleError(
        f"rule '{rule_id}': '{field}' must be a string or a list of strings, "
        f"got {type(value).__name__}",
        field=field,
    )


class _LazyRegex:
    """A rule's regex from a document that compiled before, compiled when first used: a
    cold hook would otherwise compile every pack's regexes to use one or none."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def search(self, text: str) -> re.Match[str] | None:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled.search(text)


def _regex(pattern: str, field: str, rule_id: str,
           known_valid: bool = False) -> re.Pattern[str] | _LazyRegex:
    if known_valid:
        return _LazyRegex(pattern)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RuleError(
            f"rule '{rule_id}': '{field}' is not a valid regular expression: {exc}",
            field=field,
        ) from exc


def _any(values: Iterable[Tri]) -> Tri:
    uncertain = False
    for value in values:
        if value is True:
            return True
        if value is None:
            uncertain = True
    return None if uncertain else False


def _all(values: Iterable[Tri]) -> Tri:
    uncertain = False
    for value in values:
        if value is False:
            return False
        if value is None:
            uncertain = True
    return None if uncertain else True


# --- command facts --------------------------------------------------------------------------


def command_positionals(command: SimpleCommand, facts: Facts | None = None) -> list[str]:
    """Non-flag arguments: as the command's program reads them when its table explains it
    (`git -c x=y push` is `push`), else skipping the values of known global options."""
    if facts is not None:
        reading = facts.reading(command)
        if reading.understood:
            return list(reading.positionals)
    takes_value = GLOBAL_OPTIONS_WITH_VALUE.get(command.name, frozenset())
    positionals: list[str] = []
    skip_next = False
    options_ended = False
    for word in command.args:
        text = word.text
        if skip_next:
            skip_next = False
            continue
        if not options_ended and text == "--":
            options_ended = True
            continue
        if not options_ended and text.startswith("-") and len(text) > 1:
            if not positionals and text in takes_value:
                skip_next = True
            continue
        positionals.append(text)
    return positionals


# --- path and URL tests -------------------------------------------------------------------


class _GlobSet:
    """A rule's path globs, expanded for one project and home and sorted by how to test them.

    Most globs are a literal name (`.env`), a suffix (`*.pem`), a prefix (`.env.*`), a
    literal path, or everything under a directory (`~/.ssh/**`): those are set lookups and
    `startswith` / `endswith` calls. Only the rest become one regex, compiled when a path
    first gets that far: a path index files a rule's globs for each project it meets
    (`path_index`), and most of those sets never test a path.
    Base-name globs match at any depth, so they are tested against the base name alone.
    """

    __slots__ = ("_name_regex", "_path_regex", "expanded", "name_exact", "name_globs",
                 "name_prefix", "name_suffix", "path_exact", "path_globs", "path_under")

    def __init__(self, name_exact: frozenset[str], name_prefix: tuple[str, ...],
                 name_suffix: tuple[str, ...], name_globs: tuple[str, ...],
                 path_exact: frozenset[str], path_under: tuple[str, ...],
                 path_globs: tuple[str, ...], expanded: tuple[str, ...]) -> None:
        self.name_exact, self.name_prefix, self.name_suffix = name_exact, name_prefix, name_suffix
        self.path_exact, self.path_under, self.expanded = path_exact, path_under, expanded
        self.name_globs, self.path_globs = name_globs, path_globs  # for the regexes
        self._name_regex: re.Pattern[str] | None = None
        self._path_regex: re.Pattern[str] | None = None

    def fullmatch(self, path: str) -> bool:
        if path in self.path_exact:
            return True
        if self.path_under and (path + "/").startswith(self.path_under):
            return True
        if self.path_globs:
            regex = self._path_regex
            if regex is None:
                regex = self._path_regex = _union([path_glob_source(g) for g in self.path_globs])
            if regex.fullmatch(path):
                return True
        name = path[path.rfind("/") + 1:]
        if name in self.name_exact:
            return True
        if self.name_suffix and name.endswith(self.name_suffix):
            return True
        if self.name_prefix and name.startswith(self.name_prefix):
            return True
        if not self.name_globs:
            return False
        regex = self._name_regex
        if regex is None:
            regex = self._name_regex = _union([glob_source(g) for g in self.name_globs])
        return regex.fullmatch(name) is not None


def _union(sources: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{s})" for s in sources), re.DOTALL)


def _literal(text: str) -> bool:
    return not any(c in text for c in "*?[")


def _own_places(facts: Facts | None = None) -> tuple[str, ...]:
    """The runtime's own places as part of a cache key (see globs.runestone_places); with
    facts, as read once for their decision."""
    return facts.runestone_places() if facts is not None else tuple(runestone_places().values())


def _no_places(facts: Facts | None = None) -> tuple[str, ...]:
    return ()


@lru_cache(maxsize=4096)
def _glob_set(globs: tuple[str, ...], project: str, home: str,
              places: tuple[str, ...] = ()) -> _GlobSet:
    """`places` only keys the cache: `{runestone-...}` anchors expand to them."""
    name_exact: set[str] = set()
    name_prefix: list[str] = []
    name_suffix: list[str] = []
    name_globs: list[str] = []
    path_exact: set[str] = set()
    path_under: list[str] = []
    path_globs: list[str] = []
    expanded_all: list[str] = []
    for glob in globs:
        # Expanded only: the regex is built for the few globs that need one, and only when a
        # path is tested (building it for every glob was most of the cost of a place's
        # first decision).
        expanded = expand_anchor(glob, project, home)
        expanded_all.append(expanded)
        rest = expanded[3:]
        if expanded.startswith("**/") and "/" not in rest and "**" not in rest:
            if _literal(rest):
                name_exact.add(rest)
            elif rest.startswith("*") and _literal(rest[1:]) and rest[1:]:
                name_suffix.append(rest[1:])
            elif rest.endswith("*") and _literal(rest[:-1]) and rest[:-1]:
                name_prefix.append(rest[:-1])
            else:
                name_globs.append(rest)
        elif _literal(expanded):
            path_exact.add(expanded)
        elif expanded.endswith("/**") and _literal(expanded[:-3]) and len(expanded) > 3:
            # `X/**` is X itself and everything below it.
            path_exact.add(expanded[:-3])
            path_under.append(expanded[:-3] + "/")
        else:
            path_globs.append(expanded)
    return _GlobSet(frozenset(name_exact), tuple(name_prefix), tuple(name_suffix),
                    tuple(name_globs), frozenset(path_exact), tuple(path_under),
                    tuple(path_globs), tuple(expanded_all))


def _path_matches_glob(fact: PathFact, globs: _GlobSet, every_form: bool) -> Tri:
    if fact.dynamic or not fact.forms:
        return None
    results: list[Tri] = []
    for form in fact.forms:
        hit: Tri = globs.fullmatch(form)
        if not hit and fact.glob and any(_glob_may_reach(form, expanded)
                                         for expanded in globs.expanded):
            # `cat src/*.json` may or may not expand to `credentials.json`: only the files
            # present when it runs can say, so it is uncertain (a deny becomes an ask).
            hit = None
        results.append(hit)
    return _all(results) if every_form else _any(results)


def _glob_may_reach(arg_glob: str, expanded: str) -> bool:
    """Could the argument's glob (`~/.ssh/*`) expand to a path the rule names (`~/.ssh/id_*`)?"""
    if glob_as_regex(arg_glob).fullmatch(expanded):
        return True
    if expanded.startswith("**/"):
        return glob_as_regex(posixpath.basename(arg_glob)).fullmatch(expanded[3:]) is not None
    return False


def _path_outside(fact: PathFact, dirs: list[str]) -> Tri:
    if fact.dynamic or not fact.forms:
        return None
    for form in fact.forms:
        base = glob_base(form) if fact.glob else form
        if not any(is_within(base, d) for d in dirs):
            return True
    return False


def _path_contains(fact: PathFact, dirs: list[str]) -> Tri:
    if fact.dynamic or not fact.forms:
        return None
    for form in fact.forms:
        if fact.glob:
            if any(_glob_may_contain(form, d) for d in dirs):
                return True
        elif any(is_within(d, form) for d in dirs):
            return True
    return False


def _glob_may_contain(pattern: str, directory: str) -> bool:
    """Could deleting what `pattern` expands to delete `directory`? Yes when an expansion
    may be the directory or one of its ancestors, or when the pattern takes every name
    (`~/*`, `/**`) below one of them. `./**/*.pyc` takes only `.pyc` names: not `.git`."""
    candidates = [directory]
    while (parent := posixpath.dirname(candidates[-1])) != candidates[-1]:
        # Stops at `/`, and at a Windows share's `//` (whose parent is itself).
        candidates.append(parent)
    regex = glob_as_regex(pattern)
    if any(regex.fullmatch(candidate) for candidate in candidates):
        return True
    last = pattern.rstrip("/").rsplit("/", 1)[-1]
    every_name = last.strip("*") == "" or last in ("?*", "*?")
    return every_name and is_within(directory, glob_base(pattern))


def _domain_matches(url: UrlFact, patterns: tuple[str, ...]) -> bool:
    host = url.host
    if not host:
        return False
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if fnmatchcase(host, pattern):
                return True
        elif host == pattern or host.endswith("." + pattern) or fnmatchcase(host, pattern):
            return True
    return False


# --- compiling ----------------------------------------------------------------------------


class _Builder:
    """Collects matchers while validating one rule table."""

    def __init__(self, table: dict[str, Any], origin: str, known_valid: bool) -> None:
        self.table = table
        self.origin = origin
        self.known_valid = known_valid
        self.rule_id = str(table.get("id", "?"))
        self.decision = table.get("decision")
        self.matchers: list[Matcher] = []

    def strings(self, field: str) -> tuple[str, ...] | None:
        if field not in self.table:
            return None
        values = _strings(self.table[field], field, self.rule_id)
        if not values:
            raise RuleError(f"rule '{self.rule_id}': '{field}' is empty", field=field)
        return values

    def add(self, matcher: Matcher) -> None:
        self.matchers.append(matcher)


def _paths_of(part: Part, facts: Facts) -> tuple[PathFact, ...]:
    if part.kind == "file" and part.path is not None:
        return (part.path,)
    if part.kind == "command" and part.command is not None:
        return facts.arg_paths(part.command)
    return ()


def _urls_of(part: Part, facts: Facts) -> tuple[UrlFact, ...]:
    if part.kind == "url" and part.url is not None:
        return (part.url,)
    if part.kind == "command" and part.command is not None:
        return facts.arg_urls(part.command)
    return ()


def compile_rule(table: dict[str, Any], origin: str, *, known_valid: bool = False) -> Rule:
    """Validate a rule table and compile its matchers. Raises RuleError naming the field.

    `known_valid`: the table compiled before (it comes from the policy cache), so its
    regular expressions are compiled on first use instead of now."""
    b = _Builder(table, origin, known_valid)
    rid = b.rule_id
    for key in ("id", "decision", "reason"):
        if key not in table:
            raise RuleError(f"rule '{rid}' has no '{key}'", field=key)
    if not isinstance(table["id"], str) or not RULE_ID.match(table["id"]):
        raise RuleError(
            f"rule id {table['id']!r} must start with a letter or digit and use only "
            "letters, digits, '.', '_', ':' and '-'",
            field="id",
        )
    unknown = sorted(set(table) - ALL_FIELDS)
    if unknown:
        raise RuleError(
            f"rule '{rid}' has unknown field(s): {', '.join(unknown)}",
            field=unknown[0],
            hint="see docs/policy.md for the fields a rule may use",
        )
    decision = table["decision"]
    if decision not in DECISIONS:
        raise RuleError(
            f"rule '{rid}': decision must be one of deny, ask, sandbox, allow; got "
            f"{decision!r}",
            field="decision",
        )
    profile = table.get("profile", "default" if decision == "sandbox" else "")
    if "profile" in table and (decision != "sandbox" or not isinstance(profile, str)
                               or not profile):
        raise RuleError(f"rule '{rid}': 'profile' names the sandbox profile of a "
                        "decision = \"sandbox\" rule", field="profile")
    for key in ("reason", "instead"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise RuleError(f"rule '{rid}': '{key}' must be a non-empty string", field=key)
    severity = table.get("severity", "high" if decision == "deny" else "medium")
    if severity not in SEVERITIES:
        raise RuleError(
            f"rule '{rid}': severity must be one of {', '.join(SEVERITIES)}",
            field="severity",
        )
    # A sandbox rule, like an allow rule, covers a part only when it certainly matches.
    every = decision in ("allow", "sandbox")

    has_cmd = any(k in table for k in COMMAND_FIELDS)
    has_path = any(k in table for k in PATH_FIELDS)
    has_url = any(k in table for k in URL_FIELDS)
    has_mcp = any(k in table for k in MCP_FIELDS)
    has_args = "arguments" in table
    if has_path and has_url:
        raise RuleError(f"rule '{rid}' mixes path and URL matchers; split it into two rules")
    if has_mcp and (has_cmd or has_path or has_url):
        raise RuleError(f"rule '{rid}' mixes MCP matchers with command, path or URL matchers")
    if has_args and (has_cmd or (has_path and not table.get("tool"))):
        raise RuleError(
            f"rule '{rid}': 'arguments' applies to tool inputs; it cannot be combined with "
            "command matchers",
            field="arguments",
        )

    kinds: set[str]
    if has_cmd:
        kinds = {"command"}
    elif has_mcp:
        kinds = {"mcp"}
    elif has_path:
        kinds = {"file"}
        if not every:
            # Commands too: those their program's table explains carry each path's access;
            # the others carry `arg`, which only rules naming `arg` (or no access) look at.
            kinds.add("command")
    elif has_url:
        kinds = {"url"} if every else {"url", "command"}
    elif has_args:
        kinds = {"tool", "mcp", "file", "url"}
    else:
        kinds = {"command", "file", "url", "mcp", "tool"}

    _compile_general(b, every)
    programs = _compile_command(b, every) if has_cmd else None
    if has_path:
        _compile_path(b, every)
    if has_url:
        _compile_url(b, every)
    if has_mcp:
        _compile_mcp(b)
    if has_args:
        _compile_arguments(b)

    spec = {k: table[k] for k in sorted(table) if k not in ("match", "not_match")}
    return Rule(
        id=table["id"],
        decision=decision,
        reason=table["reason"].strip(),
        instead=str(table.get("instead", "")).strip(),
        severity=severity,
        origin=origin,
        kinds=frozenset(kinds),
        programs=programs,
        matchers=tuple(b.matchers),
        spec=spec,
        tainted_only=bool(table.get("tainted", False)),
        profile=profile,
        gate=gate_of(table),
        command_only=has_cmd and set(table) <= _COMMAND_ONLY,
    )


def _compile_general(b: _Builder, every: bool) -> None:
    rid = b.rule_id
    tools = b.strings("tool")
    if tools:
        b.add(lambda part, facts, ctx: any(fnmatchcase(facts.action.tool, t) for t in tools))
    families = b.strings("family")
    if families:
        bad = [f for f in families if f not in FAMILIES]
        if bad:
            raise RuleError(f"rule '{rid}': unknown family {bad[0]!r}; one of {FAMILIES}",
                            field="family")
        fams = frozenset(families)
        b.add(lambda part, facts, ctx: facts.family.value in fams)
    for field in ("agent", "session"):
        globs = b.strings(field)
        if globs:
            b.add(_identity_matcher(field, globs))
    projects = b.strings("project")
    if projects:
        bad = [p for p in projects if not p.startswith(("/", "~"))]
        if bad:
            raise RuleError(f"rule '{rid}': 'project' takes absolute directories or globs "
                            f"(`/home/dev/app`, `~/work/**`); got {bad[0]!r}", field="project")
        b.add(_project_matcher(projects))
    if "labels" in b.table:
        labels = b.table["labels"]
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise RuleError(f"rule '{rid}': 'labels' must be a table of strings", field="labels")
        wanted = dict(labels)
        b.add(lambda part, facts, ctx: all(
            fnmatchcase(ctx.labels.get(k, ""), v) for k, v in wanted.items()))
    if "tainted" in b.table:
        if not isinstance(b.table["tainted"], bool):
            raise RuleError(f"rule '{rid}': 'tainted' must be true or false", field="tainted")
        want = b.table["tainted"]
        b.add(lambda part, facts, ctx: ctx.tainted == want)
    if "text" in b.table:
        if not isinstance(b.table["text"], str):
            raise RuleError(f"rule '{rid}': 'text' must be a regular expression string",
                            field="text")
        rx = _regex(b.table["text"], "text", rid, b.known_valid)
        b.add(lambda part, facts, ctx: rx.search(_part_text(part, facts)) is not None)


def _project_matcher(globs: tuple[str, ...]) -> Matcher:
    """The agent's project directory is one of these (a rule learned in one project stays
    there: `project = ["/home/dev/app"]`; `X/**` also matches X)."""

    def match(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        project = normalise_dir(facts.project) if facts.project else ""
        return bool(project) and _glob_set(globs, project, facts.home).fullmatch(project)

    return match


def _identity_matcher(field: str, globs: tuple[str, ...]) -> Matcher:
    def match(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        value = getattr(facts.action, field)
        return any(fnmatchcase(value, g) for g in globs)

    return match


def _part_text(part: Part, facts: Facts) -> str:
    if part.kind == "command" and part.command is not None:
        return part.command.line()
    if part.kind == "url" and part.url is not None:
        return part.url.raw
    if part.kind == "file" and part.path is not None and facts.shell is not None:
        return part.label
    if not facts.input_text:
        from runestone.actions.canonical import canonical_json

        facts.input_text = canonical_json(facts.action.input).decode("utf-8")
    return facts.input_text


def _word_matches(word: str, pattern: str) -> bool:
    """fnmatch, without compiling a regex for the common pattern that has no wildcard."""
    if "*" in pattern or "?" in pattern or "[" in pattern:
        return fnmatchcase(word, pattern)
    return word == pattern


def _compile_command(b: _Builder, every: bool) -> frozenset[str] | None:
    """Add the command matchers; return the program names the rule is indexed under."""
    rid = b.rule_id
    index: frozenset[str] | None = None
    programs = b.strings("program")
    if programs:
        names = frozenset(p for p in programs if not any(c in p for c in "*?["))
        globs = tuple(p for p in programs if p not in names)
        index = names if not globs else None
        b.add(lambda part, facts, ctx: part.command.name in names  # type: ignore[union-attr]
              or any(fnmatchcase(part.command.name, g) for g in globs))  # type: ignore[union-attr]
    patterns = b.strings("command")
    if patterns:
        command_patterns = CommandPatterns(patterns)
        firsts = [command_pattern_program(p) for p in patterns]
        if programs is None and all(firsts):
            index = frozenset(f for f in firsts if f)

        def match_command(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            command = part.command
            assert command is not None
            if not command.name:
                return False
            if command_patterns.fullmatch(facts.command_line(command)):
                return True
            if every:
                return False
            # A deny or ask rule also sees the command as its program reads it:
            # `npm --silent publish` is `npm publish --silent`, `git push --forc...`.
            canonical = facts.canonical_line(command)
            return bool(canonical) and command_patterns.fullmatch(canonical)

        b.add(match_command)
    subs = b.strings("subcommand")
    if subs:
        seqs = [tuple(s.split()) for s in subs]

        def match_sub(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            positionals = command_positionals(part.command, facts)  # type: ignore[arg-type]
            return any(
                len(positionals) >= len(seq)
                and all(_word_matches(p, s) for p, s in zip(positionals, seq, strict=False))
                for seq in seqs
            )

        b.add(match_sub)
    flags_any = b.strings("flags")
    if flags_any:
        b.add(_flags_matcher(frozenset(flags_any), every, need_all=False))
    flags_all = b.strings("all_flags")
    if flags_all:
        b.add(_flags_matcher(frozenset(flags_all), every, need_all=True))
    flags_none = b.strings("without_flags")
    if flags_none:
        refused = frozenset(flags_none)

        def match_without(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            command = part.command
            assert command is not None
            if facts.flags(command) & refused:
                return False
            return None if _may_abbreviate(command, facts, refused) else True

        b.add(match_without)
    effects = b.strings("effects")
    if effects:
        from runestone.effects import EFFECTS

        bad = [e for e in effects if e not in EFFECTS]
        if bad:
            raise RuleError(f"rule '{rid}': unknown effect {bad[0]!r}",
                            field="effects", hint=f"effects: {', '.join(EFFECTS)}")
        b.add(_effects_matcher(frozenset(effects), every))
    if "piped" in b.table:
        if not isinstance(b.table["piped"], bool):
            raise RuleError(f"rule '{rid}': 'piped' must be true or false", field="piped")
        want_piped = b.table["piped"]
        b.add(lambda part, facts, ctx: part.command.piped_out == want_piped)  # type: ignore[union-attr]
    arg_globs = b.strings("args")
    if arg_globs:

        def match_args(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            command = part.command
            assert command is not None
            uncertain = False
            for word in command.args:
                if word.text.startswith("-"):
                    continue
                if any(fnmatchcase(word.text, g) for g in arg_globs):
                    return True
                if word.dynamic:
                    uncertain = True
            if command.extra_args:
                uncertain = True
            return None if uncertain else False

        b.add(match_args)
    if "code" in b.table:
        if not isinstance(b.table["code"], bool):
            raise RuleError(f"rule '{rid}': 'code' must be true or false", field="code")
        want_code = b.table["code"]
        b.add(lambda part, facts, ctx: (part.command.code is not None) == want_code)  # type: ignore[union-attr]
    langs = b.strings("code_lang")
    if langs:
        b.add(lambda part, facts, ctx: part.command.code_lang in langs)  # type: ignore[union-attr]
    vias = b.strings("via")
    if vias:
        b.add(lambda part, facts, ctx: any(
            fnmatchcase(v.split(" ", 1)[0], g) or fnmatchcase(v, g)
            for v in part.command.via for g in vias))  # type: ignore[union-attr]
    return index


def _may_abbreviate(command: SimpleCommand, facts: Facts, wanted: frozenset[str]) -> bool:
    """Could a long option written here be an abbreviation of a wanted one that the
    command's program (not in the catalogue, or not understood) would accept?"""
    if facts.reading(command).understood:
        return False
    longs = [w for w in wanted if w.startswith("--")]
    return any(
        flag.startswith("--") and len(flag) > 2 and flag not in wanted
        and any(w.startswith(flag) for w in longs)
        for flag in facts.flags(command)
    )


def _flags_matcher(wanted: frozenset[str], every: bool, need_all: bool) -> Matcher:
    def match_flags(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        command = part.command
        assert command is not None
        flags = facts.flags(command)
        if (wanted <= flags) if need_all else bool(flags & wanted):
            return True
        # `tool --forc` may be `--force` to a program Runestone does not know: uncertain.
        return None if not every and _may_abbreviate(command, facts, wanted) else False

    return match_flags


def _effects_matcher(wanted: frozenset[str], every: bool) -> Matcher:
    """An allow rule covers a command understood to do only these things; a deny or ask
    rule fires on a command understood to do any of them, and may fire on one not
    understood."""

    def match_effects(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        command = part.command
        assert command is not None
        reading = facts.reading(command)
        if not reading.understood:
            return False if every else None
        if every:
            return reading.effects <= wanted
        return bool(reading.effects & wanted)

    return match_effects


def _check_brackets(rule_id: str, field: str, globs: Iterable[str]) -> None:
    """A bracket expression `re` cannot read (`[z-a]`) is an error in the policy, said when
    it loads, not an internal error in every decision that reaches the rule."""
    for glob in globs:
        if "[" not in glob:
            continue  # everything else in a glob becomes a regex that compiles
        try:
            re.compile(glob_source(glob))
        except re.error as exc:
            raise RuleError(f"rule '{rule_id}': '{field}' glob {glob!r} cannot be read: "
                            f"{exc}", field=field) from exc


def _compile_path(b: _Builder, every: bool) -> None:
    rid = b.rule_id
    access = b.strings("access")
    if access:
        bad = [a for a in access if a not in ACCESS_KINDS]
        if bad:
            raise RuleError(f"rule '{rid}': unknown access {bad[0]!r}; one of {ACCESS_KINDS}",
                            field="access")
        kinds = frozenset(access)

        def match_access(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            paths = _paths_of(part, facts)
            if part.kind == "file" or every:
                return all(p.access in kinds for p in paths)
            # A deny or ask rule on a command looks at the paths of the accesses it names:
            # `cat ~/.ssh/id_rsa` reads the key, `ssh -i ~/.ssh/id_rsa` only uses it.
            return any(p.access in kinds for p in paths)

        b.add(match_access)
    only_access = frozenset(access) if access else None
    globs = b.strings("path")
    excepted = b.strings("path_except") or ()
    if excepted and not globs:
        raise RuleError(f"rule '{rid}': 'path_except' only narrows 'path'", field="path_except")
    if not b.known_valid:
        _check_brackets(rid, "path", globs or ())
        _check_brackets(rid, "path_except", excepted)
    if globs:

        # Expanded per (project, home); a rule sees few distinct ones, so a dict suffices.
        per_place: dict[tuple[str, str, Any], tuple[_GlobSet, _GlobSet | None]] = {}
        own_places = _own_places if any(g.startswith("{runestone-") for g in globs) \
            else _no_places
        globs_name_project = any(map(names_project, (*globs, *excepted)))

        def match_path(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
            paths = _paths_of(part, facts)
            if not paths:
                return every  # no paths: an all-rule holds vacuously, an any-rule does not
            place = (project_key(facts.project, facts.home, globs_name_project), facts.home,
                     own_places(facts))
            sets = per_place.get(place)
            if sets is None:
                sets = (_glob_set(globs, *place),
                        _glob_set(excepted, *place) if excepted else None)
                if len(per_place) < 256:
                    per_place[place] = sets
            compiled, skip_set = sets
            if skip_set is not None:
                paths = tuple(p for p in paths
                              if not (p.forms and all(skip_set.fullmatch(f) for f in p.forms)))
            if part.kind == "command" and not every:
                paths = tuple(p for p in paths if not p.dynamic
                              and (only_access is None or p.access in only_access))
            results = (_path_matches_glob(p, compiled, every) for p in paths)
            return _all(results) if every else _any(results)

        b.add(match_path)
    for field, test in (("path_outside", _path_outside), ("path_contains", _path_contains)):
        anchors = b.strings(field)
        if anchors:
            b.add(_anchored_matcher(anchors, test, every, only_access))


def _anchored_matcher(
    anchors: tuple[str, ...], test: Callable[[PathFact, list[str]], Tri], every: bool,
    only_access: frozenset[str] | None = None,
) -> Matcher:
    def match(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        dirs = [anchor_dir(a, facts.project, facts.home) for a in anchors]
        paths = _paths_of(part, facts)
        if part.kind == "command" and not every and only_access is not None:
            paths = tuple(p for p in paths if p.access in only_access)
        results = (test(p, dirs) for p in paths)
        return _all(results) if every else _any(results)

    return match


def _compile_url(b: _Builder, every: bool) -> None:
    rid = b.rule_id
    checks: list[Callable[[UrlFact], bool]] = []
    domains = b.strings("domain")
    if domains:
        checks.append(lambda url: _domain_matches(url, domains))
    schemes = b.strings("scheme")
    if schemes:
        wanted = frozenset(s.lower() for s in schemes)
        checks.append(lambda url: url.scheme in wanted)
    addresses = b.strings("address")
    if addresses:
        bad = [a for a in addresses if a not in ADDRESS_KINDS]
        if bad:
            raise RuleError(f"rule '{rid}': unknown address kind {bad[0]!r}; one of "
                            f"{ADDRESS_KINDS}", field="address")
        kinds = frozenset(addresses)
        checks.append(lambda url: url.address in kinds)

    def match_url(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        urls = _urls_of(part, facts)
        if not urls:
            return False
        results = [all(check(u) for check in checks) for u in urls]
        return all(results) if every else any(results)

    b.add(match_url)


def _compile_mcp(b: _Builder) -> None:
    servers = b.strings("mcp_server")
    tools = b.strings("mcp_tool")

    def match_mcp(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        if facts.mcp is None:
            return False
        server, tool = facts.mcp
        if servers and not any(fnmatchcase(server, s) for s in servers):
            return False
        return not (tools and not any(fnmatchcase(tool, t) for t in tools))

    b.add(match_mcp)


def _compile_arguments(b: _Builder) -> None:
    rid = b.rule_id
    table = b.table["arguments"]
    if not isinstance(table, dict) or not table:
        raise RuleError(f"rule '{rid}': 'arguments' must be a table of field = regex",
                        field="arguments")
    compiled = []
    for name, pattern in table.items():
        if not isinstance(pattern, str):
            raise RuleError(f"rule '{rid}': arguments.{name} must be a regex string",
                            field="arguments")
        compiled.append((name, _regex(pattern, f"arguments.{name}", rid, b.known_valid)))

    def match_arguments(part: Part, facts: Facts, ctx: EvalContext) -> Tri:
        data = facts.action.input
        for name, rx in compiled:
            values = list(_field_values(data)) if name == "*" else [input_field(data, name)]
            if not any(v is not None and rx.search(_as_text(v)) for v in values):
                return False
        return True

    b.add(match_arguments)


def _field_values(data: Any) -> Iterable[Any]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _field_values(value)
    elif isinstance(data, list):
        for value in data:
            yield from _field_values(value)
    else:
        yield data


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    from runestone.actions.canonical import canonical_json

    try:
        return canonical_json(value).decode("utf-8")
    except ValueError:
        return str(value)


def normalise_dir(path: str) -> str:
    return posixpath.normpath(path)
