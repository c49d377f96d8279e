"""`/metrics`: parsed with prometheus_client's own parser, values that move as decisions are
ingested, asks open, chains break and the worker runs; access by token or loopback only; and
a real Prometheus (Debian's package) scraping a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_approvals_routing import app_client as app_client  # the fixture, shared
from test_audit_ingest import Rt

from liveserver import ServerProcess, api, enroll_runtime, free_port, runestone
from runestone_server.models import Organisation, Team

TOKEN = "scrape-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def team(app_client, monkeypatch, tmp_path):
    """With no background worker: the worker test runs its one tick itself, so a tick of
    the app's own cannot also be counted between two scrapes."""
    monkeypatch.setenv("RUNESTONE_SERVER_METRICS_TOKEN", TOKEN)
    app, client = app_client
    with app.state.db.sessions() as db:
        org = Organisation(name="metrics-org")
        db.add(org)
        db.flush()
        row = Team(org_id=org.id, name="core")
        db.add(row)
        db.commit()
        return app, client, Rt(app, tmp_path, "laptop", org.id, row.id)


def scrape(client) -> dict:
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


def ship(client, runtime: Rt) -> dict:
    answer = client.post("/api/v1/runtime/audit", headers=runtime.auth,
                         json={"entries": runtime.entries()})
    return answer.json()


def test_values_move_as_decisions_are_ingested(team):
    _app, client, runtime = team
    labels = {"org": "metrics-org", "team": "core", "rule": "dev.echo"}
    before = scrape(client)
    runtime.decide(6)  # n % 3 == 0 denied: 2 deny, 4 allow
    assert ship(client, runtime)["status"] == "ok"
    after = scrape(client)
    name = "runestone_decisions_ingested_total"
    assert value(after, name, outcome="deny", **labels) - \
        value(before, name, outcome="deny", **labels) == 2
    assert value(after, name, outcome="allow", **labels) - \
        value(before, name, outcome="allow", **labels) == 4
    # A resent batch stores nothing new and counts nothing.
    assert ship(client, runtime)["duplicates"] > 0
    again = scrape(client)
    assert value(again, name, outcome="allow", **labels) == value(after, name, outcome="allow",
                                                                  **labels)
    runtime.decide(3)
    ship(client, runtime)
    later = scrape(client)
    assert value(later, name, outcome="deny", **labels) - \
        value(after, name, outcome="deny", **labels) == 1
    # Ingest lag and age per runtime, from the stored chain.
    where = {"org": "metrics-org", "team": "core", "runtime": runtime.runtime_id}
    assert ("runestone_audit_last_ingest_age_seconds", frozenset(where.items())) in later
    assert value(later, "runestone_audit_ingest_lag_seconds", **where) >= 0
    # Requests by route template, not by raw path.
    assert value(later, "runestone_http_requests_total", method="POST",
                 route="/api/v1/runtime/audit", status="200") >= 3
    assert not any(n == "runestone_http_requests_total" and ("route", "/metrics") not in k
                   and any(v.startswith("/api/v1/teams/1") for _, v in k)
                   for n, k in later)


def test_open_asks_broken_chains_and_worker_runs(team):
    app, client, runtime = team
    from runestone_server.worker import run_once

    for n in range(2):
        answer = client.post("/api/v1/runtime/approvals", headers=runtime.auth, json={
            "request_id": f"req_metrics_{n}", "tool": "Bash", "severity": "medium",
            "action_hash": f"{n:064x}", "summary": "curl example.com", "reason": "network",
            "rules": ["net.ask"], "input": {"command": "curl example.com"},
            "agent": "claude-code", "mode": "defer"})
        assert answer.status_code in (200, 201), answer.text
    found = scrape(client)
    where = {"org": "metrics-org", "team": "core"}
    assert value(found, "runestone_open_asks", **where) == 2
    assert value(found, "runestone_open_ask_oldest_age_seconds", **where) >= 0
    assert value(found, "runestone_audit_chain_problems", **where) == 0

    runtime.decide(2)
    entries = runtime.entries()
    entries[1] = {**entries[1], "decision": "allow" if entries[1].get("decision") == "deny"
                  else "deny"}  # altered after hashing
    client.post("/api/v1/runtime/audit", headers=runtime.auth, json={"entries": entries})
    assert value(scrape(client), "runestone_audit_chain_problems", **where) == 1

    before = scrape(client)
    run_once(app.state.db)
    after = scrape(client)
    task = {"task": "approvals.escalate", "outcome": "ok"}
    assert value(after, "runestone_worker_task_runs_total", **task) == \
        value(before, "runestone_worker_task_runs_total", **task) + 1


def test_access_needs_the_token_or_a_loopback_client(team, monkeypatch):
    _app, client, _runtime = team
    # The test client is not a loopback address: without the token it is refused.
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200
    monkeypatch.delenv("RUNESTONE_SERVER_METRICS_TOKEN")
    assert client.get("/metrics").status_code == 401


def test_loopback_scrapes_without_a_token_unless_proxied(tmp_path):
    server = ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "home")
    server.init()
    server.start()
    try:
        with urllib.request.urlopen(server.base + "/metrics", timeout=30) as answer:
            assert "runestone_http_requests_total" in answer.read().decode()
        proxied = urllib.request.Request(server.base + "/metrics",
                                         headers={"X-Forwarded-For": "203.0.113.9"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(proxied, timeout=30)
        assert refused.value.code == 401
    finally:
        server.stop()


def _query(base: str, expression: str) -> float | None:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            result = json.loads(answer.read())["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def _until(predicate, seconds: float = 120.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    return predicate()


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("RUNESTONE_TEST_OPS"),
                    reason="Debian's prometheus is not installed (.ci/run installs it)")
def test_a_real_prometheus_scrapes_the_server(tmp_path):
    server = ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "home",
                           RUNESTONE_SERVER_METRICS_TOKEN=TOKEN)
    server.init()
    server.start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    (tmp_path / "token").write_text(TOKEN)
    config.write_text(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: runestone
    authorization:
      credentials_file: {tmp_path / 'token'}
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    log = (tmp_path / "prometheus.log").open("w")
    prometheus = subprocess.Popen(
        [PROMETHEUS or "prometheus", f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        admin = server.login()
        team_id = api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        home = tmp_path / "laptop"
        assert enroll_runtime(server.base, admin, team_id, home).returncode == 0
        assert _until(lambda: _query(base, 'up{job="runestone"}') == 1.0), \
            Path(log.name).read_text()[-2000:]
        denied = 'sum(runestone_decisions_ingested_total{team="core",outcome="deny"})'
        for command in ("rm -rf ~", "rm -rf /"):
            assert json.loads(runestone(home, "check", "--command", command).stdout)[
                "decision"] == "deny"
        assert runestone(home, "audit", "ship").returncode == 0
        assert _until(lambda: _query(base, denied) == 2.0), _query(base, denied)
        assert json.loads(runestone(home, "check", "--command", "rm -rf ~/.ssh").stdout)[
            "decision"] == "deny"
        assert runestone(home, "audit", "ship").returncode == 0
        assert _until(lambda: _query(base, denied) == 3.0), _query(base, denied)
        route = ('runestone_http_requests_total{route="/api/v1/runtime/audit",'
                 'method="POST",status="200"}')
        assert (_query(base, route) or 0) >= 2
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        log.close()
        server.stop()
