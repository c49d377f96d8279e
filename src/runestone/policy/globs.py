"""Path globs and Claude Code command patterns, compiled to regular expressions once.

Path globs follow gitignore habits: `**` crosses directories, `*` and `?` stay within one
segment, `X/**` also matches `X` itself, a pattern without a slash matches a base name
anywhere (`.env`, `*.pem`). Anchors: `{project}`, `{home}`, `~`, and `./` (the project),
and the runtime's own places (`runestone_places`): `{runestone-config}`, `{runestone-state}`
(its home: policy, keys, audit log) and `{runestone-package}` (its installed code).

Command patterns keep Claude Code's permission syntax: `npm run test:*` is a prefix at a
word boundary, `*` matches any characters (spaces included), and a single trailing ` *` is
optional, so `ls *` also matches a bare `ls`.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from functools import lru_cache

from runestone.actions.winpaths import (
    canonical,
    is_windows_pattern,
    is_windows_place,
    native,
    windows_pattern,
)

GLOB_CHARS = frozenset("*?[")


_places: dict[tuple[str, ...], dict[str, str]] = {}


def _installed_package() -> str:
    """Runestone's installed code: the package directory when it was installed (under
    site-packages); an editable checkout is a source tree its developers change, so it has
    none (a name no path can be)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = os.path.basename(os.path.dirname(package))
    return package if parent in ("site-packages", "dist-packages") else "/\0not-installed"


def places_key() -> tuple[str, ...]:
    """The environment the runtime's own places are read from (runestone.home.layout reads
    these variables): equal keys, equal places. Spelled out, not a generator: it is read
    once per decision."""
    get = os.environ.get
    return (get("RUNESTONE_HOME", ""), get("XDG_CONFIG_HOME", ""), get("XDG_STATE_HOME", ""),
            get("HOME", ""))


def runestone_places(key: tuple[str, ...] | None = None) -> dict[str, str]:
    """The runtime's own places for this process's environment, by anchor: where its
    policy, keys and audit log live (as `runestone.home.layout` says) and its installed
    code. Read from the environment on each call (memoised by the variables it reads), so
    a test or a daemon that changes RUNESTONE_HOME sees the new places. `key`: the
    environment's places_key, when the caller has just read it."""
    key = key or places_key()
    places = _places.get(key)
    if places is None:
        from runestone.home import layout

        where = layout()
        places = {"{runestone-config}": os.path.abspath(where.config_dir),
                  "{runestone-state}": os.path.abspath(where.state_dir),
                  "{runestone-package}": _installed_package(),
                  "{runestone-scripts}": os.path.join(sys.prefix, "bin")}
        if len(_places) < 64:
            _places[key] = places
    return places


def expand_anchor(pattern: str, project: str, home: str) -> str:
    """Turn an anchored pattern into an absolute one (still possibly containing globs).

    For a Windows project or home the pattern may be written the Windows way
    (`C:\\Windows\\**`, `%APPDATA%\\gh\\**`, `~\\.ssh\\id_*`); it is expanded to the
    canonical lower-case form paths take there (runestone.actions.winpaths). A pattern
    written only for Windows names nothing in a POSIX place."""
    if pattern.startswith("{runestone-"):
        anchor, brace, rest = pattern.partition("}")
        pattern = runestone_places().get(anchor + brace, "/\0unknown") + rest
    windows = is_windows_place(project) or is_windows_place(home)
    if windows:
        pattern = windows_pattern(pattern, project, home)
        project = canonical(native(project)) or project
        home = canonical(native(home)) or home
    elif is_windows_pattern(pattern):
        return _NOWHERE
    expanded = _expand_posix(pattern, project, home)
    return expanded.lower() if windows else expanded


def names_project(pattern: str) -> bool:
    """Whether `expand_anchor` reads the project to expand `pattern` in a POSIX place: the
    `{project}` and `./` anchors, and a relative pattern with a slash (`src/**`). The others
    expand to the same text in every project: absolute (`/etc/**`, `{runestone-state}/**`),
    under home (`~/.ssh/**`, `{home}/x`), anywhere (`**/x`), or a base name (`.env`)."""
    if pattern.startswith(("{project}", "./")):
        return True
    if pattern.startswith(("/", "**/", "{home}", "{runestone-", "~/")) or pattern == "~":
        return False
    return "/" in pattern.rstrip("/")


def project_key(project: str, home: str, globs_name_project: bool) -> str:
    """The project as part of the cache key of globs expanded for a place: "" when no glob
    names it and neither place is a Windows one (which changes every expansion), so what
    was expanded and compiled for one project serves every other. A daemon or a batch sees
    many projects; without this, each new one expanded and compiled every path rule's globs
    again, to the same result."""
    if globs_name_project or is_windows_place(project) or is_windows_place(home):
        return project
    return ""


# A path no file has: what a Windows-only pattern names on Linux or macOS.
_NOWHERE = "/\0windows-only"


def _expand_posix(pattern: str, project: str, home: str) -> str:
    if pattern.startswith("{project}"):
        expanded = project + pattern[len("{project}"):]
    elif pattern.startswith("{home}"):
        expanded = home + pattern[len("{home}"):]
    elif pattern == "~" or pattern.startswith("~/"):
        expanded = home + pattern[1:]
    elif pattern.startswith("./"):
        expanded = project + pattern[1:]
    elif pattern.startswith("/") or pattern.startswith("**/"):
        expanded = pattern
    elif "/" not in pattern.rstrip("/"):
        expanded = "**/" + pattern
    else:
        expanded = project + "/" + pattern
    unc = expanded.startswith("//") and not expanded.startswith("///")
    while "//" in expanded:
        expanded = expanded.replace("//", "/")
    if unc:
        expanded = "/" + expanded  # a Windows share keeps its leading `//`
    if len(expanded) > 1 and expanded.endswith("/"):
        expanded = expanded[:-1]
    return expanded


def _glob_body(pattern: str, *, empty_bad_classes: bool = False) -> str:
    """The regex source of a glob. `empty_bad_classes`: a bracket expression `re` cannot
    read (`[z-a]`) matches nothing, as in bash, instead of failing to compile."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                # `[`, `&`, `~` and `|` are plain characters in a bracket expression; `re`
                # reads them so too, but warns that it may not (nested sets, set operations)
                for plain in "\\[&~|":
                    body = body.replace(plain, "\\" + plain)
                bracket = "[" + body + "]"
                out.append(_NOTHING if empty_bad_classes and not _readable(bracket)
                           else bracket)
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def path_glob(pattern: str, project: str, home: str) -> tuple[str, str]:
    """An anchored path glob for one project and home: (expanded glob, regex source).

    The source is not compiled here: most globs end as set lookups, and a rule's remaining
    globs are compiled together as one regex (compiling is most of a cold hook's matching).
    """
    expanded = expand_anchor(pattern, project, home)
    return expanded, path_glob_source(expanded)


def path_glob_source(expanded: str) -> str:
    """The regex source of an expanded path glob (`X/**` is X and everything below it)."""
    if expanded.endswith("/**") and len(expanded) > 3:
        return _glob_body(expanded[:-3]) + "(?:/.*)?"
    return _glob_body(expanded)


def glob_source(text: str) -> str:
    """The regex source of a shell glob over paths (`/home/dev/.ssh/*`)."""
    return _glob_body(text)


_NOTHING = "(?!)"


def _readable(bracket: str) -> bool:
    try:
        re.compile(bracket)
    except re.error:
        return False
    return True


@lru_cache(maxsize=4096)
def glob_as_regex(text: str) -> re.Pattern[str]:
    """A shell glob from a command line (`/home/dev/.ssh/*`) as a regex over paths.

    The command line is the agent's: a bracket expression bash reads as empty (`[z-a]`)
    matches nothing here too, where the regex would fail to compile (and the decision
    would end as an internal error)."""
    try:
        return re.compile(_glob_body(text), re.DOTALL)
    except re.error:
        return re.compile(_glob_body(text, empty_bad_classes=True), re.DOTALL)


def glob_base(path: str) -> str:
    """The directory part of a glob before its first wildcard: `/a/b*/c` -> `/a`."""
    for index, char in enumerate(path):
        if char in GLOB_CHARS:
            head = path[:index]
            base = head if head.endswith("/") else posixpath.dirname(head)
            return base.rstrip("/") or "/"
    return path


def anchor_dir(anchor: str, project: str, home: str) -> str:
    """A directory anchor (`{project}`, `~/x`, `/tmp`) as an absolute path."""
    expanded = expand_anchor(anchor, project, home)
    if expanded.startswith("**/"):
        expanded = project + "/" + expanded[3:]
    return posixpath.normpath(expanded) if expanded.startswith("/") else expanded


def command_pattern_source(pattern: str) -> str:
    """The regex source of a Claude Code style command pattern (`git push *`, `npm run test:*`).

    A trailing `:*` or ` *` (the only `*`) makes the rest optional, as in Claude Code:
    `git push *` matches `git push` too. Any other `*` matches any run of characters.
    """
    pattern = pattern.strip()
    if pattern.endswith(":*"):
        return re.escape(pattern[:-2]) + r"(?:\s.*)?"
    if pattern.endswith(" *") and pattern.count("*") == 1:
        return re.escape(pattern[:-2]) + r"(?:\s.*)?"
    return ".*".join(re.escape(p) for p in pattern.split("*"))


class CommandPatterns:
    """A rule's command patterns, each tested the cheapest way that gives the same answer.

    Most patterns are a literal command (`git status`), a literal prefix at a word boundary
    (`git log *`, `npm run test:*`) or a bare literal prefix (`shutdown*`): a set lookup and
    `startswith`, exactly what `command_pattern_source` would match. Only patterns with a
    `*` elsewhere become one regex, compiled on first use: compiling dominates a cold
    hook's matching.
    """

    __slots__ = ("_regex", "exact", "prefixes", "starts", "wild")

    def __init__(self, patterns: tuple[str, ...] | list[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        starts: list[str] = []
        wild: list[str] = []
        for raw in patterns:
            pattern = raw.strip()
            if pattern.endswith(":*") or (pattern.endswith(" *") and pattern.count("*") == 1):
                prefixes.append(pattern[:-2])
            elif "*" not in pattern:
                exact.add(pattern)
            elif pattern.endswith("*") and pattern.count("*") == 1:
                starts.append(pattern[:-1])  # `prefix.*`
            else:
                wild.append(pattern)
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)
        self.starts = tuple(starts)
        self.wild = tuple(wild)
        self._regex: re.Pattern[str] | None = None

    def fullmatch(self, line: str) -> bool:
        if line in self.exact or (self.starts and line.startswith(self.starts)):
            return True
        if self.prefixes and line.startswith(self.prefixes):
            for prefix in self.prefixes:
                # `prefix(?:\s.*)?`: `str.isspace` is the test `\s` makes on str patterns.
                if line.startswith(prefix) and (len(line) == len(prefix)
                                                or line[len(prefix)].isspace()):
                    return True
        if not self.wild:
            return False
        if self._regex is None:
            source = "|".join(f"(?:{command_pattern_source(p)})" for p in self.wild)
            self._regex = re.compile(source, re.DOTALL)
        return self._regex.fullmatch(line) is not None


def command_pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Claude Code style command pattern (`git push *`, `npm run test:*`)."""
    return re.compile(command_pattern_source(pattern), re.DOTALL)


def command_pattern_program(pattern: str) -> str | None:
    """The literal program name a command pattern starts with, for indexing; None if wild."""
    first = pattern.strip().split(" ", 1)[0]
    if first.endswith(":*"):
        first = first[:-2]
    if not first or "*" in first:
        return None
    return first
