"""OpenTelemetry logs over OTLP/HTTP (protobuf), with opentelemetry-proto's messages.

One LogRecord per record: its time, severity (WARN for a deny, INFO otherwise), the entry
as JSON in the body, and the entry's top-level fields as attributes (nested values as JSON
strings), with `runestone.runtime`, `runestone.seq`, `runestone.hash`, `runestone.source`,
`runestone.org` and `runestone.team` for the chain position. The resource is
`service.name = runestone-server`. A 2xx answer without rejected records is delivery; any
other answer fails the batch, which is sent again.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from runestone_server.stream.records import Record
from runestone_server.stream.targets import OtlpTarget

SEVERITY = {"deny": (13, "WARN"), "ask": (10, "INFO2")}


class OtlpError(OSError):
    pass


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    return AnyValue(string_value=json.dumps(value, sort_keys=True, default=str))


def _attributes(items: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_value(value)) for key, value in items.items()]


def log_record(record: Record) -> LogRecord:
    number, text = SEVERITY.get(record.decision, (9, "INFO"))
    nanos = int(record.time.timestamp() * 1_000_000) * 1000
    position = {"runestone.runtime": record.runtime, "runestone.seq": record.seq,
                "runestone.source": record.source, "runestone.org": record.org,
                "runestone.team": record.team, "runestone.hash": record.hash}
    fields = {k: v for k, v in record.fields.items() if k not in position}
    return LogRecord(time_unix_nano=nanos, observed_time_unix_nano=nanos,
                     severity_number=number, severity_text=text,  # type: ignore[arg-type]
                     body=AnyValue(string_value=record.body()),
                     attributes=_attributes({**position, **fields}))


def request(records: list[Record]) -> bytes:
    resource = Resource(attributes=_attributes({"service.name": "runestone-server",
                                                "host.name": socket.gethostname()}))
    scope = ScopeLogs(scope=InstrumentationScope(name="runestone.audit"),
                      log_records=[log_record(r) for r in records])
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=resource, scope_logs=[scope])]).SerializeToString()


def send(target: OtlpTarget, records: list[Record], timeout: float) -> None:
    try:
        answer = httpx.post(target.url, content=request(records), timeout=timeout,
                            follow_redirects=False,
                            headers={**target.headers,
                                     "Content-Type": "application/x-protobuf"})
    except httpx.HTTPError as exc:
        raise OtlpError(f"{target.url}: {type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        raise OtlpError(f"{target.url} answered {answer.status_code}: {answer.text[:200]}")
    if answer.content:
        reply = ExportLogsServiceResponse()
        try:
            reply.ParseFromString(answer.content)
        except Exception as exc:  # a 2xx that is not the protocol's answer is not delivery
            raise OtlpError(f"{target.url}: the answer is not an OTLP response") from exc
        if reply.partial_success.rejected_log_records:
            raise OtlpError(f"{target.url} rejected {reply.partial_success.rejected_log_records}"
                            f" records: {reply.partial_success.error_message[:200]}")
