"""Audit from every runtime: ingest with chain verification, search, retention, export."""
