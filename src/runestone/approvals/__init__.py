"""Approvals: when policy says ask, a human decides, through signed single-use links."""
