"""Sign-in throttling and user enumeration, on SQLite and PostgreSQL, as an attacker tries.

The issue's finding: 200 wrong passwords in a row met no delay and the right one worked at
once; the API login answered an unknown user without an argon2 check (timing revealed who
exists). Time is moved by setting throttle.clock, never by sleeping: behaviour, not timing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from runestone_server import signin, throttle
from runestone_server.models import Organisation, ServerEvent, User

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
# Cheap argon2 parameters for test users (the hash carries its own parameters): the
# properties below make hundreds of attempts. The dummy hash keeps the real cost.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    frozen = Clock()
    monkeypatch.setattr(throttle, "clock", frozen)
    return frozen


def add_users(app, org_name: str = "acme", names=("alice", "bob")) -> None:
    with app.state.db.sessions() as db:
        org = Organisation(name=org_name)
        db.add(org)
        db.flush()
        for name in names:
            db.add(User(org_id=org.id, username=name, password_hash=CHEAP.hash(PASSWORD)))
        db.commit()


def api_login(client, username: str, password: str, org: str = "acme"):
    return client.post("/api/v1/login", json={"organisation": org, "username": username,
                                              "password": password})


def events(app, kind: str) -> list[dict]:
    with app.state.db.sessions() as db:
        return [row.detail for row in db.scalars(
            select(ServerEvent).where(ServerEvent.kind == kind))]


def test_two_hundred_wrong_passwords_meet_a_block_and_so_does_the_right_one(server, clock):
    app, client = server
    add_users(app)
    answers = [api_login(client, "alice", f"guess-{n}") for n in range(200)]
    statuses = [answer.status_code for answer in answers]
    # Five failures are free; the sixth is checked and blocks; every later one is refused
    # without a password check while the clock stands still.
    assert statuses[:throttle.ACCOUNT_FREE + 1] == [401] * (throttle.ACCOUNT_FREE + 1)
    assert set(statuses[throttle.ACCOUNT_FREE + 1:]) == {429}
    right = api_login(client, "alice", PASSWORD)
    assert right.status_code == 429
    wait = int(right.headers["Retry-After"])
    assert 1 <= wait <= throttle.MAX_DELAY
    assert "too many failed logins" in right.json()["detail"]
    blocked = events(app, "auth.login_throttled")
    assert blocked == [{"blocked": ["account"], "address": "testclient", "username": "alice",
                        "failures_allowed": {"account": throttle.ACCOUNT_FREE,
                                             "address": throttle.ADDRESS_FREE}}]
    # Another account from the same address is not blocked by alice's count.
    assert api_login(client, "bob", PASSWORD).status_code == 200
    # Once the block has passed, the right password works and the account starts over.
    clock.advance(wait)
    assert api_login(client, "alice", PASSWORD).status_code == 200
    for n in range(throttle.ACCOUNT_FREE):
        assert api_login(client, "alice", f"again-{n}").status_code == 401


def test_backoff_doubles_and_is_forgiven_after_an_hour(server, clock):
    app, client = server
    add_users(app)
    for n in range(throttle.ACCOUNT_FREE + 1):
        api_login(client, "alice", f"guess-{n}")
    waits = []
    for _round in range(4):
        refused = api_login(client, "alice", "still-wrong")
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        clock.advance(waits[-1])
        assert api_login(client, "alice", "wrong-once-more").status_code == 401
    assert waits == [2, 4, 8, 16]
    clock.advance(throttle.FORGET.total_seconds())
    assert api_login(client, "alice", PASSWORD).status_code == 200


def test_one_address_guessing_many_accounts_is_blocked(server, clock):
    """Per address: one client trying a password on every account (names that exist or
    not) is blocked after ADDRESS_FREE failures; another address is not."""
    from fastapi.testclient import TestClient

    app, client = server
    add_users(app)
    for n in range(throttle.ADDRESS_FREE):
        assert api_login(client, f"user{n}", "Winter2026!").status_code == 401
    assert api_login(client, "user-last", "Winter2026!").status_code == 401  # blocks
    refused = api_login(client, "alice", PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert events(app, "auth.login_throttled")[-1]["blocked"] == ["address"]
    with TestClient(app, client=("192.0.2.7", 40000)) as elsewhere:
        assert api_login(elsewhere, "alice", PASSWORD).status_code == 200


def test_the_dashboard_login_is_throttled_too(server, clock):
    app, client = server
    add_users(app)

    def form_login(password: str):
        page = client.get("/login")
        token = CSRF.search(page.text).group(1)
        return client.post("/login", data={"csrf": token, "organisation": "acme",
                                           "username": "alice", "password": password,
                                           "next": "/"}, follow_redirects=False)

    for n in range(throttle.ACCOUNT_FREE + 1):
        assert form_login(f"guess-{n}").status_code == 401
    refused = form_login(PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in refused.text
    assert "runestone_session" not in refused.headers.get("set-cookie", "")
    # The API and the form count the same account.
    assert api_login(client, "alice", PASSWORD).status_code == 429
    clock.advance(throttle.MAX_DELAY)
    assert form_login(PASSWORD).status_code == 303


def test_unknown_or_inactive_users_cost_one_argon2_check_like_a_wrong_password(
        server, clock, monkeypatch):
    """The behaviour behind the timing finding: every failed API login verifies exactly one
    argon2 hash, whether the organisation, the user, or only the password is wrong."""
    app, client = server
    add_users(app)
    with app.state.db.sessions() as db:
        db.add(User(org_id=db.scalar(select(Organisation.id)), username="gone",
                    password_hash=CHEAP.hash(PASSWORD), active=False))
        db.commit()
    checks: list[str] = []
    real = signin.check_password

    def counting(stored: str, password: str) -> bool:
        checks.append(stored)
        return real(stored, password)

    monkeypatch.setattr(signin, "check_password", counting)
    cases = [("acme", "alice", "wrong-password"), ("acme", "nobody", PASSWORD),
             ("no-such-org", "alice", PASSWORD), ("acme", "gone", PASSWORD)]
    for org, username, password in cases:
        checks.clear()
        answer = api_login(client, username, password, org=org)
        assert answer.status_code == 401
        assert answer.json()["detail"] == "wrong organisation, user name or password"
        assert len(checks) == 1, (org, username)
        if username != "alice":
            assert checks == [signin._DUMMY_HASH]


ATTEMPTS = st.lists(st.tuples(st.sampled_from(["alice", "bob", "mallory"]),
                              st.sampled_from(["10.0.0.1", "10.0.0.2"]),
                              st.booleans(),
                              st.sampled_from([0, 0, 0, 1, 3, 30, 600, 4000])),
                    min_size=1, max_size=60)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts=ATTEMPTS)
def test_no_interleaving_gets_more_guesses_than_the_backoff_allows(tmp_path_factory,
                                                                   attempts):
    """Any interleaving of accounts, addresses, right and wrong passwords and waits: a
    login succeeds only with the right password; a blocked account or address refuses
    even the right one; and the wrong passwords checked for an account in one streak are
    at most FREE + 1 plus one per block that has run out (the delays double, so T seconds
    let through at most log2(T/2 + 1) + 1 more)."""
    import math

    from runestone_server.db import Database
    from runestone_server.migrate import upgrade
    from runestone_server.schema import load_all

    load_all()
    db_path = tmp_path_factory.mktemp("throttle") / "t.sqlite3"
    database = Database(f"sqlite:///{db_path}")
    upgrade(database)
    with database.sessions() as db:
        org = Organisation(name="acme")
        db.add(org)
        db.flush()
        for name in ("alice", "bob"):
            db.add(User(org_id=org.id, username=name, password_hash=CHEAP.hash(PASSWORD)))
        db.commit()
    frozen = Clock()
    streak: dict[str, tuple[int, datetime]] = {}  # account -> (wrong checked, streak start)
    original = throttle.clock
    throttle.clock = frozen
    try:
        with database.sessions() as db:
            for username, address, right, wait in attempts:
                frozen.advance(wait)
                password = PASSWORD if right and username != "mallory" else "nope"
                try:
                    user = signin.sign_in(db, "acme", username, password, address)
                except signin.Throttled as exc:
                    assert 1 <= exc.retry_after <= throttle.MAX_DELAY
                    continue
                if user is not None:
                    assert password == PASSWORD and user.username == username
                    streak.pop(username, None)
                    continue
                checked, start = streak.get(username, (0, frozen.now))
                if frozen.now - start >= throttle.FORGET:
                    checked, start = 0, frozen.now
                checked += 1
                streak[username] = (checked, start)
                elapsed = (frozen.now - start).total_seconds()
                bound = throttle.ACCOUNT_FREE + 2 + math.floor(math.log2(elapsed / 2 + 1))
                assert checked <= bound, (username, checked, elapsed)
    finally:
        throttle.clock = original
        database.engine.dispose()
