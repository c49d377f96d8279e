"""Tool families, paths, URLs and patches: the facts policy reasons about."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions.patch import patch_targets
from runestone.actions.paths import is_within, path_fact, resolve_path
from runestone.actions.tools import Family, family_of, file_targets, mcp_parts, shell_command_of
from runestone.actions.urls import url_fact


@pytest.mark.parametrize("tool, family", [
    ("Bash", Family.SHELL), ("run_shell_command", Family.SHELL), ("shell", Family.SHELL),
    ("exec_command", Family.SHELL), ("Read", Family.FILE_READ), ("read_file", Family.FILE_READ),
    ("Grep", Family.FILE_READ), ("Write", Family.FILE_WRITE), ("write_file", Family.FILE_WRITE),
    ("Edit", Family.FILE_EDIT), ("MultiEdit", Family.FILE_EDIT), ("apply_patch", Family.FILE_EDIT),
    ("replace", Family.FILE_EDIT), ("WebFetch", Family.WEB_FETCH), ("web_fetch", Family.WEB_FETCH),
    ("WebSearch", Family.WEB_SEARCH), ("google_web_search", Family.WEB_SEARCH),
    ("mcp__github__delete_repository", Family.MCP), ("TodoWrite", Family.AGENT),
        ("write_todos", Family.AGENT), ("update_plan", Family.AGENT),
    ("something_new", Family.GENERIC),
])
def test_tool_families(tool, family):
    assert family_of(tool) is family


def test_mcp_names_split_into_server_and_tool():
    assert mcp_parts("mcp__github__delete_repository") == ("github", "delete_repository")
    assert mcp_parts("mcp__my_server__do__thing") == ("my_server", "do__thing")


def test_shell_command_from_string_or_argv():
    assert shell_command_of({"command": "ls -la"}) == "ls -la"
    assert shell_command_of({"command": ["bash", "-lc", "rm -rf 'a b'"]}) == \
        "bash -lc 'rm -rf '\"'\"'a b'\"'\"''"
    assert shell_command_of({"cmd": 3}) is None


def test_file_targets_carry_their_access():
    assert file_targets("Read", {"file_path": "/a"}) == [("/a", "read")]
    assert file_targets("Write", {"file_path": "/a", "content": ""}) == [("/a", "write")]
    assert file_targets("Edit", {"file_path": "/a"}) == [("/a", "edit")]
    assert file_targets("Grep", {"pattern": "x"}) == [(".", "list")]
    patch = "*** Begin Patch\n*** Add File: a.py\n+x\n*** Delete File: b.py\n*** End Patch\n"
    assert file_targets("apply_patch", {"input": patch}) == [("a.py", "write"), ("b.py", "delete")]


def test_unified_diff_targets():
    diff = "--- a/src/x.py\n+++ b/src/x.py\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/new.py\n"
    assert patch_targets(diff) == [("src/x.py", "edit"), ("new.py", "edit")]


@pytest.mark.parametrize("raw, expected", [
    ("src/../../.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
    ("~/.ssh/id_rsa", "/home/dev/.ssh/id_rsa"),
    ("$HOME/.aws/credentials", "/home/dev/.aws/credentials"),
    ("${HOME}/x", "/home/dev/x"),
    ("/etc//passwd", "/etc/passwd"),
    ("//etc/passwd", "/etc/passwd"),
    ("./a/./b/", "/home/dev/app/a/b"),
    ("file:///etc/passwd", "/etc/passwd"),
    ("~root/.ssh", "/root/.ssh"),
])
def test_paths_are_resolved(raw, expected):
    assert resolve_path(raw, "/home/dev/app", "/home/dev") == expected


def test_relative_path_without_cwd_is_unplaced():
    assert resolve_path("a", None, "/h") is None
    assert path_fact("a", None, "/h", "read").forms == ()


def test_symlinks_add_their_real_path(tmp_path):
    target = tmp_path / "secret"
    target.write_text("x")
    link = tmp_path / "project" / "innocent"
    link.parent.mkdir()
    os.symlink(target, link)
    fact = path_fact("innocent", str(link.parent), "/h", "read")
    assert fact.forms == (str(link), str(target))


def test_is_within_respects_segments():
    assert is_within("/home/a/x", "/home/a")
    assert is_within("/home/a", "/home/a")
    assert not is_within("/home/ab", "/home/a")
    assert is_within("/anything", "/")


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b", "~", "$HOME"]), max_size=12))
def test_resolved_paths_are_always_absolute_and_normal(parts):
    resolved = resolve_path("/".join(parts) or ".", "/w/p", "/h")
    assert resolved is not None and resolved.startswith("/")
    assert "/../" not in resolved + "/" and "/./" not in resolved + "/" and "//" not in resolved


@pytest.mark.parametrize("url, address", [
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://0xa9fea9fe/", "metadata"),
    ("http://2852039166/", "metadata"),
    ("http://0251.0376.0251.0376/", "metadata"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://127.0.0.1:8080/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://8.8.8.8/", "public-ip"),
    ("https://docs.python.org/3/", ""),
])
def test_url_addresses(url, address):
    assert url_fact(url).address == address


def test_url_domains_and_schemes():
    fact = url_fact("https://API.GitHub.com:8443/x?y=1")
    assert (fact.scheme, fact.host, fact.port, fact.domain) == ("https", "api.github.com", 8443,
                                                                 "github.com")
    assert url_fact("https://a.b.example.co.uk/").domain == "example.co.uk"
    assert url_fact("file:///etc/passwd").scheme == "file"
    assert url_fact("file:///etc/passwd").path == "/etc/passwd"


@given(st.text(max_size=80))
def test_url_parsing_never_raises(text):
    url_fact(text)


NAMES = ("a", "b", "c", "d")
_NODE = st.one_of(
    st.tuples(st.just("dir"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)),
    st.tuples(st.just("file"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)),
    # A link's target: relative or absolute (inside the tree), maybe with `..`, maybe to
    # nothing, maybe to itself or through other links (loops).
    st.tuples(st.sampled_from(["rel-link", "abs-link"]),
              st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
              st.lists(st.sampled_from([*NAMES, ".."]), min_size=1, max_size=3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NODE, max_size=12),
       st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5), min_size=1,
                max_size=8))
def test_real_path_is_os_realpath_in_any_tree_of_links(nodes, queries):
    """Whatever directories, files and symlinks (relative, absolute, dangling, looping) a
    tree holds, the fast route names the same real path as `os.path.realpath`: a rule on
    the target must hold however a link spells the way there."""
    import shutil
    import tempfile

    from runestone.actions.paths import real_path

    root = os.path.realpath(tempfile.mkdtemp())
    try:
        for node in nodes:
            where = os.path.join(root, *node[1])
            try:
                if node[0] == "dir":
                    os.makedirs(where, exist_ok=True)
                elif node[0] == "file":
                    os.makedirs(os.path.dirname(where), exist_ok=True)
                    with open(where, "w"):
                        pass
                else:
                    os.makedirs(os.path.dirname(where), exist_ok=True)
                    target = os.path.join(*node[2])
                    os.symlink(target if node[0] == "rel-link" else os.path.join(root, target),
                               where)
            except OSError:
                continue  # the place is taken (a file, a link): the tree stays as it is
        for parts in queries:
            path = os.path.join(root, *parts)
            assert real_path(path) == os.path.realpath(path), (path, nodes)
    finally:
        shutil.rmtree(root)


def test_fast_real_path_agrees_with_os_realpath(tmp_path):
    from runestone.actions.paths import real_path

    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path / "a", tmp_path / "l")
    os.symlink(tmp_path / "nowhere" / "x", tmp_path / "dangling")
    os.symlink("/etc", tmp_path / "etc")
    for path in ("l/b/c/d", "l", "dangling", "dangling/sub", "etc/passwd", "a/b", "l/../a"):
        full = str(tmp_path / path)
        assert real_path(full) == os.path.realpath(full), path
    assert real_path("/nonexistent/x") == "/nonexistent/x"
