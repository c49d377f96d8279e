"""File paths as policy sees them: absolute, normalised, and resolved through symlinks.

A rule on `~/.ssh/**` must hold however the agent spells the path: `../../.ssh/id_rsa`,
`$HOME/.ssh/id_rsa`, `~/.ssh/id_rsa`, or a symlink inside the project that points there.
So a path has *forms*: its lexically normalised absolute form, plus its real path when a
symlink makes that differ. A rule that denies matches if any form matches; a rule that
allows must match every form.
"""

from __future__ import annotations

import os
import posixpath
import threading
from typing import NamedTuple

from runestone.actions.winpaths import is_windows_place, windows_forms


class PathFact(NamedTuple):
    """One path an action touches.

    `forms` is empty when the path cannot be placed (a relative path with no known cwd, or
    a value only known at run time: `dynamic`). `glob` marks a shell pattern that bash
    would expand, so rules compare it as a pattern, not a literal name.
    """

    raw: str
    forms: tuple[str, ...]
    access: str
    dynamic: bool = False
    glob: bool = False


def _windows(cwd: str | None, home: str) -> bool:
    """Windows rules apply when the cwd is a Windows place (or, with no cwd, the home)."""
    return is_windows_place(cwd) if cwd else is_windows_place(home)


def default_home() -> str:
    return os.environ.get("HOME") or "/"


def resolve_path(raw: str, cwd: str | None, home: str) -> str | None:
    """The absolute, normalised path `raw` names, or None when it cannot be placed.

    `~`, `~/x`, `$HOME`, `${HOME}` expand to `home`; `file://` URLs give their path.
    `..` is resolved lexically (bash resolves `cd ..` the same way by default).
    Against a Windows cwd (or, with no cwd, a Windows home) the path is read as Windows
    reads it and given its canonical form (runestone.actions.winpaths); where it has two
    readings, this is the first (the one `cd` follows).
    """
    if _windows(cwd, home):
        forms, _ = windows_forms(raw, cwd, home)
        return forms[0] if forms else None
    path = raw
    if path.startswith("file://"):
        path = path[len("file://"):]
        if not path.startswith("/"):
            # file://host/path: the host part is not a directory.
            path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    for prefix in ("$HOME", "${HOME}"):
        if path == prefix or path.startswith(prefix + "/"):
            path = home + path[len(prefix):]
            break
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    elif path.startswith("~"):
        # ~user: another user's home; place it where such homes usually live.
        user, _, rest = path[1:].partition("/")
        base = "/root" if user == "root" else posixpath.join(posixpath.dirname(home), user)
        path = base + ("/" + rest if rest else "")
    if not path.startswith("/"):
        if cwd is None or not cwd.startswith("/"):
            return None
        path = posixpath.join(cwd, path)
    normal = posixpath.normpath(path)
    # POSIX keeps a leading `//`; it names the same directory on Linux.
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal


def path_fact(
    raw: str,
    cwd: str | None,
    home: str,
    access: str,
    *,
    dynamic: bool = False,
    glob: bool = False,
) -> PathFact:
    """Place `raw` and collect its forms (lexical, and real when a symlink makes it differ)."""
    if dynamic:
        return PathFact(raw, (), access, dynamic=True, glob=glob)
    if _windows(cwd, home):
        # Every reading is a form: a deny fires on any, an allow must hold for all. No
        # symlinks are followed: the files are on another machine.
        forms, pattern = windows_forms(raw, cwd, home)
        return PathFact(raw, forms, access, glob=glob or pattern)
    absolute = resolve_path(raw, cwd, home)
    if absolute is None:
        return PathFact(raw, (), access, glob=glob)
    forms = [absolute]
    if not glob:
        real = real_path(absolute)
        if real != absolute:
            forms.append(real)
    return PathFact(raw, tuple(forms), access, glob=glob)


_PROC_FD = "/proc/self/fd/"
_HAVE_PROC = os.path.isdir(_PROC_FD)
_O_PATH = getattr(os, "O_PATH", 0)


class Resolutions:
    """The file system's answers to `real_path` in this thread, while one decision is made:
    each path asked and where it resolved.

    A decision reads the file system nowhere else, so these answers, asked again and found
    the same, are what lets a remembered decision stand (runestone.memo). Recording nests:
    what an inner recording saw, the outer one saw too.
    """

    _local = threading.local()

    def __init__(self) -> None:
        self.answers: list[tuple[str, str]] = []
        self._outer: Resolutions | None = None

    def __enter__(self) -> Resolutions:
        self._outer = getattr(self._local, "current", None)
        self._local.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.current = self._outer
        if self._outer is not None:
            self._outer.answers.extend(self.answers)

    @classmethod
    def note(cls, path: str, resolved: str) -> None:
        current = getattr(cls._local, "current", None)
        if current is not None:
            current.answers.append((path, resolved))


def still_resolve(answers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bool:
    """Does every path still resolve where it did? (Asked of the file system again.)"""
    return all(_real_path(path) == resolved for path, resolved in answers)


def real_path(path: str) -> str:
    """`path` with every symlink resolved (`_real_path`), noted for the decision being made
    in this thread, if one is recorded (Resolutions)."""
    resolved = _real_path(path)
    Resolutions.note(path, resolved)
    return resolved


def _real_path(path: str) -> str:
    """The path with every symlink resolved, as `os.path.realpath` gives it, only faster.

    On Linux the kernel resolves an existing path: open it with O_PATH and read its name back
    from /proc (three system calls instead of one `lstat` per component). A path that does
    not exist (a file about to be written, or a path named on another machine) is resolved
    the same way up to its deepest existing directory, with the missing rest appended: that
    rest holds no symlink, since its first component is checked to be absent, not a dangling
    link. Anything odd (a dangling link, `.` or `..` after a missing component, a loop, no
    permission, no /proc) takes the portable route.
    """
    if not (_HAVE_PROC and _O_PATH):
        return _portable_realpath(path)
    try:
        return _kernel_resolved(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return _portable_realpath(path)
    if not path.startswith("/") or "/./" in path + "/" or "/../" in path + "/" \
            or "//" in path:
        return _portable_realpath(path)
    head = path.rstrip("/")
    missing = ""
    while head:
        head, _, name = head.rpartition("/")
        missing = name + "/" + missing if missing else name
        if head and missing != name and not _resolves(head):
            # Past the parent (a new file's parent usually exists: opened straight away).
            # The path's own walk ended in ENOENT, so every component before the missing
            # one was searched: an ancestor that does not resolve is one whose open would
            # also end in ENOENT (the `continue` below), found without an exception.
            continue
        try:
            resolved = _kernel_resolved(head or "/")
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return _portable_realpath(path)
        first = missing.partition("/")[0]
        try:
            os.lstat((head or "") + "/" + first)
        except FileNotFoundError:
            return resolved.rstrip("/") + "/" + missing
        except (OSError, ValueError):
            pass
        return _portable_realpath(path)  # it exists: a dangling link, or unreadable
    return _portable_realpath(path)


def _resolves(path: str) -> bool:
    """Does `path` resolve (every component found, as `open` would walk it, with this
    process's effective ids)? `access` answers in one system call without raising: a
    failed `open` costs a Python exception, ~4x the call, on the walk up from a missing
    path. Where effective ids cannot be used, it answers True, so the open decides."""
    return not _ACCESS_EFFECTIVE or os.access(path, os.F_OK, effective_ids=True)


_ACCESS_EFFECTIVE = os.access in os.supports_effective_ids


def _kernel_resolved(path: str) -> str:
    fd = os.open(path, _O_PATH | os.O_CLOEXEC)
    try:
        resolved = os.readlink(_PROC_FD + str(fd))
    finally:
        os.close(fd)
    if not resolved.startswith("/"):
        raise OSError(f"not a path: {resolved!r}")  # e.g. an anonymous inode
    return resolved


def _portable_realpath(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def is_within(path: str, root: str) -> bool:
    """Is `path` `root` or below it, by whole segments (`/home/a2` is not within `/home/a`)?"""
    if root == "/":
        return path.startswith("/")
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")
