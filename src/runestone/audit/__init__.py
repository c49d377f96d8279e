"""The audit log: append-only, hash-chained, crash-safe segments, with signed checkpoints
and redaction of secrets before anything is written."""

from typing import Any

from runestone.audit.log import AuditLog, AuditWriteError
from runestone.audit.redact import Redactor

__all__ = ["AuditLog", "AuditWriteError", "Redactor", "VerifyReport", "verify_log"]


def __getattr__(name: str) -> Any:
    """Verification is imported when asked for: a hook that only appends never needs it."""
    if name in ("VerifyReport", "verify_log"):
        from runestone.audit import verify

        return getattr(verify, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
