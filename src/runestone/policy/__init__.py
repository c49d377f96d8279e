"""Policy: load, validate, compile and evaluate rules; built-in packs and presets."""

from runestone.policy.cache import PolicyCache
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.errors import PolicyError, PolicyTestFailure
from runestone.policy.loader import (
    PRESETS,
    builtin_packs,
    compile_policy_text,
    load_policy,
    load_preset,
)
from runestone.policy.model import Decision, EvalContext

__all__ = [
    "PRESETS",
    "CompiledPolicy",
    "Decision",
    "EvalContext",
    "PolicyCache",
    "PolicyError",
    "PolicyTestFailure",
    "builtin_packs",
    "compile_policy_text",
    "evaluate",
    "load_policy",
    "load_preset",
]
