"""What will run, as the runtime's own analyzer sees it: the stored tool input of an
approval request, analysed again with `runestone.facts` (the same code that made the
policy ask), so an approver reads every simple command, what stayed opaque and why, and
the files and URLs involved, not only the agent's one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The requester's home directory is not known to the server: analyse with a marker home
# and show it as `~` again, rather than guessing a path.
_HOME = "/~home~"


def _shown(path: str) -> str:
    return "~" + path[len(_HOME):] if path.startswith(_HOME) else path


@dataclass(slots=True)
class Command:
    line: str
    name: str
    via: tuple[str, ...]
    cwd: str | None
    code: str | None
    code_lang: str | None
    dynamic: bool
    paths: list[tuple[str, str]] = field(default_factory=list)  # (as written, resolved)
    urls: list[tuple[str, str]] = field(default_factory=list)  # (url, what its host is)
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (mode, target)


@dataclass(slots=True)
class Breakdown:
    family: str
    source: str | None
    commands: list[Command] = field(default_factory=list)
    opaque: list[tuple[str, str, str]] = field(default_factory=list)  # kind, reason, snippet
    files: list[tuple[str, str, str]] = field(default_factory=list)  # access, raw, resolved
    urls: list[tuple[str, str]] = field(default_factory=list)
    problem: str = ""


def _url_note(fact: Any) -> str:
    return fact.address or fact.domain or fact.host or "?"


def analyse(tool: str, data: dict[str, Any], cwd: str = "") -> Breakdown:
    """Never raises: an input the analyzer cannot take is shown with the reason."""
    from runestone.actions import Action
    from runestone.actions.tools import shell_command_of
    from runestone.facts import derive_facts

    try:
        action = Action(tool=tool or "?", input=dict(data or {}), cwd=cwd)
        facts = derive_facts(action, home=_HOME)
    except Exception as exc:  # shown to the approver, never hidden
        return Breakdown("unknown", None, problem=f"the analyzer could not read this "
                                                  f"input: {exc}")
    source = shell_command_of(action.input) if facts.shell is not None else None
    result = Breakdown(str(getattr(facts.family, "value", facts.family)), source)
    if facts.shell is not None:
        for command in facts.shell.commands:
            item = Command(line=command.line().replace(_HOME, "~"), name=command.name,
                           via=command.via,
                           cwd=_shown(command.cwd) if command.cwd else None,
                           code=command.code, code_lang=command.code_lang,
                           dynamic=any(w.dynamic for w in command.argv))
            # A wrapper's (`sh -c`, `sudo`) operands are the inner command, listed below.
            for fact in () if command.is_wrapper else facts.arg_paths(command):
                resolved = ", ".join(_shown(f) for f in fact.forms) or (
                    "known only when it runs" if fact.dynamic else "cannot be placed")
                item.paths.append((_shown(fact.raw), resolved))
            item.urls = [(u.raw, _url_note(u)) for u in facts.arg_urls(command)]
            item.redirects = [(r.mode, r.target.text) for r in command.redirects]
            result.commands.append(item)
    for part in facts.parts:
        if part.kind == "file" and part.path is not None:
            resolved = ", ".join(_shown(f) for f in part.path.forms) or "cannot be placed"
            result.files.append((part.path.access, _shown(part.path.raw), resolved))
        elif part.kind == "url" and part.url is not None:
            result.urls.append((part.url.raw, _url_note(part.url)))
    result.opaque = [(o.kind, o.reason, o.snippet) for o in facts.opaque]
    return result
