"""What a program does with its arguments when they hold other commands or code.

`sudo rm -rf /` runs `rm`; `bash -c 'rm -rf /'` runs a shell string; `python -c CODE` runs
inline code; `git -c core.pager='sh -c …' log` and `tar --checkpoint-action=exec=…` run
commands through an exec hook; `find . -exec rm {} +` and `xargs rm` run a command with
arguments added at run time. This module reads those argument conventions, program by
program, so the analyzer can follow them. It knows nothing of trees: it works on words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from runestone.lazy_pattern import lazy
from runestone.shell.model import Word

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "yash", "posh", "rbash",
                    "fish", "csh", "tcsh", "busybox-sh"})
_INTERPRETER = lazy(
    r"^(?:(?P<python>python[0-9.]*|pypy[0-9.]*)|(?P<perl>perl[0-9.]*)|(?P<ruby>ruby[0-9.]*|irb)"
    r"|(?P<node>node(?:js)?|bun|deno)|(?P<php>php[0-9.]*)|(?P<lua>lua(?:jit)?[0-9.]*)"
    r"|(?P<r>R|Rscript)|(?P<osascript>osascript)|(?P<powershell>pwsh|powershell)"
    r"|(?P<tcl>tclsh|wish))$"
)
# Per language: short options whose value is inline code, and long ones.
_CODE_OPTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "python": ("c", frozenset()),
    "perl": ("eE", frozenset()),
    "ruby": ("e", frozenset()),
    "node": ("ep", frozenset({"--eval", "--print"})),
    "php": ("r", frozenset()),
    "lua": ("e", frozenset()),
    "r": ("e", frozenset()),
    "osascript": ("e", frozenset()),
    "powershell": ("", frozenset({"-c", "-command", "-encodedcommand", "-ec", "-e"})),
    "tcl": ("", frozenset()),
}
# Per language: short options that take a separate value (so the value is not the script).
_VALUE_OPTIONS: dict[str, str] = {
    "python": "WXQ", "perl": "IMmx", "ruby": "IrCEFx", "node": "r", "php": "cdfz",
    "lua": "l", "r": "", "osascript": "ls", "powershell": "", "tcl": "",
}
AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_AWK_EXEC = lazy(r"system|getline|\||>|\bclose\b")
# `git -c KEY=VALUE` keys whose value is a command git runs.
_GIT_EXEC_KEYS = lazy(
    r"^(core\.(pager|sshcommand|editor|fsmonitor|askpass|gitproxy|alternaterefscommand)"
    r"|sequence\.editor|diff\.external|pager\..+|alias\..+|credential\.(.+\.)?helper"
    r"|gpg\.(.+\.)?program|uploadpack\.packobjectshook|filter\..+\.(clean|smudge|process)"
    r"|diff\..+\.(textconv|command)|merge\..+\.driver|remote\..+\.(uploadpack|receivepack|proxy)"
    r"|core\.hookspath|include\.path|includeif\..+\.path)$",
    re.IGNORECASE,
)
_GIT_PATH_KEYS = lazy(r"^(core\.hookspath|include\.path|includeif\..+\.path)$", re.I)
# Environment variables whose value a program runs as a command, or loads as code.
EXEC_VARIABLES = frozenset({"GIT_SSH_COMMAND", "GIT_SSH", "GIT_PAGER", "PAGER", "GIT_EDITOR",
                            "EDITOR", "VISUAL", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS",
                            "SSH_ASKPASS", "BROWSER", "LESSOPEN", "LESSCLOSE", "MANPAGER",
                            "PROMPT_COMMAND", "GIT_SEQUENCE_EDITOR", "SYSTEMD_PAGER"})
LOAD_VARIABLES = frozenset({"LD_PRELOAD", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "BASH_ENV", "ENV",
                            "PERL5OPT", "RUBYOPT", "PYTHONSTARTUP"})
_SSH_VALUE = "BbcDEeFIiJLlmOopQRSWw"
_SSH_EXEC_OPTIONS = lazy(r"^(proxycommand|localcommand|knownhostscommand|remotecommand)=",
                         re.IGNORECASE)
# Shell-string options of `system()`-like calls inside inline code.
_SYSTEM_CALL = lazy(
    r"""(?:\bsystem|\bpopen|\bexec[lv]?p?e?|\bspawn|\bexecSync|\bcheck_output|\bcheck_call"""
    r"""|\bgetoutput|\bgetstatusoutput|subprocess\.(?:run|call|Popen)|\bshell_exec|\bpassthru)"""
    r"""\s*\(\s*(?:\[\s*)?(?P<q>['"])(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)""",
    re.DOTALL,
)
_BACKTICKS = lazy(r"`([^`]+)`")


Handler = Callable[[str, list[Word]], "Semantics"]


class Nested(NamedTuple):
    """Something a command runs besides itself: another argv, or a shell string to parse."""

    via: str
    argv: tuple[Word, ...] = ()
    source: Word | None = None
    extra_args: bool = False
    assignments: tuple[tuple[str, Word], ...] = ()
    remote: bool = False


class Semantics:
    """How one command relates to code: what it wraps, what code it runs inline.

    Handlers build it up step by step, so it is a plain mutable class.
    """

    __slots__ = (
        "code",
        "code_dynamic",
        "code_lang",
        "nested",
        "runs_file_operands",
        "stdin_language",
        "wrapper",
    )

    def __init__(self, *, wrapper: bool = False, nested: list[Nested] | None = None,
                 code: str | None = None, code_lang: str | None = None,
                 code_dynamic: bool = False, stdin_language: str | None = None,
                 runs_file_operands: bool = False) -> None:
        self.wrapper = wrapper
        self.nested: list[Nested] = nested if nested is not None else []
        self.code = code
        self.code_lang = code_lang
        self.code_dynamic = code_dynamic
        self.stdin_language = stdin_language
        self.runs_file_operands = runs_file_operands


def interpreter_language(name: str) -> str | None:
    if name in SHELLS:
        return "shell"
    match = _INTERPRETER.match(name)
    if match is None:
        return None
    return next(lang for lang, value in match.groupdict().items() if value)


def _is_option(word: Word) -> bool:
    return word.text.startswith("-") and len(word.text) > 1


def skip_options(args: Sequence[Word], short_values: str = "",
                 long_values: frozenset[str] = frozenset(),
                 numeric_flags: bool = False) -> int:
    """Index of the first operand, past options (`--` ends them). Values are skipped too."""
    i = 0
    while i < len(args):
        text = args[i].text
        if text == "--":
            return i + 1
        if not _is_option(args[i]):
            return i
        if text.startswith("--"):
            name = text.split("=", 1)[0]
            i += 2 if ("=" not in text and name in long_values) else 1
            continue
        if numeric_flags and text[1:].isdigit():
            i += 1
            continue
        cluster = text[1:]
        takes = next((k for k, ch in enumerate(cluster) if ch in short_values), None)
        i += 2 if (takes is not None and takes == len(cluster) - 1) else 1
    return i


def inspect(name: str, args: Sequence[Word]) -> Semantics:
    """Read `name args...` for the commands and code it runs."""
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(name, list(args))
    language = interpreter_language(name)
    if language == "shell":
        return _shell(name, list(args))
    if language is not None:
        return _interpreter(name, language, list(args))
    if name in AWKS:
        return _awk(list(args))
    return Semantics()


# --- wrappers: a command that runs the rest of its arguments -------------------------------


def _wrapper(via: str, args: list[Word], start: int, *, extra_args: bool = False,
             skip_assignments: bool = False) -> Semantics:
    assignments: list[tuple[str, Word]] = []
    if skip_assignments:
        while start < len(args) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[start].text):
            key, _, value = args[start].text.partition("=")
            assignments.append((key, Word(value, args[start].raw, args[start].dynamic)))
            start += 1
    semantics = Semantics(wrapper=True)
    inner = tuple(args[start:])
    if inner:
        semantics.nested.append(Nested(via, argv=inner, extra_args=extra_args,
                                       assignments=tuple(assignments)))
    return semantics


def _simple_wrapper(short_values: str = "", long_values: tuple[str, ...] = (),
                    operands: int = 0, extra_args: bool = False, numeric: bool = False,
                    skip_assignments: bool = False, shell_option: str | None = None):
    longs = frozenset(long_values)

    def handle(name: str, args: list[Word]) -> Semantics:
        if shell_option is not None:
            string = _option_value(args, shell_option)
            if string is not None:
                return Semantics(wrapper=True, nested=[Nested(f"{name} {shell_option}",
                                                              source=string)])
        start = skip_options(args, short_values, longs, numeric_flags=numeric) + operands
        return _wrapper(name, args, start, extra_args=extra_args,
                        skip_assignments=skip_assignments)

    return handle


def _option_value(args: list[Word], option: str) -> Word | None:
    """The value of `-c VALUE`, `-cVALUE`, `--command=VALUE` style options, if present."""
    for i, word in enumerate(args):
        text = word.text
        if text == "--":
            return None
        if text == option and i + 1 < len(args):
            return args[i + 1]
        if option.startswith("--") and text.startswith(option + "="):
            return Word(text[len(option) + 1:], word.raw, word.dynamic)
    return None


def _env(name: str, args: list[Word]) -> Semantics:
    split = _option_value(args, "-S") or _option_value(args, "--split-string")
    if split is not None:
        return Semantics(wrapper=True, nested=[Nested("env -S", source=split)])
    start = skip_options(args, "uCS", frozenset({"--unset", "--chdir", "--split-string"}))
    while start < len(args) and args[start].text == "-":
        start += 1
    return _wrapper("env", args, start, skip_assignments=True)


def _command(name: str, args: list[Word]) -> Semantics:
    if any(w.text in ("-v", "-V") for w in args[:2]):
        return Semantics()  # `command -v rm` looks rm up; it does not run it
    return _wrapper(name, args, skip_options(args))


def _watch(name: str, args: list[Word]) -> Semantics:
    start = skip_options(args, "nqd", frozenset({"--interval", "--differences"}))
    rest = args[start:]
    if not rest:
        return Semantics(wrapper=True)
    if any(w.text in ("-x", "--exec") for w in args[:start]):
        return _wrapper(name, args, start)
    # Without -x, watch joins its arguments with spaces and hands them to `sh -c`.
    return Semantics(wrapper=True, nested=[Nested("watch", source=_joined(rest))])


def _joined(words: Sequence[Word]) -> Word:
    return Word(" ".join(w.text for w in words), " ".join(w.raw for w in words),
                any(w.dynamic for w in words))


def _xargs(name: str, args: list[Word]) -> Semantics:
    start = skip_options(args, "adEILnPs", frozenset({
        "--arg-file", "--delimiter", "--eof", "--replace", "--max-lines", "--max-args",
        "--max-procs", "--max-chars", "--process-slot-var"}))
    if start >= len(args):
        # xargs with no command runs `echo`.
        return Semantics(wrapper=True)
    replace = next((w.text.split("=", 1)[1] if "=" in w.text else "{}"
                    for w in args[:start] if w.text.startswith(("-I", "-i", "--replace"))), None)
    if replace is None:
        replace = next((args[k + 1].text for k, w in enumerate(args[:start])
                        if w.text == "-I" and k + 1 < len(args)), None)
    inner = tuple(_placeholder(w, replace) for w in args[start:])
    return Semantics(wrapper=True, nested=[Nested("xargs", argv=inner, extra_args=True)])


def _placeholder(word: Word, marker: str | None) -> Word:
    if marker and marker in word.text:
        return Word(word.text, word.raw, dynamic=True, glob=word.glob)
    return word


# find's expression words after which the paths it finds are not filtered by every test.
_FIND_BRANCHING = frozenset({"-o", "-or", ",", "!", "-not", "(", ")", "-prune"})
_FIND_LEADING = frozenset({"-H", "-L", "-P"})


def find_matches(args: Sequence[Word]) -> str | None:
    """A glob of the paths `find ARGS` finds, when the words say it: one starting point
    known now, and tests that are all required (no `-o`, `!`, `-prune`). `find src -name
    '*.py'` finds `src/**/*.py`; with `-maxdepth 0`, only `src` itself. None when unknown.
    """
    i = 0
    while i < len(args) and (args[i].text in _FIND_LEADING or args[i].text.startswith("-O")):
        i += 1
    roots = []
    while i < len(args) and not (args[i].text.startswith("-") or args[i].text in
                                 ("(", "!", ",")):
        roots.append(args[i])
        i += 1
    if len(roots) > 1 or any(r.dynamic or r.glob for r in roots):
        return None
    root = (roots[0].text if roots else ".").rstrip("/") or "/"
    names: list[str] = []
    shallow = False
    while i < len(args):
        text = args[i].text
        if text in _FIND_BRANCHING or args[i].dynamic:
            return None
        following = args[i + 1] if i + 1 < len(args) else None
        if text in ("-exec", "-execdir", "-ok", "-okdir"):
            while i < len(args) and args[i].text not in (";", "+"):
                i += 1
        elif text == "-name" and following is not None:
            if following.dynamic or "/" in following.text:
                return None
            names.append(following.text)
            i += 1
        elif text == "-maxdepth" and following is not None:
            shallow = following.text == "0"
            i += 1
        i += 1
    if shallow:
        return root
    tail = names[0] if len(names) == 1 else "*"
    return f"{root}/**/{tail}" if root != "/" else f"/**/{tail}"


def _find(name: str, args: list[Word]) -> Semantics:
    """`-exec CMD {} ;` runs CMD on each path found: `{}` stands for those paths (a glob of
    them when the expression says, else a value known only at run time)."""
    semantics = Semantics()
    matches = find_matches(args)
    i = 0
    while i < len(args):
        text = args[i].text
        if text in ("-exec", "-execdir", "-ok", "-okdir"):
            end = i + 1
            while end < len(args) and args[end].text not in (";", "+"):
                end += 1
            if matches is not None and text in ("-exec", "-ok"):
                inner = tuple(_found_paths(w, matches) for w in args[i + 1:end])
                extra = False
            else:  # -execdir runs in each file's own directory: `{}` is only known then
                inner = tuple(_placeholder(w, "{}") for w in args[i + 1:end])
                extra = True
            if inner:
                semantics.nested.append(Nested(f"find {text}", argv=inner, extra_args=extra))
            i = end + 1
        else:
            i += 1
    semantics.wrapper = bool(semantics.nested)
    return semantics


def _found_paths(word: Word, matches: str) -> Word:
    if "{}" not in word.text:
        return word
    return Word(word.text.replace("{}", matches), word.raw, word.dynamic, glob=True)


def _busybox(name: str, args: list[Word]) -> Semantics:
    return _wrapper(name, args, 0)


def _shell_string_option(*options: str) -> Handler:
    """`su -c CMD`, `script -c CMD`, `nix-shell --run CMD`: an option whose value is shell."""

    def handle(name: str, args: list[Word]) -> Semantics:
        for option in options:
            command = _option_value(args, option)
            if command is not None:
                return Semantics(wrapper=True, nested=[Nested(f"{name} {options[0]}",
                                                              source=command)])
        return Semantics()

    return handle


def _sg(name: str, args: list[Word]) -> Semantics:
    rest = [w for w in args if w.text != "-c"]
    if len(rest) >= 2:
        return Semantics(wrapper=True, nested=[Nested("sg", source=_joined(rest[1:]))])
    return Semantics()


def _runner(subcommands: tuple[str, ...], short_values: str = "",
            long_values: tuple[str, ...] = ()):
    """`uv run CMD`, `poetry run CMD`, `bundle exec CMD`: the tool runs CMD as given."""
    longs = frozenset(long_values)

    def handle(name: str, args: list[Word]) -> Semantics:
        if not args or args[0].text not in subcommands:
            return Semantics()
        rest = args[1:]
        start = 1 + skip_options(rest, short_values, longs)
        return _wrapper(f"{name} {args[0].text}", args, start)

    return handle


def _eval(name: str, args: list[Word]) -> Semantics:
    """`eval a b` joins its arguments with spaces and runs the result as shell."""
    if not args:
        return Semantics()
    return Semantics(wrapper=True, nested=[Nested("eval", source=_joined(args))])


def _source(name: str, args: list[Word]) -> Semantics:
    """`source FILE` / `. FILE` runs a file in this shell; with no file it reads nothing."""
    return Semantics(runs_file_operands=True)


# --- shells and interpreters ----------------------------------------------------------------


def _fish(name: str, args: list[Word]) -> Semantics:
    """fish takes its command as the value of `-c` (`-c CMD`, `-cCMD`, `--command=CMD`), and
    runs `--init-command`/`-C` too."""
    semantics = Semantics(runs_file_operands=True)
    i = 0
    while i < len(args):
        text = args[i].text
        value: Word | None = None
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-":
            break
        for long in ("--command", "--init-command"):
            if text.startswith(long + "="):
                value = Word(text[len(long) + 1:], args[i].raw, args[i].dynamic)
            elif text == long and i + 1 < len(args):
                value = args[i + 1]
                i += 1
        if value is None and not text.startswith("--") and text[1:2] in ("c", "C"):
            if len(text) > 2:
                value = Word(text[2:], args[i].raw, args[i].dynamic)
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
        if value is not None:
            semantics.wrapper = True
            semantics.nested.append(Nested(f"{name} -c", source=value))
        i += 1
    if not semantics.nested and i >= len(args):
        semantics.stdin_language = "shell"
    return semantics


def _shell(name: str, args: list[Word]) -> Semantics:
    if name == "fish":
        return _fish(name, args)
    i = 0
    command_flag = False
    reads_stdin = False
    while i < len(args):
        text = args[i].text
        if text == "--" or text == "-":
            i += 1
            break
        if text in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if text.startswith("--"):
            i += 1
            continue
        if text[:1] in ("-", "+") and len(text) > 1:
            if text[0] == "-" and "c" in text[1:]:
                command_flag = True
            if text[0] == "-" and "s" in text[1:]:
                reads_stdin = True
            i += 1
            continue
        break
    operands = args[i:]
    semantics = Semantics(runs_file_operands=True)
    if command_flag:
        if operands:
            semantics.wrapper = True
            semantics.nested.append(Nested(f"{name} -c", source=operands[0]))
        return semantics
    if reads_stdin or not operands or operands[0].text in ("-", "/dev/stdin"):
        semantics.stdin_language = "shell"
    return semantics


def _interpreter(name: str, language: str, args: list[Word]) -> Semantics:
    code_short, code_long = _CODE_OPTIONS[language]
    value_short = _VALUE_OPTIONS.get(language, "")
    semantics = Semantics(runs_file_operands=True)
    pieces: list[Word] = []
    i = 0
    if language == "node" and name == "deno" and args and args[0].text == "eval":
        pieces.append(args[1]) if len(args) > 1 else None
        i = len(args)
    while i < len(args):
        word = args[i]
        text = word.text
        if text == "--":
            i += 1
            break
        if not _is_option(word):
            break
        lowered = text.split("=", 1)[0].lower()
        if lowered in code_long:
            if "=" in text:
                pieces.append(Word(text.split("=", 1)[1], word.raw, word.dynamic))
                i += 1
            elif i + 1 < len(args):
                pieces.append(args[i + 1])
                i += 2
            else:
                i += 1
            if language == "powershell":
                break
            continue
        if language == "python" and text == "-m":
            return semantics  # a module runs; its arguments are its own
        if text.startswith("--"):
            i += 1
            continue
        cluster = text[1:]
        k = next((k for k, ch in enumerate(cluster) if ch in code_short + value_short), None)
        if k is None:
            i += 1
            continue
        attached = cluster[k + 1:]
        if cluster[k] in code_short:
            if attached:
                pieces.append(Word(attached, word.raw, word.dynamic))
                i += 1
            elif i + 1 < len(args):
                pieces.append(args[i + 1])
                i += 2
            else:
                i += 1
            if language == "python":
                break  # everything after -c CODE is sys.argv
        else:
            i += 1 if attached else 2
    if pieces:
        semantics.code = "\n".join(p.text for p in pieces)
        semantics.code_lang = language
        semantics.code_dynamic = any(p.dynamic for p in pieces)
        semantics.nested.extend(system_calls(semantics.code, f"{name} code"))
        return semantics
    operands = args[i:]
    if not operands or operands[0].text in ("-", "/dev/stdin"):
        semantics.stdin_language = language
    return semantics


def _awk(args: list[Word]) -> Semantics:
    program: Word | None = None
    i = 0
    has_file = False
    while i < len(args):
        text = args[i].text
        if text == "--":
            i += 1
            break
        if text in ("-f", "--file") or text.startswith("-f"):
            has_file = True
        if text in ("-e", "--source") and i + 1 < len(args):
            program = args[i + 1]
            i += 2
            continue
        if text in ("-F", "-v", "-f", "-i", "-l", "--file", "--include", "--load", "--assign",
                    "--field-separator"):
            i += 2
            continue
        if not _is_option(args[i]):
            break
        i += 1
    if program is None and not has_file and i < len(args):
        program = args[i]
    if program is None or not _AWK_EXEC.search(program.text):
        return Semantics()
    semantics = Semantics(code=program.text, code_lang="awk", code_dynamic=program.dynamic)
    semantics.nested.extend(system_calls(program.text, "awk code"))
    return semantics


def system_calls(code: str, via: str) -> list[Nested]:
    """Shell strings handed to `system()`-like calls or backquotes in inline code."""
    nested = []
    for match in _SYSTEM_CALL.finditer(code):
        body = match.group("body")
        nested.append(Nested(via, source=Word(body, body)))
    for match in _BACKTICKS.finditer(code):
        nested.append(Nested(via, source=Word(match.group(1), match.group(1))))
    return nested


# --- tools with exec hooks -----------------------------------------------------------------


def _git(name: str, args: list[Word]) -> Semantics:
    semantics = Semantics()
    i = 0
    while i < len(args) and _is_option(args[i]):
        text = args[i].text
        if text == "-c" and i + 1 < len(args):
            setting = args[i + 1]
            key, _, value = setting.text.partition("=")
            if _GIT_EXEC_KEYS.match(key):
                _mark_code(semantics, value, "shell", setting.dynamic)
                if not _GIT_PATH_KEYS.match(key) and (not key.lower().startswith("alias.")
                                                      or value.startswith("!")):
                    source = value[1:] if value.startswith("!") else value
                    semantics.nested.append(Nested(f"git -c {key}",
                                                   source=Word(source, setting.raw,
                                                               setting.dynamic)))
            i += 2
            continue
        i += 2 if text in ("-C", "--git-dir", "--work-tree", "--namespace", "--exec-path",
                           "--config-env") else 1
    return semantics


def _tar(name: str, args: list[Word]) -> Semantics:
    semantics = Semantics()
    hooks = ("--checkpoint-action=exec=", "--to-command=", "--use-compress-program=",
             "--info-script=", "--new-volume-script=", "--rsh-command=")
    for i, word in enumerate(args):
        text = word.text
        value: Word | None = None
        for hook in hooks:
            if text.startswith(hook):
                value = Word(text[len(hook):], word.raw, word.dynamic)
        if text in ("-I", "-F", "--to-command", "--use-compress-program", "--info-script",
                    "--rsh-command") and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            _mark_code(semantics, value.text, "shell", value.dynamic)
            semantics.nested.append(Nested(f"tar {text.split('=', 1)[0]}", source=value))
    return semantics


def _rsync(name: str, args: list[Word]) -> Semantics:
    semantics = Semantics()
    for i, word in enumerate(args):
        text = word.text
        value: Word | None = None
        if text in ("-e", "--rsh", "--rsync-path") and i + 1 < len(args):
            value = args[i + 1]
        elif text.startswith(("--rsh=", "--rsync-path=")):
            value = Word(text.split("=", 1)[1], word.raw, word.dynamic)
        elif text.startswith("-e") and len(text) > 2 and not text.startswith("--"):
            value = Word(text[2:], word.raw, word.dynamic)
        if value is not None:
            _mark_code(semantics, value.text, "shell", value.dynamic)
            semantics.nested.append(Nested("rsync -e", source=value))
    return semantics


def _ssh_options(name: str, args: list[Word], semantics: Semantics) -> None:
    for i, word in enumerate(args):
        text = word.text
        value = None
        if text == "-o" and i + 1 < len(args):
            value = args[i + 1]
        elif text.startswith("-o") and len(text) > 2:
            value = Word(text[2:], word.raw, word.dynamic)
        if value is not None and _SSH_EXEC_OPTIONS.match(value.text):
            command = value.text.split("=", 1)[1]
            _mark_code(semantics, command, "shell", value.dynamic)
            semantics.nested.append(Nested(f"{name} -o", source=Word(command, value.raw,
                                                                     value.dynamic)))


def _ssh(name: str, args: list[Word]) -> Semantics:
    semantics = Semantics()
    _ssh_options(name, args, semantics)
    start = skip_options(args, _SSH_VALUE)
    if start + 1 < len(args):
        host = args[start].text
        semantics.wrapper = True
        semantics.nested.append(Nested(f"ssh {host}", source=_joined(args[start + 1:]),
                                       remote=True))
    return semantics


def _scp(name: str, args: list[Word]) -> Semantics:
    semantics = Semantics()
    _ssh_options(name, args, semantics)
    program = _option_value(args, "-S")
    if program is not None:
        _mark_code(semantics, program.text, "shell", program.dynamic)
    return semantics


def _pager(name: str, args: list[Word]) -> Semantics:
    """`less +'!cmd'`, `vim -c ':!cmd'`, `man -P cmd`: interactive tools told to run a command."""
    semantics = Semantics()
    for i, word in enumerate(args):
        text = word.text
        value: str | None = None
        if text.startswith("+") and len(text) > 1:
            value = text[1:]
        elif text in ("-c", "--cmd") and i + 1 < len(args):
            value = args[i + 1].text
        elif name == "man" and text in ("-P", "--pager", "-H", "--html") and i + 1 < len(args):
            value = "!" + args[i + 1].text
        elif name == "man" and text.startswith(("--pager=", "--html=")):
            value = "!" + text.split("=", 1)[1]
        if value is None:
            continue
        command = value.lstrip(":").lstrip()
        if command.startswith("!"):
            _mark_code(semantics, command[1:], "shell", word.dynamic)
            semantics.nested.append(Nested(f"{name} !", source=Word(command[1:], word.raw,
                                                                    word.dynamic)))
        elif name in ("vim", "vi", "nvim", "view", "ex"):
            _mark_code(semantics, value, "vim", word.dynamic)
    return semantics


def _mark_code(semantics: Semantics, code: str, language: str, dynamic: bool) -> None:
    semantics.code = code if semantics.code is None else semantics.code + "\n" + code
    semantics.code_lang = language
    semantics.code_dynamic |= dynamic


_HANDLERS = {
    "sudo": _simple_wrapper("uUgpCDhrtTR", ("--user", "--group", "--prompt", "--close-from",
                                             "--chdir", "--host", "--role", "--type",
                                             "--other-user", "--command-timeout", "--chroot"),
                            skip_assignments=True),
    "doas": _simple_wrapper("uC"),
    "env": _env,
    "command": _command,
    "builtin": _simple_wrapper(),
    "exec": _simple_wrapper("a"),
    "nice": _simple_wrapper("n", ("--adjustment",), numeric=True),
    "nohup": _simple_wrapper(),
    "timeout": _simple_wrapper("sk", ("--signal", "--kill-after"), operands=1),
    "stdbuf": _simple_wrapper("ioe", ("--input", "--output", "--error")),
    "time": _simple_wrapper("fo", ("--format", "--output")),
    "watch": _watch,
    "setsid": _simple_wrapper(),
    "busybox": _busybox,
    "xargs": _xargs,
    "find": _find,
    "flock": _simple_wrapper("wEo", ("--timeout", "--conflict-exit-code"), operands=1,
                             shell_option="-c"),
    "chroot": _simple_wrapper("", ("--userspec", "--groups"), operands=1),
    "ionice": _simple_wrapper("cnp", ("--class", "--classdata", "--pid")),
    "strace": _simple_wrapper("oepsSIbEPuaX", ("--output", "--trace", "--attach", "--user")),
    "ltrace": _simple_wrapper("oepsSuanl", ("--output",)),
    "nsenter": _simple_wrapper("tSGwr", ("--target",)),
    "unshare": _simple_wrapper("", ()),
    "taskset": _simple_wrapper("", (), operands=1),
    "chrt": _simple_wrapper("", (), operands=1),
    "runuser": _simple_wrapper("ugGs", ("--user", "--group", "--supp-group", "--shell"),
                               shell_option="-c"),
    "pkexec": _simple_wrapper("", ("--user",)),
    "su": _shell_string_option("-c", "--command"),
    "sg": _sg,
    "systemd-run": _simple_wrapper("pEMuH", ("--property", "--setenv", "--machine", "--unit",
                                             "--host", "--uid", "--gid", "--working-directory",
                                             "--description", "--slice", "--on-calendar")),
    "unbuffer": _simple_wrapper(),
    "faketime": _simple_wrapper("", (), operands=1),
    "proxychains": _simple_wrapper("f"),
    "proxychains4": _simple_wrapper("f"),
    "torsocks": _simple_wrapper("uaP"),
    "firejail": _simple_wrapper(),
    "caffeinate": _simple_wrapper("tw"),
    "fakeroot": _simple_wrapper("is"),
    "sshpass": _simple_wrapper("pfdP"),
    "dbus-run-session": _simple_wrapper(),
    "xvfb-run": _simple_wrapper("nsfe", ("--server-num", "--server-args", "--auth-file",
                                         "--error-file")),
    "script": _shell_string_option("-c", "--command"),
    "eval": _eval,
    "source": _source,
    ".": _source,
    "nix-shell": _shell_string_option("--run", "--command"),
    # npx (and its kin) runs a package's command: from the project's node_modules when it
    # is there; a package it has to download is a command the catalogue does not know.
    "npx": _simple_wrapper("pcw", ("--package", "--call", "--prefix", "--workspace"),
                           shell_option="-c"),
    "bunx": _simple_wrapper("p", ("--package",)),
    "pnpx": _simple_wrapper("p", ("--package",)),
    "uv": _runner(("run",), "pw", ("--with", "--python", "--project", "--directory",
                                    "--env-file", "--extra", "--group", "--package", "--from")),
    "poetry": _runner(("run",)),
    "pipenv": _runner(("run",)),
    "pdm": _runner(("run",)),
    "bundle": _runner(("exec",)),
    "conda": _runner(("run",), "np", ("--name", "--prefix")),
    "mise": _runner(("exec", "x")),
    "git": _git,
    "less": _pager,
    "more": _pager,
    "most": _pager,
    "man": _pager,
    "vim": _pager,
    "vi": _pager,
    "nvim": _pager,
    "view": _pager,
    "ex": _pager,
    "tar": _tar,
    "bsdtar": _tar,
    "rsync": _rsync,
    "ssh": _ssh,
    "scp": _scp,
    "sftp": _scp,
}
