"""The control plane's HTTP API (`/api/v1`)."""
