"""PowerShell parameter binding and the cmdlet catalogue, against the language's rules.

No `pwsh` can be installed on this project's machines (it is not in Debian, PyPI or npm),
so binding is checked against a reference model written from about_Parameters and the
binder's documented behaviour: an exact name or alias wins; else a unique prefix of the
names and aliases; several matches keep only the cmdlet's own parameters, and more than one
left is ambiguous (the command fails, so Runestone does not understand it).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.effects import builtin, read_command
from runestone.effects.model import OptionSpec
from runestone.effects.powershell import COMMON_OPTIONS, match_parameter
from runestone.shell.cmd import analyze_cmd
from runestone.shell.pwsh.analyzer import analyze_powershell

CWD = "C:\\proj"
HOME = "C:\\Users\\dev"


def reading(source: str, index: int = 0):
    command = analyze_powershell(source, cwd=CWD, home=HOME).commands[index]
    return read_command(command, builtin(), HOME)


def accesses(source: str) -> list[tuple[str, str]]:
    return [(p.word.text, p.access) for p in reading(source).paths]


def test_remove_item_recursive_force_on_a_drive_is_a_recursive_delete():
    for source in ("Remove-Item -Recurse -Force C:\\", "rm -r -fo C:\\", "del C:\\ -Rec -Forc",
                   "Remove-Item -Path:C:\\ -Recurse:$true", "ri -LiteralPath C:\\ -r"):
        result = reading(source)
        assert result.understood, (source, result.why)
        assert ("C:\\", "delete") in [(p.word.text, p.access) for p in result.paths], source
        assert "-Recurse" in result.flags, source


@pytest.mark.parametrize("source", ["rm -f x", "Remove-Item -C x", "gc -T 5 a"])
def test_ambiguous_prefixes_are_not_understood(source):
    # -f: -Filter, -Force; -C: -Credential, -Confirm; -T: -TotalCount, -Tail.
    result = reading(source)
    assert not result.understood and "ambiguous" in result.why


def test_switch_given_false_does_not_apply():
    assert "-Recurse" not in reading("Remove-Item x -Recurse:$false").flags
    assert "-Recurse" in reading("Remove-Item x -Recurse:$true").flags


def test_positional_arguments_bind_in_position_order_skipping_named_ones():
    assert accesses("Copy-Item a b") == [("a", "read"), ("b", "write")]
    assert accesses("Copy-Item -Path a b") == [("a", "read"), ("b", "write")]
    assert accesses("Copy-Item -Destination b a") == [("b", "write"), ("a", "read")]
    assert not reading("Copy-Item a b c").understood
    assert accesses("Select-String err a.log") == [("a.log", "read")]
    assert accesses("Get-Content 'a.txt','b.txt'") == [("a.txt", "read"), ("b.txt", "read")]


def test_pipeline_input_makes_the_paths_unknown():
    result = reading("Get-ChildItem C:\\ | Remove-Item -Recurse", 1)
    assert result.understood and any(p.word.dynamic and p.access == "delete"
                                      for p in result.paths)


def test_whatif_has_no_effect_and_pure_cmdlets_have_none():
    # -WhatIf only reports; its paths still count, so deny rules stay conservative.
    assert "system" not in reading("Set-ExecutionPolicy Bypass -WhatIf").effects
    assert reading("Select-Object -First 3", 0).effects == frozenset()
    assert "network" in reading("iwr https://example.com -OutFile a.zip").effects
    assert "system" in reading("Set-ExecutionPolicy Bypass -Scope CurrentUser -Force").effects


def test_cmd_switches_are_read_without_case():
    command = analyze_cmd("RD /S /Q C:\\", cwd=CWD, home=HOME).commands[0]
    result = read_command(command, builtin(), HOME)
    assert result.understood and "/S" in result.flags
    assert [(p.word.text, p.access) for p in result.paths] == [("C:\\", "delete")]
    command = analyze_cmd("taskkill /F /IM node.exe", cwd=CWD, home=HOME).commands[0]
    assert "process" in read_command(command, builtin(), HOME).effects


def test_a_cmdlet_outside_powershell_is_not_understood():
    from runestone.shell import analyze

    command = analyze("Remove-Item -Recurse /", cwd="/tmp", home="/root").commands[0]
    assert not read_command(command, builtin(), "/root").understood


# --- property: binding against the reference model ----------------------------------------

_NAMES = st.lists(st.text(alphabet="abcdefXYZ", min_size=1, max_size=6), min_size=1,
                  max_size=6, unique_by=str.lower)


def _reference(token: str, own: list[list[str]], common: list[list[str]]) -> str | None:
    """The parameter `token` binds to (its first name), or None when it does not bind."""
    token = token.lower()
    groups = [(names, True) for names in own] + [(names, False) for names in common]
    exact = [names for names, _ in groups if token in {n.lower() for n in names}]
    if exact:
        return exact[0][0]
    prefixed = [(names, is_own) for names, is_own in groups
                if any(n.lower().startswith(token) for n in names)]
    if len(prefixed) == 1:
        return prefixed[0][0][0]
    own_prefixed = [names for names, is_own in prefixed if is_own]
    return own_prefixed[0][0] if len(prefixed) > 1 and len(own_prefixed) == 1 else None


@settings(max_examples=400, deadline=None)
@given(_NAMES, st.data())
def test_property_binding_matches_the_reference_model(names, data):
    own = [["-" + n] for n in names]
    options = tuple(OptionSpec(tuple(group)) for group in own)
    common = [list(o.names) for o in COMMON_OPTIONS]
    source = data.draw(st.sampled_from(names + [n[:k] for n in names for k in range(1, len(n))]
                                       + ["v", "e", "ea", "o", "x"]))
    token = data.draw(st.sampled_from([source, source.upper(), source.lower()]))
    option, why = match_parameter("-" + token, options)
    expected = _reference("-" + token, own, common)
    assert (option.names[0] if option else None) == expected, (token, names, why)
    if option is None:
        assert why


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["Recurse", "Force", "Path", "LiteralPath", "Filter", "Include"]),
       st.integers(min_value=1, max_value=11), st.booleans())
def test_property_remove_item_prefixes(parameter, length, upper):
    """Every prefix of a Remove-Item parameter binds to it exactly when no other parameter
    (own or common) begins the same way; the reading says so."""
    prefix = parameter[:length]
    token = "-" + (prefix.upper() if upper else prefix)
    own = ["Path", "LiteralPath", "PSPath", "LP", "Filter", "Include", "Exclude", "Recurse",
           "Force", "Credential", "WhatIf", "wi", "Confirm", "cf", "Stream"]
    owners = {"PSPath": "LiteralPath", "LP": "LiteralPath", "wi": "WhatIf", "cf": "Confirm"}
    matched = {owners.get(n, n) for n in own if n.lower().startswith(prefix.lower())}
    exact = any(n.lower() == prefix.lower() for n in own)
    if parameter in ("Recurse", "Force"):
        source = f"Remove-Item x {token}"
    elif parameter in ("Path", "LiteralPath"):
        source = f"Remove-Item {token} v"  # x would find no position left: an error
    else:
        source = f"Remove-Item x {token} v"
    result = reading(source)
    if exact or len(matched) == 1:
        assert result.understood, (token, result.why)
        assert f"-{parameter}" in result.flags or parameter in ("Path", "LiteralPath")
    else:
        assert not result.understood, token
