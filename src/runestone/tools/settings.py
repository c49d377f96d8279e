"""Limits of the runtime's own tools, from `[tools.*]` in the runtime's config.toml.

    [tools.shell]
    cwd_prefixes = ["~/src"]        # where commands may run (default: the home directory)
    env_allow = ["PATH", "HOME", "LANG"]
    timeout_seconds = 60
    output_cap_bytes = 1000000
    sandbox = ["bwrap", "--ro-bind", "/", "/", "--"]   # a prefix for every command

    [tools.files]
    roots = ["~/src"]
    deny_extensions = [".pem", ".key"]
    max_bytes = 10000000

    [tools.http]
    allow_domains = []              # empty: any public host
    deny_domains = ["pastebin.com"]
    allow_networks = []             # CIDRs exempt from the private-address refusal
    max_redirects = 5
    max_response_bytes = 5000000
    timeout_seconds = 30
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "USER", "LOGNAME", "SHELL",
               "TZ", "TMPDIR")
DEFAULT_DENIED_EXTENSIONS = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".env")


class ToolSettingsError(ValueError):
    """config.toml's [tools] section is wrong; the message names the field."""


@dataclass(frozen=True, slots=True)
class ShellSettings:
    cwd_prefixes: tuple[str, ...] = ("~",)
    env_allow: tuple[str, ...] = DEFAULT_ENV
    timeout_seconds: float = 60.0
    output_cap_bytes: int = 1_000_000
    sandbox: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileSettings:
    roots: tuple[str, ...] = ("~",)
    deny_extensions: tuple[str, ...] = DEFAULT_DENIED_EXTENSIONS
    max_bytes: int = 10_000_000


@dataclass(frozen=True, slots=True)
class HttpSettings:
    allow_domains: tuple[str, ...] = ()
    deny_domains: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    max_redirects: int = 5
    max_response_bytes: int = 5_000_000
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ToolSettings:
    shell: ShellSettings = field(default_factory=ShellSettings)
    files: FileSettings = field(default_factory=FileSettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    @classmethod
    def load(cls, config_file: Path) -> ToolSettings:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ToolSettingsError(f"{config_file}: {exc}") from exc
        tools = data.get("tools", {})
        if not isinstance(tools, dict):
            raise ToolSettingsError(f"{config_file}: [tools] must be a table")
        return cls(shell=_section(ShellSettings, tools.get("shell", {}), "tools.shell"),
                   files=_section(FileSettings, tools.get("files", {}), "tools.files"),
                   http=_section(HttpSettings, tools.get("http", {}), "tools.http"))


def _section(kind: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ToolSettingsError(f"[{where}] must be a table")
    known = {f.name: f for f in fields(kind)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ToolSettingsError(f"[{where}] has no setting {key!r}; known: "
                                    f"{', '.join(known)}")
        default = getattr(kind(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ToolSettingsError(f"[{where}] {key} must be a list of strings")
            values[key] = tuple(value)
        elif isinstance(default, float | int) and not isinstance(value, bool) and \
                isinstance(value, int | float) and value > 0:
            values[key] = type(default)(value)
        else:
            raise ToolSettingsError(f"[{where}] {key} must be a positive number")
    return kind(**values)


def expand(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))
