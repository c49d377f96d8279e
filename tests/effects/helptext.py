"""Read the options a real program lists in its own help text.

GNU programs (`ls --help`) list `-a, --all`, `--block-size=SIZE`, `--color[=WHEN]`; git's
parse-options (`git commit -h`) lists `-F, --file <file>` and `-u, --untracked-files[=<mode>]`.
The catalogue of programs is checked against what the installed program says here, not
against memory.
"""

from __future__ import annotations

import re
import subprocess
from typing import NamedTuple

_SPEC_END = re.compile(r"\s{2,}|\t")
_TOKEN = re.compile(
    r"^(?P<name>--?[A-Za-z0-9?][A-Za-z0-9_.-]*|--\[no-\][A-Za-z0-9][A-Za-z0-9_.-]*)"
    r"(?P<value>\[=[^\]]*\]|=\S+|\s*<[^>]*>|\[<[^>]*>\]| [A-Z][A-Z_]*)?$")


class HelpOption(NamedTuple):
    names: tuple[str, ...]
    value: str  # none, required, optional


def parse_help(text: str) -> list[HelpOption]:
    """Every option a help text lists, with whether it takes a value."""
    options: list[HelpOption] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-") or not line.startswith(" "):
            continue
        spec = _SPEC_END.split(stripped, maxsplit=1)[0]
        names: list[str] = []
        value = "none"
        for token in (t.strip() for t in spec.split(",")):
            match = _TOKEN.match(token)
            if match is None:
                names = []
                break
            name = match.group("name")
            if name.startswith("--[no-]"):
                names.append("--" + name[len("--[no-]"):])
            else:
                names.append(name)
            raw = match.group("value") or ""
            if raw.startswith("[") :
                value = "optional"
            elif raw:
                value = "required"
        if names:
            options.append(HelpOption(tuple(names), value))
    return options


def program_help(*argv: str) -> str:
    """The help text a program prints (stdout and stderr; git -h exits 129)."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    return result.stdout + result.stderr
