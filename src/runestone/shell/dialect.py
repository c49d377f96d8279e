"""Which shell runs a shell tool call: bash, PowerShell or cmd.exe.

Decided by the action itself, never by the machine the runtime happens to run on, so a
Windows session's log is judged the same when it is replayed on Linux:

- a command line that names its shell (`powershell -Command ...`, `pwsh -c ...`,
  `cmd /c ...`) is read by that shell's analyzer, which follows the inner script;
- a tool named for PowerShell (`powershell`, `pwsh`) sends PowerShell;
- on Windows (the action's cwd is `C:\\...`, `d:\\...` or `\\\\server\\share`), Codex,
  Copilot and Cursor run their shell tool in PowerShell; Claude Code runs its Bash tool in
  Git Bash, which is bash (with Windows paths); other hosts keep bash;
- everything else is bash.
"""

from __future__ import annotations

import re
from functools import lru_cache

from runestone.shell.model import ShellAnalysis

_WINDOWS_CWD = re.compile(r"^(?:[A-Za-z]:[\\/]|[A-Za-z]:$|[\\/]{2}[^\\/])")
_POWERSHELL_HOSTS = ("codex", "copilot", "cursor")
_POWERSHELL_TOOLS = frozenset({"powershell", "pwsh"})
_LEADING = re.compile(r"^\s*&?\s*[\"']?(?P<name>[^\s\"']+)[\"']?(?:\s|$)")


def is_windows_cwd(cwd: str) -> bool:
    return bool(_WINDOWS_CWD.match(cwd or ""))


def dialect_of(source: str, *, tool: str = "", agent: str = "", cwd: str = "") -> str:
    """"bash", "powershell" or "cmd" for a shell tool call."""
    match = _LEADING.match(source)
    if match is not None:
        name = re.split(r"[\\/]", match.group("name"))[-1].lower()
        name = re.sub(r"\.exe$", "", name)
        if name in ("powershell", "pwsh"):
            return "powershell"
        if name == "cmd":
            return "cmd"
    if tool.lower() in _POWERSHELL_TOOLS:
        return "powershell"
    if is_windows_cwd(cwd):
        host = agent.lower()
        if any(h in host for h in _POWERSHELL_HOSTS):
            return "powershell"
    return "bash"


# Sources longer than this are analysed each time (and are rare): the memo stays small.
MEMO_LIMIT = 4096


def analyze_for(source: str, *, tool: str = "", agent: str = "", cwd: str | None = None,
                home: str | None = None, place: str = "") -> ShellAnalysis:
    """Analyse a shell tool call's command with the analyzer of the shell that runs it.

    `place` is the action's cwd as the host sent it (`C:\\Users\\x`), which says whether
    it ran on Windows; `cwd` and `home` are the forms paths are resolved against.

    Memoised: the analysis reads only these arguments (no files, no environment) and is
    made of tuples, so a command seen again in the same place (a long-lived daemon sees
    `git status`, `ls` and the test command over and over) reuses it exactly."""
    if len(source) > MEMO_LIMIT:
        return _analyze(source, tool, agent, cwd, home, place)
    return _memo(source, tool, agent, cwd, home, place)


def _analyze(source: str, tool: str, agent: str, cwd: str | None, home: str | None,
             place: str) -> ShellAnalysis:
    dialect = dialect_of(source, tool=tool, agent=agent, cwd=place or cwd or "")
    if dialect == "powershell":
        from runestone.shell.pwsh.analyzer import analyze_powershell

        return analyze_powershell(source, cwd=cwd, home=home)
    if dialect == "cmd":
        from runestone.shell.cmd import analyze_cmd

        return analyze_cmd(source, cwd=cwd, home=home)
    from runestone.shell.analyzer import analyze

    return analyze(source, cwd=cwd, home=home)


_memo = lru_cache(maxsize=1024)(_analyze)


def forget_analyses() -> None:
    """Empty the memo (benchmarks timing the analysis itself)."""
    _memo.cache_clear()
