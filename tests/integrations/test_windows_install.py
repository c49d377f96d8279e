"""`runestone install|uninstall|doctor --target windows`: each host's Windows command form.

No Windows machine runs these tests: every command install writes is parsed back by the
shell the host uses on Windows (Git Bash for Claude Code, cmd.exe for Codex, PowerShell for
Gemini CLI and Copilot, the form both read for Cursor), with the analysers Runestone uses
for agents' own commands, and must start exactly the interpreter given, with exactly
`-P -m runestone hook <host>`, and end in the exit-2 guard where the host needs one.
"""

from __future__ import annotations

import json
import ntpath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clihelp import run_cli
from runestone.home import layout
from runestone.identity import create_identity
from runestone.integrations import windows
from runestone.shell.analyzer import analyze
from runestone.shell.cmd import analyze_cmd
from runestone.shell.pwsh.analyzer import analyze_powershell

HOSTS = ("claude-code", "codex", "gemini", "cursor", "copilot")
PYTHON = r"C:\Users\sam\proj\.venv\Scripts\python.exe"
SPACED = r"C:\Program Files\Python312\python.exe"


@pytest.fixture
def initialised(isolated_home):
    create_identity(layout())


def _parse(shell: str, command: str):
    if shell == "bash":
        return analyze(command).commands
    if shell == "powershell":
        return analyze_powershell(command).commands
    return analyze_cmd(command).commands


def _starts(shell: str, command: str, python: str, host: str) -> None:
    """The command, read as `shell` reads it, starts `python -P -m runestone hook <host>`."""
    first = _parse(shell, command)[0]
    assert first.argv[0].text.replace("/", "\\") == python
    assert not first.argv[0].dynamic
    assert [w.text for w in first.args] == ["-P", "-m", "runestone", "hook", host]


def _commands(settings_file, host: str) -> list[dict]:
    data = json.loads(settings_file.read_text())
    handlers = []
    for entries in data["hooks"].values():
        for entry in entries:
            handlers += entry.get("hooks", [entry])
    return [h for h in handlers if h.get("type") != "http"]


def _install(tmp_path, host: str, python: str = PYTHON, *extra: str):
    settings_file = tmp_path / f"{host}.json"
    result = run_cli("install", host, "--settings", str(settings_file), "--target", "windows",
                     "--python", python, *extra)
    return settings_file, result


@pytest.mark.parametrize("host", HOSTS)
def test_install_writes_the_form_the_hosts_windows_shell_reads(tmp_path, initialised, host):
    settings_file, result = _install(tmp_path, host)
    assert result.returncode == 0, result.stderr
    for handler in _commands(settings_file, host):
        if host == "copilot":  # both keys: Git Bash's, and the one Copilot runs on Windows
            _starts("bash", handler["bash"], PYTHON, host)
            _starts("powershell", handler["powershell"], PYTHON, host)
            continue
        command = handler["command"]
        _starts(windows.SHELLS[host] if host != "cursor" else "cmd", command, PYTHON, host)
        if host == "cursor":  # Cursor's shell is PowerShell (older builds: cmd): both read it
            _starts("powershell", command, PYTHON, host)
        if host == "codex":  # cmd's `||` then `exit 2`: any failure is Codex's block
            after = _parse("cmd", command)[1]
            assert after.name == "cmd:exit" and [w.text for w in after.args] == ["2"]
            assert command.endswith(" || exit 2")
        if host == "gemini":
            assert command.endswith("; if (-not $?) { exit 2 }")
        if host == "claude-code":
            assert "\\" not in command and handler["onFailure"] == "block"


@pytest.mark.parametrize("host", ["claude-code", "gemini", "copilot"])
def test_a_path_with_blanks_is_quoted_for_the_shell(tmp_path, initialised, host):
    settings_file, result = _install(tmp_path, host, SPACED)
    assert result.returncode == 0, result.stderr
    handler = _commands(settings_file, host)[0]
    if host == "copilot":
        _starts("powershell", handler["powershell"], SPACED, host)
    else:
        _starts(windows.SHELLS[host], handler["command"], SPACED, host)


@pytest.mark.parametrize("host", ["codex", "cursor"])
def test_a_path_cmd_cannot_start_is_refused_with_the_reason(tmp_path, initialised, host):
    """Codex hands the command to `cmd /C` as one argument whose quotes cmd cannot read;
    a hook written anyway would not start, and Codex would run every call."""
    settings_file, result = _install(tmp_path, host, SPACED)
    assert result.returncode == 1
    assert "without them" in result.stderr and not settings_file.exists()


def test_windows_target_from_another_system_needs_the_interpreter(tmp_path, initialised):
    result = run_cli("install", "codex", "--settings", str(tmp_path / "h.json"),
                     "--target", "windows")
    assert result.returncode == 2 and "--python" in result.stderr
    assert run_cli("install", "codex", "--settings", str(tmp_path / "h.json"), "--target",
                   "windows", "--python", "/usr/bin/python3").returncode == 1


@pytest.mark.parametrize("host", HOSTS)
def test_doctor_checks_a_windows_install_by_analysis(tmp_path, initialised, host):
    settings_file, _ = _install(tmp_path, host)
    if host == "codex":
        from test_hooks_cli import _trust_codex_hooks

        _trust_codex_hooks(settings_file)
    report = run_cli("doctor", host, "--settings", str(settings_file))
    assert report.returncode == 0, report.stdout
    assert "only on Windows" in report.stdout and "prove it with doctor on Windows" in \
        report.stdout


# What `install` wrote on Windows before it knew the hosts' shells: a POSIX-quoted path.
POSIX_FORMS = {
    "codex": f"'{PYTHON}' -m runestone hook codex || exit 2",  # cmd: no program '...'
    "gemini": f"'{PYTHON}' -m runestone hook gemini || exit 2",  # PowerShell: a string
    "claude-code": f"{PYTHON} -m runestone hook claude-code",  # Git Bash eats the \
    "cursor": f"'{PYTHON}' -m runestone hook cursor",
}


@pytest.mark.parametrize("host", sorted(POSIX_FORMS))
def test_doctor_fails_on_a_windows_command_its_shell_cannot_start(tmp_path, initialised,
                                                                  host):
    settings_file, _ = _install(tmp_path, host)
    text = settings_file.read_text()
    for handler in _commands(settings_file, host):
        text = text.replace(json.dumps(handler["command"])[1:-1],
                            json.dumps(POSIX_FORMS[host])[1:-1])
    settings_file.write_text(text)
    report = run_cli("doctor", host, "--settings", str(settings_file))
    assert report.returncode == 1, report.stdout
    assert f"runestone install {host}` again" in report.stdout


def test_doctor_fails_on_a_copilot_entry_windows_cannot_run(tmp_path, initialised):
    settings_file, _ = _install(tmp_path, "copilot")
    data = json.loads(settings_file.read_text())
    for entries in data["hooks"].values():
        for entry in entries:
            del entry["powershell"]
    settings_file.write_text(json.dumps(data))
    report = run_cli("doctor", "copilot", "--settings", str(settings_file))
    assert report.returncode == 1 and "`powershell`" in report.stdout


@pytest.mark.parametrize("host", HOSTS)
def test_uninstall_removes_a_windows_install(tmp_path, initialised, host):
    settings_file = tmp_path / f"{host}.json"
    original = {"theme": "dark"}
    settings_file.write_text(json.dumps(original))
    assert _install(tmp_path, host)[1].returncode == 0
    assert _install(tmp_path, host)[1].returncode == 0  # again: nothing doubled
    assert json.dumps(json.loads(settings_file.read_text())).count("runestone hook") == \
        len(_commands(settings_file, host)) * (2 if host == "copilot" else 1)
    assert run_cli("uninstall", host, "--settings", str(settings_file)).returncode == 0
    assert json.loads(settings_file.read_text()) == original


def test_mcp_entries_name_the_windows_interpreter(tmp_path, initialised):
    """MCP server entries are spawned without a shell: the path goes in as it is."""
    mcp = tmp_path / ".mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["srv"]}}}))
    assert run_cli("install", "mcp", "--settings", str(mcp), "--target", "windows",
                   "--python", SPACED).returncode == 0
    assert json.loads(mcp.read_text())["mcpServers"]["fs"]["command"] == SPACED


# Windows path segments: letters, digits, blanks, apostrophes, $, %, &, (, ), accents.
_SEGMENT = st.text(st.sampled_from("abzAZ09 _-.'$%&()é"), min_size=1, max_size=12).filter(
    lambda s: s.strip(" .") == s)


@settings(max_examples=150, deadline=None)
@example(drive="C", segments=["$0"], host="cursor")  # a variable to PowerShell: refused
@given(drive=st.sampled_from("CDcz"), segments=st.lists(_SEGMENT, min_size=1, max_size=4),
       host=st.sampled_from(HOSTS))
def test_every_windows_form_starts_exactly_the_interpreter(drive, segments, host):
    """Whatever the path, a written command starts that interpreter and nothing else, read
    by each shell that may run it; where no form can (cmd and blanks or syntax), install
    refuses instead of writing one that would not start."""
    python = ntpath.join(f"{drive}:\\", *segments, "python.exe")
    try:
        command = windows.hook_command(host, python)
    except ValueError:
        assert host in ("codex", "cursor")
        return
    shells = {"claude-code": ["bash"], "codex": ["cmd"], "gemini": ["powershell"],
              "cursor": ["cmd", "powershell"], "copilot": ["powershell"]}[host]
    for shell in shells:
        commands = _parse(shell, command)
        _starts(shell, command, python, host)
        assert len(commands) == (2 if host == "codex" else 1)
    assert windows.command_problem(host, command) is None
