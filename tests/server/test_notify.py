"""Notifications against real receivers: a signed webhook retried with back-off, a
Slack-compatible message with the link, e-mail through a real SMTP server; redirects not
followed, failure after the last attempt, one send across competing workers, tenants apart.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver, aware, channel, delivery, make_tenant, send
from sqlalchemy import select

from runestone_server.models import ServerEvent, Team
from runestone_server.notify import UnknownChannel, enqueue, verify_signature
from runestone_server.notify.delivery import deliver_due, prune
from runestone_server.notify.models import Delivery


@pytest.fixture(autouse=True)
def no_background_worker(monkeypatch):
    """The tests drive the worker's functions themselves; the app's own ticking worker
    would race them for the same rows."""
    monkeypatch.setenv("RUNESTONE_SERVER_TICK", "0")


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch):
    """The receivers listen on 127.0.0.1, which the server refuses unless told otherwise."""
    monkeypatch.setenv("RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS", "1")


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("RUNESTONE_NOTIFY_BASE_DELAY", "2")
    monkeypatch.setenv("RUNESTONE_NOTIFY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("RUNESTONE_NOTIFY_TIMEOUT", "5")


def test_webhook_is_signed_and_retried_with_backoff(server, fast_retries):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver(statuses=[500, 500, 200]) as hook:
        made = channel(client, team, token, "webhook", hook.url)
        secret = made["secret"]
        assert secret and len(secret) >= 40
        send(app, org, made["id"])
        db = app.state.db

        start = datetime.now(UTC)
        assert deliver_due(db) == 1
        end = datetime.now(UTC)  # the attempt failed somewhere in between
        first = delivery(app)
        assert (first.status, first.attempts) == ("pending", 1)
        assert "HTTP 500" in first.last_error
        due = aware(first.next_attempt)
        # base 2 s, half of it fixed, half jitter, from the moment the attempt failed
        assert start + timedelta(seconds=1.0) <= due <= end + timedelta(seconds=2.5)
        # not due yet: nothing is sent early
        assert deliver_due(db, now=due - timedelta(milliseconds=1)) == 0
        assert len(hook.requests) == 1

        assert deliver_due(db, now=aware(first.next_attempt)) == 1
        second = delivery(app)
        wait = (aware(second.next_attempt) - aware(first.next_attempt)).total_seconds()
        assert 2.0 <= wait <= 4.5  # doubled
        assert deliver_due(db, now=aware(second.next_attempt)) == 1
        done = delivery(app)
        assert (done.status, done.attempts, done.last_error) == ("delivered", 3, None)
        assert deliver_due(db, now=aware(second.next_attempt) + timedelta(hours=1)) == 0
    # Kept a while for the channel's delivery list, then pruned.
    assert prune(db, now=aware(done.next_attempt) + timedelta(days=29)) == 0
    assert prune(db, now=aware(done.next_attempt) + timedelta(days=31)) == 1

    assert len(hook.requests) == 3
    bodies = {r.body for r in hook.requests}
    assert len(bodies) == 1  # the same message each time, with the same delivery id
    assert {r.headers["X-Runestone-Delivery"] for r in hook.requests} == {str(done.id)}
    for request in hook.requests:
        stamp, signature = (request.headers["X-Runestone-Timestamp"],
                            request.headers["X-Runestone-Signature"])
        assert signature.startswith("sha256=")
        assert verify_signature(secret, stamp, request.body, signature)
        assert not verify_signature(secret, stamp, request.body + b" ", signature)
        assert not verify_signature("another secret", stamp, request.body, signature)
        assert not verify_signature(secret, str(int(stamp) + 1), request.body, signature)
        assert not verify_signature(secret, stamp, request.body, signature,
                                    now=int(stamp) + 3600)  # a replay an hour later
    body = json.loads(hook.requests[0].body)
    assert body["subject"] == "Approval needed"
    assert body["link"] == "https://runestone.example/a/42"
    assert body["data"] == {"request": 42}


def test_failed_for_good_after_the_last_attempt(server, fast_retries, monkeypatch):
    monkeypatch.setenv("RUNESTONE_NOTIFY_MAX_ATTEMPTS", "2")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver(statuses=[503]) as hook:
        made = channel(client, team, token, "webhook", hook.url)
        send(app, org, made["id"])
        assert deliver_due(app.state.db) == 1
        later = aware(delivery(app).next_attempt)
        assert deliver_due(app.state.db, now=later) == 1
        assert deliver_due(app.state.db, now=later + timedelta(days=1)) == 0
    row = delivery(app)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "HTTP 503" in row.last_error
    with app.state.db.sessions() as db:
        failed = db.scalars(select(ServerEvent).where(ServerEvent.kind == "notify.failed")).one()
    assert failed.org_id == org and failed.team_id == team
    assert failed.detail["delivery"] == row.id and failed.detail["attempts"] == 2
    listed = client.get(f"/api/v1/teams/{team}/channels/{made['id']}/deliveries",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert [(d["status"], d["attempts"]) for d in listed] == [("failed", 2)]


def test_a_redirect_is_not_followed(server, fast_retries):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver() as elsewhere, HttpReceiver(statuses=[307]) as hook:
        hook.location = elsewhere.url
        made = channel(client, team, token, "webhook", hook.url)
        send(app, org, made["id"])
        deliver_due(app.state.db)
    row = delivery(app)
    assert row.status == "pending" and "redirects are not followed" in row.last_error
    assert row.last_error.startswith("HTTP 307")
    assert elsewhere.url not in row.last_error  # the receiver's words are not kept
    assert len(hook.requests) == 1 and elsewhere.requests == []


def test_slack_message_carries_the_link(server):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver() as slack:
        made = channel(client, team, token, "slack", slack.url)
        assert made["secret"] is None
        with app.state.db.sessions() as db:
            enqueue(db, org_id=org, team_id=team, channel_id=made["id"],
                    subject="Deny <b>spike</b>", text="12 denies & counting", link="https://runestone.example/alerts/1")
            db.commit()
        assert deliver_due(app.state.db) == 1
    assert delivery(app).status == "delivered"
    message = json.loads(slack.requests[0].body)
    assert "https://runestone.example/alerts/1" in message["text"]
    assert "&lt;b&gt;spike&lt;/b&gt;" in message["text"]  # no forged markup
    assert "12 denies &amp; counting" in message["blocks"][0]["text"]["text"]
    button = message["blocks"][1]["elements"][0]
    assert button["url"] == "https://runestone.example/alerts/1"


def test_email_through_a_real_smtp_server(server, monkeypatch):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with SmtpReceiver() as smtp:
        monkeypatch.setenv("RUNESTONE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("RUNESTONE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("RUNESTONE_SMTP_FROM", "runestone@example.org")
        made = channel(client, team, token, "email", "ops@example.org, lead@example.org")
        send(app, org, made["id"])
        with app.state.db.sessions() as db:  # runtime text in a subject: no injection
            enqueue(db, org_id=org, team_id=team, channel_id=made["id"],
                    subject="Bash\r\nBcc: x@evil.example", text="t")
            db.commit()
        assert deliver_due(app.state.db) == 2
    with app.state.db.sessions() as db:
        assert [d.status for d in db.scalars(select(Delivery))] == ["delivered"] * 2
    # Sent in parallel: in either order.
    [(sender, recipients, mail), (_, again, injected)] = sorted(
        smtp.messages, key=lambda m: m[2]["Subject"] != "Approval needed")
    assert sender == "runestone@example.org"
    assert recipients == ["ops@example.org", "lead@example.org"] == again
    assert mail["Subject"] == "Approval needed"
    assert injected["Subject"] == "Bash Bcc: x@evil.example" and injected["Bcc"] is None
    body = mail.get_payload(decode=True).decode()
    assert "rm -rf build/ on ci-7" in body and "https://runestone.example/a/42" in body


def test_email_without_smtp_settings_fails_with_a_reason(server, monkeypatch):
    monkeypatch.delenv("RUNESTONE_SMTP_HOST", raising=False)
    app, client = server
    org, team, token = make_tenant(app, "acme")
    made = channel(client, team, token, "email", "ops@example.org")
    send(app, org, made["id"])
    deliver_due(app.state.db)
    assert "RUNESTONE_SMTP_HOST" in delivery(app).last_error


def test_competing_workers_send_once(server):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver(delay=0.2) as hook:
        made = channel(client, team, token, "webhook", hook.url)
        for n in range(5):
            send(app, org, made["id"], dedup_key=f"k{n}")
        counts: list[int] = []
        workers = [threading.Thread(target=lambda: counts.append(deliver_due(app.state.db)))
                   for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        time.sleep(0.1)
    assert sum(counts) == 5
    assert len(hook.requests) == 5
    assert len({r.headers["X-Runestone-Delivery"] for r in hook.requests}) == 5


def test_dedup_key_enqueues_once(server):
    app, client = server
    org, team, token = make_tenant(app, "acme")
    made = channel(client, team, token, "webhook", "https://hooks.example/x")
    send(app, org, made["id"], dedup_key="approval-42")
    send(app, org, made["id"], dedup_key="approval-42")
    send(app, org, made["id"], dedup_key="approval-43")
    with app.state.db.sessions() as db:
        assert sorted(d.dedup_key for d in db.scalars(select(Delivery))) == [
            "approval-42", "approval-43"]


def test_channels_are_per_tenant_and_the_secret_is_shown_once(server):
    app, client = server
    org_a, team_a, token_a = make_tenant(app, "acme")
    org_b, team_b, token_b = make_tenant(app, "globex")
    made = channel(client, team_a, token_a, "webhook", "https://hooks.example/a")
    auth_a = {"Authorization": f"Bearer {token_a}"}
    auth_b = {"Authorization": f"Bearer {token_b}"}
    listed = client.get(f"/api/v1/teams/{team_a}/channels", headers=auth_a).json()
    assert [c["id"] for c in listed] == [made["id"]] and listed[0]["secret"] is None
    # A timestamp with its zone, on SQLite too (which stores them without one).
    assert datetime.fromisoformat(listed[0]["created"].replace("Z", "+00:00")).tzinfo
    assert client.get(f"/api/v1/teams/{team_b}/channels", headers=auth_b).json() == []
    assert client.get(f"/api/v1/teams/{team_a}/channels", headers=auth_b).status_code == 404
    assert client.delete(f"/api/v1/teams/{team_b}/channels/{made['id']}",
                         headers=auth_b).status_code == 404
    with app.state.db.sessions() as db, pytest.raises(UnknownChannel):
        enqueue(db, org_id=org_b, team_id=team_b, channel_id=made["id"], subject="s", text="t")
    with app.state.db.sessions() as db, pytest.raises(UnknownChannel):  # the org's, not team's
        other_team = Team(org_id=org_a, name="another team")
        db.add(other_team)
        db.flush()
        enqueue(db, org_id=org_a, team_id=other_team.id, channel_id=made["id"], subject="s",
                text="t")
    for kind, target in (("webhook", "ftp://x/y"), ("slack", "not a url"),
                         ("email", "ops@example.org, nobody"), ("email", " , ")):
        bad = client.post(f"/api/v1/teams/{team_a}/channels", headers=auth_a,
                          json={"name": "bad", "kind": kind, "target": target})
        assert bad.status_code == 400, (kind, target)
    send(app, org_a, made["id"])
    assert client.delete(f"/api/v1/teams/{team_a}/channels/{made['id']}",
                         headers=auth_a).status_code == 204
    with app.state.db.sessions() as db:
        assert db.scalars(select(Delivery)).all() == []  # nothing left to send there


def test_backoff_grows_is_capped_and_jittered():
    import random

    from runestone_server.notify.delivery import backoff
    from runestone_server.notify.settings import Retry

    retry = Retry(max_attempts=10, base_delay=5, max_delay=60, timeout=1, lease=60,
                  send_limit=3)
    rng = random.Random(7)
    for attempts, ceiling in ((1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (9, 60)):
        waits = [backoff(attempts, retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempts, waits)
        assert len({round(w, 6) for w in waits}) > 40  # jittered, not in lockstep


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(server, monkeypatch):
    """And it does not hold up the others: deliveries are sent in parallel, so six to a
    hung receiver cost about one timeout, not six, and a good receiver still gets its own.
    The timeout leaves the good receiver a second: at 0.3 s, a loaded CI machine once kept
    it from answering in time."""
    monkeypatch.setenv("RUNESTONE_NOTIFY_TIMEOUT", "1.0")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver(delay=5) as hung, HttpReceiver() as good:
        stuck = channel(client, team, token, "webhook", hung.url)
        fine = channel(client, team, token, "slack", good.url)
        for n in range(6):
            send(app, org, stuck["id"], dedup_key=f"s{n}")
        send(app, org, fine["id"])
        started = time.monotonic()
        assert deliver_due(app.state.db) == 7
        assert time.monotonic() - started < 3.5  # one after the other: at least 6 s
    with app.state.db.sessions() as db:
        rows = {d.channel_id: d for d in db.scalars(select(Delivery))}
        stuck_rows = db.scalars(select(Delivery).where(
            Delivery.channel_id == stuck["id"])).all()
    assert all(r.status == "pending" and r.attempts == 1 and "Timeout" in r.last_error
               for r in stuck_rows)
    assert rows[fine["id"]].status == "delivered" and len(good.requests) == 1
