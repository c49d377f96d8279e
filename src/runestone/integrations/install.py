"""Install Runestone's hook into an agent host's settings, remove it, and check it works.

The host's file is merged, never overwritten: everything already there stays, a backup is
written first, and what Runestone adds is recognisable (its command line or daemon URL), so
`uninstall` removes exactly that. `doctor` runs the installed command with the host's own
input for an action every policy denies and checks the deny comes back, then warns about
anything that would let a call through unchecked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = "runestone hook"

# The installed hook runs its entry with `-c`, not `-m runestone hook`: `-m` imports runpy and
# with it importlib.util, contextlib, collections and more, ~6 ms of CPU on the reference
# machine, which is most of what a hook forwarding to the daemon costs beyond a bare
# interpreter, paid before every tool call. `-P` keeps the working directory off sys.path:
# hosts run hooks in the agent's project, and with `-m` or `-c` alone a `runestone/`
# directory the agent wrote there is imported instead of Runestone and answers every call.
HOOK_ENTRY = "from runestone.cli.hook import main; main()"
SAFE_PATH = "-P"


# Codex and Gemini CLI block a call only on exit 2 (or a deny reply). A shell that cannot
# start the interpreter exits 127, and a Python that cannot import Runestone exits 1: both
# hosts then run the tool (observed with the real programs in tests/hosts). The guard turns
# any failure into exit 2, with the shell's or Python's complaint on stderr as the reason.
EXIT_2_GUARD = " || exit 2"
GUARDED_HOSTS = ("codex", "gemini")


def current_target() -> str:
    return "windows" if os.name == "nt" else "posix"


def hook_command(host: str, *, target: str | None = None, python: str | None = None) -> str:
    """The command a host runs: this interpreter and this installation, not whatever is on
    PATH, in the form the host's shell on `target` reads (runestone.integrations.windows)."""
    if (target or current_target()) == "windows":
        from runestone.integrations import windows

        return windows.hook_command(host, python or sys.executable)
    command = (f"{shlex.quote(python or sys.executable)} {SAFE_PATH} -c "
               f"{shlex.quote(HOOK_ENTRY)} {host}")
    return command + EXIT_2_GUARD if host in GUARDED_HOSTS else command


def names_hook(command: str, host: str) -> bool:
    """Whether `command` runs Runestone's hook for `host`: the form install writes, or the
    `-m runestone hook` form of earlier versions (and of Windows)."""
    return (f"{shlex.quote(HOOK_ENTRY)} {host}" in command
            or f"{MARK} {host}" in command)


def cwd_problem(host: str, command: str) -> str | None:
    """Why the hook's interpreter would import from the working directory, or None. Python
    puts the current directory first on sys.path for `-m` and `-c` unless `-P` (or `-I`)
    is given; hosts run hooks in the agent's project, where the agent can write files."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None  # interpreter_problem says why it cannot be read
    entry = next((i for i, word in enumerate(words) if word in ("-m", "-c")), len(words))
    if {SAFE_PATH, "-I"} & set(words[1:entry]):
        return None
    return (f"hook's interpreter puts the working directory on sys.path (no {SAFE_PATH}): a "
            "`runestone` directory written into the agent's project would answer every call; "
            f"run `runestone install {host}` again")


def guard_problem(host: str, command: str) -> str | None:
    """Why a failure of this installed command would let the call through, or None."""
    if host in GUARDED_HOSTS and not command.rstrip().endswith(EXIT_2_GUARD.strip()):
        return (f"the hook lacks `{EXIT_2_GUARD.strip()}`: when its interpreter is gone or "
                f"cannot import Runestone, {host} reads the failure as no objection and runs "
                f"the call; run `runestone install {host}` again")
    return None


@dataclass(slots=True)
class DoctorReport:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    unproven: bool = False  # a Windows hook checked by analysis only, its probe not run

    def good(self, text: str) -> None:
        self.lines.append(f"ok    {text}")

    def warn(self, text: str) -> None:
        self.lines.append(f"WARN  {text}")

    def fail(self, text: str) -> None:
        self.ok = False
        self.lines.append(f"FAIL  {text}")


def read_settings(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def write_settings(path: Path, data: dict[str, Any]) -> Path | None:
    """Back the old file up (if any), then replace it atomically."""
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.runestone-backup-{time.strftime('%Y%m%d%H%M%S')}")
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".runestone-tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return backup


def inside_project(path: Path) -> bool:
    """A settings file in the project (Copilot's, `.mcp.json`), not in the user's home."""
    try:
        path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return False
    return True


def remove_backups(path: Path) -> int:
    """Delete the backups Runestone wrote beside `path`; how many went."""
    gone = 0
    for backup in path.parent.glob(f"{path.name}.runestone-backup-*"):
        backup.unlink(missing_ok=True)
        gone += 1
    return gone


def remove_settings(path: Path) -> int:
    """`path` held only Runestone's entries: delete it (install wrote it, or a `{}` that
    means the same as no file), its project backups, and a folder install left empty."""
    path.unlink(missing_ok=True)
    if not inside_project(path):
        return 0
    gone = remove_backups(path)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only if empty (`.github/hooks` made for Copilot)
    return gone


# --- Claude Code ------------------------------------------------------------------------------


CLAUDE_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest")
CLAUDE_POST_EVENTS = ("PostToolUse", "PostToolUseFailure")
# Without it Claude Code (2.1.295 and later) lets the action through when the hook cannot
# start, times out, exits with a code other than 0 or 2, or prints a reply it refuses.
ON_FAILURE = {"onFailure": "block"}


def claude_settings_path() -> Path:
    """The user settings Claude Code reads: `$CLAUDE_CONFIG_DIR/settings.json` when that is
    set (a file under ~/.claude would then never be read), else ~/.claude/settings.json."""
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config) / "settings.json" if config else \
        Path(os.path.expanduser("~/.claude/settings.json"))


def gemini_settings_path() -> Path:
    """Gemini CLI's user settings: `$GEMINI_CLI_HOME/.gemini/settings.json` when that is set,
    else ~/.gemini/settings.json."""
    home = os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~")
    return Path(home) / ".gemini" / "settings.json"


def _is_ours(handler: Any, host: str) -> bool:
    if not isinstance(handler, dict):
        return False
    if handler.get("type") == "http":
        return str(handler.get("url", "")).endswith(f"/hooks/{host}")
    command = handler.get("command") or handler.get("bash") or handler.get("powershell") or ""
    return names_hook(str(command), host)


def claude_install(data: dict[str, Any], *, http: bool, port: int, target: str | None = None,
                   python: str | None = None) -> dict[str, Any]:
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError("'hooks' in the settings is not an object")
    for event in CLAUDE_EVENTS:
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ValueError(f"'hooks.{event}' in the settings is not a list")
        command = hook_command("claude-code", target=target, python=python)
        handlers: list[dict[str, Any]] = [{"type": "command", "command": command,
                                           "timeout": 600, **ON_FAILURE}]
        if http and event not in CLAUDE_POST_EVENTS:
            handlers.append({"type": "http", "url": f"http://127.0.0.1:{port}/hooks/claude-code",
                             "timeout": 30, **ON_FAILURE})
        present = [h for g in groups if isinstance(g, dict)
                   for h in g.get("hooks", []) if _is_ours(h, "claude-code")]
        for handler in present:  # an older install: make it fail closed too
            handler.update(ON_FAILURE)
            if handler.get("type") == "command":  # and run this installation
                handler["command"] = command
        missing = [h for h in handlers if not any(p.get("type") == h["type"] for p in present)]
        if missing:
            groups.append({"matcher": "*", "hooks": missing})
    return data


def remove_ours(data: dict[str, Any], host: str, events: tuple[str, ...]) -> tuple[dict, int]:
    """Drop Runestone's handlers (and groups left empty by that); count what went."""
    removed = 0
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return data, 0
    for event in events:
        groups = hooks.get(event)
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            if _is_ours(group, host):  # a flat list of handlers (Cursor, Copilot)
                removed += 1
                continue
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                kept_groups.append(group)
                continue
            kept = [h for h in group["hooks"] if not _is_ours(h, host)]
            removed += len(group["hooks"]) - len(kept)
            if kept:
                kept_groups.append({**group, "hooks": kept})
            elif len(group["hooks"]) == 0:
                kept_groups.append(group)
        if kept_groups:
            hooks[event] = kept_groups
        else:
            hooks.pop(event, None)
    if not hooks:
        data.pop("hooks", None)
        if set(data) <= {"version"}:
            data.clear()
    return data, removed


CLAUDE_PROBE = {
    "session_id": "runestone-doctor", "transcript_path": "", "cwd": os.path.expanduser("~"),
    "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
    "tool_input": {"command": "rm -rf ~", "description": "runestone doctor probe"},
    "tool_use_id": "toolu_runestone_doctor",
}


def _ours_by_event(data: dict[str, Any], host: str, events: tuple[str, ...]
                   ) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Runestone's handlers under each event, with their group's matcher."""
    hooks = data.get("hooks") if isinstance(data.get("hooks"), dict) else {}
    found: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for event in events:
        groups = hooks.get(event, []) if isinstance(hooks, dict) else []
        found[event] = [(g.get("matcher", ""), h) for g in groups if isinstance(g, dict)
                        for h in g.get("hooks", []) if isinstance(g.get("hooks"), list)
                        and _is_ours(h, host)]
    return found


def interpreter_problem(command: str) -> str | None:
    """Why the hook's program cannot start (the host then sees exit 127), or None."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"the command cannot be read ({exc})"
    if not words:
        return "the command is empty"
    program = words[0]
    if os.sep in program:
        if not os.path.isfile(program):
            return f"{program} does not exist"
        if not os.access(program, os.X_OK):
            return f"{program} is not executable"
        return None
    return None if shutil.which(program) else f"{program} is not on PATH"


def daemon_problem(url: str) -> str | None:
    """Why an `http` hook's daemon does not answer, or None when its health check does."""
    from urllib.error import URLError
    from urllib.parse import urlsplit
    from urllib.request import urlopen

    parts = urlsplit(url)
    try:
        with urlopen(f"{parts.scheme}://{parts.netloc}/api/health", timeout=2) as response:
            return None if response.status == 200 else f"it answered HTTP {response.status}"
    except (URLError, OSError, ValueError) as exc:
        return f"nothing answers at {parts.netloc} ({getattr(exc, 'reason', exc)})"


CLAUDE_PERMISSION_PROBE = {**CLAUDE_PROBE, "hook_event_name": "PermissionRequest"}
CLAUDE_REINSTALL = "run `runestone install claude-code` again"


def claude_doctor(data: dict[str, Any], report: DoctorReport,
                  run: Callable[..., subprocess.CompletedProcess[str]],
                  path: Path | None = None) -> None:
    if data.get("disableAllHooks") is True:
        report.fail("'disableAllHooks' is true: no hook runs, every call goes through; "
                    "remove it from the settings")
    for where, layer in settings_layers(claude_layer_paths(), path):
        if layer.get("disableAllHooks") is True:
            report.fail(f"'disableAllHooks' is true in {where}, which Claude Code merges over "
                        "the user settings: no hook runs in this project; remove it")
        if layer.get("allowManagedHooksOnly") is True:
            report.fail(f"'allowManagedHooksOnly' is true in {where}: Claude Code runs only "
                        "the managed settings' hooks, not Runestone's; have the hook added "
                        "there")
    ours = _ours_by_event(data, "claude-code", CLAUDE_EVENTS)
    if not ours["PreToolUse"]:
        report.fail("no Runestone PreToolUse hook is installed; run `runestone install "
                    "claude-code`")
        return
    for event, handlers in ours.items():
        if not handlers:
            report.fail(f"no Runestone {event} hook: "
                        + ("results of those calls are not audited" if event.startswith(
                            "Post") else "Claude Code's own prompt is not checked")
                        + f"; {CLAUDE_REINSTALL}")
        for matcher, handler in handlers:
            if matcher not in ("", "*", None):
                report.warn(f"the {event} hook's matcher is {matcher!r}: tools it does not "
                            "match are not checked")
            if handler.get("onFailure") != "block":
                report.fail(f"the {event} {handler.get('type')} hook lacks \"onFailure\": "
                            "\"block\": Claude Code lets the call through when the hook "
                            f"cannot start, times out or crashes; {CLAUDE_REINSTALL}")
    command_hooks = [h for h in (h for _, h in ours["PreToolUse"]) if h.get("type") == "command"]
    if not command_hooks:
        report.warn("only the HTTP hook is installed: every call depends on the daemon; "
                    "keep the command hook too")
    probes = (("PreToolUse", CLAUDE_PROBE, "deny"),
              ("PermissionRequest", CLAUDE_PERMISSION_PROBE, "deny"))
    for event, probe, expected in probes:
        for _, handler in ours[event]:
            if handler.get("type") == "http":
                _claude_http_probe(handler, event, probe, report)
                continue
            command = str(handler.get("command", ""))
            shell = "sh"
            if is_windows_command(command):
                shell = windows_check("claude-code", event, command, report)
                if shell is None:
                    continue
            elif problem := interpreter_problem(command):
                report.fail(f"the {event} hook cannot start: {problem} (exit 127); "
                            f"{CLAUDE_REINSTALL} from a working installation")
                continue
            elif unsafe := cwd_problem("claude-code", command):
                report.fail(f"the {event} {unsafe}")
            answer = _claude_answer(run(command, json.dumps(probe), shell), event)
            if answer == expected:
                report.good(f"the {event} command hook denied the probe (`rm -rf ~`): "
                            f"{command}")
            else:
                report.fail(f"the {event} command hook did not deny the probe: {answer}")


def _claude_http_probe(handler: dict[str, Any], event: str, probe: dict[str, Any],
                       report: DoctorReport) -> None:
    url = str(handler.get("url", ""))
    problem = daemon_problem(url)
    if problem:
        blocked = handler.get("onFailure") == "block"
        report.fail(f"the {event} HTTP hook's daemon is down: {problem}; Claude Code "
                    + ("blocks every call" if blocked else "lets every call through")
                    + " until `runestone daemon` runs (or install without --http)")
        return
    from urllib.request import Request, urlopen

    request = Request(url, data=json.dumps(probe).encode(), method="POST",
                      headers={"Content-Type": "application/json"})
    try:
        with urlopen(request, timeout=10) as response:
            body = response.read().decode("utf-8", "replace")
    except OSError as exc:
        report.fail(f"the {event} HTTP hook failed: {exc}")
        return
    answer = _claude_decision(body, event)
    if answer == "deny":
        report.good(f"the {event} HTTP hook denied the probe (`rm -rf ~`): {url}")
    else:
        report.fail(f"the {event} HTTP hook did not deny the probe: {answer}")


def _claude_answer(result: subprocess.CompletedProcess[str], event: str) -> str:
    if result.returncode == 2:
        return "deny"
    if result.returncode != 0:
        return (f"exit {result.returncode}, which Claude Code reads as a failure: "
                f"{result.stderr.strip()[:300]}")
    return _claude_decision(result.stdout, event)


def _claude_decision(stdout: str, event: str) -> str:
    """What Claude Code reads from a reply to `event`: the decision, or why there is none."""
    try:
        output = json.loads(stdout)["hookSpecificOutput"]
    except (ValueError, KeyError, TypeError):
        return f"no decision in {stdout.strip()[:200]!r}"
    if not isinstance(output, dict) or output.get("hookEventName") != event:
        return f"a reply shaped for another event ({stdout.strip()[:200]}), which Claude " \
               "Code refuses"
    if event == "PermissionRequest":
        decision = output.get("decision")
        return str(decision.get("behavior")) if isinstance(decision, dict) else "no decision"
    return str(output.get("permissionDecision"))


def run_shell(command: str, stdin: str, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    """Run a hook command the way a host does: through its shell, input on stdin. On Windows
    that is Git Bash (Claude Code), PowerShell with Gemini CLI's exit-code relay (Gemini,
    Copilot) or `cmd /C` (Codex, Cursor); see runestone.integrations.windows."""
    if shell == "sh" or os.name != "nt":
        argv = ["/bin/sh", "-c", command]
    elif shell == "bash":
        argv = [shutil.which("bash") or "bash", "-c", command]
    elif shell == "powershell":
        argv = [shutil.which("pwsh") or "powershell.exe", "-NoProfile", "-NonInteractive",
                "-Command", command + "; if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }"]
    else:
        argv = [os.environ.get("COMSPEC", "cmd.exe"), "/C", command]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)


# --- the other hosts ----------------------------------------------------------------------------


def grouped_install(events: dict[str, dict[str, Any]], host: str, matcher: str
                    ) -> Callable[..., dict[str, Any]]:
    """Hosts with Claude Code's shape: event -> [{matcher, hooks: [handler]}] (Codex, Gemini)."""

    def install(data: dict[str, Any], *, http: bool = False, port: int = 8765,
                target: str | None = None, python: str | None = None) -> dict[str, Any]:
        command = hook_command(host, target=target, python=python)
        hooks = data.setdefault("hooks", {})
        if not isinstance(hooks, dict):
            raise ValueError("'hooks' in the settings is not an object")
        for event, extra in events.items():
            groups = hooks.setdefault(event, [])
            if not isinstance(groups, list):
                raise ValueError(f"'hooks.{event}' in the settings is not a list")
            present = [h for g in groups if isinstance(g, dict)
                       for h in g.get("hooks", []) if _is_ours(h, host)]
            for handler in present:  # install again: this installation, guarded
                handler["command"] = command
            if not present:
                groups.append({"matcher": matcher, "hooks": [
                    {"type": "command", "command": command, **extra}]})
        return data

    return install


def flat_install(events: dict[str, dict[str, Any]], host: str, command_key: str
                 ) -> Callable[..., dict[str, Any]]:
    """Hosts whose events hold handlers directly, with a format version (Cursor, Copilot)."""

    def install(data: dict[str, Any], *, http: bool = False, port: int = 8765,
                target: str | None = None, python: str | None = None) -> dict[str, Any]:
        commands = {command_key: hook_command(host, target=target, python=python)}
        if host == "copilot" and (target or current_target()) == "windows":
            from runestone.integrations import windows  # Copilot runs `powershell` there

            commands = windows.copilot_entry_commands(python or sys.executable)
        if not data:
            data["version"] = 1  # a new file; an existing one keeps whatever it declares
        hooks = data.setdefault("hooks", {})
        if not isinstance(hooks, dict):
            raise ValueError("'hooks' in the settings is not an object")
        for event, extra in events.items():
            handlers = hooks.setdefault(event, [])
            if not isinstance(handlers, list):
                raise ValueError(f"'hooks.{event}' in the settings is not a list")
            present = [h for h in handlers if _is_ours(h, host)]
            for handler in present:  # install again: this installation
                handler.update(commands)
            if not present:
                handlers.append({**commands, **extra})
        return data

    return install


def _installed_commands(data: dict[str, Any], host: str, event: str) -> list[str]:
    return [command for command, _ in _installed_handlers(data, host, event)]


def _installed_handlers(data: dict[str, Any], host: str, event: str
                        ) -> list[tuple[str, str | None]]:
    """Runestone's commands under `event`, each with the key it sits under when that key
    names its shell (Copilot's `bash`, or `powershell`, the one it runs on Windows)."""
    hooks = data.get("hooks") if isinstance(data.get("hooks"), dict) else {}
    entries = hooks.get(event, []) if isinstance(hooks, dict) else []
    found: list[tuple[str, str | None]] = []
    for entry in entries if isinstance(entries, list) else []:
        handlers = entry.get("hooks", [entry]) if isinstance(entry, dict) else []
        for handler in handlers:
            if not _is_ours(handler, host) or handler.get("type") == "http":
                continue
            powershell = handler.get("powershell")
            if isinstance(powershell, str) and is_windows_command(powershell):
                found.append((powershell, "powershell"))
            elif handler.get("command"):
                found.append((str(handler["command"]), None))
            else:
                found.append((str(handler.get("bash")), "bash"))
    return found


SettingsCheck = Callable[[dict[str, Any], DoctorReport, "Path | None"], None]
_WINDOWS_COMMAND = re.compile(r"""^(?:&\s*)?['"]?(?:[A-Za-z]:[\\/]|\\\\)""")


def is_windows_command(command: str) -> bool:
    """A hook command written for a host on Windows (its interpreter is a Windows path)."""
    return bool(_WINDOWS_COMMAND.match(command.strip()))


def windows_check(host: str, event: str, command: str, report: DoctorReport,
                  key: str | None = None) -> str | None:
    """Check a Windows hook command by analysis; the shell to probe it with when this is
    Windows, None when it is broken or cannot be run here."""
    from runestone.integrations import windows

    problem = windows.command_problem(host, command, key)
    if problem:
        report.fail(f"the {event} hook: {problem}")
        return None
    shell = key or windows.SHELLS.get(host, "bare")
    if os.name != "nt":
        report.unproven = True
        report.warn(f"the {event} hook is a Windows command in the form {host} on Windows "
                    "reads (checked by analysis); it can be run only on Windows: run "
                    f"`runestone doctor {host}` there")
        return None
    program = windows.interpreter(host, command, key)
    if program is None or not os.path.isfile(program):
        report.fail(f"the {event} hook cannot start: {program} does not exist; run "
                    f"`runestone install {host}` again from a working installation")
        return None
    return shell


def _copilot_windows_keys(data: dict[str, Any], event: str, report: DoctorReport) -> None:
    """Copilot on Windows runs an entry's `powershell` key, not `bash`: a Windows install
    without it is not run there (the `powershell` command itself is probed as the hook)."""
    from runestone.integrations import windows

    hooks = data.get("hooks") if isinstance(data.get("hooks"), dict) else {}
    for entry in hooks.get(event, []) if isinstance(hooks, dict) else []:
        if not _is_ours(entry, "copilot"):
            continue
        bash, powershell = str(entry.get("bash") or ""), entry.get("powershell")
        if is_windows_command(bash) and not isinstance(powershell, str):
            report.fail(f"the {event} entry has no `powershell` command, which Copilot runs "
                        "on Windows: the hook does not run there; run `runestone install "
                        "copilot` again on Windows")
        elif is_windows_command(bash):
            problem = windows.command_problem("copilot", bash, "bash")
            if problem:
                report.fail(f"the {event} hook's `bash` command: {problem}")


def probe_doctor(host: str, event: str, probe: dict[str, Any],
                 denied: Callable[[subprocess.CompletedProcess[str]], bool],
                 settings_check: SettingsCheck | None = None,
                 ) -> Callable[..., None]:
    """Run the installed command with the host's own input for `rm -rf ~`; expect a deny."""

    def doctor(data: dict[str, Any], report: DoctorReport,
               run: Callable[..., subprocess.CompletedProcess[str]],
               path: Path | None = None) -> None:
        commands = _installed_handlers(data, host, event)
        if not commands:
            report.fail(f"no Runestone {event} hook is installed; run `runestone install "
                        f"{host}`")
            return
        if settings_check is not None:
            settings_check(data, report, path)
        if host == "copilot":
            _copilot_windows_keys(data, event, report)
        for command, key in commands:
            shell = "sh"
            if is_windows_command(command):
                shell = windows_check(host, event, command, report, key)
                if shell is None:
                    continue
            else:
                unguarded = guard_problem(host, command)
                if unguarded:
                    report.fail(f"the {event} {unguarded}")
                unsafe = cwd_problem(host, command)
                if unsafe:
                    report.fail(f"the {event} {unsafe}")
                problem = interpreter_problem(command)
                if problem:
                    report.fail(f"the {event} hook cannot start: {problem}; run `runestone "
                                f"install {host}` again from a working installation")
                    continue
            result = run(command, json.dumps(probe), shell)
            if denied(result):
                report.good(f"the {event} hook denied the probe (`rm -rf ~`): {command}")
            else:
                report.fail(f"the {event} hook did not deny the probe (exit "
                            f"{result.returncode}): {result.stdout.strip()[:200]} "
                            f"{result.stderr.strip()[:200]}")

    return doctor


def _json_field(result: subprocess.CompletedProcess[str], *path: str) -> Any:
    try:
        value: Any = json.loads(result.stdout)
        for key in path:
            value = value[key]
        return value
    except (ValueError, KeyError, TypeError):
        return None


CODEX_EVENT_KEYS = {"PreToolUse": "pre_tool_use", "PermissionRequest": "permission_request",
                    "PostToolUse": "post_tool_use"}


def _codex_settings(data: dict[str, Any], report: DoctorReport, path: Path | None) -> None:
    """Codex runs a hook from hooks.json only once its user trusted it (Codex keeps a
    `[hooks.state."<hooks.json>:<event>:<group>:<handler>"]` entry with a `trusted_hash` in
    config.toml; any edit of the hook untrusts it), skips one whose entry says
    `enabled = false`, and runs none with `[features] hooks = false`
    (codex-rs/hooks/src/engine/discovery.rs). It reads a hook that times out, or exits with
    anything but 2, as no objection (all observed with the real program in
    tests/hosts/test_codex_cli.py); the installed `|| exit 2` covers the second."""
    report.warn("Codex lets a call through when the hook times out (only exit 2 or a deny "
                "blocks): keep the hook's 600 s timeout")
    if path is None:
        return
    import tomllib

    config = path.parent / "config.toml"
    try:
        settings = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        settings = {}
    features = settings.get("features")
    if isinstance(features, dict) and features.get("hooks") is False:
        report.fail(f"'[features] hooks = false' in {config}: Codex runs no hook, every call "
                    "goes through; remove it")
    project_config = Path.cwd() / ".codex" / "config.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        project_features = tomllib.loads(project_config.read_text(encoding="utf-8")).get(
            "features")
        if isinstance(project_features, dict) and project_features.get("hooks") is False:
            report.fail(f"'[features] hooks = false' in {project_config}: Codex runs no hook "
                        "in this (trusted) project; remove it")
    hooks_table = settings.get("hooks")
    state = hooks_table.get("state", {}) if isinstance(hooks_table, dict) else {}
    hooks = data.get("hooks", {}) if isinstance(data.get("hooks"), dict) else {}
    for event, key in CODEX_EVENT_KEYS.items():
        for group_index, group in enumerate(hooks.get(event, []) or []):
            handlers = group.get("hooks", []) if isinstance(group, dict) else []
            for handler_index, handler in enumerate(handlers):
                if not _is_ours(handler, "codex"):
                    continue
                entry = state.get(f"{path}:{key}:{group_index}:{handler_index}") \
                    if isinstance(state, dict) else None
                if isinstance(entry, dict) and entry.get("enabled") is False:
                    report.fail(f"the {event} hook is switched off in Codex (enabled = false "
                                f"in {config}): it does not run; enable it in `/hooks`")
                elif not (isinstance(entry, dict) and entry.get("trusted_hash")):
                    report.fail(f"Codex has not trusted the {event} hook, so it does not run: "
                                "start `codex`, open `/hooks` and trust the Runestone hooks "
                                f"(no trust entry in {config})")
                elif entry["trusted_hash"] != codex_trust_hash(key, group, handler):
                    report.fail(f"Codex trusted an earlier version of the {event} hook (its "
                                "hash differs: `/hooks` shows it modified), so it does not "
                                "run: open `/hooks` in `codex` and trust it again")


def codex_trust_hash(event_key: str, group: dict[str, Any], handler: dict[str, Any]) -> str:
    """The hash Codex records when its user trusts one hook, and compares before running it
    (codex-rs/hooks/src/engine/discovery.rs `command_hook_hash`, config/src/fingerprint.rs
    `version_for_toml`): the event's key and the group with only this handler, normalised
    (timeout defaulted to 600, `commandWindows` dropped), absent fields left out, as JSON with
    sorted keys and no blanks, SHA-256. Checked against the real Codex 0.171.0: a hook
    trusted with this hash runs without `--dangerously-bypass-hook-trust`
    (tests/hosts/test_codex_cli.py)."""
    import hashlib

    timeout = handler.get("timeout")
    normal: dict[str, Any] = {
        "type": "command", "command": handler.get("command"),
        "timeout": max(timeout if isinstance(timeout, int) else 600, 1),
        "async": handler.get("async") is True}
    if isinstance(handler.get("statusMessage"), str):
        normal["statusMessage"] = handler["statusMessage"]
    identity: dict[str, Any] = {"event_name": event_key, "hooks": [normal]}
    if group.get("matcher") is not None:
        identity["matcher"] = group["matcher"]
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _gemini_settings(data: dict[str, Any], report: DoctorReport, path: Path | None) -> None:
    """Gemini CLI skips every hook with `hooksConfig.enabled: false` and any hook whose name
    (or command) `hooksConfig.disabled` lists (packages/core/src/hooks/hookRegistry.ts).
    Its hook runner reads a hook that times out, or ends without writing a word, as no
    objection (observed with the real program in tests/hosts/test_gemini_cli.py)."""
    report.warn("Gemini CLI lets a call through when the hook times out or ends without a "
                "word (killed, out of memory): only text with exit 2 or a deny blocks; keep "
                "the hook's 600 s timeout")
    names = {"runestone"} | set(_installed_commands(data, "gemini", "BeforeTool"))
    layers = [(None, data), *settings_layers(gemini_layer_paths(), path)]
    for where, layer in layers:
        config = layer.get("hooksConfig")
        if not isinstance(config, dict):
            continue
        place = f" in {where} (Gemini CLI merges it over the user settings)" if where else ""
        if config.get("enabled") is False:
            report.fail(f"'hooksConfig.enabled' is false{place}: Gemini CLI runs no hook, "
                        "every call goes through; remove it or set it to true")
        disabled = config.get("disabled")
        if isinstance(disabled, list) and names & {d for d in disabled if isinstance(d, str)}:
            report.fail(f"'hooksConfig.disabled'{place} names the Runestone hook: Gemini CLI "
                        "skips it; remove it from that list")


def settings_layers(paths: list[Path], installed: Path | None
                    ) -> list[tuple[Path, dict[str, Any]]]:
    """The other settings files a host merges over the one install wrote (the project's, the
    system's), those that exist and hold an object: a setting there switches the hook off
    just as well (observed with Claude Code and Gemini CLI in tests/hosts)."""
    found = []
    for candidate in paths:
        if installed is not None and candidate.resolve() == installed.resolve():
            continue
        try:
            data = read_settings(candidate)
        except (OSError, ValueError):
            continue
        if data:
            found.append((candidate, data))
    return found


def _system_path(windows: str, mac: str, linux: str) -> Path:
    return Path(windows if os.name == "nt" else mac if sys.platform == "darwin" else linux)


def claude_layer_paths() -> list[Path]:
    """The project's shared and local settings, and the managed (system) settings."""
    project = Path.cwd() / ".claude"
    return [project / "settings.json", project / "settings.local.json",
            _system_path(r"C:\Program Files\ClaudeCode\managed-settings.json",
                         "/Library/Application Support/ClaudeCode/managed-settings.json",
                         "/etc/claude-code/managed-settings.json")]


def gemini_layer_paths() -> list[Path]:
    """The workspace's settings, and the system settings and defaults."""
    system = os.environ.get("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
    system_path = Path(system) if system else _system_path(
        r"C:\ProgramData\gemini-cli\settings.json",
        "/Library/Application Support/GeminiCli/settings.json",
        "/etc/gemini-cli/settings.json")
    return [Path.cwd() / ".gemini" / "settings.json", system_path,
            system_path.with_name("system-defaults.json")]


def copilot_home() -> Path:
    """Copilot CLI's own directory: COPILOT_HOME, else ~/.copilot (%USERPROFILE%\\.copilot)."""
    return Path(os.environ.get("COPILOT_HOME") or os.path.expanduser("~/.copilot"))


def _copilot_settings(data: dict[str, Any], report: DoctorReport, path: Path | None) -> None:
    """Copilot CLI runs a repository's `.github/hooks/*.json` only in a folder its user
    trusted (`trustedFolders` in its config.json, a folder or one above it) and skips them
    elsewhere, so the call goes through; its user-level hooks directory runs everywhere
    (both observed with the real program in tests/hosts/test_copilot_cli.py). A hook that
    times out is no objection to it (observed); any other failure is a deny."""
    report.warn("Copilot CLI lets a call through when the hook times out: keep the hook's "
                "600 s timeout")
    if path is None or path.parent.name != "hooks" or path.parent.parent.name != ".github":
        return
    root = path.resolve().parent.parent.parent
    config = copilot_home() / "config.json"
    try:
        text = config.read_text(encoding="utf-8")
        trusted = json.loads(text[text.index("{"):]).get("trustedFolders") or []
    except (OSError, ValueError, AttributeError):
        trusted = []
    for folder in trusted if isinstance(trusted, list) else []:
        if isinstance(folder, str) and (root == Path(folder) or Path(folder) in root.parents):
            return
    report.fail(f"Copilot CLI runs {path} only in a folder you trusted, and {root} is not "
                f"among the trustedFolders in {config}: there every call goes through; "
                "install at user level (`runestone install copilot` without --settings), "
                "or trust the folder when Copilot asks")


def _cursor_settings(data: dict[str, Any], report: DoctorReport, path: Path | None) -> None:
    hooks = data.get("hooks", {})
    for event in ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile"):
        ours = [h for h in hooks.get(event, []) if _is_ours(h, "cursor")]
        if not ours:
            report.warn(f"no {event} hook: those actions are not checked")
        elif not all(h.get("failClosed") is True for h in ours):
            report.fail(f"the {event} hook lacks failClosed: Cursor lets the action through "
                        "when the hook crashes or times out")


_HOME_PROBE_CWD = os.path.expanduser("~")
CODEX_PROBE = {"session_id": "runestone-doctor", "turn_id": "turn-1", "transcript_path": None,
               "cwd": _HOME_PROBE_CWD, "hook_event_name": "PreToolUse", "model": "doctor",
               "permission_mode": "default", "tool_name": "Bash",
               "tool_input": {"command": "rm -rf ~"}, "tool_use_id": "call_runestone_doctor"}
GEMINI_PROBE = {"session_id": "runestone-doctor", "transcript_path": "", "cwd": _HOME_PROBE_CWD,
                "hook_event_name": "BeforeTool", "timestamp": "2026-01-01T00:00:00Z",
                "tool_name": "run_shell_command", "tool_input": {"command": "rm -rf ~"}}
CURSOR_PROBE = {"conversation_id": "runestone-doctor", "generation_id": "g",
                "hook_event_name": "beforeShellExecution", "workspace_roots": [_HOME_PROBE_CWD],
                "command": "rm -rf ~", "cwd": _HOME_PROBE_CWD}
COPILOT_PROBE = {"timestamp": 1704614600000, "cwd": _HOME_PROBE_CWD, "toolName": "bash",
                 "toolArgs": json.dumps({"command": "rm -rf ~"})}

# --- MCP server entries (Claude Code's .mcp.json and the like) ----------------------------------

# -P: hosts start MCP servers in the project, which must not be on sys.path (SAFE_PATH).
MCP_WRAP = (SAFE_PATH, "-m", "runestone", "mcp", "wrap")


def _wrapped(entry: dict[str, Any]) -> bool:
    """Whether the entry goes through the gateway, in this form or an earlier one's (no -P)."""
    args = entry.get("args") or []
    return isinstance(args, list) and MCP_WRAP[1:] in (tuple(args[:4]), tuple(args[1:5]))


def mcp_install(data: dict[str, Any], *, http: bool = False, port: int = 8765,
                target: str | None = None, python: str | None = None) -> dict[str, Any]:
    """Route every server in `mcpServers` through `runestone mcp wrap` (its program and
    arguments are spawned directly, no shell, so one form serves every system)."""
    interpreter = python or sys.executable
    servers = data.get("mcpServers")
    if not isinstance(servers, dict):
        raise ValueError("no 'mcpServers' object in this file")
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            continue
        if _wrapped(entry):
            if entry["args"][0] != SAFE_PATH:  # an earlier install's form
                entry["args"] = [SAFE_PATH, *entry["args"]]
            continue
        if entry.get("command"):
            servers[name] = {**{k: v for k, v in entry.items() if k not in ("command", "args")},
                             "command": interpreter,
                             "args": [*MCP_WRAP, "--name", name, "--", entry["command"],
                                      *(entry.get("args") or [])]}
        elif entry.get("url") and not entry.get("headers"):
            servers[name] = {"command": interpreter,
                             "args": [*MCP_WRAP, "--name", name, "--url", entry["url"]]}
        else:
            print(f"runestone: {name} sends headers (credentials?) the gateway would drop; "
                  "left as it is", file=sys.stderr)
    return data


def mcp_uninstall(data: dict[str, Any], host: str, events: tuple[str, ...]) -> tuple[dict, int]:
    servers = data.get("mcpServers")
    restored = 0
    if not isinstance(servers, dict):
        return data, 0
    for name, entry in servers.items():
        if not isinstance(entry, dict) or not _wrapped(entry):
            continue
        args = list(entry["args"])
        rest = {k: v for k, v in entry.items() if k not in ("command", "args")}
        if "--url" in args:
            servers[name] = {**rest, "type": "http", "url": args[args.index("--url") + 1]}
        elif "--" in args:
            original = args[args.index("--") + 1:]
            servers[name] = {**rest, "command": original[0], "args": original[1:]}
        restored += 1
    return data, restored


def mcp_doctor(data: dict[str, Any], report: DoctorReport,
               run: Callable[..., subprocess.CompletedProcess[str]],
               path: Path | None = None) -> None:
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or not servers:
        report.fail("no 'mcpServers' in this file")
        return
    for name, entry in servers.items():
        if isinstance(entry, dict) and _wrapped(entry) and entry["args"][0] != SAFE_PATH:
            report.fail(f"{name} starts the gateway without {SAFE_PATH}: the host starts it in "
                        "the project, and a `runestone` directory written there would run "
                        "instead; run `runestone install mcp` again")
        elif isinstance(entry, dict) and _wrapped(entry):
            report.good(f"{name} goes through the Runestone gateway")
        else:
            report.fail(f"{name} does not go through the gateway: its tool calls are not "
                        "governed; run `runestone install mcp`")


HOSTS: dict[str, dict[str, Any]] = {
    "claude-code": {"path": claude_settings_path, "install": claude_install,
                    "events": CLAUDE_EVENTS, "doctor": claude_doctor},
    "codex": {
        # Codex reads hooks.json from CODEX_HOME (default ~/.codex, %USERPROFILE%\.codex).
        "path": lambda: Path(os.environ.get("CODEX_HOME") or os.path.expanduser("~/.codex"))
        / "hooks.json",
        "install": grouped_install({"PreToolUse": {"timeout": 600},
                                    "PermissionRequest": {"timeout": 600},
                                    "PostToolUse": {"timeout": 600}}, "codex", ".*"),
        "events": ("PreToolUse", "PermissionRequest", "PostToolUse"),
        "doctor": probe_doctor("codex", "PreToolUse", CODEX_PROBE, lambda r: r.returncode == 2
                               or _json_field(r, "hookSpecificOutput",
                                              "permissionDecision") == "deny",
                               _codex_settings),
    },
    "gemini": {
        "path": gemini_settings_path,
        # AfterModel reports each model call's tokens, for the policy's cost budgets.
        "install": grouped_install({"BeforeTool": {"name": "runestone", "timeout": 600_000},
                                    "AfterTool": {"name": "runestone", "timeout": 600_000},
                                    "AfterModel": {"name": "runestone", "timeout": 600_000}},
                                   "gemini", ".*"),
        "events": ("BeforeTool", "AfterTool", "AfterModel"),
        "doctor": probe_doctor("gemini", "BeforeTool", GEMINI_PROBE, lambda r: r.returncode == 2
                               or _json_field(r, "decision") in ("deny", "block"),
                               _gemini_settings),
    },
    "cursor": {
        "path": lambda: Path(os.path.expanduser("~/.cursor/hooks.json")),
        "install": flat_install({
            **{event: {"failClosed": True, "timeout": 600} for event in (
                "beforeShellExecution", "beforeMCPExecution", "beforeReadFile")},
            # After-events only record results; they cannot block, so no failClosed.
            **{event: {"timeout": 600} for event in (
                "afterShellExecution", "afterMCPExecution")}}, "cursor", "command"),
        "events": ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile",
                   "afterShellExecution", "afterMCPExecution"),
        "doctor": probe_doctor("cursor", "beforeShellExecution", CURSOR_PROBE,
                               lambda r: r.returncode == 2
                               or _json_field(r, "permission") == "deny", _cursor_settings),
    },
    "mcp": {"path": lambda: Path.cwd() / ".mcp.json", "install": mcp_install,
            "events": (), "doctor": mcp_doctor, "uninstall": mcp_uninstall},
    "copilot": {
        # The user-level hooks directory: Copilot CLI runs those in every folder, where a
        # repository's .github/hooks run only in a folder its user trusted (observed).
        "path": lambda: copilot_home() / "hooks" / "runestone.json",
        "install": flat_install({event: {"type": "command", "timeoutSec": 600} for event in (
            "preToolUse", "postToolUse", "postToolUseFailure")}, "copilot", "bash"),
        "events": ("preToolUse", "postToolUse", "postToolUseFailure"),
        "doctor": probe_doctor("copilot", "preToolUse", COPILOT_PROBE,
                               lambda r: r.returncode != 0 or _json_field(
                                   r, "permissionDecision") == "deny", _copilot_settings),
    },
}
