"""Canonical JSON and the hashes built on it.

Canonical form: keys sorted by code point, compact separators (`,` and `:`), UTF-8 without
escaping non-ASCII, no NaN or infinities. Two equal values give the same bytes on every
machine, so their SHA-256 is a stable identity for approvals and the audit log.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

from runestone.digest import sha256


class CanonicalJSONError(ValueError):
    """A value cannot be written as canonical JSON (NaN, a non-string key, an unknown type)."""


# One encoder, built once. `JSONEncoder.encode` builds its C encoder on every call (with
# `json.dumps`'s options, a JSONEncoder too): a quarter of the time it takes to encode an
# audit entry. The output is the same. Built without the table of the containers being
# encoded (`markers`), it does not name a value that holds itself as circular; the
# recursion limit stops it instead, and it is refused as too deep (below).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)
if c_make_encoder is not None:
    _ENCODE = c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",",
                             True, False, False)  # sort_keys, not skipkeys, not allow_nan
else:  # pragma: no cover - a Python without the C accelerator
    def _ENCODE(value: Any, _level: int) -> tuple[str]:
        return (_ENCODER.encode(value),)


def canonical_json(value: Any) -> bytes:
    """Encode `value` as canonical JSON bytes."""
    try:
        # A lone surrogate ("\ud800", which JSON input may carry) fails in `encode`.
        text = "".join(_ENCODE(value, 0)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CanonicalJSONError(f"cannot encode as canonical JSON: {exc}") from exc
    except RecursionError:
        raise CanonicalJSONError("cannot encode as canonical JSON: nested too deep, or "
                                 "holding itself") from None
    return text


MAX_DEPTH = 200  # nesting of input an action is built from; hosts send a few levels


def loads_finite(text: str | bytes) -> Any:
    """`json.loads` for input an action is built from. Refuses (ValueError) what canonical
    JSON cannot carry: NaN and Infinity (not JSON, though Python reads them) and numbers
    too large for a float (`1e999` is infinity), so such input is refused as malformed
    where it is read, not as an internal error when it is hashed. Also nesting deeper than
    MAX_DEPTH: json's own limit (a RecursionError at about 1000 levels, which killed
    `runestone check` and dropped the daemon's connection) sits too close to the depth at
    which hashing, redacting and analysing the value recurse. And a lone surrogate
    (`"\\ud800"`: JSON may escape one, UTF-8 cannot carry it), which would otherwise pass
    the parse and fail the audit write, leaving the call denied but unrecorded."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    if _may_carry_trouble(text):
        _check_carried(value)
    return value


def _may_carry_trouble(text: str | bytes) -> bool:
    """Could the value read from `text` nest deeper than MAX_DEPTH or hold a lone
    surrogate? Asked of the raw text, at C speed, so that most input skips the walk in
    Python (`_check_carried`, a few µs a hook line). Conservative: a value's depth is at
    most the number of `[` and `{` in its text (strings' included), and a lone surrogate
    comes from a `\\ud…` escape or from surrogates already in a text that is not ASCII
    (a `str` read with `surrogateescape`; bytes, which `json` decodes with `surrogatepass`,
    as UTF-16 or UTF-32 too: only ASCII bytes without a NUL are surely UTF-8)."""
    if isinstance(text, bytes):
        if not text.isascii() or b"\0" in text:
            return True
        return (text.count(b"[") + text.count(b"{") > MAX_DEPTH or b"\\ud" in text
                or b"\\uD" in text)
    if text.count("[") + text.count("{") > MAX_DEPTH or "\\ud" in text or "\\uD" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_carried(value: Any) -> None:
    """ValueError when `value` nests deeper than MAX_DEPTH or holds a string (or key) that
    is not valid text (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if isinstance(item, dict):
            for key in item:
                _check_text(key)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the JSON holds a lone surrogate (\\u{ord(text[exc.start]):04x}), "
                             "which is not text") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def sha256_hex(data: bytes) -> str:
    return sha256(data).hexdigest()


def canonical_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
