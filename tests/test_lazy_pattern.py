"""A lazily compiled pattern answers as `re.compile` of the same source does, compiles only
when first used, and the hook path's modules compile none of theirs at import."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import threading

from hypothesis import given
from hypothesis import strategies as st

from runestone import lazy_pattern
from runestone.lazy_pattern import LazyPattern, lazy

SOURCES = [
    (r"^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=", 0),
    (r"\$\{?IFS\b", 0),
    (r"^(core\.hookspath|include\.path|includeif\..+\.path)$", re.IGNORECASE),
    (r"`([^`]+)`", 0),
    (r"(?P<q>['\"])(?P<body>(?:\\.|(?!(?P=q)).)*)(?P=q)", re.DOTALL),
    (r"[a-z]", 0),
]
texts = st.text(alphabet="aZ_=$IFS{}[]`'\"\\.cor:hkspth9 \n+-", max_size=40)


@given(st.sampled_from(SOURCES), texts, st.integers(min_value=0, max_value=3))
def test_answers_as_the_compiled_pattern(source, text, start) -> None:
    compiled, pattern = re.compile(*source), lazy(*source)
    assert repr(pattern.match(text, start)) == repr(compiled.match(text, start))
    assert repr(pattern.fullmatch(text)) == repr(compiled.fullmatch(text))
    assert repr(pattern.search(text, start)) == repr(compiled.search(text, start))
    assert pattern.findall(text) == compiled.findall(text)
    assert [m.span() for m in pattern.finditer(text)] == [m.span() for m in compiled.finditer(text)]
    assert pattern.sub("<\\g<0>>", text) == compiled.sub("<\\g<0>>", text)
    assert pattern.subn(lambda m: m.group(0).upper(), text) == \
        compiled.subn(lambda m: m.group(0).upper(), text)
    assert pattern.split(text) == compiled.split(text)
    assert (pattern.pattern, pattern.flags, pattern.groups, pattern.groupindex) == \
        (compiled.pattern, compiled.flags, compiled.groups, compiled.groupindex)


def test_compiled_once_on_first_use_then_called_directly(monkeypatch) -> None:
    compiled: list[tuple] = []
    real = re.compile

    def counting(*args):
        compiled.append(args)
        return real(*args)

    monkeypatch.setattr(lazy_pattern.re, "compile", counting)
    pattern = LazyPattern(r"^(\d+|-)$")
    assert compiled == []
    assert pattern.match("12") and not pattern.match("x")
    assert pattern.fullmatch("-") and pattern.search("7")
    assert compiled == [(r"^(\d+|-)$", 0)]
    # Later calls find the compiled pattern's own methods on the object: no wrapper between.
    assert pattern.__dict__["match"].__self__ is pattern.__dict__["search"].__self__


def test_private_lookups_do_not_compile_and_copies_work() -> None:
    pattern = LazyPattern("a+")
    assert not hasattr(pattern, "_compiled_by_accident")
    assert "match" not in pattern.__dict__
    duplicate = copy.deepcopy(pattern)
    assert duplicate.match("aa").group(0) == "aa"
    assert repr(pattern) == "lazy('a+', 0)"


def test_threads_using_it_first_at_once_all_get_answers() -> None:
    pattern, answers = LazyPattern(r"(\w+)@(\w+)"), []

    def use() -> None:
        answers.append(pattern.match("me@host").groups())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [("me", "host")] * 8


def test_the_hook_paths_imports_compile_none_of_them() -> None:
    """What a cold hook imports leaves every lazy pattern uncompiled: a module that used one
    at import would put its compile back on every hook."""
    probe = (
        "import gc\n"
        "import runestone.gatekeeper, runestone.integrations.hook, runestone.cli.hook\n"
        "import runestone.actions.urls, runestone.actions.winpaths\n"
        "from runestone.lazy_pattern import LazyPattern\n"
        "found = [o for o in gc.get_objects() if isinstance(o, LazyPattern)]\n"
        "print(len(found), sum('match' in o.__dict__ for o in found))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    made, compiled = int(out[0]), int(out[1])
    assert made >= 15 and compiled == 0
