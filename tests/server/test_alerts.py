"""Alerts on SQLite and PostgreSQL: each event kind fires once, a repeat within the window is
de-duplicated, another tenant's events never fire a rule, competing replicas fire once,
and a fired alert reaches a real webhook receiver through the outbox, signed.

Audit entries come from a runtime's real audit log (real hashes and checkpoints) shipped
through the ingest API, so denies, chain problems and drift are what the server really saw.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver, make_tenant
from sqlalchemy import select, update

from runestone.audit.checkpoint import Signer
from runestone.audit.log import AuditLog, list_segments
from runestone.home import Layout
from runestone.identity import create_identity
from runestone_server.alerts.evaluate import evaluate_org
from runestone_server.alerts.models import Alert, AlertRule
from runestone_server.alerts.sources import settle
from runestone_server.events import record
from runestone_server.models import Runtime
from runestone_server.notify import verify_signature
from runestone_server.notify.delivery import deliver_due
from runestone_server.security import new_token


@pytest.fixture(autouse=True)
def no_background_worker(monkeypatch):
    """The tests drive the worker's functions themselves; the app's own ticking worker
    would race them for the same rows."""
    monkeypatch.setenv("RUNESTONE_SERVER_TICK", "0")


POLICY = '[policy]\ndefault = "ask"\ninclude = ["default"]\n'


class Rt:
    """A runtime with its own key and real audit log, enrolled (as a row) in a team."""

    def __init__(self, app, tmp_path, name: str, org_id: int, team_id: int,
                 labels: dict | None = None) -> None:
        self.layout = Layout(config_dir=tmp_path / name, state_dir=tmp_path / name / "s")
        self.identity = create_identity(self.layout)
        self.log = AuditLog(self.layout.audit_dir, self.identity.runtime_id,
                            signer=Signer(self.layout.private_key_file), checkpoint_every=8)
        self.credential, digest = new_token("rsr")
        with app.state.db.sessions() as db:
            db.add(Runtime(org_id=org_id, team_id=team_id, runtime_id=self.runtime_id,
                           public_key=self.identity.public_key, labels=labels or {},
                           credential_hash=digest, last_seen=datetime.now(UTC)))
            db.commit()
        self.sent = 0

    @property
    def runtime_id(self) -> str:
        return self.identity.runtime_id

    def decide(self, decision: str, severity: str = "high", rule: str = "team.rule",
               policy_hash: str = "b" * 64, count: int = 1, **extra: str) -> None:
        for _ in range(count):
            self.log.append([{"kind": "decision", "tool": "Bash", "decision": decision,
                              "rules": [rule], "severity": severity,
                              "policy_hash": policy_hash, "summary": "curl evil.example",
                              "agent": "claude", "user": "ana", **extra}])

    def entries(self) -> list[dict]:
        found = []
        for _, path in list_segments(self.layout.audit_dir):
            found += [json.loads(line) for line in path.read_text().splitlines()]
        return found

    def ship(self, client, entries: list[dict] | None = None, status: int = 200) -> dict:
        entries = self.entries()[self.sent:] if entries is None else entries
        shipped = client.post("/api/v1/runtime/audit", json={"entries": entries,
                                                             "checkpoints": []},
                              headers={"Authorization": f"Bearer {self.credential}"})
        assert shipped.status_code == status, shipped.text
        self.sent += len(entries)
        return shipped.json()


def later() -> datetime:
    """A moment when everything written so far has settled for the evaluator."""
    return datetime.now(UTC) + timedelta(seconds=settle() + 1)


def evaluate(app, org: int, now: datetime | None = None) -> list[Alert]:
    fired = evaluate_org(app.state.db, org, now or later(), force=True)
    assert fired is not None
    return fired


def rule(client, team: int, token: str, event: str, status: int = 201, **body) -> dict:
    made = client.post(f"/api/v1/teams/{team}/alert-rules",
                       json={"name": f"{event} rule", "event": event, **body},
                       headers={"Authorization": f"Bearer {token}"})
    assert made.status_code == status, made.text
    return made.json()


def alerts(client, team: int, token: str) -> list[dict]:
    listed = client.get(f"/api/v1/teams/{team}/alerts",
                        headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    return listed.json()


@pytest.fixture
def tenants(server):
    app, client = server
    return app, client, make_tenant(app, "acme"), make_tenant(app, "globex")


def test_a_deny_of_a_severity_fires_once_and_reaches_the_webhook(tenants, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("RUNESTONE_SERVER_PUBLIC_URL", "https://runestone.example/")
    monkeypatch.setenv("RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS", "1")  # on 127.0.0.1
    app, client, (org, team, token), (org_b, team_b, token_b) = tenants
    with HttpReceiver() as hook:
        made = client.post(f"/api/v1/teams/{team}/channels",
                           json={"name": "ops", "kind": "webhook", "target": hook.url},
                           headers={"Authorization": f"Bearer {token}"}).json()
        rule(client, team, token, "deny", conditions={"min_severity": "high"},
             channel_ids=[made["id"]], dedup_minutes=60)
        rule(client, team_b, token_b, "deny", conditions={"min_severity": "low"})
        one, two = (Rt(app, tmp_path, n, org, team) for n in ("one", "two"))
        one.decide("deny", "critical", "team.no-curl", count=2)  # same key: one alert
        one.decide("deny", "medium", "team.meh")  # below the threshold
        one.decide("allow", "critical", "team.fine")
        two.decide("deny", "high", "team.no-curl",  # another runtime: another alert
                   request_id="req_0042")
        one.ship(client)
        two.ship(client)

        fired = evaluate(app, org)
        assert sorted(a.detail["runtime_id"] for a in fired) == sorted(
            [one.runtime_id, two.runtime_id])
        assert {a.detail["rule"] for a in fired} == {"team.no-curl"}
        assert evaluate(app, org) == []  # nothing new
        one.decide("deny", "critical", "team.no-curl")
        one.ship(client)
        assert evaluate(app, org) == []  # the same alert again within its window
        assert evaluate(app, org_b) == []  # globex's rule never sees acme's denies

        assert deliver_due(app.state.db) == 2
    assert len(hook.requests) == 2
    for request in hook.requests:
        assert verify_signature(made["secret"], request.headers["X-Runestone-Timestamp"],
                                request.body, request.headers["X-Runestone-Signature"])
        body = json.loads(request.body)
        assert body["subject"].startswith("[Runestone alert] Denied (")
        # The link opens the call's timeline, or (without a request id) the audit search
        # for that runtime's denies by that rule.
        if body["data"]["runtime_id"] == two.runtime_id:
            assert body["link"] == \
                f"https://runestone.example/audit/calls/req_0042?team={team}"
        else:
            assert body["link"] == (
                f"https://runestone.example/audit?team={team}&runtime={one.runtime_id}"
                "&decision=deny&rule=team.no-curl")
    listed = alerts(client, team, token)
    assert len(listed) == 2
    assert all(datetime.fromisoformat(a["fired"]).tzinfo for a in listed)
    assert alerts(client, team_b, token_b) == []
    assert client.get(f"/api/v1/teams/{team}/alerts",
                      headers={"Authorization": f"Bearer {token_b}"}).status_code == 404


def test_server_events_fire_once_each_and_only_in_their_tenant(tenants, tmp_path):
    app, client, (org, team, token), (org_b, team_b, token_b) = tenants
    for event in ("approval_expired", "chain_problem", "policy_published"):
        rule(client, team, token, event)
        rule(client, team_b, token_b, event)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/api/v1/teams/{team}/policies", json={"text": POLICY},
                       headers=auth).status_code == 201
    assert client.post(f"/api/v1/teams/{team}/publications", json={"number": 1},
                       headers=auth).status_code == 201
    rt = Rt(app, tmp_path, "rt", org, team)
    rt.decide("allow", count=4)
    tampered = rt.entries()
    tampered[2]["decision"] = "deny"  # its hash still says allow
    refused = rt.ship(client, tampered, status=409)["detail"]
    assert refused["problem"]["problem"] == "bad_hash"
    with app.state.db.sessions() as db:
        for _ in range(2):  # the same request expiring twice is one alert
            record(db, org, team, "server", "approval.expired",
                   {"request_id": "req_1", "approval_id": 1, "tool": "Bash",
                    "severity": "high"})
        db.commit()

    fired = evaluate(app, org)
    assert sorted(a.event for a in fired) == [
        "approval_expired", "chain_problem", "policy_published"]
    by_event = {a.event: a for a in fired}
    assert by_event["chain_problem"].detail["runtime_id"] == rt.runtime_id
    assert by_event["approval_expired"].dedup_key == "approval:req_1"
    assert by_event["policy_published"].detail["number"] == 1
    assert evaluate(app, org) == []
    assert evaluate(app, org_b) == []
    assert alerts(client, team_b, token_b) == []


def test_a_silent_runtime_fires_once_per_silence(tenants, tmp_path):
    app, client, (org, team, token), (org_b, team_b, token_b) = tenants
    rule(client, team, token, "runtime_silent", conditions={"silent_minutes": 30},
         dedup_minutes=1440)
    rule(client, team_b, token_b, "runtime_silent", conditions={"silent_minutes": 30})
    quiet, busy = Rt(app, tmp_path, "quiet", org, team), Rt(app, tmp_path, "busy", org, team)
    gone = datetime.now(UTC) - timedelta(minutes=45)
    with app.state.db.sessions() as db:
        db.execute(update(Runtime).where(Runtime.runtime_id == quiet.runtime_id)
                   .values(last_seen=gone))
        db.commit()
    [alert] = evaluate(app, org)
    assert alert.detail["runtime_id"] == quiet.runtime_id and alert.detail["minutes"] >= 45
    assert evaluate(app, org) == []
    assert evaluate(app, org_b) == []
    with app.state.db.sessions() as db:  # back, then silent again: a new silence
        db.execute(update(Runtime).where(Runtime.runtime_id == quiet.runtime_id)
                   .values(last_seen=gone + timedelta(minutes=5)))
        db.commit()
    assert len(evaluate(app, org)) == 1
    assert busy.runtime_id not in {a["detail"]["runtime_id"]
                                   for a in alerts(client, team, token)}


def test_drift_fires_for_the_runtime_deciding_with_another_policy(tenants, tmp_path):
    app, client, (org, team, token), (org_b, team_b, token_b) = tenants
    rule(client, team, token, "drift", conditions={"grace_minutes": 0})
    rule(client, team_b, token_b, "drift", conditions={"grace_minutes": 0})
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/api/v1/teams/{team}/policies", json={"text": POLICY},
                       headers=auth).status_code == 201
    published = client.post(f"/api/v1/teams/{team}/publications", json={"number": 1},
                            headers=auth).json()
    good, drifting = Rt(app, tmp_path, "good", org, team), Rt(app, tmp_path, "bad", org, team)
    good.decide("allow", policy_hash=published["hash"], count=2)
    drifting.decide("allow", policy_hash=published["hash"])
    drifting.decide("allow", policy_hash="c" * 64)  # its latest decision
    good.ship(client)
    drifting.ship(client)
    [alert] = evaluate(app, org)
    assert alert.detail["runtime_id"] == drifting.runtime_id
    assert (alert.detail["observed"], alert.detail["expected"]) == ("c" * 64,
                                                                    published["hash"])
    assert evaluate(app, org) == []
    assert evaluate(app, org_b) == []
    drifting.decide("allow", policy_hash=published["hash"])  # it caught up
    drifting.ship(client)
    assert evaluate(app, org, later() + timedelta(hours=2)) == []


def test_a_spike_of_denies_over_the_threshold_fires_once(tenants, tmp_path):
    app, client, (org, team, token), (org_b, team_b, token_b) = tenants
    rule(client, team, token, "deny_spike",
         conditions={"threshold": 5, "window_minutes": 10})
    rule(client, team, token, "deny_spike",
         conditions={"threshold": 50, "window_minutes": 10})  # not reached
    rule(client, team_b, token_b, "deny_spike",
         conditions={"threshold": 1, "window_minutes": 10})
    rt = Rt(app, tmp_path, "rt", org, team)
    rt.decide("deny", "low", count=4)
    rt.ship(client)
    assert evaluate(app, org) == []  # 4 < 5
    rt.decide("deny", "low", count=2)
    rt.ship(client)
    [alert] = evaluate(app, org)
    assert alert.detail["count"] == 6 and alert.detail["threshold"] == 5
    rt.decide("deny", "low", count=3)
    rt.ship(client)
    assert evaluate(app, org) == []  # still the same spike, within the window
    assert evaluate(app, org_b) == []
    # Out of the window the denies no longer count.
    assert evaluate(app, org, later() + timedelta(minutes=20, hours=2)) == []


def test_competing_replicas_fire_once(tenants, tmp_path, monkeypatch):
    """Four replicas read the same cursor and the same new denies before any of them
    claims it (a barrier after the read): exactly one fires."""
    import runestone_server.alerts.evaluate as evaluation

    app, client, (org, team, token), _ = tenants
    rule(client, team, token, "deny", conditions={"min_severity": "low"})
    rt = Rt(app, tmp_path, "rt", org, team)
    rt.decide("deny", "high", count=3)
    rt.ship(client)
    moment = later()
    results: list = []
    together = threading.Barrier(4, timeout=20)
    real_read = evaluation.read

    def read_then_wait(*args, **kwargs):
        batch = real_read(*args, **kwargs)
        together.wait()
        return batch

    monkeypatch.setattr(evaluation, "read", read_then_wait)
    workers = [threading.Thread(target=lambda: results.append(
        evaluate_org(app.state.db, org, moment, force=True))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == 4 and results.count(None) == 3  # three lost the claim
    assert sum(len(r or []) for r in results) == 1
    with app.state.db.sessions() as db:
        assert len(db.scalars(select(Alert)).all()) == 1


def test_rule_api_checks_channels_and_keeps_history(tenants, tmp_path):
    app, client, (org, team, token), (_, team_b, token_b) = tenants
    auth, auth_b = ({"Authorization": f"Bearer {t}"} for t in (token, token_b))
    theirs = client.post(f"/api/v1/teams/{team_b}/channels", headers=auth_b, json={
        "name": "b", "kind": "slack", "target": "https://hooks.example/b"}).json()
    rule(client, team, token, "deny", status=400, channel_ids=[theirs["id"]])
    rule(client, team, token, "nonsense", status=422)
    rule(client, team, token, "deny", status=422, conditions={"min_severity": "huge"})
    made = rule(client, team, token, "deny", conditions={"min_severity": "low"})
    assert [r["id"] for r in client.get(f"/api/v1/teams/{team}/alert-rules",
                                        headers=auth).json()] == [made["id"]]
    assert client.put(f"/api/v1/teams/{team_b}/alert-rules/{made['id']}", headers=auth_b,
                      json={"name": "x", "event": "deny"}).status_code == 404
    changed = client.put(f"/api/v1/teams/{team}/alert-rules/{made['id']}", headers=auth,
                         json={"name": "off", "event": "deny", "enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    rt = Rt(app, tmp_path, "rt", org, team)
    rt.decide("deny", "high")
    rt.ship(client)
    assert evaluate(app, org) == []  # disabled
    ours = client.post(f"/api/v1/teams/{team}/channels", headers=auth, json={
        "name": "gone", "kind": "slack", "target": "https://hooks.example/a"}).json()
    assert client.put(f"/api/v1/teams/{team}/alert-rules/{made['id']}", headers=auth,
                      json={"name": "on", "event": "deny", "channel_ids": [ours["id"]],
                            "conditions": {"min_severity": "low"}}).status_code == 200
    assert client.delete(f"/api/v1/teams/{team}/channels/{ours['id']}",
                         headers=auth).status_code == 204
    [forgot] = client.get(f"/api/v1/teams/{team}/alert-rules", headers=auth).json()
    assert forgot["channel_ids"] == []  # the rule forgot the deleted channel
    with app.state.db.sessions() as db:  # an id kept anyway (by hand, or from before)
        db.execute(update(AlertRule).where(AlertRule.id == made["id"])
                   .values(channel_ids=[theirs["id"]]))
        db.commit()
    rt.decide("deny", "high")
    rt.ship(client)
    assert len(evaluate(app, org)) == 1
    assert client.delete(f"/api/v1/teams/{team_b}/alert-rules/{made['id']}",
                         headers=auth_b).status_code == 404
    assert client.delete(f"/api/v1/teams/{team}/alert-rules/{made['id']}",
                         headers=auth).status_code == 204
    [kept] = alerts(client, team, token)
    assert kept["rule_id"] is None and kept["rule"] == "on"
    # It named another tenant's channel by then: the alert still fired, was sent nowhere,
    # and says so.
    assert kept["detail"]["undelivered"] == [
        f"no notification channel {theirs['id']} in this team"]


def test_a_real_server_process_alerts_by_webhook_and_email(database_url, tmp_path):
    """The server as deployed: its own worker ticks, evaluates the rule and delivers to a
    real webhook receiver and a real SMTP server, with no test code in between."""
    import time

    from liveserver import ServerProcess, api

    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'alerts.sqlite3'}"
    with HttpReceiver() as hook, SmtpReceiver() as smtp:
        server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0.2",
                               RUNESTONE_ALERTS_SETTLE="0", RUNESTONE_ALERTS_INTERVAL="0.2",
                               RUNESTONE_SMTP_HOST="127.0.0.1",
                               RUNESTONE_SMTP_PORT=str(smtp.port),
                               RUNESTONE_SMTP_FROM="alerts@runestone.example",
                               RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS="1")
        server.init()
        server.start()
        try:
            token = server.login()
            team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
            webhook = api(server.base, "POST", f"/api/v1/teams/{team}/channels", token,
                          {"name": "ops", "kind": "webhook", "target": hook.url})
            mail = api(server.base, "POST", f"/api/v1/teams/{team}/channels", token,
                       {"name": "mail", "kind": "email", "target": "oncall@example.org"})
            api(server.base, "POST", f"/api/v1/teams/{team}/alert-rules", token,
                {"name": "publications", "event": "policy_published",
                 "channel_ids": [webhook["id"], mail["id"]]})
            api(server.base, "POST", f"/api/v1/teams/{team}/policies", token, {"text": POLICY})
            api(server.base, "POST", f"/api/v1/teams/{team}/publications", token,
                {"number": 1})
            deadline = time.time() + 30
            while time.time() < deadline and not (hook.requests and smtp.messages):
                time.sleep(0.1)
            fired = api(server.base, "GET", f"/api/v1/teams/{team}/alerts", token)
        finally:
            server.stop()
    assert [a["event"] for a in fired] == ["policy_published"]
    [request] = hook.requests
    assert verify_signature(webhook["secret"], request.headers["X-Runestone-Timestamp"],
                            request.body, request.headers["X-Runestone-Signature"])
    assert json.loads(request.body)["subject"] == "[Runestone alert] Policy v1 published"
    assert json.loads(request.body)["link"].endswith(f"/teams/{team}/policies/1")
    [(sender, recipients, message)] = smtp.messages
    assert (sender, recipients) == ("alerts@runestone.example", ["oncall@example.org"])
    assert message["Subject"] == "[Runestone alert] Policy v1 published"
