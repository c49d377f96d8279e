"""Single sign-on against a real OpenID Provider process (tests/oidc_provider.py, Authlib's
server side): the code flow with PKCE maps a person to a team and role by groups; a wrong
issuer, audience or nonce, an expired token, a bad signature and an unknown group are each
refused with the reason; the state is bound to the browser and used once; an organisation
can turn passwords off while its first admin keeps one."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from liveserver import PASSWORD, ServerProcess, api, request
from oidc_provider import ProviderProcess

pytest.importorskip("flask", reason="the [test] extra is not installed")

USERS = {"ana": ["eng", "other"], "eve": ["unknown-group"], "alice": ["eng"],
         "otto": ["eng", "leads"]}


@pytest.fixture
def world(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'sso.sqlite3'}"
    server = ServerProcess(database_url, tmp_path / "server")
    provider = ProviderProcess(tmp_path / "provider", server.base, USERS)
    provider.start()
    server.init()
    server.start()
    try:
        admin = server.login()
        team = api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})["id"]
        api(server.base, "PUT", "/api/v1/sso", admin, {
            "issuer": provider.issuer, "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "group_map": [{"group": "eng", "team": "core", "role": "approver"},
                          {"group": "leads", "team": "core", "role": "admin"}]})
        yield server, provider, admin, team, database_url
    finally:
        server.stop()
        provider.stop()


def sign_in(server: ServerProcess, username: str, *, replay: bool = False,
            keep_state_cookie: bool = True) -> httpx.Response:
    """Through the flow as a browser would: start, the provider's form, the callback."""
    with httpx.Client(timeout=30) as browser:
        started = browser.get(f"{server.base}/sso/start", params={"organisation": "acme"})
        assert started.status_code == 200, started.text
        where = html.unescape(started.text.split('id="continue" href="')[1].split('"')[0])
        assert "/authorize?" in where
        form = browser.get(where)
        assert form.status_code == 200, form.text
        query = parse_qs(urlsplit(where).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
        back = browser.post(where, data={"username": username})
        assert back.status_code == 302, back.text
        callback = back.headers["location"]
        bound = browser.cookies.get("runestone_sso_state")
        if not keep_state_cookie:
            browser.cookies.clear()
        answer = browser.get(callback)
        if replay:  # the same callback again, with the state cookie it was bound to
            answer = httpx.get(callback, cookies={"runestone_sso_state": bound}, timeout=30)
        if answer.status_code == 303:
            answer.extensions["page"] = browser.get(f"{server.base}/").text
        return answer


def _role(url: str, username: str) -> str | None:
    from runestone_server.db import Database
    from runestone_server.models import Membership, User

    db = Database(url)
    try:
        with db.sessions() as session:
            return session.scalar(select(Membership.role).join(
                User, User.id == Membership.user_id).where(User.username == username))
    finally:
        db.engine.dispose()


def test_sign_in_maps_groups_to_team_and_role(world):
    server, provider, admin, team, url = world
    answer = sign_in(server, "ana")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "runestone_session=" in answer.headers["set-cookie"]
    assert "ana" in answer.extensions["page"]
    assert _role(url, "ana") == "approver"
    assert sign_in(server, "otto").status_code == 303
    assert _role(url, "otto") == "admin"  # the strongest role of his groups
    # The map changes; the next sign-in follows it.
    api(server.base, "PUT", "/api/v1/sso", admin, {
        "issuer": provider.issuer, "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "group_map": [{"group": "eng", "team": "core", "role": "auditor"}]})
    assert sign_in(server, "ana").status_code == 303
    assert _role(url, "ana") == "auditor"
    assert team


BAD_TOKENS = (
    ("wrong_issuer", "issuer is wrong"),
    ("wrong_audience", "audience is wrong"),
    ("wrong_nonce", "nonce is wrong"),
    ("expired", "has expired"),
    ("bad_signature", "signature does not verify"),
)


def test_a_bad_id_token_is_refused_with_the_reason(world):
    server, provider, _admin, _team, url = world
    for mode, reason in BAD_TOKENS:  # one provider and server for all: each starts slowly
        provider.mode(mode)
        answer = sign_in(server, "ana")
        assert answer.status_code == 401, mode
        assert reason in answer.text, mode
        assert "runestone_session" not in answer.headers.get("set-cookie", ""), mode
        assert _role(url, "ana") is None, mode  # no user was made
    provider.mode("none")
    assert sign_in(server, "ana").status_code == 303  # the same flow, a right token


def test_an_unknown_group_a_foreign_browser_and_a_replay_are_refused(world):
    server, _provider, _admin, _team, _url = world
    answer = sign_in(server, "eve")
    assert answer.status_code == 401 and "none of your groups (unknown-group)" in answer.text
    answer = sign_in(server, "ana", keep_state_cookie=False)
    assert answer.status_code == 401 and "did not start in this browser" in answer.text
    answer = sign_in(server, "ana", replay=True)
    assert answer.status_code == 401 and "used already" in answer.text
    # A provider user named like the local admin does not become her.
    answer = sign_in(server, "alice")
    assert answer.status_code == 401 and "exists already" in answer.text


def test_passwords_off_except_for_the_first_admin(world):
    server, provider, admin, team, _url = world
    api(server.base, "POST", "/api/v1/users", admin, {"username": "carol",
                                                      "password": PASSWORD})
    api(server.base, "PUT", f"/api/v1/teams/{team}/members", admin,
        {"username": "carol", "role": "member"})
    assert server.login("carol", PASSWORD)
    api(server.base, "PUT", "/api/v1/sso", admin, {
        "issuer": provider.issuer, "client_id": provider.client_id,
        "client_secret": provider.client_secret, "local_passwords": False,
        "group_map": [{"group": "eng", "team": "core", "role": "approver"}]})
    status, answer = request(server.base, "POST", "/api/v1/login", body={
        "organisation": "acme", "username": "carol", "password": PASSWORD})
    assert status == 403 and "single sign-on" in answer["detail"]
    assert server.login()  # alice, the first admin, keeps her password
    assert sign_in(server, "ana").status_code == 303
    # The dashboard's form says so too.
    with httpx.Client(timeout=30) as browser:
        page = browser.get(f"{server.base}/login")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        refused = browser.post(f"{server.base}/login", data={
            "csrf": token, "next": "/", "organisation": "acme", "username": "carol",
            "password": PASSWORD})
    assert refused.status_code == 403 and "single sign-on" in refused.text


def test_settings_are_checked_and_the_secret_never_shown(world):
    server, provider, admin, _team, _url = world
    shown = api(server.base, "GET", "/api/v1/sso", admin)
    assert "client_secret" not in shown
    assert shown["redirect_uri"] == f"{server.base}/sso/callback"
    status, answer = request(server.base, "PUT", "/api/v1/sso", admin, {
        "issuer": provider.issuer, "client_id": "x", "client_secret": "y",
        "group_map": [{"group": "eng", "team": "nope", "role": "approver"}]})
    assert status == 400 and "no such team" in answer["detail"]
    status, answer = request(server.base, "PUT", "/api/v1/sso", admin, {
        "issuer": "http://sso.example.com", "client_id": "x", "client_secret": "y"})
    assert status == 400 and "https" in answer["detail"]
