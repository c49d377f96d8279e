"""Approvals routed through the server: routes, escalation, delegation, quorum."""
