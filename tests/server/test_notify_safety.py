"""The outbox against receivers that misbehave and replicas that race, with real receivers
and the real database: a send ends before its lease does, so a second worker never sends
it again; a worker past its lease cannot overwrite the outcome; channels cannot point into
the server's network (when made, and after resolving at each send); the receiver's words
are not kept in last_error; one dedup key makes one delivery under concurrent enqueues.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from notify_receivers import (
    DrippingSmtp,
    HttpReceiver,
    channel,
    delivery,
    make_tenant,
    self_signed,
    send,
)
from sqlalchemy import func, select, update

from runestone_server.models import utcnow
from runestone_server.notify import enqueue
from runestone_server.notify.delivery import deliver_due
from runestone_server.notify.models import Delivery

ALLOW = "RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS"


@pytest.fixture(autouse=True)
def no_background_worker(monkeypatch):
    """The tests drive the worker's functions themselves."""
    monkeypatch.setenv("RUNESTONE_SERVER_TICK", "0")


@pytest.fixture
def local_receivers(monkeypatch):
    """The receivers listen on 127.0.0.1, which the server refuses unless told otherwise."""
    monkeypatch.setenv(ALLOW, "1")


@pytest.fixture
def short_sends(monkeypatch):
    """Each phase 1 s, a whole attempt 3 s, the lease 9 s; no retry within a test. (Loose
    enough that a busy CI machine connects before the cut, and that a receiver thread
    starved for a moment does not trip the per-phase timeout instead.)"""
    monkeypatch.setenv("RUNESTONE_NOTIFY_TIMEOUT", "1")
    monkeypatch.setenv("RUNESTONE_NOTIFY_SEND_LIMIT", "3")
    monkeypatch.setenv("RUNESTONE_NOTIFY_LEASE", "9")
    monkeypatch.setenv("RUNESTONE_NOTIFY_BASE_DELAY", "600")


def wait_for(predicate, seconds: float = 10.0) -> None:
    until = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < until, "timed out"
        time.sleep(0.02)


def test_a_slow_receiver_is_sent_one_message_once_by_two_workers(server, local_receivers,
                                                                  short_sends):
    """The receiver answers a header line every 0.1 s for 10 s, so no per-phase timeout ever
    expires. Worker A's tick began ten minutes ago (it spent them on other deliveries);
    worker B ticks on the real clock all along, over the same database. A's attempt must
    be cut off at the limit of one attempt, within its lease counted from its claim, and
    B must not send the message meanwhile."""
    app, client = server
    org, team, token = make_tenant(app, "acme")
    db = app.state.db
    with HttpReceiver(drip=10, drip_every=0.1) as hook:
        made = channel(client, team, token, "webhook", hook.url)
        send(app, org, made["id"])
        tick = utcnow() - timedelta(minutes=10)
        with db.sessions() as session:  # due since before A's tick began
            session.execute(update(Delivery).values(next_attempt=tick - timedelta(seconds=1)))
            session.commit()
        outcome: dict[str, float] = {}

        def worker_a() -> None:
            started = time.monotonic()
            outcome["attempted"] = deliver_due(db, now=tick)
            outcome["took"] = time.monotonic() - started

        a = threading.Thread(target=worker_a)
        a.start()
        wait_for(lambda: len(hook.requests) == 1)
        by_b = []
        while a.is_alive():
            by_b.append(deliver_due(db))
            time.sleep(0.05)
        a.join()
        by_b += [deliver_due(db) for _ in range(3)]
    assert len(hook.requests) == 1 and sum(by_b) == 0
    assert outcome["attempted"] == 1 and outcome["took"] < 7  # not the receiver's 10 s
    row = delivery(app)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "limit of one attempt" in row.last_error and row.claim_token is None


def test_a_worker_past_its_lease_does_not_overwrite_the_outcome(server, local_receivers,
                                                                monkeypatch):
    """Worker A's process stalls past its lease while its request is out (here: its lease
    is made to run out while the receiver holds A's answer for a second). Worker B takes
    the row and sends; while B waits for its answer, A's late failure comes back. Written
    over B's claim it would make the row due again at once (the back-off is tiny here), and
    worker C would send the message a third time while B's send is still going on."""
    monkeypatch.setenv("RUNESTONE_NOTIFY_TIMEOUT", "5")
    monkeypatch.setenv("RUNESTONE_NOTIFY_BASE_DELAY", "0.01")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    db = app.state.db
    with HttpReceiver(statuses=[500, 200], delays=[1.0, 2.5]) as hook:
        made = channel(client, team, token, "webhook", hook.url)
        send(app, org, made["id"])
        a = threading.Thread(target=deliver_due, args=(db,))
        a.start()
        wait_for(lambda: len(hook.requests) == 1)
        with db.sessions() as session:
            session.execute(update(Delivery).values(
                next_attempt=utcnow() - timedelta(seconds=1)))
            session.commit()
        b = threading.Thread(target=deliver_due, args=(db,))
        b.start()
        wait_for(lambda: len(hook.requests) == 2)
        a.join()  # A's failure is back while B's answer is not
        time.sleep(0.1)  # past the back-off A would have set
        assert b.is_alive()
        by_c = deliver_due(db)
        b.join()
    assert by_c == 0 and len(hook.requests) == 2
    row = delivery(app)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)


def test_a_slow_smtp_server_is_cut_off_at_the_limit(server, short_sends, monkeypatch):
    """smtplib's timeout is per socket operation too: a server greeting a line at a time
    would keep the send (and the worker) going for as long as it likes."""
    app, client = server
    org, team, token = make_tenant(app, "acme")
    made = channel(client, team, token, "email", "ops@example.org")
    send(app, org, made["id"])
    with DrippingSmtp(every=0.1) as smtp:
        monkeypatch.setenv("RUNESTONE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("RUNESTONE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("RUNESTONE_SMTP_FROM", "runestone@example.org")
        worker = threading.Thread(target=deliver_due, args=(app.state.db,), daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(timeout=10)
        took = time.monotonic() - started
        assert not worker.is_alive(), "the send was not cut off"
        assert smtp.connections == 1
    assert took < 7
    row = delivery(app)
    assert row.status == "pending" and "limit of one attempt" in row.last_error


INTERNAL = ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://app.localhost/x",
            "http://[::1]/x", "http://10.1.2.3/x", "https://192.168.1.10/x",
            "http://172.16.0.1/", "http://0.0.0.0:80/", "http://100.64.0.1/",
            "http://0x7f.1/", "http://2130706433/", "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
            "http://metadata.google.internal/computeMetadata/v1/")
METADATA = ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/",
            "http://metadata.google.internal/computeMetadata/v1/", "http://0xa9fea9fe/")


def test_channels_into_the_servers_network_are_refused(server, monkeypatch):
    monkeypatch.delenv(ALLOW, raising=False)
    app, client = server
    _, team, token = make_tenant(app, "acme")
    auth = {"Authorization": f"Bearer {token}"}

    def make(kind: str, target: str):
        return client.post(f"/api/v1/teams/{team}/channels", headers=auth,
                           json={"name": "n", "kind": kind, "target": target})

    for target in INTERNAL:
        for kind in ("webhook", "slack"):
            refused = make(kind, target)
            assert refused.status_code == 400, (kind, target, refused.text)
            assert "not sent there" in refused.json()["detail"]
    assert "a loopback address" in make("webhook", "http://2130706433/").json()["detail"]
    # Public addresses, and names that do not resolve yet (each send checks again), pass.
    for target in ("https://93.184.215.14/hook", "https://hooks.example/x"):
        assert make("webhook", target).status_code == 201, target

    monkeypatch.setenv(ALLOW, "1")  # an on-premises install with receivers inside
    for target in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/x", "http://localhost/x"):
        assert make("webhook", target).status_code == 201, target
    for target in METADATA:  # no receiver lives at the metadata service
        refused = make("webhook", target)
        assert refused.status_code == 400, target
        assert "metadata" in refused.json()["detail"]
    with app.state.db.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_target_resolving_into_the_servers_network_is_not_sent_to(server, monkeypatch):
    """Checked again at every send, after resolving: a channel made while private targets
    were allowed (or whose name now resolves inside) is refused, and nothing is sent. The
    connection goes to the checked address, with the name kept in the Host header."""
    monkeypatch.setenv(ALLOW, "1")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        made = channel(client, team, token, "webhook", f"http://localhost:{port}/hook")
        send(app, org, made["id"], dedup_key="allowed")
        assert deliver_due(app.state.db) == 1
        assert [r.headers["Host"] for r in hook.requests] == [f"localhost:{port}"]

        monkeypatch.delenv(ALLOW)
        send(app, org, made["id"], dedup_key="refused")
        assert deliver_due(app.state.db) == 1
    assert len(hook.requests) == 1
    with app.state.db.sessions() as db:
        refused = db.scalars(select(Delivery).where(Delivery.dedup_key == "refused")).one()
    assert refused.status == "pending" and refused.attempts == 1
    assert refused.last_error.startswith("localhost is ")
    assert "a loopback address; webhooks are not sent there" in refused.last_error


def test_https_to_the_checked_address_still_verifies_the_name(server, local_receivers,
                                                               monkeypatch, tmp_path):
    """The connection goes to the address that was checked, but TLS speaks to the name: the
    certificate must be for `localhost` (it names no address), and one for another name,
    trusted as it is, is refused before anything is sent."""
    app, client = server
    org, team, token = make_tenant(app, "acme")
    good = self_signed(tmp_path, "localhost")
    wrong = self_signed(tmp_path, "elsewhere.example")
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(Path(good[0]).read_text() + Path(wrong[0]).read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    with HttpReceiver(tls=good) as right, HttpReceiver(tls=wrong) as impostor:
        ok = channel(client, team, token, "webhook", f"https://localhost:{right.port}/hook")
        bad = channel(client, team, token, "slack", f"https://localhost:{impostor.port}/hook")
        send(app, org, ok["id"])
        send(app, org, bad["id"])
        assert deliver_due(app.state.db) == 2
    assert len(right.requests) == 1 and impostor.requests == []
    assert right.requests[0].headers["Host"] == f"localhost:{right.port}"
    with app.state.db.sessions() as db:
        rows = {d.channel_id: d for d in db.scalars(select(Delivery))}
    assert rows[ok["id"]].status == "delivered"
    assert rows[bad["id"]].status == "pending"
    assert "Hostname mismatch" in rows[bad["id"]].last_error


PLANTED = "<img src=x onerror=alert(1)> PLANTED"


def test_last_error_keeps_nothing_the_receiver_wrote(server, local_receivers, monkeypatch):
    """Not the body, not the reason phrase, not a Location, not a malformed answer: only
    the status with its standard phrase, or the kind of failure."""
    monkeypatch.setenv("RUNESTONE_NOTIFY_TIMEOUT", "5")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver(statuses=[500], reason=PLANTED, reply=PLANTED.encode() * 50) as body, \
            HttpReceiver(statuses=[302], location=f"https://x.example/{PLANTED}") as moved, \
            HttpReceiver(raw=f"{PLANTED}\r\n\r\n".encode()) as garbage:
        made = {name: channel(client, team, token, "webhook", receiver.url)["id"]
                for name, receiver in (("body", body), ("moved", moved),
                                       ("garbage", garbage))}
        for channel_id in made.values():
            send(app, org, channel_id)
        assert deliver_due(app.state.db) == 3
    with app.state.db.sessions() as db:
        errors = {name: db.scalars(select(Delivery.last_error).where(
            Delivery.channel_id == channel_id)).one() for name, channel_id in made.items()}
    assert errors["body"] == "HTTP 500 Internal Server Error"
    assert errors["moved"].startswith("HTTP 302 Found: redirects are not followed")
    assert errors["garbage"] == "RemoteProtocolError"
    listed = client.get(f"/api/v1/teams/{team}/channels/{made['body']}/deliveries",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert [d["last_error"] for d in listed] == ["HTTP 500 Internal Server Error"]
    for error in errors.values():
        assert "PLANTED" not in error and "<" not in error


def test_concurrent_enqueues_of_one_key_make_one_delivery(server):
    """Two transactions enqueue the same message at once (two replicas routing the same
    approval): the second enqueues before the first has committed."""
    app, client = server
    org, team, token = make_tenant(app, "acme")
    made = channel(client, team, token, "webhook", "https://hooks.example/x")
    first_in, second_in = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def enqueue_once(before: threading.Event | None, after: threading.Event,
                     hold: threading.Event | None) -> None:
        try:
            if before is not None:
                assert before.wait(5)
            with app.state.db.sessions() as db:
                enqueue(db, org_id=org, team_id=team, channel_id=made["id"], subject="s",
                        text="t", dedup_key="approval:7:level:0")
                after.set()
                if hold is not None:  # commit once the other has enqueued, or waits for us
                    hold.wait(1.0)
                db.commit()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=enqueue_once, args=(None, first_in, second_in)),
               threading.Thread(target=enqueue_once, args=(first_in, second_in, None))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    with app.state.db.sessions() as db:
        assert db.scalars(select(Delivery.dedup_key)).all() == ["approval:7:level:0"]


def test_a_send_from_a_thread_whose_event_loop_runs_is_made(server, monkeypatch):
    """Delivery called where an event loop is already running (from async code, or in a
    process that also drives Playwright's sync API) sends as anywhere else: the request's
    own `asyncio.run` is refused there, and every send failed as an unexpected error."""
    monkeypatch.setenv(ALLOW, "1")
    app, client = server
    org, team, token = make_tenant(app, "acme")
    with HttpReceiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        made = channel(client, team, token, "webhook", f"http://localhost:{port}/hook")
        send(app, org, made["id"], dedup_key="inside-a-running-loop")

        async def from_async_code() -> int:
            return deliver_due(app.state.db)

        # In a thread of its own: this test's thread may already run a loop (Playwright's,
        # when the web tests ran first in this worker), where asyncio.run would refuse.
        delivered: list[int] = []
        runner = threading.Thread(target=lambda: delivered.append(asyncio.run(from_async_code())))
        runner.start()
        runner.join(60)
        assert delivered == [1]
        assert [r.headers["Host"] for r in hook.requests] == [f"localhost:{port}"]
    with app.state.db.sessions() as db:
        assert db.scalar(select(Delivery.status)) == "delivered"
