"""`find`: starting points, then an expression of tests, actions and operators.

Read as GNU findutils reads it (`find --help`, the manual's EXPRESSION section): the words
before the first expression word are the starting points, searched recursively (a `list`
of each); `-delete` deletes what matches under them; `-fprint FILE` and its kin write FILE;
`-newer FILE` and `-samefile FILE` look at FILE; `-exec CMD ;` runs CMD, which the shell
analyzer reads as a command of its own. An unknown expression word is not understood.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.reader import Collector
from runestone.shell.model import SimpleCommand, Word
from runestone.shell.programs import find_matches

_NO_ARGUMENT = frozenset({
    "-depth", "-d", "-xdev", "-mount", "-noleaf", "-ignore_readdir_race",
    "-noignore_readdir_race", "-daystart", "-follow", "-empty", "-executable", "-readable",
    "-writable", "-false", "-true", "-nouser", "-nogroup", "-prune", "-quit", "-print",
    "-print0", "-ls", "-not", "!", "-a", "-and", "-o", "-or", ",", "(", ")", "-help",
    "--help", "-version", "--version", "-delete",
})
_VALUE_ARGUMENT = frozenset({
    "-maxdepth", "-mindepth", "-name", "-iname", "-path", "-ipath", "-wholename",
    "-iwholename", "-regex", "-iregex", "-regextype", "-lname", "-ilname", "-type", "-xtype",
    "-size", "-perm", "-user", "-group", "-uid", "-gid", "-links", "-inum", "-amin", "-atime",
    "-cmin", "-ctime", "-mmin", "-mtime", "-used", "-fstype", "-context", "-printf",
})
_FILE_ARGUMENT = {"-newer": "list", "-anewer": "list", "-cnewer": "list", "-samefile": "list",
                  "-fprint": "write", "-fprint0": "write", "-fls": "write",
                  "-files0-from": "read"}
_NEWER_XY = re.compile(r"^-newer[aBcmt][aBcmt]$")
_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_LEADING = frozenset({"-H", "-L", "-P"})
# Operators and actions after which the printed paths are not filtered by every test.
_BRANCHING = frozenset({"-o", "-or", ",", "!", "-not", "-prune", "-ls", "-quit"})


def _is_expression(word: Word) -> bool:
    """Where the starting points end: the first word that starts an expression."""
    text = word.text
    return text.startswith("-") or text in ("(", "!", ")", ",")


def read_find(spec: CommandSpec, words: Sequence[Word], collector: Collector,
              catalogue: Catalogue, command: SimpleCommand, home: str | None,
              inherited: tuple[OptionSpec, ...]) -> None:
    i = 0
    n = len(words)
    while i < n and (words[i].text in _LEADING or words[i].text.startswith(("-O", "-D"))):
        collector.words.append(words[i].text)
        i += 2 if words[i].text == "-D" else 1
    roots: list[Word] = []
    while i < n and not _is_expression(words[i]):
        roots.append(words[i])
        i += 1
    deletes = False
    names: list[str] = []
    plain = True  # a conjunction of tests: what it prints is filtered by each of them
    while i < n:
        word = words[i]
        text = word.text
        collector.words.append(text)
        if word.dynamic and not text.startswith("-"):
            collector.fail(f"`{word.raw}` in the expression is only known at run time")
            return
        if text in _EXEC:
            end = i + 1
            while end < n and words[end].text not in (";", "+"):
                end += 1
            collector.flags.add(text)
            i = end + 1
            continue
        if text in _NO_ARGUMENT:
            collector.flags.add(text)
            deletes = deletes or text == "-delete"
            plain = plain and text not in _BRANCHING
            i += 1
            continue
        if text in _VALUE_ARGUMENT or _NEWER_XY.match(text):
            if i + 1 >= n:
                collector.fail(f"`find {text}` needs a value")
                return
            collector.flags.add(text)
            if text.startswith("-newer") and not text.endswith("t") and len(text) == 8:
                collector.value(words[i + 1], "list")
            if text == "-name" and not words[i + 1].dynamic:
                names.append(words[i + 1].text)
            plain = plain and text != "-printf"
            collector.words.append(words[i + 1].text)
            i += 2
            continue
        if text == "-fprintf":
            if i + 2 >= n:
                collector.fail("`find -fprintf` needs a file and a format")
                return
            collector.flags.add(text)
            collector.value(words[i + 1], "write")
            i += 3
            continue
        if text in _FILE_ARGUMENT:
            if i + 1 >= n:
                collector.fail(f"`find {text}` needs a file")
                return
            collector.flags.add(text)
            collector.value(words[i + 1], _FILE_ARGUMENT[text])
            i += 2
            continue
        collector.fail(f"`find {text}` is not an expression Runestone understands")
        return
    matches = find_matches(words)
    for root in roots or [Word(".", ".")]:
        collector.positionals.append(root.text)
        collector.path(root, "list", recursive=True)
        if deletes:
            # What -delete removes is what the expression finds: `find . -name '*.pyc'
            # -delete` removes `./**/*.pyc`; when the words do not say, everything below.
            target = Word(matches, matches, glob=True) if matches else root
            collector.path(target, "delete", recursive=True)
        if plain and not root.dynamic and "/" not in "".join(names):
            # It prints the paths it finds: under each root, named as -name says.
            base = root.text.rstrip("/") or "/"
            tail = names[-1] if len(names) == 1 else "*"
            collector.outputs.append(f"{base}/**/{tail}")
