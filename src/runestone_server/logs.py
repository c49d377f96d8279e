"""The server's logs: plain text by default, one JSON object per line on request.

A team's log pipeline (journald, Loki, a cloud agent) parses JSON without a grok pattern,
so `RUNESTONE_SERVER_LOG_FORMAT=json` puts every record, the server's own and uvicorn's
(errors and, at level info, access lines), through one JSON formatter on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

LEVELS = ("debug", "info", "warning", "error", "critical")
# uvicorn's loggers are set up by uvicorn itself unless it is told not to (log_config=None);
# these propagate to the root handler below instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class JsonFormatter(logging.Formatter):
    """One line of JSON per record: time (UTC, ISO 8601), level, logger, message, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def level() -> str:
    """The configured level name, lower case; an unknown one fails at start, not silently."""
    name = os.environ.get("RUNESTONE_SERVER_LOG_LEVEL", "warning").strip().lower()
    if name not in LEVELS:
        raise ValueError(f"RUNESTONE_SERVER_LOG_LEVEL must be one of {', '.join(LEVELS)}, "
                         f"not {name!r}")
    return name


def configure() -> str:
    """Set up the root logger (and route uvicorn's to it) as the environment says; the
    level name, for uvicorn's own `log_level`."""
    kind = os.environ.get("RUNESTONE_SERVER_LOG_FORMAT", "text").strip().lower()
    if kind not in ("text", "json"):
        raise ValueError(f"RUNESTONE_SERVER_LOG_FORMAT must be text or json, not {kind!r}")
    name = level()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if kind == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name.upper())
    for logger_name in UVICORN_LOGGERS:
        logger = logging.getLogger(logger_name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(name.upper())
    return name
