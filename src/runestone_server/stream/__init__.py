"""Audit streaming: every ingested audit entry and every server event, forwarded to the
tools a team already runs, as RFC 5424 syslog over TCP or TLS and as OpenTelemetry logs over
OTLP/HTTP.

Delivery is at-least-once from a durable outbox: ingest (and every server event) adds one
outbox row per configured target in its own transaction, so nothing committed can be missed
by a crash; the worker claims rows with a lease, sends them in batches and deletes them only
once the receiver has taken the batch. Each record carries its chain position (runtime id
and seq, with the entry's hash), so a receiver can de-duplicate resends and spot gaps.

Modules: `targets` (configuration), `outbox` (enqueue), `records` (what is sent),
`syslog` and `otlp` (the two wire formats), `deliver` (the worker task).
"""
