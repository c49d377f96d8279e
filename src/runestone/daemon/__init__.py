"""The local daemon: the gatekeeper kept warm, serving hooks, approvals and a local API."""
