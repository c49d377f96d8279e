"""Flags are read as the real program reads them: hypothesis against coreutils and git.

Generated invocations spell each option as a program's parser allows: a short option
alone or clustered (`-rf`), a long option whole, abbreviated to any prefix (`--rec`), or
with its value joined (`--lines=3`) or in the next word, and `--` before the operands. The
analyzer's reading is then compared with the program itself, where asking it is harmless:

- acceptance, with a help probe: GNU programs handle `--help` where it stands in the
  option loop, so `rm --rec --help` prints the usage (every option before it was read)
  while `rm --re --help` fails first (ambiguous); git's `-h` likewise prints the usage, and
  an unknown or ambiguous option before it prints an error first. The reading must be
  understood exactly when the program accepts the words;
- behaviour, in a temporary directory or repository: what `rm` removes and whether it
  complains about a missing file, what `mkdir` creates, whether `git branch` deletes an
  unmerged branch. The reading's flags must say what the program did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runestone.effects import builtin, read_command
from runestone.shell import analyze

GIT = shutil.which("git")
ENV = {"LC_ALL": "C", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
       "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# Options whose value the probes give (a valid one, so only option parsing is tested).
VALUES = {"--lines": "3", "--bytes": "3", "--sort": "size", "--width": "40",
          "--tabsize": "4", "--time-style": "iso", "--format": "long", "--color": "never",
          "--quoting-style": "literal", "--block-size": "1K", "--ignore": "x", "--hide": "x",
          "--time": "ctime", "--indicator-style": "none", "--key": "1",
          "--field-separator": ",", "--buffer-size": "1M", "--parallel": "1",
          "--mode": "755", "--max-count": "1", "--regexp": "x", "--after-context": "1",
          "--before-context": "1", "--context": "1", "--include": "*.txt",
          "--exclude": "*.o", "--exclude-dir": "x", "--label": "x", "--binary-files": "text",
          "--directories": "read", "--devices": "read", "--group-separator": "-",
          "--preserve-root": "all", "--interactive": "never", "--message": "m",
          "--author": "t <t@example.com>", "--date": "2020-01-01", "--cleanup": "strip",
          "--untracked-files": "no", "--max-depth": "1", "--threshold": "1",
          "--max-unchanged-stats": "1", "--sleep-interval": "1", "--pid": "1",
          "--skip-fields": "1", "--skip-chars": "1", "--check-chars": "1",
          "--all-repeated": "none", "--group": "separate", "--unified": "3",
          "--abbrev": "7", "--column": "never", "--contains": "HEAD",
          "--no-contains": "HEAD", "--merged": "HEAD", "--no-merged": "HEAD",
          "--points-at": "HEAD", "--track": "direct", "--set-upstream-to": "HEAD",
          "--porcelain": "v1", "--ignored": "no", "--ignore-submodules": "all",
          "--find-renames": "50", "--ahead-behind": None}
# Options a probe must not give: they prompt, run an editor or pager, need a terminal or
# a file, or print something other than the usage when they come first.
SKIP_COMMON = {"-i", "-I", "--interactive", "--help", "-h", "--version", "--debug",
               "--files0-from", "--reference", "--random-source", "--compress-program",
               "--temporary-directory", "--exclude-from", "--dired", "--follow", "--retry",
               "--hyperlink", "--context", "-Z"}
SKIP_BY_PROGRAM = {
    "git": {"-e", "--edit", "-p", "--patch", "-v", "--verbose", "--file", "-F", "--template",
            "--pathspec-from-file", "--reedit-message", "--reuse-message", "--squash",
            "--fixup", "--trailer", "--gpg-sign", "-S", "--set-upstream-to",
            "--unset-upstream", "--show-current", "--create-reflog", "--edit-description",
            "-u", "-C", "-c", "--copy", "-m", "--move", "-M", "-D", "-d", "--delete", "-f",
            "--force", "--recurse-submodules", "-l", "--list", "-t", "--track", "--output",
            "-o", "--all", "-a", "--mirror", "--tags", "--signed", "--force-with-lease",
            "--repo", "--exec", "--receive-pack", "--push-option", "--porcelain", "-n",
            "--dry-run", "--amend", "--allow-empty", "--null", "-z"},
    # grep refuses two matchers (-E with -P); only option parsing is on trial here.
    "grep": {"-f", "--file", "-r", "--recursive", "-R", "--dereference-recursive", "-E",
             "--extended-regexp", "-F", "--fixed-strings", "-G", "--basic-regexp", "-P",
             "--perl-regexp"},
    "sort": {"-o", "--output", "-c", "-C", "--check", "-m", "--merge", "--sort"},
    "cp": {"-t", "--target-directory", "-u", "--update"},
    "ls": {"-w", "--width"},
}
def _skipped(path: tuple[str, ...]) -> set[str]:
    return SKIP_COMMON | SKIP_BY_PROGRAM.get(path[0], set())


def reading_of(line: str, cwd: str = "/tmp") -> object:
    analysis = analyze(line, cwd=cwd, home="/nonexistent")
    assert not analysis.opaque, analysis.opaque
    return read_command(analysis.commands[0], builtin(), "/nonexistent")


def _spellings(option, draw, table=None, skipped: frozenset[str] | set[str] = frozenset()
               ) -> list[str]:
    """One way a parser would accept this option (value attached when it takes one)."""
    longs = [n for n in option.names if n.startswith("--")]
    shorts = [n for n in option.names if not n.startswith("--") and len(n) == 2]
    value = VALUES.get(option.canonical, "1")
    forms = []
    if shorts:
        forms.append("short")
    if longs:
        forms += ["long", "prefix"]
    form = draw(st.sampled_from(forms))
    if form == "short":
        name = draw(st.sampled_from(shorts))
        if option.value == "none":
            return [name]
        if option.value == "optional":
            return [name + value]
        return draw(st.sampled_from([[name, value], [name + value]]))
    name = draw(st.sampled_from(longs))
    if form == "prefix":
        name = name[:draw(st.integers(min_value=3, max_value=len(name)))]
        if table is not None:
            # The prefix may spell another option whole (`--time` of `--time-style`): the
            # value that follows must be one that option takes.
            found, _negated, _problem = table.long(name)
            if found is not None and found is not option:
                # ...and it may be one a probe must not give (`--version` of
                # `--version-sort`: sort prints its version, not the usage the probe reads;
                # `--file` of grep's `--files-with-matches` wants a pattern file).
                assume(not (set(found.names) & (SKIP_COMMON | set(skipped))))
                option = found
                value = VALUES.get(option.canonical) or "1"
    if option.value == "none":
        return [name]
    if option.value == "optional":
        return [f"{name}={value}"]
    return draw(st.sampled_from([[name, value], [f"{name}={value}"]]))


def _options_for(path: tuple[str, ...]):
    spec = builtin().get(path)
    assert spec is not None
    skipped = _skipped(path)
    return [o for o in spec.options
            if not (set(o.names) & skipped) and o.role == "value" and not o.effects
            and o.operands is None and not o.value_roles and o.canonical != "-#"
            and (o.value == "none" or VALUES.get(o.canonical))]


@st.composite
def invocations(draw, path: tuple[str, ...]):
    options = _options_for(path)
    chosen = draw(st.lists(st.sampled_from(options), min_size=1, max_size=4))
    words: list[str] = []
    table = builtin().option_table(builtin().get(path), ())
    for option in chosen:
        words += _spellings(option, draw, table, _skipped(path))
    if draw(st.booleans()):
        # An abbreviation that may be unknown, ambiguous or refused: the reading must know
        # which. When it names an option that takes a value, the value follows (so only
        # the option's name is on trial, not the value's validity).
        spec = builtin().get(path)
        longs = sorted({n for o in spec.options for n in o.names
                        if n.startswith("--") and len(n) > 4})
        name = draw(st.sampled_from(longs))
        prefix = name[:draw(st.integers(min_value=3, max_value=4))]
        found, _negated, _problem = builtin().option_table(spec, ()).long(prefix)
        words.append(prefix)
        if found is not None and found.value == "required":
            value = VALUES.get(found.canonical)
            assume(value is not None and not (set(found.names) & _skipped(path)))
            words.append(value)
        elif found is not None:
            assume(not (set(found.names) & _skipped(path)) and not found.effects
                   and found.operands is None)
    return words


def _accepts(argv: list[str], cwd: str) -> bool:
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, cwd=cwd,
                            timeout=20, stdin=subprocess.DEVNULL)
    text = result.stdout + result.stderr
    if argv[0] == "git":
        return result.returncode == 129 and "error:" not in text and "fatal:" not in text
    # Some programs report a bad option and go on to `--help`: the error must be absent.
    return result.returncode == 0 and "Usage" in result.stdout and not result.stderr


COREUTILS = [("ls",), ("rm",), ("mkdir",), ("head",), ("sort",), ("grep",), ("cp",), ("du",),
             ("uniq",), ("wc",)]


@pytest.mark.parametrize("path", COREUTILS, ids=lambda p: " ".join(p))
def test_gnu_option_parsing_matches_the_program(path, tmp_path):
    if shutil.which(path[0]) is None:
        pytest.skip(f"{path[0]} is not installed")

    @SETTINGS
    @given(invocations(path))
    def check(words: list[str]) -> None:
        argv = [path[0], *words, "--help"]
        reading = reading_of(" ".join(_quote(w) for w in argv), str(tmp_path))
        assert reading.understood == _accepts(argv, str(tmp_path)), (argv, reading.why)

    check()


GIT_SUBCOMMANDS = [("git", "branch"), ("git", "commit"), ("git", "status"),
                   ("git", "push"), ("git", "tag"), ("git", "add")]


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@pytest.mark.parametrize("path", GIT_SUBCOMMANDS, ids=lambda p: " ".join(p))
def test_git_option_parsing_matches_git(path, git_repo):
    @SETTINGS
    @given(invocations(path))
    def check(words: list[str]) -> None:
        argv = [*path, *words, "-h"]
        reading = reading_of(" ".join(_quote(w) for w in argv), str(git_repo))
        assert reading.understood == _accepts(argv, str(git_repo)), (argv, reading.why)

    check()


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


# --- behaviour -----------------------------------------------------------------------------

RM_OPTIONS = {"force": ["-f", "--force", "--f", "--fo", "--for", "--forc"],
              "recursive": ["-r", "-R", "--recursive", "--rec", "--recu", "--recursiv"],
              "dir": ["-d", "--dir", "--di"]}


@SETTINGS
@given(st.lists(st.sampled_from(sorted(RM_OPTIONS)), min_size=0, max_size=3, unique=True),
       st.data(), st.booleans())
def test_rm_removes_what_its_reading_says(kinds, data, cluster):
    words = [data.draw(st.sampled_from(RM_OPTIONS[k])) for k in kinds]
    shorts = [w for w in words if len(w) == 2]
    if cluster and len(shorts) > 1:
        words = [w for w in words if len(w) != 2] + ["-" + "".join(w[1] for w in shorts)]
    with tempfile.TemporaryDirectory() as place:
        root = Path(place)
        (root / "tree").mkdir()
        (root / "tree" / "file").write_text("x")
        (root / "empty").mkdir()
        argv = ["rm", *words, "--", "tree", "empty", "missing"]
        reading = reading_of(" ".join(argv), place)
        result = subprocess.run(argv, cwd=place, capture_output=True, env=ENV, timeout=20,
                                stdin=subprocess.DEVNULL)
        assert reading.understood
        recursive = "--recursive" in reading.flags
        assert (not (root / "tree").exists()) == recursive
        assert (not (root / "empty").exists()) == (recursive or "--dir" in reading.flags)
        complained = b"missing" in result.stderr
        assert complained == ("--force" not in reading.flags)


MKDIR_OPTIONS = ["-p", "--parents", "--par", "--pa", "-v", "--verbose", "--verb"]


@SETTINGS
@given(st.lists(st.sampled_from(MKDIR_OPTIONS), max_size=3))
def test_mkdir_creates_parents_when_its_reading_says(words):
    with tempfile.TemporaryDirectory() as place:
        argv = ["mkdir", *words, "a/b/c"]
        reading = reading_of(" ".join(argv), place)
        subprocess.run(argv, cwd=place, capture_output=True, env=ENV, timeout=20)
        assert reading.understood
        assert (Path(place) / "a" / "b" / "c").is_dir() == ("--parents" in reading.flags)


BRANCH_DELETE = ["-d", "--delete", "--del", "--dele", "-D"]
BRANCH_FORCE = ["", "-f", "--force", "--forc", "--for"]


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@SETTINGS
@given(delete=st.sampled_from(BRANCH_DELETE), force=st.sampled_from(BRANCH_FORCE),
       cluster=st.booleans())
def test_git_branch_deletes_an_unmerged_branch_only_when_forced(delete, force, cluster,
                                                                git_repo):
    subprocess.run(["git", "branch", "-f", "unmerged", "side"], cwd=git_repo, env=ENV,
                   check=True, capture_output=True)
    words = [w for w in (delete, force) if w]
    if cluster and all(len(w) == 2 for w in words) and len(words) == 2:
        words = ["-" + words[0][1] + words[1][1]]
    argv = ["git", "branch", *words, "unmerged"]
    reading = reading_of(" ".join(argv), str(git_repo))
    subprocess.run(argv, cwd=git_repo, env=ENV, capture_output=True, timeout=20)
    gone = subprocess.run(["git", "rev-parse", "--verify", "-q", "refs/heads/unmerged"],
                          cwd=git_repo, env=ENV, capture_output=True).returncode != 0
    if not reading.understood:
        # Not understood: here, an ambiguous abbreviation (`--for` is --force or --format),
        # which git refuses too.
        assert not gone and "ambiguous" in reading.why, (argv, reading.why)
        return
    forced = "-D" in reading.flags or {"--delete", "--force"} <= reading.flags
    assert gone == forced, (argv, sorted(reading.flags))


@pytest.fixture
def git_repo(tmp_path_factory):
    """A repository with a commit on `main` and an unmerged commit on `side`."""
    if GIT is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("repo")
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    git("checkout", "-q", "-b", "side")
    (repo / "b.txt").write_text("b\n")
    git("add", "b.txt")
    git("commit", "-q", "-m", "second")
    git("checkout", "-q", "main")
    return repo


def test_probe_environment_is_plain():
    # The probes run with LC_ALL=C so the usage text says "Usage"; a sanity check that
    # the help probe itself works on this machine.
    assert _accepts(["rm", "--recursive", "--help"], os.getcwd())
    assert not _accepts(["rm", "--ver", "--help"], os.getcwd())
