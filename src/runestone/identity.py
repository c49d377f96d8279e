"""The runtime's identity: a stable id and an Ed25519 key pair, created by `runestone init`.

The private key signs approval tokens and audit checkpoints; it is written with mode 0600
and never leaves the machine. `cryptography` is imported here only, so deciding a tool call
never pays for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from runestone.home import Layout


class IdentityError(RuntimeError):
    """The identity is missing or unreadable."""


class Identity(NamedTuple):
    runtime_id: str
    name: str
    created: str
    public_key: str

    def to_json(self) -> dict[str, str]:
        return {"runtime_id": self.runtime_id, "name": self.name, "created": self.created,
                "public_key": self.public_key}


def _write_private(path: Path, data: bytes) -> None:
    """Create a file readable only by its owner, refusing to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def create_identity(layout: Layout) -> Identity:
    """Generate the runtime id and its Ed25519 key pair. Refuses to replace an existing one."""
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if layout.identity_file.exists() or layout.private_key_file.exists():
        raise IdentityError(f"an identity already exists in {layout.config_dir}")
    layout.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    _write_private(layout.private_key_file, private_pem)
    if not layout.redaction_key_file.exists():
        _write_private(layout.redaction_key_file, secrets.token_bytes(32))
    layout.public_key_file.write_text(public_raw.hex() + "\n", encoding="utf-8")
    import socket
    from datetime import UTC, datetime

    identity = Identity(
        runtime_id="rt_" + secrets.token_hex(16),  # uuid imports `platform`: 4 ms a hook
        name=f"{os.environ.get('USER', 'user')}@{socket.gethostname()}",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        public_key=public_raw.hex(),
    )
    layout.identity_file.write_text(json.dumps(identity.to_json(), indent=2) + "\n",
                                    encoding="utf-8")
    return identity


def load_identity(layout: Layout) -> Identity:
    try:
        data = json.loads(layout.identity_file.read_text(encoding="utf-8"))
        return Identity(data["runtime_id"], data["name"], data["created"], data["public_key"])
    except FileNotFoundError as exc:
        raise IdentityError(
            f"no runtime identity in {layout.config_dir}; run `runestone init`"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise IdentityError(f"unreadable identity {layout.identity_file}: {exc}") from exc
