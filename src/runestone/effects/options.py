"""Read a command's words as the program's own option parser does.

GNU `getopt_long` (coreutils, grep, sed, tar...) and git's parse-options accept any
unambiguous prefix of a long option (`rm --rec` is `rm --recursive`, `git push --forc` is
`--force`), clusters of short options (`-rf`), a value attached (`-n5`, `--lines=5`) or in
the next word, `--` to end the options, and options mixed among operands. Go's flag package
and its kin take `-name` or `--name`, exactly. This module reads words against a spec's
options in those styles and says what it found: each option with its value, the operands,
and any word it could not read with certainty (an unknown or ambiguous option, a value that
is missing, a word known only at run time where an option could be).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from runestone.effects.model import OptionSpec
from runestone.shell.model import Word

DIGITS_OPTION = "-#"  # a spec's name for the obsolete `-NUMBER` form (`head -20`, `kill -9`)


class OptionTable:
    """A command's options indexed for reading: exact names, and long names for prefixes."""

    __slots__ = ("by_name", "harmless", "lenient", "longs", "negatable", "spelled_negations")

    def __init__(self, options: Iterable[OptionSpec], negatable: bool = False,
                 lenient: bool = False) -> None:
        self.lenient = lenient
        self.by_name: dict[str, OptionSpec] = {}
        for option in options:
            for name in option.names:
                self.by_name.setdefault(name, option)
        self.longs = sorted(n for n in self.by_name if n.startswith("--"))
        self.negatable = negatable
        # A listed `--no-X` without a value beside a listed `--X` only spells the negation
        # parse-options makes of `--X` itself: not an option of git's table, so a prefix
        # with a value (`--no-c=HEAD`) cannot name it, as no negation takes one.
        self.spelled_negations = frozenset(
            n for n in self.longs
            if negatable and n.startswith("--no-") and self.by_name[n].value == "none"
            and ("--" + n[5:]) in self.by_name
        )
        # With only harmless options, a word known only at run time may stand where an
        # option could: whichever option it turns out to be, nothing changes.
        self.harmless = all(
            option.role in ("value",) and not option.effects and option.operands is None
            and not option.value_roles
            for option in self.by_name.values()
        )

    def long(self, name: str, with_value: bool = False) -> tuple[OptionSpec | None, bool, str]:
        """The option a long name or an unambiguous prefix of one names.

        Returns (spec, negated, problem); problem is "" when found. With git's
        parse-options (`negatable`), `--no-X` also names the negation of `--X` unless
        `--no-X` is an option of its own, and a value (`--no-c=HEAD`) rules negations out,
        since a negation takes none."""
        exact = self.by_name.get(name)
        if exact is not None:
            return exact, False, ""
        if self.negatable and name.startswith("--no-") and not with_value:
            exact = self.by_name.get("--" + name[5:])
            if exact is not None and not exact.noneg:
                return exact, True, ""
        if self.negatable and "--no-".startswith(name) and len(name) > 2:
            # `--no` could begin `--no-` and so the negation of any option: ambiguous.
            return None, False, f"ambiguous option {name}"
        candidates: dict[int, tuple[OptionSpec, bool]] = {}
        for known in self.longs:
            if known.startswith(name):
                if with_value and known in self.spelled_negations:
                    continue
                spec = self.by_name[known]
                candidates[id(spec)] = (spec, False)
        if self.negatable and name.startswith("--no-") and not with_value:
            positive = "--" + name[5:]
            for known in self.longs:
                if known.startswith(positive) and "--no-" + known[2:] not in self.by_name:
                    spec = self.by_name[known]
                    if not spec.noneg:
                        candidates.setdefault(id(spec), (spec, True))
        if len(candidates) == 1:
            spec, negated = next(iter(candidates.values()))
            if spec.exact:
                return None, False, f"{spec.canonical} may not be abbreviated ({name})"
            return spec, negated, ""
        if not candidates:
            return None, False, f"unknown option {name}"
        names = sorted({c[0].canonical for c in candidates.values()})
        return None, False, f"ambiguous option {name} ({', '.join(names)})"


class Parsed(NamedTuple):
    """Options (spec, value, negated) in the order given, operands, and the first problem."""

    options: tuple[tuple[OptionSpec, Word | None, bool], ...]
    operands: tuple[Word, ...]
    problem: str = ""
    rest: tuple[Word, ...] = ()  # words after the first operand, when options stop there
    seconds: tuple[tuple[OptionSpec, Word], ...] = ()  # second values (`--arg NAME VALUE`)


def may_be_option(word: Word) -> bool:
    """Could this word start with `-` once the shell expands it?"""
    if not word.dynamic:
        return False
    text = word.text
    return not text or text[0] in "$`" or (text[0] in "\"'" and text[1:2] in ("$", "`"))


def may_split(word: Word) -> bool:
    """Could this word become several words (an unquoted expansion)?"""
    if not word.dynamic:
        return False
    quote = ""
    raw = word.raw
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "$`":
            return True
        i += 1
    return False


def parse(words: Sequence[Word], table: OptionTable, style: str, *,
          stop_at_operand: bool = False) -> Parsed:
    """Read `words` (the arguments after the command name) as options and operands."""
    options: list[tuple[OptionSpec, Word | None, bool]] = []
    operands: list[Word] = []
    second_values: list[tuple[OptionSpec, Word]] = []
    problem = ""
    ended = False
    i = 0
    n = len(words)
    while i < n:
        word = words[i]
        text = word.text
        if ended:
            operands.append(word)
            i += 1
            continue
        if text == "--" and not word.dynamic:
            ended = True
            i += 1
            continue
        if not text.startswith("-") or text == "-":
            if may_be_option(word) and not table.harmless:
                problem = problem or (f"`{word.raw}` is only known at run time and could be "
                                      "an option")
            if stop_at_operand:
                return Parsed(tuple(options), (word,), problem, tuple(words[i + 1:]),
                              tuple(second_values))
            operands.append(word)
            i += 1
            if style == "posix":
                ended = True  # the first operand ends the options
            continue
        if style == "single" or (text.startswith("--") and style != "single"):
            consumed, found, err = _long(words, i, table, style)
        else:
            consumed, found, err = _short(words, i, table)
        if found and found[-1][0].second and not err:
            # `jq --arg NAME VALUE`: the option's second word.
            if i + consumed >= n:
                err = f"option {found[-1][0].canonical} needs two values"
            else:
                extra = words[i + consumed]
                spec, first, negated = found[-1]
                found[-1] = (spec, first, negated)
                second_values.append((spec, extra))
                consumed += 1
        if err and table.lenient:
            # A program whose table says its options cannot name files or run code: an
            # option it does not list is one more harmless flag (`echo -x` prints `-x`).
            i += 1
            continue
        if err:
            problem = problem or err
        options.extend(found)
        i += consumed
        if any(option.stops for option, _, _ in found):
            return Parsed(tuple(options), tuple(operands), problem, tuple(words[i:]),
                          tuple(second_values))
    return Parsed(tuple(options), tuple(operands), problem, (), tuple(second_values))


def _long(words: Sequence[Word], i: int, table: OptionTable,
          style: str) -> tuple[int, list[tuple[OptionSpec, Word | None, bool]], str]:
    word = words[i]
    text = word.text
    name, equals, attached = text.partition("=")
    if style == "single":
        spec = table.by_name.get(name) or table.by_name.get(
            "--" + name.lstrip("-")) or table.by_name.get("-" + name.lstrip("-"))
        negated, problem = False, "" if spec else f"unknown option {name}"
    else:
        spec, negated, problem = table.long(name, with_value=bool(equals))
    if spec is None:
        return 1, [], problem
    value_word = Word(attached, word.raw, word.dynamic, word.glob) if equals else None
    if spec.value == "none" or negated:
        if equals and style != "single":
            return 1, [], f"option {spec.canonical} takes no value"
        return 1, [(spec, value_word, negated)], ""
    if equals:
        return 1, [(spec, value_word, False)], ""
    if spec.value == "optional":
        return 1, [(spec, None, False)], ""
    if i + 1 >= len(words):
        return 1, [(spec, None, False)], f"option {spec.canonical} needs a value"
    return 2, [(spec, words[i + 1], False)], ""


def _short(words: Sequence[Word], i: int,
           table: OptionTable) -> tuple[int, list[tuple[OptionSpec, Word | None, bool]], str]:
    word = words[i]
    text = word.text
    found: list[tuple[OptionSpec, Word | None, bool]] = []
    if text[1:].isdigit():
        spec = table.by_name.get(DIGITS_OPTION)
        if spec is not None:
            return 1, [(spec, Word(text[1:], word.raw), False)], ""
    k = 1
    while k < len(text):
        letter = text[k]
        spec = table.by_name.get("-" + letter)
        if spec is None:
            if word.dynamic and not text[k:].strip("-").isalnum():
                return 1, found, f"`{word.raw}` is only known at run time"
            return 1, found, f"unknown option -{letter}"
        rest = text[k + 1:]
        if spec.value == "none":
            found.append((spec, None, False))
            k += 1
            continue
        if rest:
            found.append((spec, Word(rest, word.raw, word.dynamic, word.glob), False))
            return 1, found, ""
        if spec.value == "optional":
            found.append((spec, None, False))
            return 1, found, ""
        if i + 1 >= len(words):
            found.append((spec, None, False))
            return 1, found, f"option -{letter} needs a value"
        found.append((spec, words[i + 1], False))
        return 2, found, ""
    return 1, found, ""
