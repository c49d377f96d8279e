"""Learning from a human's approval: the smallest general rule that would have allowed it.

When a person approves what the policy asked about, the runtime offers a rule, the way
Claude Code offers "don't ask again for `git commit:*`". The rule is written in the
policy's own language and generalised from what the effect model says the command does,
not from its literal line: the program and subcommand, the effects its reading has, the
places it touches (anchored to the project, the home or a temporary directory), the domain
it talks to; and it is scoped to the project it was approved in (`project = [...]`).

No rule is offered where one cannot be both general and safe: for what a rule asked about
(ask beats allow, so an allow rule would change nothing), for anything not fully understood
(an opaque part, a program the catalogue does not know), for inline code, and for a
command that both touches files and talks to the network (one rule cannot bound both).
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any, NamedTuple

from runestone.actions import Action
from runestone.actions.paths import PathFact, is_within
from runestone.facts import Facts, Part, derive_facts
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.model import EvalContext

TEMP_DIRS = ("/tmp", "/var/tmp")
# Effects a learned rule never allows: they run code Runestone cannot read, or act as
# another user. A human may approve one such call; a standing rule would allow any.
NEVER_LEARNED = frozenset({"exec", "privilege"})
_GLOB_CHARS = re.compile(r"[*?\[\]{}]")
_ID_WORD = re.compile(r"[^A-Za-z0-9]+")


class Learned(NamedTuple):
    """What one approval teaches: rule tables (empty when none), or why none is offered."""

    rules: tuple[dict[str, Any], ...]
    refused: str = ""


class NoRule(Exception):
    """No general and safe rule covers this part; the message says why."""


def learn_rule(policy: CompiledPolicy, action: Action, *, home: str | None = None,
               ctx: EvalContext | None = None) -> Learned:
    """The smallest rules that would have allowed `action` under `policy`, or why none."""
    facts = derive_facts(action, home=home)
    decision = evaluate(policy, facts, ctx or EvalContext())
    if decision.decision == "allow":
        return Learned((), "the policy already allows it")
    if decision.decision == "deny":
        return Learned((), f"the policy denies it ({', '.join(decision.rules) or 'default'}); "
                           "no rule is offered for what policy denies")
    if facts.opaque:
        what = "; ".join(o.reason for o in facts.opaque[:2])
        return Learned((), f"it is not fully understood ({what}), and what is not understood "
                           "is never allowed by a rule")
    unsure = [hit for hit in decision.hits if hit.rule.decision == "deny"]
    if unsure:
        ids = ", ".join(dict.fromkeys(hit.rule.id for hit in unsure))
        return Learned((), f"rule {ids} might deny it (it depends on a value known only at "
                           "run time), and no rule is offered for what policy may deny")
    asked = [hit for hit in decision.hits if hit.rule.decision == "ask"]
    if asked:
        ids = ", ".join(dict.fromkeys(hit.rule.id for hit in asked))
        return Learned((), f"rule {ids} asks about it, and ask beats allow: an allow rule "
                           "would change nothing (a grant of that rule, `runestone approvals "
                           "grant --rule`, answers such asks for a while)")
    tables: list[dict[str, Any]] = []
    try:
        for part in facts.parts:
            if _covered(policy, part, facts, ctx or EvalContext()):
                continue
            table = rule_for_part(part, facts)
            if table not in tables:
                tables.append(table)
    except NoRule as exc:
        return Learned((), str(exc))
    if not tables:
        return Learned((), "no part of it is left for a rule to allow")
    return Learned(tuple(tables))


def _covered(policy: CompiledPolicy, part: Part, facts: Facts, ctx: EvalContext) -> bool:
    return any(rule.decision == "allow" and rule.match(part, facts, ctx) is True
               for rule in policy.candidates(part))


def rule_for_part(part: Part, facts: Facts) -> dict[str, Any]:
    """The rule table (without id and reason) that allows this one part, generalised by
    what it does. Raises NoRule with the reason when no safe rule exists."""
    if part.kind == "command" and part.command is not None:
        return _command_rule(part, facts)
    table: dict[str, Any]
    if part.kind == "file" and part.path is not None:
        table = {"family": [facts.family.value], "access": [part.path.access],
                 "path": general_paths([part.path], facts)}
    elif part.kind == "url" and part.url is not None:
        if not part.url.host or part.url.address:
            raise NoRule(f"`{part.url.raw}` is not an ordinary host name")
        table = {"family": [facts.family.value], "scheme": [part.url.scheme],
                 "domain": [part.url.host]}
    elif part.kind == "mcp":
        table = {"mcp_tool": [facts.action.tool]}
    else:
        table = {"tool": [facts.action.tool]}
    return _scoped(table, facts)


def _command_rule(part: Part, facts: Facts) -> dict[str, Any]:
    command = part.command
    assert command is not None
    reading = facts.reading(command)
    if not reading.understood:
        raise NoRule(f"`{command.name}` is not understood ({reading.why}); describe it in a "
                     f"[programs.\"{command.name}\"] table before a rule can allow it")
    effects = sorted(reading.effects)
    never = sorted(set(effects) & NEVER_LEARNED)
    if never:
        raise NoRule(f"`{command.name}` {' and '.join(_effect_text(e) for e in never)}; a "
                     "standing rule would allow any such code")
    table: dict[str, Any] = {"program": [command.name]}
    if len(reading.spec) > 1:
        table["subcommand"] = [" ".join(reading.spec[1:])]
    table["effects"] = effects
    paths = facts.arg_paths(command)
    urls = facts.arg_urls(command)
    if paths and urls:
        raise NoRule(f"`{command.name}` touches files and talks to the network in one call; "
                     "one rule cannot bound both, so each such call is asked")
    if paths:
        table["path"] = general_paths(paths, facts)
    if urls:
        hosts = sorted({u.host for u in urls})
        if not all(hosts) or any(u.address for u in urls):
            raise NoRule(f"`{command.name}` talks to an address that is not an ordinary host "
                         "name")
        table["domain"] = hosts
    return _scoped(table, facts)


def _effect_text(effect: str) -> str:
    from runestone.effects import EFFECTS

    return EFFECTS.get(effect, effect)


def _scoped(table: dict[str, Any], facts: Facts) -> dict[str, Any]:
    """Scoped to the project the approval was given in."""
    project = posixpath.normpath(facts.project) if facts.project else ""
    if not project.startswith("/"):
        raise NoRule("the action has no absolute project directory to scope a rule to")
    if _GLOB_CHARS.search(project):
        raise NoRule(f"the project directory {project} holds glob characters")
    return {**table, "project": [project]}


def general_paths(paths: tuple[PathFact, ...] | list[PathFact], facts: Facts) -> list[str]:
    """Anchored globs that cover these paths and little else: `{project}/**` inside the
    project, the temporary directory, the file's own directory below the home or the
    system (`~/notes/**`, `/usr/share/dict/**`), or the exact path when its directory is
    the home or a top-level one (`~/.bashrc`, `/etc/hosts`)."""
    globs: list[str] = []
    for fact in paths:
        if fact.dynamic or not fact.forms:
            raise NoRule(f"`{fact.raw}` is a path known only at run time")
        for form in fact.forms:
            globs.append(_general_path(form, fact, facts))
    return _drop_covered(globs, facts)


def _general_path(form: str, fact: PathFact, facts: Facts) -> str:
    from runestone.policy.globs import glob_base

    if fact.glob:
        form = glob_base(form)
    elif _GLOB_CHARS.search(form):
        raise NoRule(f"`{fact.raw}` holds characters a path glob would read as a pattern")
    form = posixpath.normpath(form)
    if facts.project and is_within(form, facts.project):
        return "{project}/**"
    directory = form if fact.access == "list" or fact.glob else posixpath.dirname(form)
    home = posixpath.normpath(facts.home) if facts.home else ""
    if home and home != "/" and is_within(form, home):
        if fact.glob and directory == home:
            raise NoRule(f"`{fact.raw}` is a pattern over the whole home; a rule would cover "
                         "everything there")
        if directory == home or not is_within(directory, home):
            return _anchored(form, home) if form != home else "{home}"
        return _anchored(directory, home) + "/**"
    for temp in TEMP_DIRS:
        if is_within(form, temp):
            return temp + "/**"
    if directory.count("/") < 2:  # `/`, `/etc`: the exact path, not a whole top directory
        if form == "/" or (form.count("/") < 2 and fact.access == "list"):
            raise NoRule(f"`{fact.raw}` is a top-level directory; a rule would cover a whole "
                         "part of the system")
        return form
    return directory + "/**"


def _anchored(path: str, home: str) -> str:
    return "~" + path[len(home):]


def _drop_covered(globs: list[str], facts: Facts) -> list[str]:
    unique = list(dict.fromkeys(globs))
    kept: list[str] = []
    for glob in unique:
        if any(other != glob and other.endswith("/**") and _under(glob, other[:-3])
               for other in unique):
            continue
        kept.append(glob)
    return kept


def _under(glob: str, directory: str) -> bool:
    body = glob[:-3] if glob.endswith("/**") else glob
    return body == directory or body.startswith(directory + "/")


def collapse_siblings(globs: list[str]) -> list[str]:
    """Places approved apart, generalised together: two or more siblings (`~/.cache/pip/**`,
    `~/.cache/npm/**`) become their directory (`~/.cache/**`), unless that directory is the
    home, the root or a top-level one, which a rule never takes whole."""
    parents: dict[str, list[str]] = {}
    for glob in globs:
        body = glob[:-3] if glob.endswith("/**") else glob
        parent = posixpath.dirname(body)
        if _may_take_whole(parent):
            parents.setdefault(parent, []).append(glob)
    out: list[str] = []
    for glob in globs:
        body = glob[:-3] if glob.endswith("/**") else glob
        parent = posixpath.dirname(body)
        if len(parents.get(parent, [])) >= 2:
            glob = parent + "/**"
        if glob not in out:
            out.append(glob)
    return [g for g in out if not any(o != g and o.endswith("/**") and _under(g, o[:-3])
                                      for o in out)]


def _may_take_whole(directory: str) -> bool:
    if directory in ("", "~", "/", "{project}", "{home}") or "{" in directory:
        return False
    if directory.startswith("~/"):
        return True
    return directory.startswith("/") and directory.count("/") >= 2 and \
        not any(directory == t for t in TEMP_DIRS)


# --- naming and writing ------------------------------------------------------------------


def rule_id(table: dict[str, Any], taken: set[str]) -> str:
    """`learned.git-commit`, `learned.read-notes`...: readable and unique in the policy."""
    words: list[str] = []
    for key in ("program", "subcommand", "mcp_tool", "tool", "domain"):
        words.extend(table.get(key, [])[:1])
    if not words:
        words = [*table.get("access", [])[:1], *table.get("family", [])[:1]]
    stem = "learned." + (_ID_WORD.sub("-", " ".join(words)).strip("-").lower()[:48] or "rule")
    ident, n = stem, 2
    while ident in taken:
        ident, n = f"{stem}-{n}", n + 1
    return ident


def describe(table: dict[str, Any]) -> str:
    """The rule's reason: what it allows, in words."""
    what = " ".join([*table.get("program", [])[:1], *table.get("subcommand", [])[:1]])
    if not what:
        what = ", ".join(table.get("mcp_tool") or table.get("tool") or table.get("access")
                         or table.get("family") or ["this"])
    effects = table.get("effects")
    doing = f" ({', '.join(effects)})" if effects else ""
    where = ""
    if table.get("path"):
        where = " on " + ", ".join(table["path"])
    elif table.get("domain"):
        where = " with " + ", ".join(table["domain"])
    project = ", ".join(table.get("project", []))
    return f"Learned from a human's approval: {what}{doing}{where} in {project}"


def finish(table: dict[str, Any], taken: set[str]) -> dict[str, Any]:
    """A complete rule: id, decision and reason first, then its matchers."""
    return {"id": rule_id(table, taken), "decision": "allow", "reason": describe(table),
            **table}


ORDER = ("id", "decision", "reason", "program", "subcommand", "effects", "family", "access",
         "tool", "mcp_tool", "scheme", "domain", "path", "project")


def to_toml(rule: dict[str, Any], comment: str = "") -> str:
    """The rule as a `[[rule]]` table, ready to read and to append to a policy file."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()] if comment else []
    lines.append("[[rule]]")
    keys = [k for k in ORDER if k in rule] + sorted(k for k in rule if k not in ORDER)
    for key in keys:
        lines.append(f"{key} = {_toml_value(rule[key])}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    raise TypeError(f"cannot write {type(value).__name__} as a rule value")
