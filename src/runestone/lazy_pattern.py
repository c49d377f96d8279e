"""Regular expressions compiled on their first use instead of at import.

A cold hook imports some thirty module-level patterns and a plain command uses about a
third of them; the others (a git `-c` key's, an interpreter's name, a Windows environment
variable's...) serve other commands. `re` parses and compiles in Python, so compiling them
all cost a cold hook ~3 ms of its ~70. A pattern made with `lazy` is compiled the first time
any of its attributes is asked for; it then keeps the compiled pattern's methods as its own
attributes, so every later call goes straight to them, as a module-level compiled pattern's
would.
"""

from __future__ import annotations

import re
from typing import Any, cast

# What a caller may ask of a pattern: set on the object at its first use.
_ATTRIBUTES = ("match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer",
               "pattern", "flags", "groups", "groupindex")


class LazyPattern:
    """`re.compile(pattern, flags)`, done when first used. Two threads using it first at
    once each compile it; both set equal patterns, so either wins."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        # Called only for an attribute the object does not have yet: the first use.
        if name.startswith("_"):  # never compile for a private or special lookup (copy)
            raise AttributeError(name)
        compiled = re.compile(*self._source)
        for attribute in _ATTRIBUTES:
            setattr(self, attribute, getattr(compiled, attribute))
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy({self._source[0]!r}, {self._source[1]!r})"


def lazy(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A pattern that behaves as `re.compile(pattern, flags)` and is compiled on first use."""
    return cast("re.Pattern[str]", LazyPattern(pattern, flags))
