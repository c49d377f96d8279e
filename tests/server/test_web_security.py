"""Security of the dashboard's pages, on SQLite and PostgreSQL: CSRF on every form (the
router's POST routes are enumerated, so a new form is covered without being listed), no
state change by GET, cookie flags, the CSP and friends on every response, escaped output,
no open redirect, and another tenant's objects are 404."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import uuid
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, text

V1 = '[policy]\nname = "v1"\ndefault = "ask"\ninclude = ["default"]\n'
V2 = V1.replace('"v1"', '"v2"') + (
    '\n[[rule]]\nid = "team.no-curl"\ndecision = "deny"\nreason = "no curl"\n'
    'program = ["curl"]\n')
PASSWORD = "correct horse battery"
POSTGRES = os.environ.get("RUNESTONE_TEST_POSTGRES", "")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@functools.cache
def password_hash() -> str:
    """argon2 is slow on purpose: hash the test password once."""
    from runestone_server.security import hash_password

    return hash_password(PASSWORD)


def add_user(app, org_name: str, username: str, *, org_admin: bool = False) -> int:
    from runestone_server.models import Organisation, User

    with app.state.db.sessions() as db:
        org = db.scalar(select(Organisation).where(Organisation.name == org_name))
        if org is None:
            org = Organisation(name=org_name)
            db.add(org)
            db.flush()
        user = User(org_id=org.id, username=username, org_admin=org_admin,
                    password_hash=password_hash())
        db.add(user)
        db.commit()
        return user.id


def login(client, org: str, username: str, next_path: str = "/"):
    """Sign in through the form; the response of the POST (not followed)."""
    page = client.get("/login", params={"next": next_path})
    token = CSRF.search(page.text).group(1)
    return client.post("/login", data={"csrf": token, "organisation": org,
                                       "username": username, "password": PASSWORD,
                                       "next": next_path}, follow_redirects=False)


def csrf_of(client, path: str = "/teams") -> str:
    return CSRF.search(client.get(path).text).group(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    """One server per database for the whole module (the tests below either change nothing
    or only add rows): acme: admin alice (org admin), bob a plain member of team core with
    v1 and v2 and an API token; globex: mallory, an org admin of another tenant."""
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app
    from runestone_server.migrate import upgrade

    tmp = tmp_path_factory.mktemp("web-security")
    with database(request.param, tmp) as url:
        app = create_app(url, key_path=str(tmp / "server.ed25519"), worker_interval=0)
        upgrade(app.state.db)
        with TestClient(app) as client:
            yield from _populate(app, client)
        app.state.db.engine.dispose()


@contextlib.contextmanager
def database(kind: str, tmp):
    """A fresh database of `kind`, as tests/server/conftest.py makes them."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'web.sqlite3'}"
        return
    if not POSTGRES:
        pytest.skip("set RUNESTONE_TEST_POSTGRES=postgresql://user@host:port/db to run the "
                    "control-plane tests on PostgreSQL")
    import psycopg

    name = f"runestone_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _populate(app, client):
    from fastapi.testclient import TestClient

    add_user(app, "acme", "alice", org_admin=True)
    add_user(app, "acme", "bob")
    add_user(app, "globex", "mallory", org_admin=True)
    assert login(client, "acme", "alice").status_code == 303
    token = csrf_of(client)
    made = client.post("/teams", data={"csrf": token, "name": "core"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    team = int(made.headers["location"].rsplit("/", 1)[1])
    for body, message in ((V1, "first"), (V2, "no curl")):
        r = client.post(f"/teams/{team}/policies", data={"csrf": token, "text": body,
                                                         "message": message},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
    r = client.post(f"/teams/{team}/members", data={"csrf": token, "username": "bob",
                                                    "role": "member"},
                    follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/tokens", data={"csrf": token, "name": "ci", "scopes": "read",
                                     "days": "30"})
    assert r.status_code == 201
    api_token = re.search(r'id="new-token">([^<]+)<', r.text).group(1)
    from runestone_server.models import ApiToken

    with app.state.db.sessions() as db:
        token_id = db.scalar(select(ApiToken.id).where(ApiToken.kind == "api"))
    other = TestClient(app)
    assert login(other, "globex", "mallory").status_code == 303
    extra = {}
    if HAVE_APPROVALS:
        approval_id = ask(client, team, EVIL_COMMAND)
        extra = {"approval_id": approval_id, "request_id": "req-evil-1",
                 "runtime_id": runtime_of("req-evil-1")}
    yield {"app": app, "client": client, "team": team, "token_id": token_id, "other": other,
           "extra_ids": extra, "api_token": api_token}
    other.close()


HAVE_APPROVALS = importlib.util.find_spec("runestone_server.approvals.service") is not None
EVIL_COMMAND = 'echo "<script>alert(1)</script>" > /tmp/<b>x</b> && curl https://e.example/<i>'


def runtime_of(name: str) -> str:
    return "rt_" + hashlib.sha256(name.encode()).hexdigest()[:16]


def enroll(client, team: int, name: str) -> str:
    """Enroll the runtime `runtime_of(name)` with `team` through the API; its credential."""
    api = client.post("/api/v1/login", json={"organisation": "acme", "username": "alice",
                                             "password": PASSWORD}).json()["token"]
    bearer = {"Authorization": f"Bearer {api}"}
    enrollment = client.post(f"/api/v1/teams/{team}/enrollment-tokens", headers=bearer,
                             json={"labels": {"host": "ci"}}).json()["token"]
    enrolled = client.post("/api/v1/enroll", json={
        "token": enrollment, "runtime_id": runtime_of(name), "public_key": "ab" * 32,
        "labels": {}})
    assert enrolled.status_code == 201, enrolled.text
    return enrolled.json()["credential"]


def ask(client, team: int, command: str, request_id: str = "req-evil-1") -> int:
    """A real ask from a real (API-enrolled) runtime, through the runtime API."""
    credential = enroll(client, team, request_id)
    made = client.post("/api/v1/runtime/approvals", headers={
        "Authorization": f"Bearer {credential}"}, json={
        "request_id": request_id, "action_hash": "c" * 64, "tool": "Bash",
        "summary": f"run {command}", "reason": "<u>asks</u> for shell", "rules": ["r.<x>"],
        "severity": "high", "input": {"command": command}, "user": "carol",
        "agent": "claude", "mode": "wait"})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def fill(path: str, world) -> str:
    values = {"team_id": world["team"], "token_id": world["token_id"], "number": 1,
              "name": "app.css", "delegation_id": 1, "group_id": 1,
              "runtime_id": runtime_of("none"), "grant_id": "grt_" + "0" * 24}
    values.update(world.get("extra_ids", {}))

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"the security tests need an id for {{{name}}} in {path}"
        return str(values[name])

    return re.sub(r"\{(\w+)\}", one, path)


def snapshot(app) -> str:
    """A digest of every row of every table: equal digests, nothing changed."""
    from runestone_server.models import Base

    digest = hashlib.sha256()
    with app.state.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(text(f'SELECT * FROM "{table.name}" ORDER BY 1')).all()
            digest.update(repr((table.name, rows)).encode())
    return digest.hexdigest()


def routes(method: str):
    from runestone_server.web.pages import page_routes

    return [r for r in page_routes() if method in r.methods]


def test_every_form_refuses_a_missing_or_wrong_csrf_token(world):
    client, app = world["client"], world["app"]
    posts = routes("POST")
    assert {"/login", "/logout", "/teams/{team_id}/members", "/tokens",
            "/teams/{team_id}/publications", "/teams/{team_id}/policies"} <= \
        {r.path for r in posts}
    before = snapshot(app)
    for route in posts:
        path = fill(route.path, world)
        form = {"name": "x", "username": "bob", "role": "owner", "number": "1",
                "text": V1, "password": PASSWORD, "organisation": "acme", "vote": "approve"}
        missing = client.post(path, data=form, follow_redirects=False)
        assert missing.status_code == 403, (path, missing.status_code, missing.text[:300])
        wrong = client.post(path, data={**form, "csrf": "0" * 64}, follow_redirects=False)
        assert wrong.status_code == 403, (path, wrong.status_code)
        # Another session's valid token is wrong here too: tokens are bound to a session.
        stolen = client.post(path, data={**form, "csrf": csrf_of(world["other"])},
                             follow_redirects=False)
        assert stolen.status_code == 403, (path, stolen.status_code)
        assert "CSRF" in missing.text
    assert snapshot(app) == before
    # Still signed in: the refused logout did not end the session.
    assert client.get("/teams").status_code == 200


def test_no_get_changes_anything(world):
    client, app = world["client"], world["app"]
    before = snapshot(app)
    seen = 0
    for route in routes("GET"):
        path = fill(route.path, world)
        for params in ({}, {"old": 1, "new": 2, "number": 1, "role": "owner",
                            "username": "bob", "vote": "approve", "csrf": csrf_of(client)}):
            response = client.get(path, params=params, follow_redirects=False)
            assert response.status_code < 500, (path, response.text[:300])
            seen += 1
    assert seen >= 2 * 8
    assert snapshot(app) == before
    # A GET on a form's address does not run the form either.
    for route in routes("POST"):
        client.get(fill(route.path, world), follow_redirects=False)
    assert snapshot(app) == before


def test_security_headers_on_every_page_and_error(world):
    client = world["client"]
    anonymous_paths = ["/login", "/", "/teams/999999", "/no/such/page"]
    checked = 0
    responses = [client.get(fill(r.path, world), follow_redirects=False)
                 for r in routes("GET")]
    responses += [client.get(p, follow_redirects=False) for p in anonymous_paths]
    responses.append(world["other"].get(f"/teams/{world['team']}"))  # 404, another tenant
    responses.append(client.post("/tokens", data={}, follow_redirects=False))  # 403
    for response in responses:
        if response.status_code == 404 and "application/json" in \
                response.headers.get("content-type", ""):
            continue  # not a page route (Starlette's own 404)
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, response.url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        checked += 1
    assert checked >= 10
    # No page carries inline script: every <script> has a src on our own origin.
    for route in routes("GET"):
        html = client.get(fill(route.path, world)).text
        for tag in re.findall(r"<script[^>]*>", html):
            assert re.search(r'src="/static/[a-z.]+"', tag), tag
        assert " on" + "click=" not in html and "javascript:" not in html


def test_session_cookie_flags(world, monkeypatch):
    from fastapi.testclient import TestClient

    app = world["app"]
    with TestClient(app) as client:
        plain = login(client, "acme", "alice")
    cookie = plain.headers["set-cookie"]
    assert "runestone_session=" in cookie and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back

    with TestClient(app, base_url="https://testserver") as tls:
        cookie = login(tls, "acme", "alice").headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie

    # Behind a TLS-terminating proxy: believed only when the operator says so.
    forwarded = {"X-Forwarded-Proto": "https"}
    with TestClient(app, headers=forwarded) as proxied:
        assert "Secure" not in login(proxied, "acme", "alice").headers["set-cookie"]
    monkeypatch.setenv("RUNESTONE_SERVER_TRUST_PROXY", "1")
    with TestClient(app, headers=forwarded) as trusted:
        page = trusted.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        # The client speaks plain HTTP to the proxy's back end, so it would not send a
        # Secure cookie back by itself: hand it over as the browser (on HTTPS) would.
        value = re.search(r"runestone_prelogin=([^;]+)", page.headers["set-cookie"]).group(1)
        form = {"csrf": CSRF.search(page.text).group(1), "organisation": "acme",
                "username": "alice", "password": PASSWORD, "next": "/"}
        signed = trusted.post("/login", data=form, follow_redirects=False,
                              headers={"Cookie": f"runestone_prelogin={value}"})
        assert signed.status_code == 303
        assert "Secure" in signed.headers["set-cookie"]


def test_wrong_password_and_logout_revokes_the_session(world):
    from fastapi.testclient import TestClient

    from runestone_server.models import ApiToken
    from runestone_server.security import token_hash

    app = world["app"]
    client = TestClient(app)
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    wrong = client.post("/login", data={"csrf": token, "organisation": "acme",
                                        "username": "alice", "password": "nope" * 4})
    assert wrong.status_code == 401 and "runestone_session" not in wrong.headers.get(
        "set-cookie", "")
    assert login(client, "acme", "alice").status_code == 303
    secret = client.cookies["runestone_session"]
    assert client.get("/teams").status_code == 200
    out = client.post("/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303
    with app.state.db.sessions() as db:
        row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
        assert row.kind == "session" and row.revoked is not None
    # The old cookie, replayed, is worth nothing.
    client.cookies.set("runestone_session", secret)
    again = client.get("/teams", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    # An API token is no session cookie.
    client.cookies.set("runestone_session", world["api_token"])
    assert client.get("/teams", follow_redirects=False).status_code == 303
    assert world["client"].get("/teams").status_code == 200  # other sessions live on
    client.close()


OFF_SITE = ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
            "javascript:alert(1)", "/%0d%0aLocation:%20https://evil.example",
            "http:/evil.example", "/\t/evil.example", "evil.example", "/\x00//evil.example"]


def is_local(location: str) -> bool:
    parts = urlsplit(location)
    return (not parts.scheme and not parts.netloc and location.startswith("/")
            and not location.startswith(("//", "/\\"))
            and not any(ord(c) < 0x20 for c in location))


def test_sign_in_never_redirects_off_site(world):
    from fastapi.testclient import TestClient

    from runestone_server.web.render import safe_next

    for target in OFF_SITE:
        assert is_local(safe_next(target)), target
        if not target.startswith("/%0d"):
            assert safe_next(target) == "/", target
    for target in OFF_SITE[:3] + OFF_SITE[5:6]:  # through the real form, too
        with TestClient(world["app"]) as client:
            response = login(client, "acme", "alice", target)
            assert response.status_code == 303
            assert is_local(response.headers["location"]), (target, response.headers)


def test_sign_in_returns_to_the_requested_page(world):
    from fastapi.testclient import TestClient

    with TestClient(world["app"]) as client:
        first = client.get("/tokens?x=1", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=/tokens%3Fx%3D1"
        response = login(client, "acme", "alice", "/tokens?x=1")
        assert response.headers["location"] == "/tokens?x=1"


def test_output_is_escaped(world):
    client, team = world["client"], world["team"]
    token = csrf_of(client)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = client.post(f"/teams/{team}/policies", data={
        "csrf": token, "text": V1 + f"# {evil}\n", "message": evil}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/people", data={"csrf": token, "username": "eve",
                                     "password": PASSWORD + evil}, follow_redirects=False)
    for path in (f"/teams/{team}/policies", f"/teams/{team}/policies/3",
                 f"/teams/{team}/policies/diff?old=1&new=3"):
        html = client.get(path).text
        assert "&lt;script&gt;alert(" in html, path
        assert "<script>alert" not in html and "<img src=x" not in html, path
    if HAVE_APPROVALS:
        for path in (f"/approvals/{world['extra_ids']['approval_id']}", "/approvals",
                     "/approvals/rows"):
            html = client.get(path).text
            assert "<script>alert" not in html and "<b>x</b>" not in html, path
            assert "<u>asks" not in html and "r.<x>" not in html, path
        html = client.get(f"/approvals/{world['extra_ids']['approval_id']}").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
        assert "/tmp/&lt;b&gt;x&lt;/b&gt;" in html  # the redirect target, analysed
    # A refused form echoes what was typed, escaped.
    r = client.post(f"/teams/{team}/policies", data={"csrf": token, "text": evil,
                                                     "message": evil})
    assert r.status_code == 400 and "<script>alert" not in r.text
    assert "&lt;script&gt;" in r.text


def test_another_tenants_objects_are_not_found(world):
    other, team = world["other"], world["team"]
    paths = [f"/teams/{team}", f"/teams/{team}/policies", f"/teams/{team}/policies/1",
             f"/teams/{team}/policies/diff?old=1&new=2",
             f"/teams/{team}/policies/1/simulation", f"/audit?team={team}",
             f"/audit/export?team={team}", f"/teams/{team}/usage",
             f"/teams/{team}/friction", f"/teams/{team}/proposals",
             f"/teams/{team}/grants"]
    if HAVE_APPROVALS:
        paths += [f"/approvals/{world['extra_ids']['approval_id']}",
                  f"/teams/{team}/approvers", "/audit/calls/req-evil-1"]
        assert "req-evil-1" not in other.get("/approvals/rows").text
    for path in paths:
        response = other.get(path)
        assert response.status_code == 404, path
        assert "v1" not in response.text and "core" not in response.text
    token = csrf_of(other)
    before = snapshot(world["app"])
    for path, form in ((f"/teams/{team}/members", {"username": "mallory", "role": "owner"}),
                       (f"/teams/{team}/publications", {"number": "1"}),
                       (f"/teams/{team}/policies", {"text": V1}),
                       (f"/tokens/{world['token_id']}/revoke", {}),
                       (f"/teams/{team}/proposal-settings",
                        {"min_approvals": "1", "min_people": "1"}),
                       (f"/teams/{team}/proposals/draft", {"rule_hash": "0" * 64}),
                       (f"/teams/{team}/grants", {"command": "ls", "uses": "1",
                                                  "expires_minutes": "5"}),
                       (f"/teams/{team}/grants/grt_{'0' * 24}/revoke", {"reason": "x"}),
                       *(((f"/approvals/{world['extra_ids']['approval_id']}/vote",
                           {"vote": "deny"}),
                          (f"/teams/{team}/runtimes/{world['extra_ids']['runtime_id']}/revoke",
                           {"reason": "x", "confirm": world["extra_ids"]["runtime_id"]}),
                          (f"/teams/{team}/approver-groups", {"name": "x"}),
                          (f"/teams/{team}/approver-groups/1/delete", {}),
                          (f"/teams/{team}/approval-settings", {}))
                         if HAVE_APPROVALS else ())):
        response = other.post(path, data={"csrf": token, **form}, follow_redirects=False)
        assert response.status_code == 404, (path, response.status_code)
    assert snapshot(world["app"]) == before


def test_roles_are_the_apis(world):
    """bob is a member: he reads the team and its policies but cannot publish or add."""
    from fastapi.testclient import TestClient

    app, team = world["app"], world["team"]
    with TestClient(app) as bob:
        login(bob, "acme", "bob")
        assert bob.get(f"/teams/{team}/policies").status_code == 200
        assert "Publish v1" not in bob.get(f"/teams/{team}/policies").text
        for figures in ("usage", "friction", "proposals"):  # audit figures: not members
            assert bob.get(f"/teams/{team}/{figures}").status_code == 403
        token = csrf_of(bob)
        r = bob.post(f"/teams/{team}/publications", data={"csrf": token, "number": "1"})
        assert r.status_code == 403 and "roles" in r.text
        r = bob.post(f"/teams/{team}/members", data={"csrf": token, "username": "bob",
                                                     "role": "owner"})
        assert r.status_code == 403
        r = bob.post("/people", data={"csrf": token, "username": "x", "password": PASSWORD})
        assert r.status_code == 403
        r = bob.post(f"/teams/{team}/proposal-settings",
                     data={"csrf": token, "min_approvals": "1", "min_people": "1"})
        assert r.status_code == 403
        r = bob.post(f"/teams/{team}/proposals/draft",
                     data={"csrf": token, "rule_hash": "0" * 64})
        assert r.status_code == 403
        assert bob.get(f"/teams/{team}/grants").status_code == 200  # members see them
        r = bob.post(f"/teams/{team}/grants", data={"csrf": token, "command": "ls",
                                                    "uses": "1", "expires_minutes": "5"})
        assert r.status_code == 403


def test_overview_counts_come_from_a_rollup_that_counts_each_entry_once(world, monkeypatch):
    """Decisions per day and most denied rules are read from the worker's roll-up; two
    replicas rolling up at once count every entry exactly once."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, insert

    from runestone_server.audit.models import AuditEntry
    from runestone_server.web.models import DecisionDay
    from runestone_server.web.rollup import roll_up_once

    app, team = world["app"], world["team"]
    now = datetime.now(UTC)
    old = now - timedelta(minutes=5)
    rows = [{"org_id": 1, "team_id": team, "runtime_id": "rt_rollup", "seq": i,
             "kind": "decision" if i % 3 else "request", "request_id": f"r{i}",
             "time": now - timedelta(days=i % 2), "decision": ("deny", "allow")[i % 2],
             "rule": "fs.<b>rm</b>" if i % 2 == 0 else None, "hash": "0" * 64, "entry": {},
             "received": old} for i in range(1, 61)]
    with app.state.db.engine.begin() as conn:
        conn.execute(insert(AuditEntry), rows)
    decisions = [r for r in rows if r["kind"] == "decision"]
    denies = sum(1 for r in decisions if r["decision"] == "deny")

    import threading

    import runestone_server.web.rollup as rollup

    monkeypatch.setattr(rollup, "BATCH", 7)  # many small claims: many chances to race
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            while True:
                with app.state.db.sessions() as db:
                    if not roll_up_once(db):
                        return
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=replica) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    with app.state.db.sessions() as db:
        assert db.scalar(select(func.sum(DecisionDay.count)).where(
            DecisionDay.team_id == team)) == len(decisions)
    html = world["client"].get("/").text
    assert f"deny {denies}" in html and f"allow {len(decisions) - denies}" in html
    assert "fs.&lt;b&gt;rm&lt;/b&gt;" in html  # the most denied rule, escaped


def test_a_removed_member_loses_the_team(world):
    """carol is added as an auditor, then removed through the team page's form."""
    from fastapi.testclient import TestClient

    app, client, team = world["app"], world["client"], world["team"]
    add_user(app, "acme", "carol")
    token = csrf_of(client)
    added = client.post(f"/teams/{team}/members", data={"csrf": token, "username": "carol",
                                                        "role": "auditor"},
                        follow_redirects=False)
    assert added.status_code == 303
    assert "<td>carol</td>" in client.get(f"/teams/{team}").text
    with TestClient(app) as carol:
        login(carol, "acme", "carol")
        assert carol.get(f"/teams/{team}").status_code == 200
        r = carol.post(f"/teams/{team}/members/remove",
                       data={"csrf": csrf_of(carol), "username": "bob"})
        assert r.status_code == 403  # an auditor removes nobody
        removed = client.post(f"/teams/{team}/members/remove",
                              data={"csrf": token, "username": "carol"},
                              follow_redirects=False)
        assert removed.status_code == 303
        assert carol.get(f"/teams/{team}").status_code == 404
    assert "<td>carol</td>" not in client.get(f"/teams/{team}").text  # gone from the table


def test_the_revoke_form_is_for_managers_and_asks_for_a_reason_and_the_id(world):
    """A runtime revoked from the team page: bob (a member) sees no form and is refused;
    alice must give a reason and type the runtime's id; then the row says who, when and why
    (escaped), the runtime's credential is refused, and the form is gone for that row."""
    from fastapi.testclient import TestClient

    app, client, team = world["app"], world["client"], world["team"]
    credential = enroll(client, team, "to-revoke")
    runtime_id = runtime_of("to-revoke")
    path = f"/teams/{team}/runtimes/{runtime_id}/revoke"
    reason = 'retired <b>"old"</b> laptop'
    assert f'action="{path}"' in client.get(f"/teams/{team}").text
    with TestClient(app) as bob:
        login(bob, "acme", "bob")
        page = bob.get(f"/teams/{team}").text
        assert runtime_id in page and f'action="{path}"' not in page
        refused = bob.post(path, data={"csrf": csrf_of(bob), "reason": "x",
                                       "confirm": runtime_id})
        assert refused.status_code == 403 and "roles" in refused.text
    token = csrf_of(client)
    before = snapshot(app)
    for form, problem in (({"reason": reason}, "type its id"),
                          ({"reason": reason, "confirm": runtime_of("other")}, "type its id"),
                          ({"reason": "  ", "confirm": runtime_id}, "say why")):
        response = client.post(path, data={"csrf": token, **form})
        assert response.status_code == 400 and problem in response.text, response.text[:300]
    assert snapshot(app) == before
    done = client.post(path, data={"csrf": token, "reason": reason, "confirm": runtime_id},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/teams/{team}#runtimes"
    html = client.get(f"/teams/{team}").text
    row = html[html.index(f"<code>{runtime_id}</code>"):]
    row = row[:row.index("</tr>")]
    assert "revoked</span> by alice on" in row
    assert "retired &lt;b&gt;&#34;old&#34;&lt;/b&gt; laptop" in row and "<b>" not in row
    assert f'action="{path}"' not in html
    assert client.get("/api/v1/runtime/policy", headers={
        "Authorization": f"Bearer {credential}"}).status_code == 403


def test_the_inbox_team_filter_lists_only_the_viewers_teams(world):
    """Issue 17: the inbox's team filter listed every team of the organisation to any
    user. A member sees their own team; someone in no team sees none; an org admin all."""
    from fastapi.testclient import TestClient

    app, client = world["app"], world["client"]
    made = client.post("/teams", data={"csrf": csrf_of(client), "name": "secret-merger"},
                       follow_redirects=False)
    assert made.status_code == 303
    add_user(app, "acme", "carol-" + uuid.uuid4().hex[:6])
    with app.state.db.sessions() as db:
        from runestone_server.models import User

        carol = db.scalar(select(User.username).where(User.username.like("carol-%"))
                          .order_by(User.id.desc()))

    def options(username: str) -> set[str]:
        with TestClient(app) as browser:
            assert login(browser, "acme", username).status_code == 303
            page = browser.get("/approvals")
            assert page.status_code == 200
            select_html = re.search(r'<select name="team">(.*?)</select>', page.text, re.S)
            return set(re.findall(r">([^<]+)</option>", select_html.group(1))) - {"any"}

    assert options("alice") >= {"core", "secret-merger"}
    assert options("bob") == {"core"}
    assert options(carol) == set()


@pytest.mark.skipif(not HAVE_APPROVALS, reason="no approvals domain")
def test_the_approval_page_shows_the_agents_stated_purpose_labelled_and_escaped(world):
    """Issue 17: the agent's stated purpose (Claude Code's description) is shown to the
    approver, as the agent's own words, and escaped like every agent-written field."""
    client, team = world["client"], world["team"]
    credential = enroll(client, team, "req-purpose-1")
    said = 'Tidy up <script>alert("p")</script> & "quotes"'
    made = client.post("/api/v1/runtime/approvals", headers={
        "Authorization": f"Bearer {credential}"}, json={
        "request_id": "req-purpose-1", "action_hash": "e" * 64, "tool": "Bash",
        "summary": "run ls", "rules": ["r"], "mode": "wait",
        "input": {"tool": "Bash", "cwd": "/p", "input": {"command": "ls",
                                                         "description": said}}})
    assert made.status_code == 201, made.text
    html = client.get(f"/approvals/{made.json()['id']}").text
    assert "The agent&#39;s stated purpose (its own words, not checked)" in html
    assert "Tidy up &lt;script&gt;alert(&#34;p&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;" in html
    assert '<script>alert("p")' not in html


@pytest.mark.skipif(not HAVE_APPROVALS, reason="no approvals domain")
def test_an_unpinned_requester_is_shown_as_the_runtimes_own_word(world):
    """A runtime enrolled without a pinned user names its requester itself (issue 17);
    the approver is told so, next to the name."""
    html = world["client"].get(f"/approvals/{world['extra_ids']['approval_id']}").text
    assert "carol" in html
    assert "named by the runtime itself: no user was pinned when it was enrolled" in html
