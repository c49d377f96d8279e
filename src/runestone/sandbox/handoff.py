"""How a hook hands a command to `runestone sandbox run` without splicing it into a shell
string.

The hook that answers `sandbox` writes the original command, its working directory, the
project and the resolved profile to `<state>/sandbox/<request id>.json`, and rewrites the
host's command to `runestone sandbox run --request <request id>`: only an id, which is
letters, digits and `_`, reaches the new command line, so no quoting can go wrong. `sandbox
run` takes the file once (it is removed before the command starts), checks the profile's
hash, and afterwards leaves `<request id>.result.json`, which the after-tool hook puts in
the result entry of the audit log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_HEX = frozenset("0123456789abcdef")


def valid_request_id(text: str) -> bool:
    """`req_` and 8 to 64 lowercase hex digits: what `new_request_id` makes."""
    digits = text[4:]
    return text.startswith("req_") and 8 <= len(digits) <= 64 and set(digits) <= _HEX


class HandoffError(ValueError):
    """No such pending command, or one that was tampered with."""


def sandbox_command(request_id: str) -> str:
    """The host's new command: this runtime's `runestone`, the request id, nothing else
    (and the runtime's home, when it is not the default one the shell would find)."""
    import shlex
    import sys

    if not valid_request_id(request_id):
        raise HandoffError(f"not a request id: {request_id!r}")
    script = Path(sys.executable).with_name("runestone")
    program = [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-P", "-m",
                                                                 "runestone"]
    words = [*program, "sandbox", "run", "--request", request_id]
    prefix = ""
    if os.environ.get("RUNESTONE_HOME"):
        prefix = f"RUNESTONE_HOME={shlex.quote(os.environ['RUNESTONE_HOME'])} "
    return prefix + shlex.join(words)


def directory(state_dir: Path) -> Path:
    return state_dir / "sandbox"


def _path(state_dir: Path, request_id: str, suffix: str) -> Path:
    if not valid_request_id(request_id):
        raise HandoffError(f"not a request id: {request_id!r}")
    return directory(state_dir) / f"{request_id}{suffix}"


KEEP_SECONDS = 24 * 3600  # a command the host never ran, or a report no hook collected


def write_pending(state_dir: Path, request_id: str, record: dict[str, Any]) -> None:
    path = _path(state_dir, request_id, ".json")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    prune(path.parent)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(temp, path)


def take_pending(state_dir: Path, request_id: str) -> dict[str, Any]:
    """The pending command, removed so that it runs once."""
    path = _path(state_dir, request_id, ".json")
    try:
        text = path.read_text(encoding="utf-8")
        path.unlink()
    except OSError as exc:
        raise HandoffError(f"no pending sandboxed command {request_id} ({exc.strerror}); it "
                           "runs once, from the hook that decided it") from None
    record = json.loads(text)
    if not isinstance(record, dict):
        raise HandoffError(f"the pending command {request_id} is malformed")
    return record


def write_result(state_dir: Path, request_id: str, fields: dict[str, Any]) -> None:
    path = _path(state_dir, request_id, ".result.json")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(fields), encoding="utf-8")


def take_result(state_dir: Path, request_id: str) -> dict[str, Any] | None:
    """The sandbox's report for a request, if `sandbox run` left one (removed once read)."""
    try:
        path = _path(state_dir, request_id, ".result.json")
        text = path.read_text(encoding="utf-8")
        path.unlink()
        value = json.loads(text)
    except (OSError, ValueError, HandoffError):
        return None
    return value if isinstance(value, dict) else None


def prune(folder: Path, now: float | None = None) -> int:
    """Forget hand-overs older than a day: a host may never run a rewritten command (its
    user cancelled), and a report is left uncollected when no after-tool hook came."""
    import time

    cutoff = (time.time() if now is None else now) - KEEP_SECONDS
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.name.startswith("req_") and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed
