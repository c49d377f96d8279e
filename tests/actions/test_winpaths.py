"""Windows paths: normalisation checked against Python's `ntpath` on generated paths, and
the spellings Windows accepts for one file (case, trailing dots, streams, short names,
environment forms, Git Bash's `/c/...`) all reaching the same canonical form."""

from __future__ import annotations

import ntpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions.paths import is_within, path_fact, resolve_path
from runestone.actions.winpaths import (
    UNKNOWN_HOME,
    canonical,
    is_windows_place,
    native,
    shown,
    windows_forms,
    windows_home,
)

HOME = "C:\\Users\\Dev"
CWD = "d:\\proj"

# Names Windows keeps as written (no trailing dot or space, no stream colon, no `~N`).
_name = st.text(alphabet="abcXYZ019_-é", min_size=1, max_size=6)
_segment = st.one_of(_name, _name.map(lambda n: n + ".ts"), st.sampled_from([".", ".."]))
_sep = st.sampled_from(["\\", "/"])


@st.composite
def _tail(draw) -> str:
    segments = draw(st.lists(_segment, min_size=0, max_size=6))
    out = ""
    for segment in segments:
        out += draw(_sep) + ("" if draw(st.booleans()) else draw(_sep)) + segment
    return out


@st.composite
def drive_paths(draw) -> str:
    return draw(st.sampled_from("cCdDzZ")) + ":" + draw(_sep) + draw(_tail()).lstrip("\\/")


@st.composite
def unc_paths(draw) -> str:
    sep = draw(_sep)
    return sep * 2 + draw(_name) + sep + draw(_name) + draw(_tail())


def _reference(path: str) -> str:
    """The canonical form computed from `ntpath` alone."""
    normal = ntpath.normcase(ntpath.normpath(path))
    if normal.startswith("\\\\"):
        return normal.replace("\\", "/").rstrip("/")
    return "/" + normal.replace("\\", "/").rstrip("/")


@settings(max_examples=400, deadline=None)
@given(st.one_of(drive_paths(), unc_paths()))
def test_absolute_paths_normalise_as_ntpath_does(path: str) -> None:
    assert canonical(path) == _reference(path)


@settings(max_examples=400, deadline=None)
@given(drive_paths(), _tail())
def test_relative_paths_join_the_windows_cwd_as_ntpath_does(cwd: str, tail: str) -> None:
    relative = tail.lstrip("\\/") or "."
    forms, _ = windows_forms(relative, cwd, HOME)
    assert forms == (_reference(ntpath.join(cwd, relative)),)


@settings(max_examples=300, deadline=None)
@given(st.one_of(drive_paths(), unc_paths()))
def test_case_and_separators_do_not_change_the_place(path: str) -> None:
    form = canonical(path)
    assert canonical(path.upper()) == canonical(path.lower()) == form
    assert canonical(path.replace("\\", "/")) == form
    # A canonical form reads back as itself, and its native spelling too.
    assert windows_forms(form, CWD, HOME) == ((form,), False)
    assert canonical(native(form)) == form


@settings(max_examples=300, deadline=None)
@given(_tail())
def test_inside_the_project_exactly_when_ntpath_says_so(tail: str) -> None:
    relative = tail.lstrip("\\/") or "."
    (form,), _ = windows_forms(relative, CWD, HOME)
    joined = ntpath.normcase(ntpath.normpath(ntpath.join(CWD, relative)))
    inside = joined == "d:\\proj" or joined.startswith("d:\\proj\\")
    assert is_within(form, "/d:/proj") == inside


@pytest.mark.parametrize("spelling", [
    "d:\\proj\\.env", "D:\\PROJ\\.ENV", "d:/proj/.env", ".env", "src\\..\\.env", ".\\.env",
    "d:\\proj\\.env.", "d:\\proj\\.env . .", "d:\\proj\\.env::$DATA", "d:\\proj\\.env:secret",
    "\\\\?\\d:\\proj\\.env", "file:///d:/proj/.env", "/d/proj/.env", "d:proj\\..\\.env",
])
def test_every_spelling_of_one_file_reaches_one_form(spelling: str) -> None:
    forms, _ = windows_forms(spelling, "d:\\proj\\", HOME)
    assert forms[0] == "/d:/proj/.env"


@pytest.mark.parametrize(("raw", "form"), [
    ("~\\.ssh\\id_rsa", "/c:/users/dev/.ssh/id_rsa"),
    ("~/.ssh/id_rsa", "/c:/users/dev/.ssh/id_rsa"),
    ("%USERPROFILE%\\.ssh\\id_rsa", "/c:/users/dev/.ssh/id_rsa"),
    ("%userprofile%\\.ssh", "/c:/users/dev/.ssh"),
    ("$env:USERPROFILE\\.aws\\credentials", "/c:/users/dev/.aws/credentials"),
    ("${env:APPDATA}\\gh\\hosts.yml", "/c:/users/dev/appdata/roaming/gh/hosts.yml"),
    ("$HOME\\.kube\\config", "/c:/users/dev/.kube/config"),
    ("%LOCALAPPDATA%\\Google\\Chrome\\User Data",
     "/c:/users/dev/appdata/local/google/chrome/user data"),
    ("%TEMP%\\x.log", "/c:/users/dev/appdata/local/temp/x.log"),
    ("%SystemRoot%\\System32", "/c:/windows/system32"),
    ("~alice\\notes.txt", "/c:/users/alice/notes.txt"),
    ("\\\\Server\\Share\\dir\\..\\x", "//server/share/x"),
    ("\\\\?\\UNC\\server\\share\\x", "//server/share/x"),
    ("\\\\.\\PhysicalDrive0", "//./physicaldrive0"),
    ("NUL", "/dev/null"),
    ("d:\\proj\\out\\nul", "/dev/null"),
    ("C:\\", "/c:"),
    ("C:/", "/c:"),
    ("C:\\..\\..", "/c:"),
])
def test_environment_forms_homes_shares_and_devices(raw: str, form: str) -> None:
    assert windows_forms(raw, CWD, HOME)[0][0] == form


def test_a_rooted_path_has_both_readings() -> None:
    # Git Bash reads /c/Windows as C:\Windows; PowerShell and cmd as \c\Windows on the
    # current drive. A deny fires on either, an allow needs both.
    assert windows_forms("/c/Windows", CWD, HOME)[0] == ("/c:/windows", "/d:/c/windows")
    assert windows_forms("\\Windows", CWD, HOME)[0] == ("/d:/windows",)
    assert windows_forms("/tmp/x", CWD, HOME)[0] == ("/c:/users/dev/appdata/local/temp/x",
                                                    "/d:/tmp/x")
    assert windows_forms("/dev/null", CWD, HOME)[0] == ("/dev/null",)


def test_what_cannot_be_placed_is_not_guessed() -> None:
    assert windows_forms("%NOT_A_KNOWN_VAR%\\x", CWD, HOME) == ((), False)
    assert windows_forms("e:relative", CWD, HOME) == ((), False)  # e:'s cwd is unknown
    assert windows_forms("x\\.. .\\y", CWD, HOME) == ((), False)  # `.. .` trimmed is `..`
    assert canonical("\\\\server") is None
    assert canonical("relative\\path") is None


def test_short_names_and_wildcards_are_patterns() -> None:
    forms, pattern = windows_forms("C:\\PROGRA~1\\app", CWD, HOME)
    assert pattern and forms == ("/c:/progra*/app",)
    forms, pattern = windows_forms("~\\.ssh\\*", CWD, HOME)
    assert pattern and forms == ("/c:/users/dev/.ssh/*",)


def test_windows_rules_follow_the_cwd_not_the_machine() -> None:
    # The same call means a Windows path under a Windows cwd and a relative name under a
    # POSIX one, on whatever machine this runs.
    assert resolve_path("C:\\x", "d:\\proj", "/home/u") == "/c:/x"
    assert resolve_path("C:\\x", "/home/u/p", "/home/u") == "/home/u/p/C:\\x"
    assert path_fact("src\\a.ts", "/d:/proj", "/c:/users/dev", "read").forms == (
        "/d:/proj/src/a.ts",)
    assert is_windows_place("d:\\proj") and is_windows_place("/d:/proj")
    assert not is_windows_place("/home/u") and not is_windows_place("///x")


def test_the_home_comes_from_the_profile_the_project_lies_in() -> None:
    assert windows_home("/root", "C:\\Users\\brand\\LENR Academy\\x") == "C:\\Users\\brand"
    assert windows_home(None, "d:\\proj") == UNKNOWN_HOME
    assert windows_home("C:\\Users\\me", "d:\\proj") == "C:\\Users\\me"
    assert windows_home(None, "C:\\Users\\Public\\x") == UNKNOWN_HOME


def test_reasons_show_windows_paths_the_windows_way() -> None:
    assert shown("/c:/users/dev/.ssh") == "c:\\users\\dev\\.ssh"
    assert shown("//srv/share/x") == "\\\\srv\\share\\x"
    assert shown("/home/u") == "/home/u"


@pytest.mark.parametrize(("raw", "form"), [
    ("HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
     "//./registry/hkcu/software/microsoft/windows/currentversion/run"),
    ("Registry::HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
     "//./registry/hkcu/software/microsoft/windows/currentversion/run"),
    ("hklm:\\SYSTEM\\CurrentControlSet\\Services",
     "//./registry/hklm/system/currentcontrolset/services"),
    ("Env:\\PATH", "//./psdrive/env/path"),
    ("Microsoft.PowerShell.Core\\FileSystem::d:\\proj\\a.ts", "/d:/proj/a.ts"),
])
def test_powershell_drives_are_not_files_of_the_project(raw: str, form: str) -> None:
    # `HKCU:\...` is no relative file name: read as one it would land inside the project.
    forms, _ = windows_forms(raw, CWD, HOME)
    assert forms == (form,)
    assert windows_forms(form, CWD, HOME)[0] == (form,)


@pytest.mark.parametrize(("argv", "line"), [
    (["cmd.exe", "/c", "dir /b src"], 'cmd.exe /c "dir /b src"'),
    (["C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "-Command",
      "Get-ChildItem src"],
     'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -Command "Get-ChildItem src"'),
    (["pwsh", "-c", "echo 'a b'"], "pwsh -c \"echo 'a b'\""),
    (["bash", "-lc", "ls src"], "bash -lc 'ls src'"),
])
def test_an_argv_is_joined_by_the_quoting_its_program_reads(argv, line) -> None:
    # cmd.exe and PowerShell read their command line by Windows' rules: a POSIX '...'
    # would reach them as literal quotes.
    from runestone.actions.tools import shell_command_of

    assert shell_command_of({"command": argv}) == line


def _is_windows_pattern_by_regex(pattern: str) -> bool:
    """The definition, every test run on every glob (what `is_windows_pattern` answered
    before it told POSIX globs apart without a regex)."""
    import re

    from runestone.actions.winpaths import _ENV_PERCENT, _provider_form

    return bool("\\" in pattern or re.match(r"^[A-Za-z?*]:[\\/]", pattern)
                or _provider_form(pattern) is not None
                or _ENV_PERCENT.match(pattern) or pattern.lower().startswith("$env:"))


@given(st.one_of(
    st.text(alphabet="aZ:%$\\/*?._-~ eEnNvV1", max_size=24),
    st.sampled_from(["~/.ssh/**", "C:\\x", "c:/x", "%APPDATA%\\gh", "$env:HOME/x", "$ENV:x",
                     "HKCU:\\Software", "%APPDATA%/gh/hosts.yml", "%USERPROFILE%",
                     "Registry::HKEY_CURRENT_USER\\x", "Env:PATH",
                     "FileSystem::C:\\x", "**/.env", "{home}/.aws/**", "%x", "*:/x", "?:\\"])))
def test_is_windows_pattern_answers_as_its_definition(pattern) -> None:
    from runestone.actions.winpaths import is_windows_pattern

    assert is_windows_pattern(pattern) == _is_windows_pattern_by_regex(pattern)
