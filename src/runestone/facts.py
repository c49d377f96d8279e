"""Facts: what policy needs to know about an Action, split into parts it can judge one by one.

The analyzer turns a tool call into *parts*: every simple command a shell string would run,
every file it reads or writes through a redirection or a file tool, every URL a web tool
fetches, the MCP call, or the generic tool call. Policy judges each part; an action is
allowed only when every part that counts is allowed and nothing stayed opaque.
"""

from __future__ import annotations

import os
from typing import Any, Literal, NamedTuple

from runestone.actions import Action
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
from runestone.shell import analyze
from runestone.shell.model import Opaque, ShellAnalysis, SimpleCommand, Word

PartKind = Literal["command", "file", "url", "mcp", "tool"]


class Part(NamedTuple):
    """One thing policy judges: a command, a file access, a URL, an MCP call or a tool call."""

    kind: PartKind
    label: str
    command: SimpleCommand | None = None
    path: PathFact | None = None
    url: UrlFact | None = None


class Facts:
    """Everything derived from one Action, computed once and shared by all rules.

    Rules fill its caches (command lines, argument paths and URLs, the input's text) as
    they first need them, so it is a plain mutable class.
    """

    __slots__ = ("_arg_paths", "_arg_urls", "_lines", "action", "family", "home",
                 "input_text", "mcp", "opaque", "parts", "project", "shell")

    def __init__(self, *, action: Action, family: Family, project: str, home: str,
                 parts: tuple[Part, ...], opaque: tuple[Opaque, ...] = (),
                 shell: ShellAnalysis | None = None, mcp: tuple[str, str] | None = None,
                 input_text: str = "") -> None:
        self.action = action
        self.family = family
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

    def command_line(self, command: SimpleCommand) -> str:
        """`name arg arg` as command patterns see it (the name without its directory)."""
        key = id(command)
        line = self._lines.get(key)
        if line is None:
            line = " ".join([command.name, *(w.text for w in command.args)])
            self._lines[key] = line
        return line

    def arg_paths(self, command: SimpleCommand) -> tuple[PathFact, ...]:
        """The command's arguments read as paths (flags and URLs left out), cached."""
        key = id(command)
        cached = self._arg_paths.get(key)
        if cached is None:
            cached = tuple(
                _word_path(word, command.cwd, self.home)
                for word in _operand_words(command)
                if not looks_like_url(word.text)
            )
            self._arg_paths[key] = cached
        return cached

    def arg_urls(self, command: SimpleCommand) -> tuple[UrlFact, ...]:
        """The command's arguments that are URLs, cached."""
        key = id(command)
        cached = self._arg_urls.get(key)
        if cached is None:
            cached = tuple(
                url_fact(word.text)
                for word in _operand_words(command)
                if looks_like_url(word.text)
            )
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


def _word_path(word: Word, cwd: str | None, home: str) -> PathFact:
    if word.dynamic:
        return PathFact(raw=word.raw, forms=(), access="arg", dynamic=True, glob=word.glob)
    return path_fact(word.text, cwd, home, "arg", glob=word.glob)


def _redirect_parts(command: SimpleCommand, home: str) -> list[Part]:
    parts = []
    for redirect in command.redirects:
        fact = _word_path(redirect.target, command.cwd, home)
        fact = PathFact(fact.raw, fact.forms, redirect.mode, fact.dynamic, fact.glob)
        parts.append(Part("file", f"{redirect.mode} {redirect.target.text}", path=fact))
    return parts


def derive_facts(action: Action, *, home: str | None = None) -> Facts:
    """Analyse an action into the parts policy judges. Never raises on odd input."""
    home = home or os.environ.get("HOME") or "/"
    project = action.project
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
            shell = analyze(source, cwd=action.cwd or None, home=home)
            opaque = shell.opaque
            for command in shell.commands:
                parts.append(Part("command", command.line(), command=command))
                parts.extend(_redirect_parts(command, home))
    elif family in (Family.FILE_READ, Family.FILE_WRITE, Family.FILE_EDIT):
        targets = file_targets(action.tool, action.input)
        for raw, access in targets:
            fact = path_fact(raw, action.cwd or None, home, access)
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
    )


def input_field(data: Any, dotted: str) -> Any:
    """Look up `a.b.c` in nested tool input; None when absent."""
    value = data
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
