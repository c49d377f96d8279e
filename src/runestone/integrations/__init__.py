"""Integrations: where agents meet the gatekeeper (agent-host hooks, exec, the SDK)."""
