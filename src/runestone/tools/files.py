"""`files.write`: write inside allowed roots, never through a symlink, atomically.

The parent directory is opened once and checked through its file descriptor, and the file
is created and renamed relative to that descriptor, so swapping a directory for a symlink
between the check and the write changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

from runestone.actions.paths import is_within
from runestone.tools.settings import FileSettings, expand
from runestone.tools.shell import ToolRefused


def prepare(params: dict[str, Any], default_cwd: str) -> tuple[str, str]:
    path = params.get("path") or params.get("file_path")
    content = params.get("content")
    if not isinstance(path, str) or not path:
        raise ToolRefused("files.write needs a 'path'")
    if not isinstance(content, str):
        raise ToolRefused("files.write needs 'content' as a string")
    absolute = os.path.normpath(os.path.join(default_cwd, os.path.expanduser(path)))
    return absolute, content


def write(path: str, content: str, settings: FileSettings) -> dict[str, Any]:
    data = content.encode("utf-8")
    if len(data) > settings.max_bytes:
        raise ToolRefused(f"{len(data)} bytes is over the {settings.max_bytes}-byte cap")
    name = os.path.basename(path)
    lowered = name.lower()
    if not name or name in (".", ".."):
        raise ToolRefused(f"{path} does not name a file")
    if any(lowered.endswith(ext.lower()) or lowered == ext.lower().lstrip(".")
           for ext in settings.deny_extensions):
        raise ToolRefused(f"writing {name} is refused: its extension is on the deny list")
    roots = [expand(root) for root in settings.roots]
    try:
        parent_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ToolRefused(f"the directory of {path} cannot be opened ({exc.strerror})") from exc
    try:
        real_parent = os.readlink(f"/proc/self/fd/{parent_fd}") if os.path.isdir(
            "/proc/self/fd") else os.path.realpath(os.path.dirname(path))
        if not any(is_within(real_parent, root) for root in roots):
            raise ToolRefused(f"writes are allowed only under {', '.join(roots)}; "
                              f"{path} resolves to {real_parent}")
        try:
            existing = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            existing = None
        if existing is not None and not _regular(existing.st_mode):
            raise ToolRefused(f"{path} is a symlink or not a regular file; not written through")
        temporary = f".{name}.runestone-{secrets.token_hex(6)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=parent_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent_fd)
            raise
        return {"path": os.path.join(real_parent, name), "bytes": len(data),
                "_audit": {"path": os.path.join(real_parent, name), "bytes": len(data)}}
    finally:
        os.close(parent_fd)


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
