"""Parameter binding as PowerShell does it, and cmd's `/switch` options.

PowerShell (MergedCommandParameterMetadata.GetMatchingParameter, about_Parameters):

- a parameter token `-Name` matches a parameter or alias exactly, without case; else every
  parameter one of whose names starts with it (`-Rec` is `-Recurse`). Several matches:
  the cmdlet's own parameters are preferred over the common ones; if still more than one,
  the prefix is ambiguous and the command fails;
- a switch takes no value, unless attached: `-Force:$false`;
- any other parameter takes the next argument (`-Path x`) or the attached one (`-Path:x`);
- the arguments left over bind by position to the parameters that have one, in order,
  skipping those already bound by name; one too many and the command fails;
- an array argument (`a,b`) is one argument.

A table with `style = "powershell"` lists parameters as options (`-Path -PSPath -LP=DELETE :
pos=0`); this module binds a PowerShell command's words (see runestone.shell.pwsh) to it.
cmd's built-ins and Windows programs (`style = "windows"`) take `/X` switches without
case, a value attached with `:` (`/A:H`) or in the next word.
"""

from __future__ import annotations

from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.reader import Collector
from runestone.shell.model import SimpleCommand, Word

# Common parameters every cmdlet takes (about_CommonParameters), with their aliases.
_COMMON: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("-Verbose", "-vb"), False), (("-Debug", "-db"), False),
    (("-ErrorAction", "-ea"), True), (("-WarningAction", "-wa"), True),
    (("-InformationAction", "-infa"), True), (("-ProgressAction", "-proga"), True),
    (("-ErrorVariable", "-ev"), True), (("-WarningVariable", "-wv"), True),
    (("-InformationVariable", "-iv"), True), (("-OutVariable", "-ov"), True),
    (("-OutBuffer", "-ob"), True), (("-PipelineVariable", "-pv"), True),
)
COMMON_OPTIONS = tuple(OptionSpec(names, "required" if takes else "none")
                       for names, takes in _COMMON)
_FALSE = frozenset({"$false", "0", "$null"})


class _Bound:
    __slots__ = ("option", "values")

    def __init__(self, option: OptionSpec, values: tuple[Word, ...] | None) -> None:
        self.option = option
        self.values = values


def match_parameter(token: str, options: tuple[OptionSpec, ...],
                    common: tuple[OptionSpec, ...] = COMMON_OPTIONS) -> tuple[OptionSpec | None,
                                                                              str]:
    """The parameter `-token` names, or None and why (unknown, ambiguous)."""
    name = token.lower()
    everything = (*options, *common)
    for option in everything:
        if any(n.lower() == name for n in option.names):
            return option, ""
    matches: list[OptionSpec] = []
    for option in everything:
        if any(n.lower().startswith(name) for n in option.names) and option not in matches:
            matches.append(option)
    if len(matches) > 1:
        own = [m for m in matches if m in options]
        if len(own) == 1:
            return own[0], ""
        listed = " ".join(m.names[0] for m in matches)
        return None, f"parameter {token} is ambiguous ({listed})"
    if not matches:
        return None, f"no parameter {token}"
    return matches[0], ""


def _arguments(words: list[Word]) -> list[tuple[str, tuple[Word, ...]]]:
    """("-Name" or "-Name:" for a parameter token, or "" with the words of one argument)."""
    out: list[tuple[str, tuple[Word, ...]]] = []
    for word in words:
        if word.raw.startswith("-") and word.raw == word.text and len(word.text) > 1 \
                and not word.dynamic:
            out.append((word.text, (word,)))
        elif word.raw.startswith(",") and out and not out[-1][0]:
            out[-1] = ("", (*out[-1][1], word))
        else:
            out.append(("", (word,)))
    return out


def bind_powershell(spec: CommandSpec, command: SimpleCommand, words: list[Word],
                    collector: Collector) -> None:
    """Bind a PowerShell command's words to its table; fill `collector`."""
    if command.dialect != "powershell":
        collector.fail(f"`{command.name}` is a PowerShell cmdlet; here it is not run by "
                       "PowerShell")
        return
    options = spec.options
    bound: list[_Bound] = []
    positional: list[tuple[Word, ...]] = []
    arguments = _arguments(words)
    index = 0
    while index < len(arguments):
        token, values = arguments[index]
        index += 1
        if not token:
            positional.append(values)
            continue
        if token == "--":
            positional.extend(v for _, v in arguments[index:])
            break
        colon = token.endswith(":")
        option, why = match_parameter(token.rstrip(":")[1:] and "-" + token.rstrip(":")[1:],
                                      options)
        if option is None:
            collector.fail(f"`{' '.join(spec.path)}`: {why}")
            return
        if option.value == "none" and not colon:
            bound.append(_Bound(option, None))
            continue
        if index >= len(arguments) or arguments[index][0]:
            collector.fail(f"`{' '.join(spec.path)}`: {token} needs a value")
            return
        bound.append(_Bound(option, arguments[index][1]))
        index += 1
    positioned = sorted((o for o in options if o.position >= 0), key=lambda o: o.position)
    taken = {id(b.option) for b in bound}
    free = [o for o in positioned if id(o) not in taken]
    if len(positional) > len(free):
        collector.fail(f"`{' '.join(spec.path)}` takes no more than {len(free)} positional "
                       "argument(s) here")
        return
    for option, values in zip(free, positional, strict=False):
        bound.append(_Bound(option, values))
    only = False
    for item in bound:
        option = item.option
        if option.value == "none":
            values = item.values or ()
            if values and (values[0].dynamic or values[0].text.lower() in _FALSE):
                if values[0].dynamic:
                    collector.fail(f"{option.names[0]} is only known at run time")
                continue
        collector.flags.update(option.names)
        collector.flags.update(n.lower() for n in option.names)
        collector.effects.update(option.effects)
        only = only or option.only
        collector.words.append(option.names[0])
        if option.value != "none":
            for word in item.values or ():
                collector.words.append(word.text)
                role = option.role
                if role in ("read", "write", "edit", "delete", "list") and \
                        "-literalpath" in (n.lower() for n in option.names):
                    word = word._replace(glob=False)
                collector.value(word, role)
    pipeline = next((o for o in positioned if o.position == 0), None)
    if command.stdin == "pipe" and pipeline is not None and \
            id(pipeline) not in {id(b.option) for b in bound} and pipeline.role != "value":
        # `gci C:\ | Remove-Item`: the paths come down the pipeline.
        collector.value(Word("{pipeline}", "{pipeline}", dynamic=True), pipeline.role)
    if not only:
        collector.effects.update(spec.effects)


def bind_windows(spec: CommandSpec, command: SimpleCommand, words: list[Word],
                 collector: Collector) -> None:
    """`/S /Q`, `/A:H`, `/PID 12`: cmd's and Windows programs' switches, without case."""
    options = spec.options
    operands: list[Word] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word.dynamic and word.text.startswith(("/", "%")):
            collector.fail(f"`{word.raw}` is only known at run time and could be a switch")
            return
        if not word.text.startswith("/") or len(word.text) < 2 or word.raw.startswith('"'):
            operands.append(word)
            continue
        name, colon, attached = word.text.partition(":")
        option = next((o for o in options if any(n.lower() == name.lower()
                                                 for n in o.names)), None)
        if option is None and len(name) > 2:
            option = next((o for o in options if o.value == "optional" and any(
                n.lower() == name[:2].lower() for n in o.names)), None)
            attached, colon = name[2:], ":"
        if option is None:
            collector.fail(f"`{' '.join(spec.path)}`: unknown switch {word.text}")
            return
        collector.flags.update(option.names)
        collector.flags.update(n.lower() for n in option.names)
        collector.effects.update(option.effects)
        collector.words.append(option.names[0])
        if option.stops:
            operands.extend(words[index:])  # `cmd /c LINE`: the rest is the line
            break
        value: Word | None = None
        if colon:
            value = Word(attached, attached, word.dynamic, word.glob)
        elif option.value == "required":
            if index >= len(words):
                collector.fail(f"`{' '.join(spec.path)}`: {word.text} needs a value")
                return
            value = words[index]
            index += 1
        if value is not None:
            collector.words.append(value.text)
            collector.value(value, option.role)
    from runestone.effects.reader import assign_roles

    assigned = assign_roles(spec.operands, operands)
    if assigned is None:
        collector.fail(f"`{' '.join(spec.path)}` takes fewer operands")
        return
    for word, role in assigned:
        collector.positionals.append(word.text)
        collector.words.append(word.text)
        collector.value(word, role)
    collector.effects.update(spec.effects)
    collector.effects.update(spec.with_operands if operands else spec.without_operands)
