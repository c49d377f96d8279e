"""`shell.exec`: run a command in an allowed directory, with a filtered environment."""

from __future__ import annotations

import os
from typing import Any

from runestone.actions.paths import is_within
from runestone.tools.settings import ShellSettings, expand


class ToolRefused(ValueError):
    """A call the tool's own limits refuse, whatever the policy said."""


def prepare(params: dict[str, Any], default_cwd: str) -> tuple[str, str, dict[str, str]]:
    command = params.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ToolRefused("shell.exec needs a non-empty 'command' string")
    cwd = params.get("cwd", default_cwd)
    if not isinstance(cwd, str) or not cwd:
        raise ToolRefused("'cwd' must be a directory path")
    env = params.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in env.items()):
        raise ToolRefused("'env' must map names to strings")
    return command, cwd, env


def run(command: str, cwd: str, env: dict[str, str], settings: ShellSettings) -> dict[str, Any]:
    real_cwd = os.path.realpath(cwd)
    if not os.path.isdir(real_cwd):
        raise ToolRefused(f"the working directory {cwd} does not exist")
    prefixes = [expand(p) for p in settings.cwd_prefixes]
    if not any(is_within(real_cwd, prefix) for prefix in prefixes):
        raise ToolRefused(f"commands may run only under {', '.join(prefixes)}, not {real_cwd}")
    allowed = set(settings.env_allow)
    child_env = {k: v for k, v in os.environ.items() if k in allowed}
    child_env.update({k: v for k, v in env.items() if k in allowed})
    dropped = sorted(k for k in env if k not in allowed)
    from runestone.integrations.execute import run as execute

    result = execute([*settings.sandbox, "/bin/bash", "-c", command], cwd=real_cwd,
                     env=child_env, timeout=settings.timeout_seconds, stream=False,
                     capture_cap=settings.output_cap_bytes)
    return {
        "exit_code": result.exit_code, "timed_out": result.timed_out,
        "duration_ms": round(result.duration_ms, 1),
        "stdout": result.stdout_text.decode("utf-8", "replace"),
        "stderr": result.stderr_text.decode("utf-8", "replace"),
        "stdout_truncated": result.stdout.bytes > settings.output_cap_bytes,
        "stderr_truncated": result.stderr.bytes > settings.output_cap_bytes,
        "env_dropped": dropped,
        "_audit": result.audit_fields(),
    }
