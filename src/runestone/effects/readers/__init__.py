"""Readers for programs whose words are a small language of their own.

Most programs are read from their table alone. A few need code: `find`'s expression,
sed's script, awk's program, `tar`'s bundled first word and mode-dependent operands, `dd`'s
`key=value` operands, chmod's modes that look like options (`chmod -x f`), `test`'s
expression, `kill`'s signal options, interpreters (`python -m MODULE`, `node FILE`), and
`git reset`, whose first operand is a commit or a path. A table names its reader with
`reader = "find"`; the reader still takes the table's options and effects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runestone.effects.catalogue import Catalogue
from runestone.effects.model import CommandSpec, OptionSpec
from runestone.effects.reader import Collector
from runestone.shell.model import SimpleCommand, Word

Reader = Callable[..., None]


def run_reader(spec: CommandSpec, words: Sequence[Word], collector: Collector,
               catalogue: Catalogue, command: SimpleCommand, home: str | None,
               inherited: tuple[OptionSpec, ...]) -> None:
    """Run the special reader a table names; it fills `collector`."""
    from runestone.effects.readers import awk, find, misc, sed

    readers: dict[str, Reader] = {
        "find": find.read_find,
        "sed": sed.read_sed,
        "awk": awk.read_awk,
        "tar": misc.read_tar,
        "dd": misc.read_dd,
        "chmod": misc.read_chmod,
        "test": misc.read_test,
        "kill": misc.read_kill,
        "interpreter": misc.read_interpreter,
        "git-reset": misc.read_git_reset,
    }
    reader = readers.get(spec.reader)
    if reader is None:
        collector.fail(f"no reader {spec.reader!r}")
        return
    reader(spec, list(words), collector, catalogue, command, home, inherited)
