"""Saving a learned rule into a policy file: appended as text, checked whole, written at once.

The rule is appended below what is there (comments and layout kept), the whole file is
compiled with its tests before anything is written, and the new text replaces the old in
one rename under a lock, so two approvals saving at once both land and a failed check
leaves the file as it was. An enrolled runtime obeys its team's policy from the control
plane, so a local rule there would govern nothing: saving refuses and says where to go.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from runestone.home import Layout
from runestone.policy.engine import CompiledPolicy
from runestone.policy.errors import PolicyError
from runestone.policy.loader import compile_policy_text


class SaveError(Exception):
    """The rule was not saved; the message says why and what to do."""


def save_target(layout: Layout, policy_file: str | Path | None = None) -> Path:
    """The file a learned rule goes to: the one named, else the runtime's own policy."""
    if policy_file:
        return Path(policy_file)
    if layout.remote_policy_file.exists():
        raise SaveError("this runtime obeys its team's policy from the control plane "
                        f"({layout.remote_policy_file}); a local rule would govern nothing. "
                        "Propose it there instead (the server's proposals page).")
    if not layout.policy_file.exists():
        raise SaveError(f"there is no policy file at {layout.policy_file}; run "
                        "`runestone init` first")
    return layout.policy_file


def append_rules(path: Path, rules_toml: str) -> CompiledPolicy:
    """Append rule tables to the policy at `path`; returns the new policy. Raises SaveError
    (nothing written) when the result does not load or its tests fail."""
    with _locked(path):
        try:
            old = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SaveError(f"cannot read {path}: {exc.strerror}") from exc
        new = old.rstrip("\n") + "\n\n" + rules_toml.rstrip("\n") + "\n"
        try:
            policy = compile_policy_text(new, source=str(path), base_dir=path.parent,
                                         run_tests=True)
        except PolicyError as exc:
            raise SaveError(f"the policy with this rule does not load, so it was not "
                            f"saved:\n{exc}") from exc
        _replace(path, new)
    return policy


def _replace(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=".policy-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the file (POSIX); elsewhere the rename alone."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the rename still replaces the file whole
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
