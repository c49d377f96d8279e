"""Approval tokens: Ed25519-signed claims that bind a link to one request and one action.

A token is `base64url(canonical JSON claims) . base64url(signature)`. The claims are the
request id, the action hash, the policy hash, the expiry, a random nonce and the audience
(the runtime's id). Verification refuses with a distinct reason for each way a token can be
wrong, so a person reading the refusal knows what happened; every comparison of a secret or
bound value is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import NamedTuple, Protocol

from runestone.actions.canonical import canonical_json
from runestone.audit.checkpoint import verify_signature

TOKEN_VERSION = 1
DEFAULT_SKEW_SECONDS = 30


class TokenRefused(ValueError):
    """A token that must not be honoured; `code` is stable, the message explains it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Claims(NamedTuple):
    """What a token asserts. `expires` is seconds since the epoch (UTC)."""

    request_id: str
    action_hash: str
    policy_hash: str
    expires: int
    nonce: str
    audience: str


class _Signer(Protocol):
    def sign(self, message: bytes) -> str: ...


def new_claims(request_id: str, action_hash: str, policy_hash: str, expires: int,
               audience: str) -> Claims:
    import secrets  # here, as `hmac` in verify: both load OpenSSL (~3 ms), which a hook
    # answering an ask without a link (or allowing) never needs

    return Claims(request_id, action_hash, policy_hash, int(expires), secrets.token_hex(16),
                  audience)


def _message(claims: Claims) -> bytes:
    return canonical_json({"v": TOKEN_VERSION, **claims._asdict()})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(claims: Claims, signer: _Signer) -> str:
    """Sign the claims with the runtime's key."""
    message = _message(claims)
    return _b64(message) + "." + _b64(bytes.fromhex(signer.sign(message)))


def read_claims(token: str) -> tuple[Claims, bytes, str]:
    """Decode without verifying: (claims, signed message, signature hex). Raises TokenRefused."""
    try:
        body, _, signature = token.strip().partition(".")
        message = _unb64(body)
        data = json.loads(message)
        signature_hex = _unb64(signature).hex()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise TokenRefused("malformed", f"the approval token is malformed ({exc})") from exc
    if not isinstance(data, dict) or data.get("v") != TOKEN_VERSION:
        raise TokenRefused("malformed", "the approval token is not a version-1 Runestone token")
    expires = data.get("expires")
    if type(expires) is not int:  # not a float (1e999 is infinity), a bool or a string
        raise TokenRefused("malformed", "the approval token's expiry is not a whole number")
    try:
        claims = Claims(str(data["request_id"]), str(data["action_hash"]),
                        str(data["policy_hash"]), expires, str(data["nonce"]),
                        str(data["audience"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenRefused("malformed", f"the approval token lacks a claim ({exc})") from exc
    if set(data) != {"v", *Claims._fields}:
        raise TokenRefused("malformed", "the approval token carries unknown claims")
    return claims, message, signature_hex


def verify(
    token: str,
    *,
    public_key_hex: str,
    runtime_id: str,
    now: float,
    issued: Claims | None = None,
    action_hash: str | None = None,
    policy_hash: str | None = None,
    skew_seconds: int = DEFAULT_SKEW_SECONDS,
) -> Claims:
    """Check a token; return its claims or raise TokenRefused with the precise reason.

    `issued` is what the store recorded when the token was made: with it, a token whose
    signature fails because a field was edited says which field. `action_hash` is the
    action about to run, and `policy_hash` the policy deciding now.
    """
    import hmac

    claims, message, signature_hex = read_claims(token)
    if not verify_signature(public_key_hex, message, signature_hex):
        if issued is not None:
            for field, value in issued._asdict().items():
                if not hmac.compare_digest(str(getattr(claims, field)), str(value)):
                    raise TokenRefused("altered", f"the approval token's '{field}' was altered "
                                       "after it was signed")
        raise TokenRefused("bad-signature", "the approval token's signature does not verify "
                           "with this runtime's key")
    if not hmac.compare_digest(claims.audience, runtime_id):
        raise TokenRefused("wrong-audience", f"the approval token is for runtime "
                           f"{claims.audience}, not this one ({runtime_id})")
    if now > claims.expires + skew_seconds:
        raise TokenRefused("expired", f"the approval token expired {int(now - claims.expires)} "
                           "seconds ago")
    if action_hash is not None and not hmac.compare_digest(claims.action_hash, action_hash):
        raise TokenRefused("action-mismatch", "the approval was for a different action than "
                           "the one now being run")
    if policy_hash is not None and not hmac.compare_digest(claims.policy_hash, policy_hash):
        raise TokenRefused("policy-mismatch", "the policy changed since the approval was "
                           "requested; ask again")
    return claims
