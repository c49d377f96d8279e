"""Signed checkpoints: the head of the chain (sequence number and hash) signed with the
runtime's Ed25519 key, so that whoever holds a checkpoint can later hold the runtime to its
history. The signed message is the canonical JSON of `{runtime, seq, hash}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runestone.actions.canonical import canonical_json


class CheckpointError(ValueError):
    """A checkpoint's signature does not verify."""


def checkpoint_message(runtime_id: str, seq: int, head_hash: str) -> bytes:
    return canonical_json({"runtime": runtime_id, "seq": seq, "hash": head_hash})


class Signer:
    """Signs with the runtime's private key; `cryptography` is imported only when used."""

    def __init__(self, private_key_file: Path) -> None:
        self.private_key_file = private_key_file
        self._key: Any = None

    def sign(self, message: bytes) -> str:
        if self._key is None:
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            self._key = load_pem_private_key(self.private_key_file.read_bytes(), password=None)
        return self._key.sign(message).hex()


def verify_signature(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
