"""The cached team policy is used only as the control plane signed it.

A pulled policy is verified once (signature, compiles here, announced hash) and cached in
`policy.remote.toml`; the server's signed record of it (version, hash, signature) is kept in
the remote state beside it. The cached file is an ordinary file an agent or a user could
edit, and it governs every decision, so every load compares the loaded policy's hash with
the signed record's and refuses a policy that does not match. Comparing hashes costs
nothing (the loader computes the hash anyway); the Ed25519 signature is checked when the
policy is pulled and by `runestone status`, not on the hook's cold path: replacing both the
file and the recorded hash still leaves a signature that `status` shows does not verify.

This module is imported on the hook path: only `json` and the standard library here.
"""

from __future__ import annotations

import json
from typing import Any

from runestone.home import Layout


def state_file(layout: Layout) -> Any:
    return layout.state_dir / "remote-state.json"


def signed_record(layout: Layout) -> dict[str, Any]:
    """The remote state (the signed record's fields among it); {} when absent or bad."""
    try:
        state = json.loads(state_file(layout).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def governs(layout: Layout) -> bool:
    """True when the cached team policy is the governing one."""
    return layout.governing_policy_file() == layout.remote_policy_file


def mismatch(layout: Layout, policy_hash: str) -> str:
    """'' when `policy_hash` is the hash the server signed for the cached policy; else why
    the cached policy is refused."""
    record = signed_record(layout)
    signed = record.get("hash")
    where = layout.remote_policy_file
    if not isinstance(signed, str) or not signed:
        return (f"the cached team policy {where} has no signed record from the control "
                "plane beside it; it is refused. Run `runestone policy pull` to fetch it "
                "again.")
    if signed != policy_hash:
        return (f"the cached team policy {where} is not the version the control plane "
                f"signed (version {record.get('number')}, sha256:{signed[:16]}; the file "
                f"reads as sha256:{policy_hash[:16]}): it was changed on disk and is refused. "
                "Run `runestone policy pull` to restore it.")
    return ""
