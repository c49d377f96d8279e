"""Reading an HTML form post (application/x-www-form-urlencoded) without another
dependency: the body is bounded, decoded as UTF-8 and parsed by the standard library."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

MAX_FORM = 2_000_000  # a policy text is at most 1 MB; leave room for escaping


class Form(dict[str, str]):
    """The last value of each field, plus every value under `all(name)`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = pairs

    def all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]


async def read(request: Request) -> Form:
    kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "a form post is expected")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HTTPException(413, "the form is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the form is not UTF-8") from exc
    return Form(parse_qsl(text, keep_blank_values=True, max_num_fields=1000))


def whole_number(raw: str | None, low: int, high: int) -> int | None:
    """A form or query value as an int in [low, high], or None.

    Only ASCII digits count: `str.isdigit` also accepts `²` and other characters `int()`
    refuses (a 500 where a 400 belongs), and an unbounded string of digits would reach the
    database as a number its integer columns cannot hold.
    """
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None
