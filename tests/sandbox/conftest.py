"""Fixtures of the sandbox tests: see sandboxworld.py."""

from sandboxworld import sandbox_works, world

__all__ = ["sandbox_works", "world"]
