"""Runestone: a governor for AI agents' tool calls."""

__version__ = "0.1.0"
