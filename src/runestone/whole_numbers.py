"""Reading a whole number a person or a client typed: a form field, a query parameter, a
`Content-Length` header.

Only ASCII digits count, and only within bounds. `str.isdigit` also accepts `²` and other
characters `int()` refuses (an exception where a refusal belongs), `int()` itself accepts a
sign and surrounding underscores, and an unbounded string of digits reaches a database or a
timestamp as a number neither can hold.
"""

from __future__ import annotations


def whole_number(raw: str | None, low: int, high: int) -> int | None:
    """`raw` as an int in [low, high], or None."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(high)):  # out of bounds, and int() of it could be slow
        return None
    value = int(digits)
    return value if low <= value <= high else None
