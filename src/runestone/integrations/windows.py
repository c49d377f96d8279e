"""The hook command each agent host runs on Windows, written for the shell that runs it.

On Linux and macOS every host hands a hook's command to a POSIX shell, so one form serves
all. On Windows each host has its own (from their sources and reports):

- Claude Code runs a command hook through Git Bash (`bash -c`) unless the hook asks for
  PowerShell. Bash reads backslashes as escapes, so the interpreter is written with forward
  slashes (`C:/Users/me/venv/Scripts/python.exe`), single-quoted when it needs quoting.
- Codex runs it through `%COMSPEC% /C` (cmd.exe; codex-rs/hooks/src/engine/command_runner.rs),
  passing the command as one argument that Rust's process spawning wraps in `"` and whose
  inner quotes it escapes as `\\"`, which cmd does not read. So no quotes can survive: the
  interpreter's path must have no blanks or cmd metacharacters, and is written bare. Codex
  blocks only on exit 2, so the command ends in `|| exit 2` (cmd's own syntax as well).
- Gemini CLI runs it through PowerShell (`-NoProfile -NonInteractive -Command`;
  packages/core/src/utils/shell-utils.ts) and appends its own exit-code relay. A quoted
  path is a string there, not a command, so the call operator runs it: `& 'C:\\...'`. Gemini
  reads exit 1 as a warning, and a PowerShell that cannot find the program ends with 1, so
  `; if (-not $?) { exit 2 }` makes every failure a block.
- Cursor runs it through PowerShell (older builds: cmd); the bare form works in both, with
  the same no-blanks rule as Codex. `failClosed` covers its failures.
- GitHub Copilot reads a `powershell` key beside `bash` in each hook entry and runs that one
  on Windows; both are written.

Nothing here runs on Windows in CI: these forms are checked by analysis, each parsed back
with the shell analysers Runestone uses for agents' own commands (tests/integrations/
test_windows_install.py).
"""

from __future__ import annotations

import ntpath
import os
import re
import shlex

# The shell each host hands a hook's command to on Windows.
SHELLS = {"claude-code": "bash", "codex": "cmd", "gemini": "powershell", "cursor": "bare",
          "copilot": "powershell"}
# Characters cmd.exe reads as syntax (or splits at) when they stand unquoted in a path.
_CMD_UNSAFE = re.compile(r"[\s&|<>^()%!\"',;=`]")
# What PowerShell reads as syntax in a bare command word (`$0` and `$_` are variables there),
# for the bare form that both shells may run (Cursor).
_POWERSHELL_UNSAFE = re.compile(r"[$`{}@#\[\]]")
POWERSHELL_GUARD = "; if (-not $?) { exit 2 }"
CMD_GUARD = " || exit 2"


def is_windows_interpreter(path: str) -> bool:
    """An absolute Windows path (drive letter or UNC), written either way round."""
    drive, rest = ntpath.splitdrive(path)
    return bool(drive) and rest[:1] in ("\\", "/")


def short_path(path: str) -> str | None:
    """The 8.3 form of `path` (no blanks), asked of Windows itself; None elsewhere."""
    if os.name != "nt":
        return None
    import ctypes

    size = ctypes.windll.kernel32.GetShortPathNameW(path, None, 0)  # type: ignore[attr-defined]
    if not size:
        return None
    buffer = ctypes.create_unicode_buffer(size)
    ctypes.windll.kernel32.GetShortPathNameW(path, buffer, size)  # type: ignore[attr-defined]
    return buffer.value or None


def _bare(path: str, host: str) -> str:
    """The interpreter as cmd (and, for a bare form, PowerShell) can start it unquoted, or
    why it cannot."""
    def unsafe(text: str) -> bool:
        return bool(_CMD_UNSAFE.search(text) or (
            SHELLS.get(host, "bare") == "bare" and _POWERSHELL_UNSAFE.search(text)))

    if not unsafe(path):
        return path
    short = short_path(path)
    if short and not unsafe(short):
        return short
    raise ValueError(
        f"{path} has blanks or characters its shell reads as syntax, and {host} on Windows "
        "starts a hook through a shell that cannot quote it; install Runestone in a virtual "
        "environment at a path without them (or name its 8.3 short form with --python)")


def hook_command(host: str, python: str) -> str:
    """The command `host` on Windows runs to start `python -P -m runestone hook <host>`
    (`-m`, not install's `-c` entry: cmd and PowerShell quote `-c` code differently)."""
    if not is_windows_interpreter(python):
        raise ValueError(f"{python!r} is not an absolute Windows path (C:\\... or \\\\server\\...)")
    tail = f"-P -m runestone hook {host}"  # -P: install.SAFE_PATH says why
    shell = SHELLS.get(host, "bare")
    if shell == "bash":
        return f"{shlex.quote(python.replace(chr(92), '/'))} {tail}"
    if shell == "powershell":
        command = "& '" + python.replace("'", "''") + f"' {tail}"
        return command + POWERSHELL_GUARD if host == "gemini" else command
    command = f"{_bare(python, host)} {tail}"
    return command + CMD_GUARD if host == "codex" else command


def copilot_entry_commands(python: str) -> dict[str, str]:
    """Copilot's two keys: `bash` (Git Bash form) and `powershell` (run on Windows)."""
    return {"bash": f"{shlex.quote(python.replace(chr(92), '/'))} -P -m runestone hook copilot",
            "powershell": "& '" + python.replace("'", "''") + "' -P -m runestone hook copilot"}


def interpreter(host: str, command: str, shell: str | None = None) -> str | None:
    """The program a Windows hook command starts, read as `host`'s shell reads it (by the
    analysers Runestone uses for agents' commands); None when it cannot be read."""
    shell = shell or SHELLS.get(host, "bare")
    if shell == "bash":
        from runestone.shell.analyzer import analyze

        commands = analyze(command).commands
    elif shell == "powershell":
        from runestone.shell.pwsh.analyzer import analyze_powershell

        commands = analyze_powershell(command).commands
    else:
        from runestone.shell.cmd import analyze_cmd

        commands = analyze_cmd(command).commands
    if not commands or not commands[0].argv or commands[0].argv[0].dynamic:
        return None
    return commands[0].argv[0].text


def command_problem(host: str, command: str, key: str | None = None) -> str | None:
    """Why a Windows hook command would not start Runestone, or would let a failure through,
    in `host`'s Windows shell; None when it is the form install writes."""
    shell = "powershell" if key == "powershell" else ("bash" if key == "bash" else None)
    program = interpreter(host, command, shell)
    if program is None or not is_windows_interpreter(program.replace("/", "\\")):
        return (f"{host} on Windows cannot read the interpreter from `{command}`; run "
                f"`runestone install {host}` again on Windows")
    native = program.replace("/", "\\")
    try:
        if key in ("bash", "powershell"):
            expected = copilot_entry_commands(native)[key]
        else:
            expected = hook_command(host, native)
    except ValueError as exc:
        return str(exc)
    if command.strip() != expected:
        return (f"on Windows {host} runs hooks through {SHELLS.get(host, 'cmd')}, and this "
                f"command is not in its form (expected `{expected}`): a quoted path or a "
                "missing exit-2 guard lets calls through; run `runestone install "
                f"{host}` again")
    return None
