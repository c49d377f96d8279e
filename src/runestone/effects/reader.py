"""Read one simple command with the catalogue: its effects, paths, URLs and flags.

The analyzer has already found the command (after quote removal and wrappers) and where it
runs; this module looks its program up, walks into subcommands (`git -C dir commit`),
reads the options as the program's parser does, gives each operand its role, and collects
what the command does. Anything it cannot read with certainty makes the reading not
understood, with the reason; such a command is never allowed by an effect rule.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from functools import lru_cache

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import (
    NOT_IN_CATALOGUE,
    PATH_ROLES,
    ROLE_ACCESS,
    CommandSpec,
    OptionSpec,
    PathAccess,
    Reading,
)
from runestone.effects.options import DIGITS_OPTION, Parsed, may_split, parse
from runestone.lazy_pattern import lazy
from runestone.shell.model import SimpleCommand, Word

# Directories whose programs are the system's own: `/usr/bin/git` is `git`. A program run
# by a path anywhere else is a file of its own: the project's script, or something unknown.
SYSTEM_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin",
                   "/usr/local/sbin", "/opt/homebrew/bin", "/opt/homebrew/sbin",
                   "/usr/libexec", "/snap/bin")
# The same on Windows (compared in lower case): `C:\\Windows\\System32\\cmd.exe` is `cmd`.
WINDOWS_PROGRAM_DIRS = ("c:\\windows", "c:\\windows\\system32",
                        "c:\\windows\\system32\\windowspowershell\\v1.0",
                        "c:\\program files\\powershell\\7", "c:\\program files\\git\\cmd",
                        "c:\\program files\\git\\bin", "c:\\program files\\nodejs")
_SCP_LIKE = lazy(r"^(?:[^@/:]+@)?[^/:]+:")  # `git@github.com:org/repo`, `host:path`
ACCESS_EFFECT = {"read": "read", "use": "read", "write": "write", "edit": "write",
                 "delete": "delete", "list": "list", "exec": "build"}


class Collector:
    """What a reader learns about one command, gathered step by step."""

    __slots__ = ("cwd", "effects", "extra", "flags", "outputs", "paths", "positionals", "problem",
                 "urls", "words")

    def __init__(self, cwd: str | None, extra: tuple[str, ...] | None = None) -> None:
        self.cwd = cwd
        # Operands added at run time (`xargs CMD`, `find -exec CMD {} +`): None when there
        # are none; else the directories they come from when known (`find src | xargs`),
        # or () when they could be anything.
        self.extra = extra
        self.effects: set[str] = set()
        self.paths: list[PathAccess] = []
        self.urls: list[Word] = []
        self.flags: set[str] = set()
        self.positionals: list[str] = []
        self.outputs: list[str] = []
        self.problem = ""
        self.words: list[str] = []

    def fail(self, why: str) -> None:
        if not self.problem:
            self.problem = why

    def path(self, word: Word, access: str, recursive: bool = False) -> None:
        self.paths.append(PathAccess(word, access, self.cwd, recursive))
        self.effects.add(ACCESS_EFFECT.get(access, "read"))

    def value(self, word: Word, role: str) -> None:
        """Record a word in its role: a path, a URL, data, code, or a plain value."""
        if role in PATH_ROLES:
            if role == "chdir":
                self.chdir(word)
            self.path(word, ROLE_ACCESS[role])
        elif role == "url":
            self.urls.append(word)
            self.effects.add("network")
        elif role == "revpath":
            _revision, colon, path = word.text.partition(":")
            if colon and path and not word.text.startswith(":/"):
                self.path(Word(path, word.raw, word.dynamic, word.glob), "read")
        elif role == "remote":
            if word.dynamic or "://" in word.text or _SCP_LIKE.match(word.text):
                self.urls.append(word)
                self.effects.add("network")
        elif role == "data":
            if word.text.startswith("@") and len(word.text) > 1:
                self.path(Word(word.text[1:], word.raw, word.dynamic, word.glob), "read")
        elif role in ("code", "command"):
            self.effects.add("exec")
        elif role == "any":
            self.path(word, "arg")

    def chdir(self, word: Word) -> None:
        if word.dynamic:
            self.cwd = None
            return
        from runestone.actions.paths import resolve_path

        self.cwd = resolve_path(word.text, self.cwd, "/") if self.cwd or \
            word.text.startswith("/") else None

    def reading(self, spec: CommandSpec | None, name: str) -> Reading:
        line = " ".join([name, *self.words])
        if self.problem:
            return Reading(False, self.problem, spec.path if spec else (), frozenset(),
                           (), (), frozenset(self.flags), tuple(self.positionals), line)
        return Reading(True, "", spec.path if spec else (), frozenset(self.effects),
                       tuple(self.paths), tuple(self.urls), frozenset(self.flags),
                       tuple(self.positionals), line, tuple(self.outputs))


def not_understood(name: str, why: str) -> Reading:
    return Reading(False, why, canonical_line=name)


def read_command(command: SimpleCommand, catalogue: Catalogue, home: str | None) -> Reading:
    """What `command` does, as the catalogue says; never raises."""
    try:
        return _read(command, catalogue, home)
    except RecursionError:
        return not_understood(command.name, "the command nests too deeply to read")
    except Exception as exc:  # a reader's bug must not decide: the command is not understood
        return not_understood(command.name, f"the reader failed ({type(exc).__name__}: {exc})")


def remembered_reading(command: SimpleCommand, catalogue: Catalogue,
                       home: str | None) -> Reading:
    """`read_command`, memoised: a reading depends only on the command (a tuple of tuples),
    the catalogue (by identity) and the home, never on files or the environment, so a
    command read before (a daemon sees the same few over and over) is read once."""
    return _remembered(command, catalogue, home)


_remembered = lru_cache(maxsize=2048)(read_command)


def forget_readings() -> None:
    """Empty the memo (benchmarks timing the reading itself)."""
    _remembered.cache_clear()


def _read(command: SimpleCommand, catalogue: Catalogue, home: str | None) -> Reading:
    name = command.name
    if not command.argv:
        return Reading(True, canonical_line="")  # a bare redirection: its files are parts
    first = command.argv[0]
    extra = upstream_roots(command, catalogue, home) if command.extra_args else None
    collector = Collector(command.cwd, extra)
    windows = bool(command.dialect) and "\\" in first.text
    if ("/" in first.text or windows) and not first.dynamic:
        directory = posixpath.dirname(first.text)
        if windows or command.dialect:
            import ntpath

            directory = ntpath.dirname(first.text).replace("/", "\\").lower()
        if directory.rstrip("/") not in SYSTEM_BIN_DIRS and \
                directory.rstrip("\\") not in WINDOWS_PROGRAM_DIRS:
            # `./build.sh`, `scripts/run`, `.venv/bin/pytest`: a file of its own runs.
            spec = catalogue.get((name,))
            if spec is not None and _is_environment_tool(first.text):
                pass  # a virtualenv's or node_modules' copy of a known tool
            else:
                collector.path(first, "exec")
                collector.words = [w.text for w in command.args]
                return collector.reading(None, first.text)
    spec = catalogue.get((name,))
    if spec is None:
        return not_understood(name, f"`{name}` {NOT_IN_CATALOGUE}")
    return read_with_spec(command, spec, catalogue, collector, home)


def upstream_roots(command: SimpleCommand, catalogue: Catalogue,
                   home: str | None) -> tuple[str, ...]:
    """Where the arguments `xargs` appends come from, when the command before it in the
    pipeline prints only paths under known directories (`find src -name '*.py' | xargs`).

    () when unknown: the appended arguments could then be anything."""
    if len(command.upstream) != 1:
        return ()
    source = command.upstream[0]
    if source.name != "find" or source.redirects:
        return ()
    reading = read_command(source, catalogue, home)
    if not reading.understood or reading.effects - {"list", "read"}:
        return ()
    from runestone.actions.paths import resolve_path

    roots = []
    for output in reading.outputs:
        place = resolve_path(output, source.cwd, home or "/")
        if place is None:
            return ()
        roots.append(place)
    return tuple(roots)


def _is_environment_tool(path: str) -> bool:
    """A tool installed into the project's environment: `.venv/bin/pytest`,
    `node_modules/.bin/tsc`. Such a path runs the named tool, from the project."""
    parts = path.split("/")
    return len(parts) >= 2 and (
        (parts[-2] in ("bin", "Scripts") and len(parts) >= 3 and parts[-3].startswith(
            (".venv", "venv", "env", ".env", ".tox", ".nox")))
        or (parts[-2] == ".bin" and len(parts) >= 3 and parts[-3] == "node_modules"))


def read_with_spec(command: SimpleCommand, spec: CommandSpec, catalogue: Catalogue,
                   collector: Collector, home: str | None,
                   args: Sequence[Word] | None = None) -> Reading:
    """Read `args` (default: the command's arguments) with `spec`, descending into
    subcommands."""
    words = list(command.args if args is None else args)
    inherited: tuple[OptionSpec, ...] = ()
    name = command.name
    collector.words = []
    cwd_access = ""
    while True:
        inherited = (*inherited, *spec.global_options)
        cwd_access = spec.cwd_access or cwd_access
        if spec.style in ("powershell", "windows"):
            from runestone.effects.powershell import bind_powershell, bind_windows

            binder = bind_powershell if spec.style == "powershell" else bind_windows
            binder(spec, command, words, collector)
            return collector.reading(spec, name)
        if spec.reader:
            from runestone.effects.readers import run_reader

            run_reader(spec, words, collector, catalogue, command, home, inherited)
            return collector.reading(spec, name)
        table = catalogue.option_table(spec, inherited[: len(inherited)
                                                         - len(spec.global_options)])
        style = spec.style.removesuffix("+neg")
        if spec.subcommands:
            parsed = parse(words, table, style, stop_at_operand=True)
            child = None
            if parsed.operands and not parsed.operands[0].dynamic:
                child = catalogue.get((*spec.path, parsed.operands[0].text))
            if child is None and spec.subcommand_optional and not parsed.problem:
                return finish(spec, parse(words, table, style), collector, name, cwd_access)
            take_options(parsed, collector)
            if parsed.problem:
                collector.fail(parsed.problem)
                return collector.reading(spec, name)
            if child is None:
                if not parsed.operands and any(o.only for o, _, n in parsed.options
                                               if not n):
                    return collector.reading(spec, name)  # `npm -v`, `git --help`
                if not parsed.operands:
                    collector.fail(f"`{' '.join(spec.path)}` needs a subcommand")
                else:
                    collector.fail(f"`{' '.join(spec.path)} {parsed.operands[0].text}` is "
                                   "not a subcommand Runestone understands")
                return collector.reading(spec, name)
            collector.positionals.append(child.path[-1])
            collector.words.append(child.path[-1])
            spec = child
            words = list(parsed.rest)
            continue
        parsed = parse(words, table, style)
        return finish(spec, parsed, collector, name, cwd_access)


def take_options(parsed: Parsed, collector: Collector) -> list[tuple[str, str]]:
    """Record the options' flags, effects and values; return value-role overrides."""
    overrides: list[tuple[str, str]] = []
    for option, value, negated in parsed.options:
        if option.canonical == DIGITS_OPTION and value is not None:
            collector.words.append("-" + value.text)  # `head -20`
        else:
            collector.words.append(option.canonical + (f"={value.text}" if value is not None
                                                       else ""))
        if negated:
            continue
        collector.flags.update(option.names)
        collector.effects.update(option.effects)
        overrides.extend(option.value_roles)
    for option, value, negated in parsed.options:
        if value is None or negated:
            continue
        role = option.role
        for target, new_role in overrides:
            if target in option.names:
                role = new_role
        collector.value(value, role)
    for option, value in parsed.seconds:
        collector.words.append(value.text)
        collector.value(value, option.second)
    return overrides


def finish(spec: CommandSpec, parsed: Parsed, collector: Collector, name: str,
           cwd_access: str = "") -> Reading:
    """Roles for the operands of a leaf command, then the reading."""
    take_options(parsed, collector)
    only = any(option.only for option, _, negated in parsed.options if not negated)
    if parsed.problem:
        collector.fail(parsed.problem)
    roles = spec.operands
    for option, _value, negated in parsed.options:
        if option.operands is not None and not negated:
            roles = option.operands
    operands = list(parsed.operands)
    assigned = assign_roles(roles, operands)
    if assigned is None:
        collector.fail(f"`{' '.join(spec.path)}` takes no more than "
                       f"{len([r for r in roles if not r.endswith('?')])} operand(s) here")
        return collector.reading(spec, name)
    if any(may_split(w) for w in operands) and len({r for _, r in assigned}) > 1:
        collector.fail("an operand known only at run time may become several words, so "
                       "which operand is which cannot be known")
    for word, role in assigned:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        if role != "command":
            collector.value(word, role)
    if collector.extra is not None:
        add_extra_operands(roles, collector)
    if not only:
        collector.effects.update(spec.effects)
        collector.effects.update(spec.with_operands if operands else spec.without_operands)
        if cwd_access:
            where = collector.cwd
            collector.path(Word(where or ".", where or ".", where is None), cwd_access,
                           recursive=True)
    if "build" in collector.effects:
        # The project's own code runs in the working directory: that directory is what runs.
        cwd = collector.cwd
        collector.paths.append(PathAccess(Word(cwd or ".", cwd or ".", cwd is None),
                                          "exec", cwd))
    return collector.reading(spec, name)


def add_extra_operands(roles: Sequence[str], collector: Collector) -> None:
    """Operands appended at run time take the repeating role (or the last one): paths under
    the directories they come from, or paths that could be anything."""
    role = next((r.removesuffix("...") for r in roles if r.endswith("...")),
                roles[-1].removesuffix("?") if roles else "")
    if not role or role in ("command", "value"):
        if not role:
            collector.fail("arguments are added at run time to a command that takes none")
        return
    patterns = collector.extra or ()
    if not patterns:
        collector.value(Word("{}", "{}", dynamic=True), role)
    for pattern in patterns:
        collector.value(Word(pattern, pattern, glob=True), role)


def assign_roles(roles: Sequence[str], operands: Sequence[Word]) -> list[tuple[Word, str]] | None:
    """Give each operand its role: fixed roles from both ends, the repeating one between.

    None when there are more operands than the roles take."""
    if not operands:
        return []
    many = next((i for i, r in enumerate(roles) if r.endswith("...")), None)
    if many is None:
        if len(operands) > len(roles):
            return None
        return [(w, roles[i].removesuffix("?")) for i, w in enumerate(operands)]
    before = [r.removesuffix("?") for r in roles[:many]]
    after = [r.removesuffix("?") for r in roles[many + 1:]]
    middle = roles[many].removesuffix("...")
    required_after = [r for r in roles[many + 1:] if not r.endswith("?")]
    out: list[tuple[Word, str]] = []
    n = len(operands)
    head = min(len(before), n)
    for i in range(head):
        out.append((operands[i], before[i]))
    remaining = n - head
    tail = min(len(after), remaining) if remaining > len(required_after) else min(
        len(required_after), remaining)
    for i in range(head, n - tail):
        out.append((operands[i], middle))
    for k, i in enumerate(range(n - tail, n)):
        out.append((operands[i], after[len(after) - tail + k]))
    return out
