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


def run(command: str, cwd: str, env: dict[str, str], settings: ShellSettings,
        profile: Any = None) -> dict[str, Any]:
    """Run the command; with a sandbox `profile` (a `sandbox` decision), inside the sandbox,
    the working directory being the project it may write."""
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

    argv = [*settings.sandbox, "/bin/bash", "-c", command]
    if profile is not None:
        return _contained(argv, real_cwd, child_env, settings, profile, dropped)
    result = execute(argv, cwd=real_cwd,
                     env=child_env, timeout=settings.timeout_seconds, stream=False,
                     capture_cap=settings.output_cap_bytes)
    return _answer(result, settings, dropped)


def _contained(argv: list[str], cwd: str, env: dict[str, str], settings: ShellSettings,
               profile: Any, dropped: list[str]) -> dict[str, Any]:
    from runestone.home import layout
    from runestone.integrations.execute import run as execute
    from runestone.sandbox.bwrap import SandboxError
    from runestone.sandbox.run import explanation, outcome_of, prepare

    try:
        with prepare(argv, profile, project=cwd, cwd=cwd, env=env,
                     state_dir=layout().state_dir) as prepared:
            result = execute(prepared.argv, cwd=cwd, env=prepared.env,
                             timeout=settings.timeout_seconds, stream=False,
                             capture_cap=settings.output_cap_bytes, pass_fds=prepared.fds)
            outcome = outcome_of(prepared, profile, result.exit_code,
                                 result.stderr_text[-65536:])
    except SandboxError as exc:
        raise ToolRefused(f"the sandbox cannot start ({exc}); not run") from exc
    answer = _answer(result, settings, dropped)
    if outcome.blocked:
        answer["stderr"] += explanation(outcome, profile, cwd)
    answer["sandbox"] = outcome.audit_fields()["sandbox"]
    answer["_audit"] = {**answer["_audit"], "sandbox": answer["sandbox"]}
    return answer


def _answer(result: Any, settings: ShellSettings, dropped: list[str]) -> dict[str, Any]:
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
