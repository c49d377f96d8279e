"""Thin adapters that put the gatekeeper in front of agent frameworks' tool objects.

Each wraps a framework's own tool so that every call is decided by the runtime's policy
before it runs and its result is audited after, exactly as `runestone.guard` does for a
plain function. The frameworks are imported only by the adapter that needs them.
"""
