"""SHA-256 for the decision path, without loading OpenSSL.

`hashlib` (and `hmac` and `secrets`, which import it) loads OpenSSL's libcrypto when it is
imported: about 2 ms, more than a cold hook spends deciding. CPython's own SHA-256, the
module hashlib itself falls back to when OpenSSL is missing (`_sha256` in 3.11, `_sha2`
from 3.12), gives the same digests and loads in a tenth of the time. The rest of the
runtime, where start-up does not matter, uses hashlib as usual.
"""

from __future__ import annotations

try:
    from _sha2 import sha256  # Python 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:  # pragma: no cover - a build without CPython's own hashes
        from hashlib import sha256

__all__ = ["sha256"]
