"""What the bash, PowerShell and cmd analysers share: the state a walk fills (commands,
opaque parts, notes, the working directory and home it tracks) and the entry that never
raises, so each analyser's module holds only its own dialect.

The entry bounds the source's length and reports control characters where the analyser asks
for it (bash and PowerShell do), and turns a walk that nests too deep or fails into an opaque
part instead of an exception: an analysis that cannot finish says so, and policy treats what
it could not see as unknown.
"""

from __future__ import annotations

import re
from typing import Any

from runestone.shell.model import Opaque, ShellAnalysis, SimpleCommand

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class TooDeep(Exception):
    """A walk nested past its analyser's bound; the entry reports it as `too-deep`."""


class AnalyzerBase:
    """One analysis: what the walk found, where it stands, and how deep it may go."""

    def __init__(self, cwd: str | None, home: str | None, max_depth: int) -> None:
        self.cwd = cwd
        self.home = home
        self.max_depth = max_depth
        self.commands: list[SimpleCommand] = []
        self.opaque: list[Opaque] = []
        self.notes: list[str] = []

    def run(self, text: str, *where: Any) -> None:
        """Walk `text` (each analyser's own walk; `where` is where it starts)."""
        raise NotImplementedError

    def analysis(self, source: str, *where: Any, max_length: int | None = None,
                 screen: bool = False) -> ShellAnalysis:
        """Walk `source` from `where` and return what the walk found. Never raises. Over
        `max_length` characters nothing is walked; with `screen`, control and invisible
        characters are reported (and the walk still runs)."""
        if max_length is not None and len(source) > max_length:
            self._opaque("too-long", f"the command is {len(source)} characters, over the "
                         f"{max_length}-character bound for analysis", source[:80])
            return ShellAnalysis(source, (), tuple(self.opaque))
        if screen and _CONTROL.search(source):
            self._opaque("control-characters", "the command holds control or invisible "
                         "characters that can hide what it runs", repr(source[:80]))
        try:
            self.run(source, *where)
        except (TooDeep, RecursionError):
            self._opaque("too-deep", "the command nests deeper than the analyzer follows",
                         source[:80])
        except Exception as exc:
            self._opaque("analyzer-error", f"the analyzer failed ({type(exc).__name__}: {exc})",
                         source[:80])
        return ShellAnalysis(source, tuple(self.commands), tuple(self.opaque),
                             tuple(self.notes))

    def _opaque(self, kind: str, reason: str, snippet: str) -> None:
        snippet = snippet if len(snippet) <= 200 else snippet[:197] + "..."
        entry = Opaque(kind, reason, snippet)
        if entry not in self.opaque:
            self.opaque.append(entry)
