"""runestone-server: the control plane. It stores and versions policies, enrolls runtimes,
and answers to teams with roles; it decides nothing on the hot path and executes nothing.

Installed with the `[server]` extra; the runtime never imports it.
"""
