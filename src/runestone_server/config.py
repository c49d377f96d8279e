"""The server's configuration: environment variables, and one optional TOML file.

Every `RUNESTONE_*` variable the server reads is listed in `SETTINGS` (name, default,
meaning); docs/operations.md holds the same table, and a test checks that every variable
read anywhere in `runestone_server` is in both, so the table cannot drift from the code.

The file (`--config FILE` or `$RUNESTONE_SERVER_CONFIG`) holds the same settings, each key
being the variable's name without `RUNESTONE_`, in lower case (`server_public_url = "..."`).
Loading it sets each variable that the environment does not set already, so the
environment wins (a container's `-e` overrides a mounted file) and every part of the server
keeps reading `os.environ` as before. An unknown key is an error, not a warning: a
misspelt `server_databse` would otherwise silently run on the default database.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "RUNESTONE_"
CONFIG_VARIABLE = "RUNESTONE_SERVER_CONFIG"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: str
    meaning: str

    @property
    def key(self) -> str:
        """The setting's key in the configuration file."""
        return self.name[len(PREFIX):].lower()


def _settings(*rows: tuple[str, str, str]) -> dict[str, Setting]:
    return {name: Setting(name, default, meaning) for name, default, meaning in rows}


SETTINGS: dict[str, Setting] = _settings(
    ("RUNESTONE_SERVER_CONFIG", "(none)", "the TOML configuration file (also `--config`)"),
    ("RUNESTONE_SERVER_HOME", "~/.local/share/runestone-server",
     "the data directory: the SQLite database and the server key"),
    ("RUNESTONE_SERVER_DATABASE", "SQLite in the data directory",
     "database URL: `sqlite:///PATH` or `postgresql://user:pass@host:port/db`"),
    ("RUNESTONE_SERVER_KEY_FILE", "HOME/keys/server.ed25519",
     "the server's Ed25519 signing key; replicas must share it"),
    ("RUNESTONE_SERVER_PUBLIC_URL", "http://127.0.0.1:8800",
     "the address people reach the dashboard at (links in notifications)"),
    ("RUNESTONE_SERVER_TICK", "1", "seconds between worker ticks; 0 runs no worker in "
                                   "`serve` (run `runestone-server worker` instead)"),
    ("RUNESTONE_SERVER_TRUST_PROXY", "0",
     "1: believe X-Forwarded-Proto and -For from a reverse proxy (Secure cookies behind "
     "TLS, the client's address); 0: uvicorn's proxy headers are off"),
    ("RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS", "0",
     "1: webhook and Slack channels may point at private and loopback addresses"),
    ("RUNESTONE_SERVER_APPROVAL_TIMEOUT", "3600",
     "seconds the fallback approval level waits before the ask expires"),
    ("RUNESTONE_SERVER_LOG_FORMAT", "text", "`json`: one JSON object per log line"),
    ("RUNESTONE_SERVER_LOG_LEVEL", "warning",
     "debug, info, warning or error, for the server's and uvicorn's loggers"),
    ("RUNESTONE_SERVER_METRICS_TOKEN", "(none)",
     "bearer token for `/metrics`; without it only loopback clients (not proxied) may scrape"),
    ("RUNESTONE_ADMIN_PASSWORD", "(prompted)",
     "the first admin's password for `runestone-server init` (`--password-env`)"),
    ("RUNESTONE_AUDIT_REVERIFY_EVERY", "21600",
     "seconds between the worker's re-verifications of each stored chain; 0 never"),
    ("RUNESTONE_AUDIT_PRUNE_EVERY", "3600",
     "seconds between retention prunes of one organisation"),
    ("RUNESTONE_ALERTS_INTERVAL", "5", "seconds between alert evaluations of one organisation"),
    ("RUNESTONE_ALERTS_SETTLE", "5",
     "seconds a new row waits before alert rules read it (lets concurrent commits land)"),
    ("RUNESTONE_STREAM_SYSLOG", "(none)",
     "stream the audit as RFC 5424 syslog: `tcp://HOST:PORT` or `tls://HOST:PORT`"),
    ("RUNESTONE_STREAM_SYSLOG_CA", "the system's CAs",
     "CA file that signs the syslog receiver's TLS certificate"),
    ("RUNESTONE_STREAM_OTLP", "(none)",
     "stream the audit as OpenTelemetry logs to this OTLP/HTTP URL (`http://collector:4318/v1/logs`)"),
    ("RUNESTONE_STREAM_OTLP_HEADERS", "(none)",
     "headers for the OTLP requests, `key=value,key=value` (an API key)"),
    ("RUNESTONE_STREAM_BATCH", "500",
     "records per stream batch"),
    ("RUNESTONE_STREAM_TIMEOUT", "10",
     "seconds one stream batch may take"),
    ("RUNESTONE_STREAM_LEASE", "max(60, 3 x timeout)",
     "seconds a claimed batch is held before another worker may resend it"),
    ("RUNESTONE_NOTIFY_TIMEOUT", "10", "seconds one notification attempt may take to connect"),
    ("RUNESTONE_NOTIFY_SEND_LIMIT", "3 x timeout", "seconds one delivery may take in all"),
    ("RUNESTONE_NOTIFY_LEASE", "max(60, 3 x send limit)",
     "seconds a worker holds a claimed delivery before another may retry it"),
    ("RUNESTONE_NOTIFY_MAX_ATTEMPTS", "8", "attempts before a delivery is given up as failed"),
    ("RUNESTONE_NOTIFY_BASE_DELAY", "5", "seconds before the first retry (doubling after)"),
    ("RUNESTONE_NOTIFY_MAX_DELAY", "3600", "the longest wait between retries, in seconds"),
    ("RUNESTONE_NOTIFY_KEEP_DAYS", "30", "days sent and failed deliveries are kept"),
    ("RUNESTONE_SMTP_HOST", "(none)", "SMTP server for e-mail channels"),
    ("RUNESTONE_SMTP_PORT", "25, or 587 with STARTTLS", "SMTP port"),
    ("RUNESTONE_SMTP_FROM", "(none)", "sender address of e-mail notifications"),
    ("RUNESTONE_SMTP_USER", "(none)", "SMTP login"),
    ("RUNESTONE_SMTP_PASSWORD", "(none)", "SMTP password"),
    ("RUNESTONE_SMTP_STARTTLS", "0", "1: upgrade the SMTP connection with STARTTLS"),
)


class ConfigError(ValueError):
    """The configuration file cannot be used; the message says which key or line."""


def _text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        return str(value)
    raise ConfigError(f"{name}: expected a string, number or boolean, got "
                      f"{type(value).__name__}")


def read_file(path: Path) -> dict[str, str]:
    """The variables a configuration file sets (name -> value as the environment has it)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    known = {setting.key: setting for setting in SETTINGS.values()}
    values: dict[str, str] = {}
    for key, value in document.items():
        setting = known.get(key)
        if setting is None or setting.name == CONFIG_VARIABLE:
            raise ConfigError(f"{path}: unknown setting {key!r} (the keys are the variables "
                              "of docs/operations.md without RUNESTONE_, in lower case)")
        values[setting.name] = _text(key, value)
    return values


def apply(path: str | os.PathLike[str] | None = None,
          environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Load the configuration file (`path`, else $RUNESTONE_SERVER_CONFIG, else none) into
    `environ` where a variable is not set already. The names it set."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get(CONFIG_VARIABLE)
    if not chosen:
        return []
    applied = []
    for name, value in read_file(Path(chosen)).items():
        if name not in environ:
            environ[name] = value
            applied.append(name)
    return applied
