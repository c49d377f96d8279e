"""Readers for tar, dd, chmod, test, kill, interpreters and `git reset`.

Each follows its program's own manual: GNU tar's traditional first word (`tar czf out.tgz
dir`) and its operation modes, which decide whether the archive is read or written and
whether operands are files to add or member names; `dd`'s `if=`/`of=` operands; chmod's
modes that look like options (`chmod -w file` removes write permission, as coreutils'
chmod reads it); `test`'s unary file operators, whose operand is a path it looks at;
kill's `-SIGNAL`; interpreters' script operand (`python tool.py` runs tool.py) and
`python -m MODULE`; and `git reset`, whose first operand is a commit or a path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.options import may_split, parse
from runestone.effects.reader import Collector, read_with_spec, take_options
from runestone.shell.model import SimpleCommand, Word

# --- tar ----------------------------------------------------------------------------------

_TAR_MODES = {"--create": "create", "--append": "append", "--update": "append",
              "--extract": "extract", "--list": "list", "--diff": "diff",
              "--delete": "delete", "--catenate": "append", "--test-label": "list"}
_TAR_ARCHIVE_ACCESS = {"create": "write", "append": "edit", "delete": "edit",
                       "extract": "read", "list": "read", "diff": "read"}


def read_tar(spec: CommandSpec, words: Sequence[Word], collector: Collector,
             catalogue: Catalogue, command: SimpleCommand, home: str | None,
             inherited: tuple[OptionSpec, ...]) -> None:
    table = catalogue.option_table(spec, inherited)
    words = list(words)
    if words and not words[0].dynamic and re.fullmatch(r"[A-Za-z]+", words[0].text):
        words = _tar_traditional(words, table)
        if words is None:
            collector.fail("the bundled first word of tar holds an unknown letter")
            return
    parsed = parse(words, table, "gnu")
    if parsed.problem:
        collector.flags.update(n for o, _, _ in parsed.options for n in o.names)
        collector.fail(parsed.problem)
        return
    mode = ""
    for option, _value, _negated in parsed.options:
        for name in option.names:
            if name in _TAR_MODES:
                if mode and mode != _TAR_MODES[name]:
                    collector.fail("tar is given two operation modes")
                    return
                mode = _TAR_MODES[name]
        if "--absolute-names" in option.names:
            collector.fail("tar -P keeps absolute names: it reads or writes wherever the "
                           "archive's names say")
            return
    if not mode:
        collector.fail("tar without an operation mode (-c, -x, -t, ...)")
        return
    archive_access = _TAR_ARCHIVE_ACCESS[mode]
    # Options in order: -C changes the directory for what follows.
    for option, value, _negated in parsed.options:
        collector.words.append(option.canonical + (f"={value.text}" if value else ""))
        collector.flags.update(option.names)
        collector.effects.update(option.effects)
        if value is None:
            continue
        if "--file" in option.names:
            if value.text != "-":
                collector.path(value, archive_access)
        elif "--directory" in option.names:
            collector.chdir(value)
            collector.path(value, "list")
        else:
            collector.value(value, option.role)
    operands = list(parsed.operands)
    if any(may_split(w) for w in operands):
        collector.fail("an operand known only at run time may become several words")
        return
    for word in operands:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        if mode in ("create", "append"):
            collector.path(word, "read", recursive=True)
    if mode == "extract":
        where = collector.cwd
        collector.path(Word(where or ".", where or ".", where is None), "write", recursive=True)


def _tar_traditional(words: list[Word], table) -> list[Word] | None:  # noqa: ANN001
    """`tar czf out.tgz dir` is `tar -c -z -f out.tgz dir`: letters taking values consume
    the words after the bundle, in order."""
    letters = words[0].text
    rest = words[1:]
    out: list[Word] = []
    for letter in letters:
        option = table.by_name.get("-" + letter)
        if option is None:
            return None
        out.append(Word("-" + letter, "-" + letter))
        if option.value == "required":
            if not rest:
                return None
            out.append(rest.pop(0))
    return out + rest


# --- dd -------------------------------------------------------------------------------------

_DD_VALUES = frozenset({"bs", "cbs", "conv", "count", "ibs", "iflag", "obs", "oflag", "seek",
                        "skip", "status", "iseek", "oseek"})


def read_dd(spec: CommandSpec, words: Sequence[Word], collector: Collector,
            catalogue: Catalogue, command: SimpleCommand, home: str | None,
            inherited: tuple[OptionSpec, ...]) -> None:
    for word in words:
        text = word.text
        collector.words.append(text)
        key, sep, value = text.partition("=")
        if text in ("--help", "--version"):
            continue
        if not sep or (word.dynamic and not key.isalpha()):
            collector.fail(f"`dd {text}` is not an operand dd takes")
            return
        target = Word(value, word.raw, word.dynamic, word.glob)
        if key == "if":
            collector.path(target, "read")
        elif key == "of":
            collector.path(target, "write")
        elif key not in _DD_VALUES:
            collector.fail(f"`dd {key}=` is not an operand Runestone understands")
            return


# --- chmod ----------------------------------------------------------------------------------

_MODE_START = frozenset("rwxXstugoa01234567,+=")


def read_chmod(spec: CommandSpec, words: Sequence[Word], collector: Collector,
               catalogue: Catalogue, command: SimpleCommand, home: str | None,
               inherited: tuple[OptionSpec, ...]) -> None:
    table = catalogue.option_table(spec, inherited)
    options_words: list[Word] = []
    operands: list[Word] = []
    mode: Word | None = None
    ended = False
    for word in words:
        text = word.text
        if ended or not text.startswith("-") or text == "-":
            operands.append(word)
            continue
        if text == "--":
            ended = True
            continue
        if not text.startswith("--") and text[1] in _MODE_START and mode is None:
            mode = word  # `chmod -w file`: a mode, as chmod itself reads it
            continue
        options_words.append(word)
    parsed = parse(options_words, table, "gnu")
    take_options(parsed, collector)
    if parsed.problem:
        collector.fail(parsed.problem)
        return
    reference = any("--reference" in o.names for o, _, _ in parsed.options)
    recursive = any("--recursive" in o.names for o, _, _ in parsed.options)
    if mode is None and not reference:
        if not operands:
            collector.fail("chmod without a mode")
            return
        mode = operands.pop(0)
    if mode is not None:
        collector.words.append(mode.text)
        collector.positionals.append(mode.text)
    for word in operands:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        collector.path(word, "write", recursive=recursive)


# --- test, [ and [[ -------------------------------------------------------------------------

_FILE_TESTS = frozenset({"-a", "-b", "-c", "-d", "-e", "-f", "-g", "-h", "-k", "-p", "-r",
                         "-s", "-u", "-w", "-x", "-G", "-L", "-N", "-O", "-S"})
_VALUE_UNARY = frozenset({"-n", "-z", "-t", "-v", "-o", "-R"})
_FILE_BINARY = frozenset({"-nt", "-ot", "-ef"})
_VALUE_BINARY = frozenset({"=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt",
                           "-ge", "=~"})
_CONNECTIVES = frozenset({"!", "(", ")", "-a", "-o", "&&", "||"})


def read_test(spec: CommandSpec, words: Sequence[Word], collector: Collector,
              catalogue: Catalogue, command: SimpleCommand, home: str | None,
              inherited: tuple[OptionSpec, ...]) -> None:
    items = list(words)
    closer = {"[": "]", "[[": "]]"}.get(command.name)
    if closer is not None:
        if not items or items[-1].text != closer:
            collector.fail(f"`{command.name}` without its closing `{closer}`")
            return
        items = items[:-1]
    i = 0
    n = len(items)
    while i < n:
        text = items[i].text
        collector.words.append(text)
        following = items[i + 1].text if i + 1 < n else None
        if following in _FILE_BINARY and i + 2 < n:
            collector.path(items[i], "list")
            collector.path(items[i + 2], "list")
            i += 3
            continue
        if following in _VALUE_BINARY and i + 2 < n:
            i += 3
            continue
        if text in _FILE_TESTS and i + 1 < n:
            collector.path(items[i + 1], "list")
            i += 2
            continue
        if text in _VALUE_UNARY and i + 1 < n:
            i += 2
            continue
        i += 1  # a connective, or a lone string (true when not empty)


# --- kill -----------------------------------------------------------------------------------


def read_kill(spec: CommandSpec, words: Sequence[Word], collector: Collector,
              catalogue: Catalogue, command: SimpleCommand, home: str | None,
              inherited: tuple[OptionSpec, ...]) -> None:
    listing = False
    i = 0
    while i < len(words):
        text = words[i].text
        collector.words.append(text)
        if text == "--":
            i += 1
            break
        if text in ("-l", "-L", "--list", "--table"):
            listing = True
        elif text in ("-s", "-n", "--signal"):
            i += 1
        elif text.startswith("-") and len(text) > 1 and (
                text[1:].isdigit() or text[1:].isupper() or text.startswith("--signal=")):
            collector.flags.add(text)
        elif text.startswith("-") and words[i].dynamic:
            collector.fail(f"`{words[i].raw}` is only known at run time")
            return
        elif text.startswith("-") and len(text) > 1:
            collector.fail(f"unknown option {text}")
            return
        else:
            break
        i += 1
    pids = words[i:]
    for word in pids:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
    if not listing:
        collector.effects.add("process")


# --- interpreters ---------------------------------------------------------------------------


_INFORMATION = frozenset({"--version", "-V", "--help", "-h", "-?"})


def read_interpreter(spec: CommandSpec, words: Sequence[Word], collector: Collector,
                     catalogue: Catalogue, command: SimpleCommand, home: str | None,
                     inherited: tuple[OptionSpec, ...]) -> None:
    """`python [options] (FILE | -m MODULE | -c CODE | -) [args]`, and the same shape for
    node, ruby, perl, php and the shells."""
    table = catalogue.option_table(spec, inherited)
    words = list(words)
    leading: list[Word] = []
    while words and words[0].text.startswith("+") and len(words[0].text) > 1:
        # A shell's `+x`, `+o OPTION`: turns a shell option off.
        leading.append(words.pop(0))
        if leading[-1].text in ("+o", "+O") and words:
            leading.append(words.pop(0))
    collector.words.extend(w.text for w in leading)
    parsed = parse(words, table, spec.style.removesuffix("+neg"), stop_at_operand=True)
    take_options(parsed, collector)
    if parsed.problem:
        collector.fail(parsed.problem)
        return
    for option, value, _negated in parsed.options:
        if "-m" in option.names and value is not None:
            _module(value, list(parsed.operands) + list(parsed.rest), collector, catalogue,
                    command, home)
            return
    if any(o.role in ("code", "command") for o, v, _ in parsed.options if v is not None):
        return  # inline code: the shell analyzer followed what it could, and marked it
    if any(o.operands is not None for o, _, negated in parsed.options if not negated):
        # `bash -c STRING [NAME ARGS...]`: the shell analyzer reads STRING as commands.
        for word in (*parsed.operands, *parsed.rest):
            collector.words.append(word.text)
        return
    if not parsed.operands:
        if any(set(o.names) & _INFORMATION for o, _, _ in parsed.options):
            return  # `python --version`, `node -h`
        if command.stdin in ("pipe", "heredoc", "herestring", "file", "process"):
            collector.effects.add("exec")  # a program read from standard input
        else:
            collector.effects.add("interactive")
        return
    script = parsed.operands[0]
    if script.text == "-":
        collector.effects.add("exec")
        return
    collector.positionals.append(script.text)
    collector.words.append(script.text)
    collector.path(script, "exec")
    for word in parsed.rest:
        collector.words.append(word.text)


def _module(module: Word, args: list[Word], collector: Collector, catalogue: Catalogue,
            command: SimpleCommand, home: str | None) -> None:
    if module.dynamic:
        collector.fail("the module to run is only known at run time")
        return
    name = module.text
    spec = catalogue.get((f"pymod:{name}",)) or catalogue.get((name,))
    if spec is None:
        collector.fail(f"the Python module `{name}` is not in the catalogue of programs "
                       "Runestone understands")
        return
    inner = Collector(collector.cwd, collector.extra)
    reading = read_with_spec(command._replace(name=name), spec, catalogue, inner, home,
                             args=args)
    collector.words.extend(["-m", name, *inner.words])
    collector.positionals.extend(inner.positionals)
    collector.flags.update(inner.flags)
    if not reading.understood:
        collector.fail(reading.why)
        return
    collector.effects.update(reading.effects)
    collector.paths.extend(reading.paths)
    collector.urls.extend(reading.urls)


# --- git reset ------------------------------------------------------------------------------

_REV = re.compile(r"^(HEAD|@|ORIG_HEAD|FETCH_HEAD|MERGE_HEAD|[0-9a-f]{7,40})([~^]\d*)*$")


def read_git_reset(spec: CommandSpec, words: Sequence[Word], collector: Collector,
                   catalogue: Catalogue, command: SimpleCommand, home: str | None,
                   inherited: tuple[OptionSpec, ...]) -> None:
    """Unstaging (`git reset`, `git reset HEAD file`, `git reset -- file`) records work;
    moving the branch (`git reset HEAD~1`, `git reset --soft main`) rewrites history."""
    table = catalogue.option_table(spec, inherited)
    words = list(words)
    separator = next((i for i, w in enumerate(words) if w.text == "--"), None)
    parsed = parse(words if separator is None else words[:separator], table, "gnu")
    take_options(parsed, collector)
    if parsed.problem:
        collector.fail(parsed.problem)
        return
    moves = any("history" in o.effects for o, _, n in parsed.options if not n)
    operands = list(parsed.operands)
    paths = words[separator + 1:] if separator is not None else []
    if separator is None:
        if len(operands) == 1:
            only = operands[0].text
            looks_like_path = "." in only.rsplit("/", 1)[-1] and not _REV.match(only)
            if only != "HEAD" and not looks_like_path:
                moves = True
            elif looks_like_path:
                paths, operands = operands, []
        elif len(operands) > 1:
            paths, operands = operands[1:], operands[:1]
    elif len(operands) > 1:
        collector.fail("`git reset` takes one commit before `--`")
        return
    for word in operands:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
    for word in paths:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        collector.path(word, "read")
    collector.effects.add("history" if moves and not paths else "vcs")
