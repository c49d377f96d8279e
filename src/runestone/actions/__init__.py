"""Actions: the canonical form of a tool call, its hash, and the facts derived from it."""

from runestone.actions.action import Action, ActionError, action_from_hook_json, parse_action_json
from runestone.actions.canonical import canonical_hash, canonical_json

__all__ = [
    "Action",
    "ActionError",
    "action_from_hook_json",
    "canonical_hash",
    "canonical_json",
    "parse_action_json",
]
