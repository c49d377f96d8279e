"""The audit log: append-only, hash-chained, crash-safe segments, with signed checkpoints
and redaction of secrets before anything is written."""

from runestone.audit.log import AuditLog, AuditWriteError
from runestone.audit.redact import Redactor
from runestone.audit.verify import VerifyReport, verify_log

__all__ = ["AuditLog", "AuditWriteError", "Redactor", "VerifyReport", "verify_log"]
