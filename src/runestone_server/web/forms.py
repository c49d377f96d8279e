"""Reading an HTML form post (application/x-www-form-urlencoded) without another
dependency: the body is bounded, decoded as UTF-8 and parsed by the standard library."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

from runestone.whole_numbers import whole_number

__all__ = ["Form", "read", "whole_number"]

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

