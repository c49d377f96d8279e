"""What the server signs when it hands a policy to a runtime (the runtime checks the same)."""

from __future__ import annotations

from runestone.actions.canonical import canonical_json


def policy_message(runtime_id: str, number: int, policy_hash: str, text: str) -> bytes:
    return canonical_json({"kind": "runestone-policy", "runtime_id": runtime_id,
                           "number": number, "hash": policy_hash, "text": text})


def decision_message(runtime_id: str, request_id: str, action_hash: str, decision: str,
                     credential_hash: str, scope: str = "once", minutes: int = 0) -> bytes:
    """What the server signs when it tells a runtime how an approval request ended.

    Bound to the runtime (its id and a SHA-256 of its own credential, which only it and
    the server know), the request and the exact action, so a decision can be neither
    replayed to another runtime nor spent on another action. `decision` is `approved`,
    `denied` or `expired`; only `approved` allows anything. `scope` and `minutes` say what
    an approval covers ("once", 0; or "rule-session" for that many minutes), so a scope
    widened in transit fails the check like any other change.
    """
    return canonical_json({"kind": "runestone-approval-decision", "runtime_id": runtime_id,
                           "request_id": request_id, "action_hash": action_hash,
                           "decision": decision, "credential_hash": credential_hash,
                           "scope": scope, "minutes": minutes})


def grant_message(runtime_id: str, grant: dict) -> bytes:
    """What the server signs when it hands a pre-approval (a grant) to one runtime: the
    whole grant as sent (id, what it matches, the sessions and agents it is for, its use
    count, expiry and the uses allotted to this runtime for offline use), bound to the
    runtime, so a grant can be neither altered nor handed to another runtime."""
    return canonical_json({"kind": "runestone-grant", "runtime_id": runtime_id,
                           "grant": grant})


def grant_use_message(runtime_id: str, grant_id: str, action_key: str, use: int,
                      credential_hash: str) -> bytes:
    """What the server signs when it counts one use of a grant for a runtime: the receipt
    the runtime checks before it allows anything (bound to its credential, as decisions)."""
    return canonical_json({"kind": "runestone-grant-use", "runtime_id": runtime_id,
                           "grant_id": grant_id, "action_key": action_key, "use": use,
                           "credential_hash": credential_hash})
