"""`real_path` gives what `os.path.realpath` gives, for paths that exist and paths that do
not, through links to directories and files, dangling links, loops and missing parts."""

from __future__ import annotations

import os
import posixpath
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions import paths
from runestone.actions.paths import real_path

TREE = tempfile.mkdtemp(prefix="rs-realpath-")
os.makedirs(os.path.join(TREE, "d", "e"))
open(os.path.join(TREE, "d", "f"), "w").close()
os.symlink(os.path.join(TREE, "d"), os.path.join(TREE, "to-d"))  # absolute link to a dir
os.symlink("d/e", os.path.join(TREE, "to-e"))  # relative link
os.symlink(os.path.join(TREE, "d", "f"), os.path.join(TREE, "to-f"))
os.symlink(os.path.join(TREE, "gone", "x"), os.path.join(TREE, "dangling"))
os.symlink("loop-b", os.path.join(TREE, "loop-a"))
os.symlink("loop-a", os.path.join(TREE, "loop-b"))
os.symlink("/", os.path.join(TREE, "root"))

NAMES = ["d", "e", "f", "to-d", "to-e", "to-f", "dangling", "loop-a", "root", "missing",
         "new.txt", "tmp", "etc"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(NAMES), min_size=0, max_size=6))
def test_same_as_os_realpath(parts: list[str]) -> None:
    path = posixpath.normpath(posixpath.join(TREE, *parts))
    assert real_path(path) == os.path.realpath(path)


def test_a_missing_file_below_a_linked_directory_is_placed_where_the_link_points() -> None:
    path = os.path.join(TREE, "to-d", "new-dir", "new.txt")
    assert real_path(path) == os.path.join(TREE, "d", "new-dir", "new.txt")


def test_a_missing_path_costs_no_lstat_per_component(monkeypatch) -> None:
    """The portable route lstats every component; a missing path under an existing
    directory now takes the kernel's resolution and one lstat."""
    path = os.path.join(TREE, "d", "e", "missing", "deeper", "file.txt")
    expected = os.path.realpath(path)
    calls = []
    original = os.lstat
    monkeypatch.setattr(paths.os, "lstat", lambda p, *a, **k: calls.append(p) or
                        original(p, *a, **k))
    assert real_path(path) == expected
    assert len(calls) <= 1, calls
