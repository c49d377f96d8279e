"""Windows tool calls under the presets: file tools on `d:\\proj\\...` are judged like POSIX
ones, secrets are denied however they are spelt, and Windows-only globs name nothing on
Linux. The cwd decides the path rules, so these run the same on any machine."""

from __future__ import annotations

import pytest

from runestone.actions import Action
from runestone.facts import derive_facts
from runestone.policy import load_preset
from runestone.policy.engine import evaluate
from runestone.policy.globs import expand_anchor
from runestone.policy.model import EvalContext

PROJECT = "d:\\proj"


def decide(tool: str, tool_input: dict, cwd: str = PROJECT, preset: str = "developer",
           home: str = "/home/linux-user") -> str:
    facts = derive_facts(Action(tool, tool_input, cwd), home=home)
    return evaluate(load_preset(preset), facts, EvalContext()).decision


@pytest.mark.parametrize(("tool", "tool_input"), [
    ("Read", {"file_path": "d:\\proj\\src\\app.ts"}),
    ("Read", {"file_path": "D:/Proj/Src/App.ts"}),
    ("read_file", {"target_file": "src/pages/App.tsx"}),
    ("Write", {"file_path": "d:\\proj\\src\\new.ts", "content": "x"}),
    ("Edit", {"file_path": "src\\app.ts", "old_string": "a", "new_string": "b"}),
    ("edit_file", {"target_file": "d:\\proj\\README.md", "code_edit": "x"}),
    ("search_replace", {"file_path": "src/types/index.ts"}),
    ("delete_file", {"target_file": "d:\\proj\\build\\out.js"}),
    ("list_dir", {"path": "d:\\proj\\src"}),
    ("Bash", {"command": "cat src/app.ts | grep TODO"}),
])
def test_project_files_are_allowed_by_the_developer_preset(tool: str, tool_input: dict) -> None:
    assert decide(tool, tool_input) == "allow"


@pytest.mark.parametrize(("tool", "tool_input"), [
    ("Read", {"file_path": "d:\\proj\\.env"}),
    ("Read", {"file_path": "d:\\proj\\.ENV."}),
    ("Read", {"file_path": ".env::$DATA"}),
    ("Read", {"file_path": "C:\\Users\\Dev\\.ssh\\id_ed25519"}),
    ("Read", {"file_path": "%USERPROFILE%\\.ssh\\id_rsa"}),
    ("Read", {"file_path": "$env:USERPROFILE\\.aws\\credentials"}),
    ("read_file", {"target_file": "~\\.kube\\config"}),
    ("Read", {"file_path": "\\\\?\\d:\\proj\\config\\server.PEM"}),
    ("Bash", {"command": "cat ~/.ssh/id_rsa"}),
])
def test_secrets_are_denied_however_spelt(tool: str, tool_input: dict) -> None:
    assert decide(tool, tool_input) == "deny"
    assert decide(tool, tool_input, preset="default") == "deny"


@pytest.mark.parametrize(("tool", "tool_input"), [
    ("Read", {"file_path": "d:\\other\\notes.txt"}),
    ("Read", {"file_path": "d:\\proj\\..\\other\\x"}),
    ("Write", {"file_path": "C:\\Windows\\System32\\drivers\\etc\\hosts", "content": ""}),
    ("Read", {"file_path": "\\\\fileserver\\share\\doc.txt"}),
    ("Read", {"file_path": "%NOT_KNOWN%\\x"}),
    ("Read", {"file_path": "e:relative.txt"}),
])
def test_outside_the_project_is_not_allowed(tool: str, tool_input: dict) -> None:
    assert decide(tool, tool_input) != "allow"


def test_the_same_call_from_a_posix_cwd_is_not_read_as_windows() -> None:
    # `C:\x` under a Linux cwd is a strange relative name, not a drive.
    facts = derive_facts(Action("Read", {"file_path": "C:\\Users\\Dev\\.ssh\\id_rsa"},
                                "/home/u/p"), home="/home/u")
    assert facts.parts[0].path.forms == ("/home/u/p/C:\\Users\\Dev\\.ssh\\id_rsa",)


def test_the_home_is_the_windows_profile_not_the_runtime_home() -> None:
    facts = derive_facts(Action("Read", {"file_path": "~\\x"}, "C:\\Users\\Brand\\app"),
                         home="/root")
    assert facts.home == "/c:/users/brand"
    assert facts.project == "/c:/users/brand/app"
    assert facts.parts[0].path.forms == ("/c:/users/brand/x",)


@pytest.mark.parametrize(("pattern", "expanded"), [
    ("{project}/**", "/d:/proj/**"),
    ("~/.ssh/id_*", "/c:/users/dev/.ssh/id_*"),
    ("~\\.SSH\\ID_*", "/c:/users/dev/.ssh/id_*"),
    ("%APPDATA%\\gh\\**", "/c:/users/dev/appdata/roaming/gh/**"),
    ("C:\\Windows\\**", "/c:/windows/**"),
    ("?:\\Users\\*\\.ssh\\**", "/?:/users/*/.ssh/**"),
    ("\\\\*\\*\\**", "//*/*/**"),
    (".ENV", "**/.env"),
    ("src/**", "/d:/proj/src/**"),
])
def test_rule_globs_expand_for_a_windows_place(pattern: str, expanded: str) -> None:
    assert expand_anchor(pattern, "/d:/proj", "/c:/users/dev") == expanded


@pytest.mark.parametrize("pattern", ["C:\\Windows\\**", "%APPDATA%\\gh\\**", "~\\.ssh\\*"])
def test_windows_only_globs_name_nothing_in_a_posix_place(pattern: str) -> None:
    expanded = expand_anchor(pattern, "/home/u/p", "/home/u")
    assert not expanded.startswith(("/home", "/c:")) and "\0" in expanded
