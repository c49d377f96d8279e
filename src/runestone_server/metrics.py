"""`/metrics` in the Prometheus exposition format.

Two kinds of figures:
- events this process saw, as counters (requests by route template, decisions ingested by
  outcome, team and rule, notification deliveries by channel kind and outcome, worker task
  runs). Each replica counts its own; Prometheus sums over instances.
- the state of the database, read at scrape time by `StateCollector` (open asks and the
  oldest one's age per team, broken chains per team, ingest lag and time since the last
  ingest per runtime). Every replica reports the same values, so a dashboard takes `max`.

Counters live in this module's own registry, not prometheus_client's global one, so that
nothing else imported into the process (or a second app in tests) mixes into the output.

Access: a bearer token (`RUNESTONE_SERVER_METRICS_TOKEN`) when set; without one, only a
loopback client that did not come through a proxy (no X-Forwarded-For, and the proxy is not
trusted with RUNESTONE_SERVER_TRUST_PROXY=1), i.e. a Prometheus on the same host, or the
port not published beyond it. Team and rule names are not secrets to the people who run the
server, but they are to the internet.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select

from runestone_server.db import Database

COUNTERS = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("runestone_http_requests", "HTTP requests answered, by route template",
                   ["method", "route", "status"], registry=COUNTERS)
LATENCY = Histogram("runestone_http_request_duration_seconds",
                    "time to answer an HTTP request, by route template", ["method", "route"],
                    registry=COUNTERS,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DECISIONS = Counter("runestone_decisions_ingested",
                    "decision entries stored by audit ingest, by outcome, team and rule",
                    ["org", "team", "outcome", "rule"], registry=COUNTERS)
NOTIFICATIONS = Counter("runestone_notifications",
                        "notification delivery attempts, by channel kind and outcome "
                        "(delivered, retry, failed: given up)", ["channel", "outcome"],
                        registry=COUNTERS)
STREAMED = Counter("runestone_stream_records", "audit stream records by target and outcome "
                   "(delivered, or failed: to be sent again)", ["target", "outcome"],
                   registry=COUNTERS)
TASK_RUNS = Counter("runestone_worker_task_runs", "worker task runs, by task and outcome",
                    ["task", "outcome"], registry=COUNTERS)
TASK_TIME = Histogram("runestone_worker_task_duration_seconds", "time of one worker task run",
                      ["task"], registry=COUNTERS,
                      buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60))


def count_decisions(org: str, team: str, rows: list[dict[str, Any]]) -> None:
    """Count the decision entries among rows just stored by ingest."""
    for row in rows:
        if row.get("kind") == "decision":
            DECISIONS.labels(org, team, row.get("decision") or "unknown",
                             row.get("rule") or "").inc()


def team_label(db: Any, team_id: int) -> tuple[str, str]:
    """(organisation name, team name) for the labels."""
    from runestone_server.models import Organisation, Team

    row = db.execute(select(Organisation.name, Team.name).join(
        Team, Team.org_id == Organisation.id).where(Team.id == team_id)).first()
    return (row[0], row[1]) if row else ("?", str(team_id))


def _seconds(later: datetime, earlier: datetime | None) -> float:
    if earlier is None:
        return 0.0
    earlier = earlier if earlier.tzinfo else earlier.replace(tzinfo=UTC)
    later = later if later.tzinfo else later.replace(tzinfo=UTC)
    return max(0.0, (later - earlier).total_seconds())


class StateCollector(Collector):
    """Reads the database's state at scrape time (a few grouped queries)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        from runestone_server.approvals.models import ApprovalRequest
        from runestone_server.audit.models import AuditChain, AuditEntry
        from runestone_server.models import Organisation, Team

        now = datetime.now(UTC)
        asks = GaugeMetricFamily("runestone_open_asks", "approval requests waiting for a "
                                 "decision, per team", labels=["org", "team"])
        oldest = GaugeMetricFamily("runestone_open_ask_oldest_age_seconds",
                                   "age of the oldest waiting approval request, per team",
                                   labels=["org", "team"])
        broken = GaugeMetricFamily("runestone_audit_chain_problems",
                                   "runtimes whose audit chain is broken, per team",
                                   labels=["org", "team"])
        lag = GaugeMetricFamily("runestone_audit_ingest_lag_seconds",
                                "how late the newest stored entry arrived (received minus its "
                                "own time), per runtime", labels=["org", "team", "runtime"])
        age = GaugeMetricFamily("runestone_audit_last_ingest_age_seconds",
                                "seconds since the newest stored entry arrived, per runtime",
                                labels=["org", "team", "runtime"])
        backlog = GaugeMetricFamily("runestone_stream_backlog",
                                    "audit stream records waiting for a target",
                                    labels=["target"])
        teams = (select(Team.id, Organisation.name.label("org"), Team.name.label("team"))
                 .join(Organisation, Organisation.id == Team.org_id).subquery())
        with self.db.sessions() as session:
            for org, team, count, first in session.execute(
                    select(teams.c.org, teams.c.team, func.count(ApprovalRequest.id),
                           func.min(ApprovalRequest.created))
                    .join(teams, teams.c.id == ApprovalRequest.team_id)
                    .where(ApprovalRequest.state == "pending")
                    .group_by(teams.c.org, teams.c.team)):
                asks.add_metric([org, team], count)
                oldest.add_metric([org, team], _seconds(now, first))
            for org, team, count in session.execute(
                    select(teams.c.org, teams.c.team, func.count(AuditChain.id))
                    .join(teams, teams.c.id == AuditChain.team_id)
                    .where(AuditChain.status == "broken")
                    .group_by(teams.c.org, teams.c.team)):
                broken.add_metric([org, team], count)
            for org, team, runtime, moment, received in session.execute(
                    select(teams.c.org, teams.c.team, AuditChain.runtime_id, AuditEntry.time,
                           AuditEntry.received)
                    .join(teams, teams.c.id == AuditChain.team_id)
                    .join(AuditEntry, and_(AuditEntry.runtime_id == AuditChain.runtime_id,
                                           AuditEntry.seq == AuditChain.last_seq))):
                lag.add_metric([org, team, runtime], _seconds(received, moment))
                age.add_metric([org, team, runtime], _seconds(now, received))
            from runestone_server.stream.models import StreamOutbox

            for target, count in session.execute(
                    select(StreamOutbox.target, func.count(StreamOutbox.id))
                    .group_by(StreamOutbox.target)):
                backlog.add_metric([target], count)
        yield from (asks, oldest, broken, lag, age, backlog)


def registry_for(db: Database) -> CollectorRegistry:
    """One app's registry: the process's counters and its database's state."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (REQUESTS, LATENCY, DECISIONS, NOTIFICATIONS, STREAMED, TASK_RUNS,
                      TASK_TIME):
        registry.register(collector)
    registry.register(StateCollector(db))
    return registry


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware: count and time each HTTP request by its route template
    (`/api/v1/teams/{team_id}`), never by its raw path, so ids do not explode the series."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)


router = APIRouter(tags=["metrics"])


def _allowed(request: Request) -> bool:
    expected = os.environ.get("RUNESTONE_SERVER_METRICS_TOKEN", "")
    if expected:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode())
    if os.environ.get("RUNESTONE_SERVER_TRUST_PROXY") == "1" or \
            "x-forwarded-for" in request.headers:
        return False
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1") or host.startswith("127.")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                       401: {"description": "a bearer token or a loopback client is needed"}})
def metrics(request: Request) -> Response:
    """The Prometheus exposition of this replica's counters and the database's state."""
    if not _allowed(request):
        raise HTTPException(401, "metrics need the bearer token "
                                 "(RUNESTONE_SERVER_METRICS_TOKEN) or a loopback client",
                            headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
