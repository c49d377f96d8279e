"""Where the runtime keeps its files.

`RUNESTONE_HOME` names one directory for everything (configuration, keys, policy, state and
logs). Without it, configuration goes to `$XDG_CONFIG_HOME/runestone` (default
`~/.config/runestone`) and state and logs to `$XDG_STATE_HOME/runestone` (default
`~/.local/state/runestone`), following the XDG Base Directory specification.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class Layout(NamedTuple):
    """The runtime's directories and the well-known files in them."""

    config_dir: Path
    state_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def policy_file(self) -> Path:
        return self.config_dir / "policy.toml"

    @property
    def remote_policy_file(self) -> Path:
        """The last policy pulled from the control plane and verified (when enrolled)."""
        return self.config_dir / "policy.remote.toml"

    def governing_policy_file(self) -> Path:
        """The file whose policy governs: the control plane's once one was pulled (an enrolled
        runtime obeys its team's policy), else the local one."""
        remote = self.remote_policy_file
        return remote if remote.exists() else self.policy_file

    @property
    def identity_file(self) -> Path:
        return self.config_dir / "identity.json"

    @property
    def keys_dir(self) -> Path:
        return self.config_dir / "keys"

    @property
    def private_key_file(self) -> Path:
        return self.keys_dir / "runtime.ed25519"

    @property
    def public_key_file(self) -> Path:
        return self.keys_dir / "runtime.ed25519.pub"

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    @property
    def redaction_key_file(self) -> Path:
        return self.keys_dir / "redaction.key"

    @property
    def audit_dir(self) -> Path:
        return self.state_dir / "audit"

    @property
    def verified_policies_file(self) -> Path:
        return self.state_dir / "policy-verified"

    @property
    def parsed_policies_dir(self) -> Path:
        return self.state_dir / "policy-parsed"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def layout() -> Layout:
    """The layout for this process's environment."""
    home = os.environ.get("RUNESTONE_HOME", "")
    if home:
        root = Path(home).expanduser()
        return Layout(config_dir=root, state_dir=root / "state")
    return Layout(
        config_dir=_xdg("XDG_CONFIG_HOME", ".config") / "runestone",
        state_dir=_xdg("XDG_STATE_HOME", ".local/state") / "runestone",
    )
