"""Facts: what policy needs to know about an Action, split into parts it can judge one by one.

The analyzer turns a tool call into *parts*: every simple command a shell string would run,
every file it reads or writes through a redirection or a file tool, every URL a web tool
fetches, the MCP call, or the generic tool call. Policy judges each part; an action is
allowed only when every part that counts is allowed and nothing stayed opaque.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from runestone.actions import Action
from runestone.actions.mcp_args import argument_targets
from runestone.actions.paths import PathFact, path_fact
from runestone.actions.tools import (
    Family,
    family_of,
    file_targets,
    mcp_parts,
    shell_command_of,
    urls_of,
)
from runestone.actions.urls import UrlFact, looks_like_url, url_fact
from runestone.actions.winpaths import canonical, is_windows_place, native, windows_home
from runestone.shell.dialect import analyze_for
from runestone.shell.model import Opaque, ShellAnalysis, SimpleCommand, Word

if TYPE_CHECKING:
    from runestone.effects import Catalogue, Reading

PartKind = Literal["command", "file", "url", "mcp", "tool"]


class Part(NamedTuple):
    """One thing policy judges: a command, a file access, a URL, an MCP call or a tool call."""

    kind: PartKind
    label: str
    command: SimpleCommand | None = None
    path: PathFact | None = None
    url: UrlFact | None = None
    # A path or URL named in an MCP call's arguments: judged by the same deny and ask rules
    # as a file or web tool's, and allowed along with the call when a rule allows that.
    in_mcp: bool = False


class Facts:
    """Everything derived from one Action, computed once and shared by all rules.

    Rules fill its caches (command lines, argument paths and URLs, the input's text) as
    they first need them, so it is a plain mutable class.
    """

    __slots__ = ("_action_hash", "_arg_paths", "_arg_urls", "_catalogue", "_flags", "_lines",
                 "_places", "_readings", "action", "family", "family_name", "home", "input_text",
                 "mcp", "opaque", "parts", "project", "shell")

    def __init__(self, *, action: Action, family: Family, project: str, home: str,
                 parts: tuple[Part, ...], opaque: tuple[Opaque, ...] = (),
                 shell: ShellAnalysis | None = None, mcp: tuple[str, str] | None = None,
                 input_text: str = "", action_hash: str = "",
                 places: tuple[str, ...] | None = None) -> None:
        self.action = action
        self._action_hash = action_hash
        self.family = family
        self.family_name = family.value  # an Enum's `.value` is a Python-level descriptor
        self.project = project
        self.home = home
        self.parts = parts
        self.opaque = opaque
        self.shell = shell
        self.mcp = mcp
        self.input_text = input_text
        self._arg_paths: dict[int, tuple[PathFact, ...]] = {}
        self._arg_urls: dict[int, tuple[UrlFact, ...]] = {}
        self._lines: dict[int, str] = {}
        self._readings: dict[int, Reading] = {}
        self._flags: dict[int, frozenset[str]] = {}
        self._catalogue: Catalogue | None = None
        self._places = places

    @property
    def action_hash(self) -> str:
        """The action's hash, worked out once (a caller that already has it passes it in)."""
        if not self._action_hash:
            self._action_hash = self.action.hash
        return self._action_hash

    def runestone_places(self) -> tuple[str, ...]:
        """The runtime's own places (policy.globs.runestone_places, read from the
        environment), once per decision instead of once for every rule and part that
        names one: four environment lookups each time."""
        if self._places is None:
            from runestone.policy.globs import runestone_places

            self._places = tuple(runestone_places().values())
        return self._places

    @property
    def catalogue(self) -> Catalogue:
        """The programs catalogue readings use: the policy's, or the built-in one."""
        if self._catalogue is None:
            from runestone.effects import builtin

            self._catalogue = builtin()
        return self._catalogue

    def use_catalogue(self, catalogue: Catalogue) -> None:
        """Read commands with a policy's own catalogue (forgetting readings made before)."""
        if catalogue is not self._catalogue:
            self._catalogue = catalogue
            self._readings.clear()
            self._arg_paths.clear()
            self._arg_urls.clear()
            self._flags.clear()

    def reading(self, command: SimpleCommand) -> Reading:
        """What the command does, as the catalogue of programs says (cached)."""
        key = id(command)
        reading = self._readings.get(key)
        if reading is None:
            from runestone.effects.reader import remembered_reading

            reading = remembered_reading(command, self.catalogue, self.home)
            self._readings[key] = reading
        return reading

    def flags(self, command: SimpleCommand) -> frozenset[str]:
        """The command's flags: as written (`-rf` is `-r` and `-f`) and as its program reads
        them (`--rec` is `--recursive`, `-r`, `-R`)."""
        key = id(command)
        flags = self._flags.get(key)
        if flags is None:
            flags = written_flags(command) | self.reading(command).flags
            self._flags[key] = flags
        return flags

    def canonical_line(self, command: SimpleCommand) -> str:
        """The command with its options as its program reads them (`npm --silent publish`
        reads `npm publish ...`), or "" when it was not understood."""
        reading = self.reading(command)
        return reading.canonical_line if reading.understood else ""

    def command_line(self, command: SimpleCommand) -> str:
        """`name arg arg` as command patterns see it (the name without its directory)."""
        key = id(command)
        line = self._lines.get(key)
        if line is None:
            line = " ".join([command.name, *(w.text for w in command.args)])
            self._lines[key] = line
        return line

    def arg_paths(self, command: SimpleCommand) -> tuple[PathFact, ...]:
        """The paths a command touches, cached. For a command its program's table explains,
        each with the access it makes (`cp a b` reads a, writes b; `grep PATTERN f` reads f
        and takes PATTERN as no path); otherwise every argument as a possible path of any
        access (`arg`), URLs and flags left out."""
        key = id(command)
        cached = self._arg_paths.get(key)
        if cached is None:
            reading = self.reading(command)
            if reading.understood:
                cached = tuple(
                    _word_path(access.word, access.cwd, self.home, access.access)
                    for access in reading.paths
                )
            else:
                cached = tuple(
                    _word_path(word, command.cwd, self.home)
                    for word in _operand_words(command)
                    if not looks_like_url(word.text)
                )
            self._arg_paths[key] = cached
        return cached

    def arg_urls(self, command: SimpleCommand) -> tuple[UrlFact, ...]:
        """The command's URLs, cached: those its table names, or every argument that looks
        like one."""
        key = id(command)
        cached = self._arg_urls.get(key)
        if cached is None:
            reading = self.reading(command)
            words = (reading.urls if reading.understood else
                     [w for w in _operand_words(command) if looks_like_url(w.text)])
            cached = tuple(url_fact(word.text) for word in words
                           if looks_like_url(word.text))
            self._arg_urls[key] = cached
        return cached


def _operand_words(command: SimpleCommand) -> list[Word]:
    """Arguments that may name a file or URL: operands, `--opt=VALUE` values and `@FILE`."""
    words: list[Word] = []
    options_ended = False
    for word in command.args:
        text = word.text
        if not options_ended and text == "--":
            options_ended = True
            continue
        if not options_ended and text.startswith("-") and len(text) > 1:
            if text.startswith("--") and "=" in text:
                value = text.split("=", 1)[1]
                if value:
                    words.append(Word(value, word.raw, word.dynamic, word.glob))
            continue
        key, sep, value = text.partition("=")
        if sep and key.isidentifier() and value.startswith(("/", "~", "./", "../")):
            # `dd of=/dev/sda`, `make DESTDIR=/usr`: a path behind a KEY=.
            words.append(Word(value, word.raw, word.dynamic, word.glob))
        if text.startswith("@") and len(text) > 1:
            words.append(Word(text[1:], word.raw, word.dynamic, word.glob))
            continue
        words.append(word)
    return words


def _word_path(word: Word, cwd: str | None, home: str, access: str = "arg") -> PathFact:
    if word.dynamic:
        return PathFact(raw=word.raw, forms=(), access=access, dynamic=True, glob=word.glob)
    return path_fact(word.text, cwd, home, access, glob=word.glob)


def written_flags(command: SimpleCommand) -> frozenset[str]:
    """Flags as written, order-free: `-rf` also counts as `-r` and `-f`, `--opt=v` as
    `--opt`."""
    flags: set[str] = set()
    for word in command.args:
        text = word.text
        if text == "--":
            break
        if text.startswith("--"):
            flags.add(text.split("=", 1)[0])
        elif text.startswith("-") and len(text) > 1:
            flags.add(text)
            for char in text[1:]:
                if not char.isalpha():
                    break
                flags.add("-" + char)
    return frozenset(flags)


def _redirect_parts(command: SimpleCommand, home: str) -> list[Part]:
    parts = []
    for redirect in command.redirects:
        fact = _word_path(redirect.target, command.cwd, home)
        fact = PathFact(fact.raw, fact.forms, redirect.mode, fact.dynamic, fact.glob)
        parts.append(Part("file", f"{redirect.mode} {redirect.target.text}", path=fact))
    return parts


# The command parts of a shell analysis: they depend on the analysis alone (shell.dialect
# memoises analyses, so a command seen again yields the same object). Keyed by id, with the
# analysis kept in the value so its id cannot be reused while the entry lives.
_PARTS: dict[int, tuple[ShellAnalysis, tuple[tuple[SimpleCommand, Part], ...]]] = {}
_PARTS_KEPT = 1024


def _command_parts(shell: ShellAnalysis) -> tuple[tuple[SimpleCommand, Part], ...]:
    found = _PARTS.get(id(shell))
    if found is not None and found[0] is shell:
        return found[1]
    parts = tuple((command, Part("command", command.line(), command=command))
                  for command in shell.commands)
    if len(_PARTS) >= _PARTS_KEPT:
        _PARTS.clear()
    _PARTS[id(shell)] = (shell, parts)
    return parts


def derive_facts(action: Action, *, home: str | None = None, action_hash: str = "",
                 places: tuple[str, ...] | None = None) -> Facts:
    """Analyse an action into the parts policy judges. Never raises on odd input.
    `action_hash`, `places`: the action's hash and the runtime's own places
    (Facts.runestone_places), when the caller has already worked them out."""
    home = home or os.environ.get("HOME") or "/"
    project = action.project
    cwd = action.cwd or None
    if is_windows_place(action.cwd) or is_windows_place(action.project_dir):
        # A Windows action: its paths, project and home take Windows' canonical forms, by
        # the action's own cwd, whatever machine this runs on.
        home = canonical(windows_home(home, action.cwd, action.project_dir)) or "/c:"
        project = canonical(native(project)) or project
        cwd = canonical(native(cwd)) if cwd and is_windows_place(cwd) else project
    family = family_of(action.tool)
    parts: list[Part] = []
    opaque: tuple[Opaque, ...] = ()
    shell: ShellAnalysis | None = None
    mcp: tuple[str, str] | None = None

    if family is Family.SHELL:
        source = shell_command_of(action.input)
        if source is None:
            opaque = (
                Opaque("no-command", "the shell tool call carries no command string", ""),
            )
        else:
            shell = analyze_for(source, tool=action.tool, agent=action.agent, cwd=cwd,
                                home=home, place=action.cwd)
            opaque = shell.opaque
            for command, part in _command_parts(shell):
                parts.append(part)
                if command.redirects:
                    parts.extend(_redirect_parts(command, home))
    elif family in (Family.FILE_READ, Family.FILE_WRITE, Family.FILE_EDIT):
        targets = file_targets(action.tool, action.input)
        for raw, access in targets:
            fact = path_fact(raw, cwd, home, access)
            parts.append(Part("file", f"{access} {raw}", path=fact))
        if not targets:
            parts.append(Part("tool", action.tool))
    elif family is Family.WEB_FETCH:
        urls = urls_of(action.tool, action.input)
        for raw in urls:
            parts.append(Part("url", f"fetch {raw}", url=url_fact(raw)))
        if not urls:
            parts.append(Part("tool", action.tool))
    elif family is Family.MCP:
        mcp = mcp_parts(action.tool)
        parts.append(Part("mcp", action.tool))
        paths, urls = argument_targets(mcp[1], action.input)
        for raw, access in paths:
            fact = path_fact(raw, action.cwd or None, home, access)
            parts.append(Part("file", f"{access} {raw}", path=fact, in_mcp=True))
        for raw in urls:
            parts.append(Part("url", f"fetch {raw}", url=url_fact(raw), in_mcp=True))
    else:
        parts.append(Part("tool", action.tool))

    return Facts(
        action=action,
        family=family,
        project=project,
        home=home,
        parts=tuple(parts),
        opaque=opaque,
        shell=shell,
        mcp=mcp,
        action_hash=action_hash,
        places=places,
    )


def input_field(data: Any, dotted: str) -> Any:
    """Look up `a.b.c` in nested tool input; None when absent."""
    value = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
