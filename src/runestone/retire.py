"""Retiring the runtime's identity, so the machine can come back under a new one.

A control plane never enrols a revoked runtime id again: the revoked key may be the
compromised thing. The machine returns under a new identity, and everything bound to the old
one goes with the old one, kept for the record but out of the way:

- the key pair, the identity file and the redaction key (a leaked key must not sign again);
- the enrolment: the control plane's address, credential and the policy it had assigned
  (the new identity is enrolled afresh, with a new token);
- the audit log and its shipping position (the old chain is the old id's and stays
  verifiable as it was; the new identity starts a new chain);
- local approvals, grants and open calls (they were signed with, or point into, the old).

Everything moves into `retired/<old runtime id>/` beside where it was (one directory in the
configuration directory, one in the state directory, which may be another file system). The
local policy, its settings and the agent hosts' installed hooks stay.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import NamedTuple

from runestone.daemon.paths import daemon_socket
from runestone.home import Layout
from runestone.identity import IdentityError, load_identity

RETIRED = "retired"
# Caches of what policy text was verified and parsed: no identity in them, and rebuilding
# them costs every hook a slow start.
_STATE_KEPT = frozenset({RETIRED, "policy-verified", "policy-parsed", "daemon.sock"})


class Retired(NamedTuple):
    """The retired identity, and where its files went."""

    runtime_id: str
    config_dir: Path
    state_dir: Path


def daemon_running(layout: Layout) -> bool:
    """Is a daemon answering on this home's socket? (A stale socket file is not one.)"""
    path = daemon_socket(layout)
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _identity_files(layout: Layout) -> list[Path]:
    """The configuration directory's files bound to the identity or its enrolment."""
    from runestone.remote.client import credential_file, remote_file

    return [layout.identity_file, layout.private_key_file, layout.public_key_file,
            layout.redaction_key_file, credential_file(layout), remote_file(layout),
            layout.remote_policy_file]


def retire_identity(layout: Layout) -> Retired:
    """Move the identity and everything bound to it aside. Raises IdentityError when there
    is no identity to retire, a daemon still holds it, or a retired copy would be replaced.

    The state (audit log first among it) moves before the identity files, and nothing
    already retired is overwritten: if a move fails half-way, the identity is still there
    and running this again moves the rest. (Moving the identity first would leave a home
    whose next `init` starts a new identity on the old identity's audit chain.)
    """
    identity = load_identity(layout)
    if daemon_running(layout):
        raise IdentityError("the daemon is running with this identity: stop it first "
                            f"(its socket: {daemon_socket(layout)})")
    config_target = layout.config_dir / RETIRED / identity.runtime_id
    state_target = layout.state_dir / RETIRED / identity.runtime_id
    moves: list[tuple[Path, Path]] = []
    if layout.state_dir.is_dir():
        moves += [(path, state_target / path.name) for path in sorted(layout.state_dir.iterdir())
                  if path.name not in _STATE_KEPT]
    moves += [(path, config_target / path.relative_to(layout.config_dir))
              for path in _identity_files(layout) if path.exists()]
    clashes = [str(target) for _, target in moves if os.path.lexists(target)]
    if clashes:
        raise IdentityError(f"already retired, not replaced: {clashes[0]}; move it away first")
    for directory in {config_target, state_target} & {t.parents[0] for _, t in moves}:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # private keys go here
    for path, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(str(path), str(target))  # the state may be on another file system
    return Retired(identity.runtime_id, config_target, state_target)


def orphaned_log_owner(layout: Layout) -> str | None:
    """The runtime id of an audit log left in the state directory by an identity that is
    gone (deleted by hand, say), or None when there is no such log. A new identity must not
    continue it: its chain and checkpoints are the old id's."""
    from runestone.audit.log import list_segments

    segments = list_segments(layout.audit_dir) if layout.audit_dir.is_dir() else []
    if not segments:
        return None
    try:
        with segments[0][1].open("rb") as handle:
            first = json.loads(handle.readline() or b"{}")
    except (OSError, ValueError):
        first = {}
    owner = first.get("runtime") if isinstance(first, dict) else None
    return str(owner) if owner else "an unknown runtime"
