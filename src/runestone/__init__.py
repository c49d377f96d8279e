"""Runestone: a governor for AI agents' tool calls.

`from runestone import Gatekeeper, Action, guard` gives the Python SDK; the names are
loaded on first use, so `import runestone` stays cheap for the hook path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the hook path ~5 ms
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Action": "runestone.actions",
    "Gatekeeper": "runestone.gatekeeper",
    "Decision": "runestone.policy",
    "guard": "runestone.sdk",
    "ToolDenied": "runestone.sdk",
    "gatekeeper": "runestone.sdk",
    "call_tool": "runestone.sdk",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runestone' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
