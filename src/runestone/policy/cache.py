"""What one hook process may reuse from the ones before it: parsed documents, passed tests.

Both are pure functions of their input, so a process that finds them skips work without
changing any answer:

- a policy whose hash passed its own tests with this version of Runestone need not be
  re-tested by every hook process;
- a TOML document (the policy and each pack it includes) that compiled is stored as JSON
  under the SHA-256 of its text and the Python version. Importing tomli (and datetime with
  it) and parsing the packs was a third of a cold hook's policy load; `json`, which the
  hook imports anyway, reads the same tables several times faster. Since only documents
  that compiled are stored, their rules' regular expressions are known to be valid with
  this Python's `re`, and may be compiled when first used.

The cache lives in the runtime's state directory, which only the runtime's user can write;
whoever can write it can write the policy file beside it, so it trusts no one new. A
missing, unreadable or malformed entry is a miss: the document is parsed again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runestone.digest import sha256

if TYPE_CHECKING:
    from runestone.home import Layout

KEEP_PARSED = 64  # documents; a policy edited many times leaves no more than this behind
KEEP_VERIFIED = 64  # policy hashes whose tests passed


class PolicyCache:
    def __init__(self, verified_file: Path, parsed_dir: Path) -> None:
        self.verified_file = verified_file
        self.parsed_dir = parsed_dir

    @classmethod
    def of(cls, layout: Layout) -> PolicyCache:
        """The runtime's own cache, in its state directory."""
        return cls(layout.verified_policies_file, layout.parsed_policies_dir)

    # --- tests that passed -------------------------------------------------------------

    def _key(self, policy_hash: str) -> str:
        from runestone import __version__

        return f"{__version__} {policy_hash}"

    def is_verified(self, policy_hash: str) -> bool:
        try:
            lines = self.verified_file.read_text(encoding="utf-8").splitlines()
        except OSError:
            return False
        return self._key(policy_hash) in lines

    def mark_verified(self, policy_hash: str) -> None:
        """Remember the hash, keeping the newest KEEP_VERIFIED (replaced whole, so a reader
        sees the old list or the new one; two writers at once may lose a line, which costs
        one more test run)."""
        key = self._key(policy_hash)
        try:
            lines = self.verified_file.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        kept = [line for line in lines if line and line != key][-(KEEP_VERIFIED - 1):]
        partial = self.verified_file.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.verified_file.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text("".join(line + "\n" for line in [*kept, key]), encoding="utf-8")
            os.replace(partial, self.verified_file)
        except OSError:
            partial.unlink(missing_ok=True)  # only a cache: the tests run again next time

    # --- parsed documents --------------------------------------------------------------

    def _parsed_file(self, text: str) -> Path:
        # What compiled is known to compile with this Python's `re` and to pass this
        # version's checks (a later one may check more).
        from runestone import __version__

        python = f"python{sys.version_info.major}.{sys.version_info.minor}\0{__version__}\0"
        key = sha256((python + text).encode("utf-8")).hexdigest()
        return self.parsed_dir / (key + ".json")

    def parsed(self, text: str) -> dict[str, Any] | None:
        """The tables of a document parsed before, or None."""
        try:
            data = json.loads(self._parsed_file(text).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def store_parsed(self, text: str, data: dict[str, Any]) -> None:
        """Keep a parsed document that compiled, unless it holds values JSON cannot carry
        (TOML dates)."""
        try:
            encoded = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            return
        target = self._parsed_file(text)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.parsed_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial.write_bytes(encoded)
            os.replace(partial, target)  # a reader sees the whole entry or none
            self._prune()
        except OSError:
            partial.unlink(missing_ok=True)

    def _prune(self) -> None:
        entries = sorted(self.parsed_dir.glob("*.json"), key=_mtime, reverse=True)
        for stale in entries[KEEP_PARSED:]:
            stale.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
