"""Running a command the gatekeeper allowed, and auditing what happened.

The output streams to the caller unchanged; the audit log gets its size, a hash and the
exit code, never the output itself (it may hold secrets the redactor cannot recognise).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO


@dataclass(slots=True)
class StreamDigest:
    """Byte count and SHA-256 of everything a stream carried."""

    bytes: int = 0
    sha256: str = ""


def _pump(source: IO[bytes], sink: IO[bytes] | None, digest: StreamDigest,
          cap: int | None, kept: bytearray | None) -> None:
    hasher = hashlib.sha256()
    for chunk in iter(lambda: source.read1(65536), b""):
        hasher.update(chunk)
        digest.bytes += len(chunk)
        if sink is not None:
            sink.write(chunk)
            sink.flush()
        if kept is not None and cap is not None and len(kept) < cap:
            kept.extend(chunk[: cap - len(kept)])
    digest.sha256 = hasher.hexdigest()


@dataclass(slots=True)
class RunResult:
    exit_code: int
    duration_ms: float
    stdout: StreamDigest
    stderr: StreamDigest
    timed_out: bool = False
    stdout_text: bytes = b""
    stderr_text: bytes = b""

    def audit_fields(self) -> dict[str, object]:
        return {"exit_code": self.exit_code, "duration_ms": round(self.duration_ms, 1),
                "stdout_bytes": self.stdout.bytes, "stdout_sha256": self.stdout.sha256,
                "stderr_bytes": self.stderr.bytes, "stderr_sha256": self.stderr.sha256,
                "timed_out": self.timed_out}


def run(argv: Sequence[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None, stream: bool = True,
        capture_cap: int | None = None, pass_fds: Sequence[int] = ()) -> RunResult:
    """Run argv, streaming (or capturing up to `capture_cap` bytes of) its output.
    `pass_fds`: descriptors the child keeps (the sandbox's seccomp program)."""
    start = time.monotonic()
    process = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, pass_fds=tuple(pass_fds))
    out, err = StreamDigest(), StreamDigest()
    kept_out = bytearray() if capture_cap is not None else None
    kept_err = bytearray() if capture_cap is not None else None
    assert process.stdout is not None and process.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, sys.stdout.buffer if stream
                                              else None, out, capture_cap, kept_out)),
        threading.Thread(target=_pump, args=(process.stderr, sys.stderr.buffer if stream
                                              else None, err, capture_cap, kept_err)),
    ]
    for pump in pumps:
        pump.start()
    timed_out = False
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        import os
        import signal

        os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
    for pump in pumps:
        pump.join()
    return RunResult(code, (time.monotonic() - start) * 1000, out, err, timed_out,
                     bytes(kept_out or b""), bytes(kept_err or b""))
