"""What shell analysis produces: the simple commands a string would run, and what stayed opaque.

The analyzer never guesses. Every word carries whether its value is fully known
(`dynamic` is False) and whether bash would still glob it; every part it could not
resolve statically is reported as an `Opaque` with a reason a person can read.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

RedirectMode = Literal["read", "write"]


class Word(NamedTuple):
    """One shell word after quote removal.

    `text` is the word's value when `dynamic` is False. When some part of it needs a run-time
    value (`$VAR`, `$(...)`, `${x:-y}`, arithmetic), `dynamic` is True and `text` holds the
    statically known pieces with each unknown piece kept as its source text.
    `glob` is True when bash would apply pathname expansion (an unquoted `*`, `?` or `[`).
    """

    text: str
    raw: str
    dynamic: bool = False
    glob: bool = False


class Redirect(NamedTuple):
    """A redirection: `> /etc/passwd` writes `/etc/passwd`, `< in.txt` reads `in.txt`."""

    op: str
    mode: RedirectMode
    target: Word


class SimpleCommand(NamedTuple):
    """One command that would run, after wrappers were peeled off.

    `name` is the program's base name (`/bin/rm` -> `rm`), or "" when the command name is not
    static (then the analysis also lists an `Opaque`). `argv[0]` is the name word as written.
    `via` names the wrappers and shells that led here, outermost first (`("sudo",)`,
    `("bash -c",)`, `("find -exec",)`). A wrapper is itself also listed as a command.
    `cwd` is the directory the command runs in, tracked through `cd`; None when unknown.
    `extra_args` is True when more arguments are appended at run time (`xargs`, `find -exec`).
    `code` is the program text given inline to an interpreter or exec hook
    (`python -c CODE`, `git -c core.pager=CODE`), and `code_lang` its language
    (`python`, `perl`, `node`, `ruby`, `awk`, `shell`, ...); None when no inline code.
    `piped_out` is True when the command's standard output feeds another command of a pipeline.
    `stdin` says where its standard input comes from: "pipe", "heredoc", "herestring",
    "file", "process", or "" (the terminal). `upstream` holds the commands of the pipeline
    stage before it, whose output it reads (and, for `xargs CMD`, turns into arguments).
    `dialect` is the shell that runs it: "" for bash, "powershell" or "cmd"; PowerShell's
    words mark parameters and arrays (see `runestone.shell.pwsh.analyzer`).
    """

    name: str
    argv: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()
    assignments: tuple[tuple[str, Word], ...] = ()
    via: tuple[str, ...] = ()
    cwd: str | None = None
    extra_args: bool = False
    code: str | None = None
    code_lang: str | None = None
    piped_out: bool = False
    is_wrapper: bool = False
    stdin: str = ""
    upstream: tuple[SimpleCommand, ...] = ()
    dialect: str = ""

    @property
    def args(self) -> tuple[Word, ...]:
        """The arguments after the command name."""
        return self.argv[1:]

    def line(self) -> str:
        """The command as one readable line (values after quote removal)."""
        return " ".join(w.text for w in self.argv)


class Opaque(NamedTuple):
    """A part of the input whose effect cannot be known statically.

    `kind` is a stable identifier (for example `command-substitution`, `variable-command`,
    `ifs`, `brace-expansion`, `glob-command`, `function`, `alias`, `piped-script`,
    `process-substitution-script`, `parse-error`, `too-long`, `too-deep`, `dynamic-code`);
    `reason` explains it to a person; `snippet` is the source text concerned.
    """

    kind: str
    reason: str
    snippet: str


class ShellAnalysis(NamedTuple):
    """Everything the analyzer learned about one command string."""

    source: str
    commands: tuple[SimpleCommand, ...] = ()
    opaque: tuple[Opaque, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def fully_understood(self) -> bool:
        return not self.opaque
