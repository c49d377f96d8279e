"""What a program does: the vocabulary of effects and roles, and the specs that carry them.

A *spec* says, for one program or subcommand (`ls`, `git commit`, `npm run`), which options
it accepts and how it reads them (names, whether a value follows, what that value is), what
each operand is (a file it reads, writes or deletes, a pattern, a URL...), and which effects
running it has. Specs are data: they are compiled from the TOML tables under
`runestone/policy/packs/programs/`, which a team can read, review and extend.

A *reading* is what one command does, as its spec says: its effects, every path it touches
with the access it makes, its URLs, its canonical flags, and whether it was understood at
all. A command that is not understood is never allowed by an effect rule; it keeps every
argument as a possible path, so deny rules see it as before.
"""

from __future__ import annotations

from typing import NamedTuple

from runestone.shell.model import Word

# Effects of running a command, besides the path accesses it makes (each access also counts
# as its effect: a command that reads a file has the effect `read`).
EFFECTS: dict[str, str] = {
    "read": "reads files",
    "list": "lists directories or file metadata",
    "write": "creates or changes files",
    "delete": "deletes files",
    "exec": "runs code that is not the project's own (inline code, a downloaded script)",
    "build": "runs the project's own code: its build, tests, linters, formatters and scripts",
    "deps": "fetches and installs the project's declared dependencies",
    "install": "installs packages the command names, from a registry",
    "vcs": "records work in local version control (add, commit, switch, stash, branch)",
    "history": "rewrites version-control history or discards uncommitted work",
    "vcs-config": "changes the repository's configuration (remotes, settings)",
    "fetch": "downloads from the project's configured version-control remotes",
    "network": "talks to other machines over the network",
    "publish": "publishes to a shared remote or registry",
    "remote": "runs commands on another machine",
    "inspect": "reads the state of containers, clusters, cloud accounts or forges",
    "infra": "changes containers, clusters, cloud resources or forges",
    "sysinfo": "reads facts about this machine: processes, memory, disks, users",
    "process": "signals or controls other processes",
    "system": "changes this machine's configuration, services, users or installed software",
    "privilege": "runs with other privileges",
    "environment": "prints environment variables, where secrets live",
    "interactive": "waits for a person at a terminal (an editor, a pager, a shell)",
    "server": "listens for network connections",
}

# What an operand or an option's value is. Path roles become path facts with that access.
PATH_ROLES = frozenset({"read", "write", "edit", "delete", "list", "exec", "use", "chdir"})
# `use`: the program uses the file without revealing it (`ssh -i KEY` authenticates with it).
# `chdir`: the command works in that directory (`make -C DIR`, `git -C DIR`).
OTHER_ROLES = frozenset({"value", "url", "data", "code", "any", "command", "remote",
                         "revpath"})
# `data`: a value, or a file to read when it starts with `@` (`curl -d @body.json`).
# `code`: program text run by the command (an awk program, `python -c`): never understood
#   here; the shell analyzer follows what it can and marks the rest.
# `any`: unknown; kept as a possible path of any access (`arg`).
# `command`: the rest of the words are another command (a wrapper); the analyzer runs it.
# `remote`: a version-control remote: a configured name, or a URL (which is the network).
# `revpath`: a revision, or `REV:PATH`, a file's content at a revision (`git show HEAD:.env`
#   reads .env as it was committed).
ROLES = PATH_ROLES | OTHER_ROLES
ROLE_ACCESS = {"read": "read", "write": "write", "edit": "edit", "delete": "delete",
               "list": "list", "exec": "exec", "use": "use", "chdir": "list"}

STYLES = ("gnu", "posix", "single", "powershell", "windows")
# gnu: getopt_long. Options anywhere (until `--`), short options cluster (`-rf`), `-oVALUE`
#   and `-o VALUE`, `--long=VALUE` and `--long VALUE`, any unambiguous prefix of a long
#   option (`--rec` is `--recursive`). git's parse-options reads the same way.
# posix: as gnu, but the first operand ends the options (`env`, `ssh`, `xargs`).
# single: Go's flag package and its kin: `-name` or `--name`, exact names only, no clusters,
#   `-name=VALUE` or `-name VALUE`; options anywhere until `--`.
# powershell: PowerShell's parameter binding (runestone.effects.powershell).
# windows: cmd built-ins and Windows programs: `/S`, `/A:H`, `/PID 12`, without case.


class OptionSpec(NamedTuple):
    """One option and its aliases (`-r`, `-R`, `--recursive`).

    `value` is "none", "required" or "optional" (an optional value must be attached:
    `--color=always`, `-i.bak`). `role` says what the value is. `notes` change the reading
    when the option is given: extra effects, operand roles, other options' value roles,
    and whether the options end with it.
    """

    names: tuple[str, ...]
    value: str = "none"
    role: str = "value"
    effects: tuple[str, ...] = ()
    operands: tuple[str, ...] | None = None
    value_roles: tuple[tuple[str, str], ...] = ()
    stops: bool = False  # the words after it are not options (`python -m MOD ...`)
    only: bool = False  # with it, the command's own effects do not apply (`--dry-run`)
    exact: bool = False  # the long name may not be abbreviated (`rm --no-preserve-root`)
    noneg: bool = False  # git refuses `--no-NAME` for it (`git tag --no-message`)
    second: str = ""  # the role of a second value word (`jq --arg NAME VALUE`), if any
    position: int = -1  # a PowerShell parameter's position (`pos=0`), -1 when named only

    @property
    def canonical(self) -> str:
        longs = [n for n in self.names if n.startswith("--")]
        return longs[0] if longs else self.names[0]


class CommandSpec(NamedTuple):
    """A program or subcommand: how to read its words and what running it does."""

    path: tuple[str, ...]  # ("git", "commit")
    style: str
    options: tuple[OptionSpec, ...]
    operands: tuple[str, ...]  # roles; `X...` repeats, `X?` is optional
    effects: tuple[str, ...]
    with_operands: tuple[str, ...]  # effects added when there is at least one operand
    without_operands: tuple[str, ...]  # effects added when there is none (`env` alone)
    subcommands: tuple[str, ...]  # names of sub-entries (a subcommand is required if any)
    aliases: tuple[str, ...]
    global_options: tuple[OptionSpec, ...]  # valid here and in every subcommand below
    reader: str  # the name of a special reader (`find`, `sed`, `tar`...), or ""
    subcommand_optional: bool = False
    lenient: bool = False  # options it does not list are harmless flags (`echo -x`)
    cwd_access: str = ""  # how it uses its working directory (git: the repository there)
    summary: str = ""


class PathAccess(NamedTuple):
    """A word the command uses as a path, how it uses it, and where relative paths start."""

    word: Word
    access: str
    cwd: str | None
    recursive: bool = False


class Reading(NamedTuple):
    """What one command does, as its spec says.

    `understood` is False when the command could not be read with certainty (unknown
    program, unknown or ambiguous option, a word that might be an option but is only known
    at run time, ...); `why` then says what was not understood, for a person.
    """

    understood: bool
    why: str = ""
    spec: tuple[str, ...] = ()
    effects: frozenset[str] = frozenset()
    paths: tuple[PathAccess, ...] = ()
    urls: tuple[Word, ...] = ()
    flags: frozenset[str] = frozenset()
    positionals: tuple[str, ...] = ()
    canonical_line: str = ""
    # Globs of the paths the command prints, when it prints only paths it found
    # (`find src -name '*.py'` prints `src/**/*.py`); () when unknown.
    outputs: tuple[str, ...] = ()


NOT_IN_CATALOGUE = "is not in the catalogue of programs Runestone understands"
