"""The shell analysis memo (runestone.shell.dialect) is exact: a command seen again in the
same place gets the analysis it would get afresh, and each argument the analysis reads is
part of the key."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.shell.dialect import _analyze, analyze_for, forget_analyses

words = st.sampled_from(["cd sub", "ls", "cat ~/.ssh/id_rsa", "git status", "echo $(pwd)",
                         "rm -rf build", "python -c 'print(1)'", "cd ..", "Get-ChildItem",
                         "cmd /c dir", "sudo -u x ls", "> out.txt echo", "'unclosed"])
places = st.sampled_from([("/home/dev/a", "/home/dev", ""), ("/home/dev/b", "/home/dev", ""),
                          ("/home/dev/a", "/root", ""), (None, None, ""),
                          ("/c:/users/dev/a", "/c:/users/dev", "C:\\Users\\dev\\a")])


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=4).map(" && ".join), places,
       st.sampled_from(["Bash", "powershell", "shell"]), st.sampled_from(["", "codex"]))
def test_a_remembered_analysis_is_the_fresh_one(source, place, tool, agent) -> None:
    cwd, home, where = place
    first = analyze_for(source, tool=tool, agent=agent, cwd=cwd, home=home, place=where)
    again = analyze_for(source, tool=tool, agent=agent, cwd=cwd, home=home, place=where)
    assert again == first == _analyze(source, tool, agent, cwd, home, where)


def test_the_place_is_part_of_the_key() -> None:
    forget_analyses()
    here = analyze_for("cd sub && ls", cwd="/home/dev/a", home="/home/dev")
    there = analyze_for("cd sub && ls", cwd="/home/dev/b", home="/home/dev")
    assert [c.cwd for c in here.commands] == ["/home/dev/a", "/home/dev/a/sub"]
    assert [c.cwd for c in there.commands] == ["/home/dev/b", "/home/dev/b/sub"]


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=4).map(" && ".join), places)
def test_a_remembered_reading_is_the_fresh_one(source, place) -> None:
    from runestone.effects import builtin, read_command
    from runestone.effects.reader import remembered_reading

    cwd, home, where = place
    for command in analyze_for(source, cwd=cwd, home=home, place=where).commands:
        fresh = read_command(command, builtin(), home)
        assert remembered_reading(command, builtin(), home) == fresh
        assert remembered_reading(command, builtin(), home) == fresh
