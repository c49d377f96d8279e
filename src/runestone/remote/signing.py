"""What the server signs when it hands a policy to a runtime (the runtime checks the same)."""

from __future__ import annotations

from runestone.actions.canonical import canonical_json


def policy_message(runtime_id: str, number: int, policy_hash: str, text: str) -> bytes:
    return canonical_json({"kind": "runestone-policy", "runtime_id": runtime_id,
                           "number": number, "hash": policy_hash, "text": text})
