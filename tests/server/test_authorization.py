"""Every endpoint x every role x another tenant's objects: exactly the allowed set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from runestone_server.models import (
    ROLES,
    ApiToken,
    Membership,
    Organisation,
    Runtime,
    Team,
    User,
)
from runestone_server.security import hash_password, new_token

GOOD_POLICY = '[policy]\ndefault = "ask"\ninclude = ["default"]\n'
RUNTIME = "rt_" + "0a" * 8  # enrolled with team `core`, to be revoked


def _token(db, user: User, scopes=("read", "write")) -> str:
    token, digest = new_token("rst")
    db.add(ApiToken(org_id=user.org_id, user_id=user.id, name="t", token_hash=digest,
                    scopes=list(scopes), kind="api"))
    return token


@pytest.fixture
def world(server):
    """Org A: a team with one user per role, an org admin, an outsider in another team.
    Org B: its own admin and team."""
    app, client = server
    with app.state.db.sessions() as db:
        a, b = Organisation(name="a"), Organisation(name="b")
        db.add_all([a, b])
        db.flush()
        team, other_team = Team(org_id=a.id, name="core"), Team(org_id=a.id, name="other")
        b_team = Team(org_id=b.id, name="b-core")
        db.add_all([team, other_team, b_team])
        db.flush()
        tokens: dict[str, str] = {}
        for role in ROLES:
            user = User(org_id=a.id, username=role, password_hash=hash_password("x" * 12))
            db.add(user)
            db.flush()
            db.add(Membership(org_id=a.id, team_id=team.id, user_id=user.id, role=role))
            tokens[role] = _token(db, user)
        for name, org, is_admin in (("orgadmin", a, True), ("outsider", a, False),
                                    ("b-admin", b, True)):
            user = User(org_id=org.id, username=name, password_hash=hash_password("x" * 12),
                        org_admin=is_admin)
            db.add(user)
            db.flush()
            tokens[name] = _token(db, user)
            if name == "outsider":
                db.add(Membership(org_id=a.id, team_id=other_team.id, user_id=user.id,
                                  role="owner"))
        db.add(Runtime(org_id=a.id, team_id=team.id, runtime_id=RUNTIME, public_key="0" * 64,
                       labels={}, credential_hash=new_token("rsr")[1]))
        db.commit()
        ids = {"team": team.id, "b_team": b_team.id}
    # One version to read, diff and publish.
    created = client.post(f"/api/v1/teams/{ids['team']}/policies",
                          json={"text": GOOD_POLICY, "message": "v1"},
                          headers={"Authorization": f"Bearer {tokens['orgadmin']}"})
    assert created.status_code == 201, created.text
    return app, client, tokens, ids


def endpoints(team: int) -> list[tuple[str, str, dict | None, set[str]]]:
    """(method, path, body, roles allowed); org admins are allowed everything."""
    read = {"owner", "admin", "policy_author", "approver", "auditor", "member"}
    return [
        ("GET", f"/api/v1/teams/{team}/members", None, read),
        # `outsider` is no member of this team: removing them is allowed and changes nothing.
        ("DELETE", f"/api/v1/teams/{team}/members/outsider", None, {"owner", "admin"}),
        ("PUT", f"/api/v1/teams/{team}/members", {"username": "member", "role": "member"},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/policies", None, read),
        ("GET", f"/api/v1/teams/{team}/policies/1", None, read),
        ("GET", f"/api/v1/teams/{team}/diff?old=1&new=1", None, read),
        ("POST", f"/api/v1/teams/{team}/policies", {"text": GOOD_POLICY},
         {"owner", "admin", "policy_author"}),
        ("POST", f"/api/v1/teams/{team}/publications", {"number": 1},
         {"owner", "admin", "policy_author"}),
        ("POST", f"/api/v1/teams/{team}/simulations", {"number": 1},
         {"owner", "admin", "policy_author"}),
        ("POST", f"/api/v1/teams/{team}/enrollment-tokens", {}, {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/runtimes", None, read),
        # Revoking is idempotent: every allowed caller gets the first revocation back.
        ("POST", f"/api/v1/teams/{team}/runtimes/{RUNTIME}/revoke", {"reason": "retired"},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/events", None, {"owner", "admin", "auditor"}),
        # Approvals: managers configure who approves; every member sees the requests.
        ("POST", f"/api/v1/teams/{team}/approver-groups",
         {"name": "approvers", "members": ["approver"]}, {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/approver-groups", None, read),
        ("PUT", f"/api/v1/teams/{team}/approver-groups/1",
         {"name": "approvers", "members": ["approver", "admin"]}, {"owner", "admin"}),
        ("POST", f"/api/v1/teams/{team}/approval-routes",
         {"name": "all", "levels": [{"group_id": 1, "timeout_seconds": 600}]},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/approval-routes", None, read),
        ("DELETE", f"/api/v1/teams/{team}/approval-routes/1", None, {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/approvals", None, read),
        # Audit search: entries, export and the compliance report are for auditors.
        ("GET", f"/api/v1/teams/{team}/audit?q=word&limit=5", None,
         {"owner", "admin", "auditor"}),
        ("GET", f"/api/v1/teams/{team}/audit/export?format=csv", None,
         {"owner", "admin", "auditor"}),
        ("GET", f"/api/v1/teams/{team}/audit/report", None, {"owner", "admin", "auditor"}),
        # Notifications: channels decide where the team's requests and alerts go.
        ("POST", f"/api/v1/teams/{team}/channels",
         {"name": "hook", "kind": "webhook", "target": "https://hooks.example/x"},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/channels", None, {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/channels/1/deliveries", None, {"owner", "admin"}),
        # Alerts: owners and admins decide who is woken; auditors read what fired.
        ("POST", f"/api/v1/teams/{team}/alert-rules", {"name": "r", "event": "deny"},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/alert-rules", None, {"owner", "admin", "auditor"}),
        ("PUT", f"/api/v1/teams/{team}/alert-rules/1", {"name": "r", "event": "drift"},
         {"owner", "admin"}),
        ("GET", f"/api/v1/teams/{team}/alerts", None, {"owner", "admin", "auditor"}),
        # Audit ingest: each runtime's chain health, and re-verification of stored chains.
        ("GET", f"/api/v1/teams/{team}/audit/chains", None, read),
        ("GET", f"/api/v1/teams/{team}/audit/verify", None, {"owner", "admin", "auditor"}),
        # Governance: usage and friction for those who read the audit or act on it.
        ("GET", f"/api/v1/teams/{team}/usage?days=7", None,
         {"owner", "admin", "policy_author", "auditor"}),
        ("GET", f"/api/v1/teams/{team}/friction", None,
         {"owner", "admin", "policy_author", "auditor"}),
        ("GET", f"/api/v1/teams/{team}/proposals", None,
         {"owner", "admin", "policy_author", "auditor"}),
        ("GET", f"/api/v1/teams/{team}/proposal-settings", None,
         {"owner", "admin", "policy_author", "auditor"}),
        ("PUT", f"/api/v1/teams/{team}/proposal-settings",
         {"min_approvals": 2, "min_people": 1}, {"owner", "admin", "policy_author"}),
        # Grants: approvers (and managers) issue and revoke; every member sees them.
        ("POST", f"/api/v1/teams/{team}/grants",
         {"action": {"tool": "Bash", "input": {"command": "make"}, "cwd": "/srv"},
          "uses": 1, "expires_minutes": 5}, {"owner", "admin", "approver"}),
        ("GET", f"/api/v1/teams/{team}/grants", None, read),
    ]


def call(client, method, path, body, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


def test_every_role_against_every_team_endpoint(world):
    _, client, tokens, ids = world
    for method, path, body, allowed in endpoints(ids["team"]):
        for caller in (*ROLES, "orgadmin", "outsider", "b-admin"):
            status = call(client, method, path, body, tokens[caller]).status_code
            if caller == "orgadmin" or caller in allowed:
                assert status < 300, (caller, method, path, status)
            elif caller in ("outsider", "b-admin"):
                assert status == 404, (caller, method, path, status)  # not even its existence
            else:
                assert status == 403, (caller, method, path, status)


def test_drafting_a_proposal_is_for_policy_authors(world):
    """No proposal has this hash, so an allowed caller passes the role check and gets the
    404 that says so; the others are refused before anything is computed."""
    _, client, tokens, ids = world
    path = f"/api/v1/teams/{ids['team']}/proposals/drafts"
    for caller in (*ROLES, "orgadmin", "outsider", "b-admin"):
        answer = call(client, "POST", path, {"rule_hash": "0" * 64}, tokens[caller])
        if caller in ("owner", "admin", "policy_author", "orgadmin"):
            assert answer.status_code == 404 and "no such proposal" in answer.text, caller
        elif caller in ("outsider", "b-admin"):
            assert answer.status_code == 404 and "no such team" in answer.text, caller
        else:
            assert answer.status_code == 403, caller


def test_revoking_a_grant_is_for_approvers_and_managers(world):
    _, client, tokens, ids = world
    made = call(client, "POST", f"/api/v1/teams/{ids['team']}/grants",
                {"rule": {"program": ["make"]}, "uses": 2, "expires_minutes": 5},
                tokens["approver"])
    assert made.status_code == 201, made.text
    path = f"/api/v1/teams/{ids['team']}/grants/{made.json()['grant_id']}/revoke"
    for caller in (*ROLES, "orgadmin", "outsider", "b-admin"):
        answer = call(client, "POST", path, {"reason": "done"}, tokens[caller])
        if caller in ("owner", "admin", "approver", "orgadmin"):
            # Idempotent: every allowed caller gets the first revocation back.
            assert answer.status_code == 200 and answer.json()["state"] == "revoked", caller
        else:
            assert answer.status_code == (404 if caller in ("outsider", "b-admin") else 403)


def test_nobody_reaches_another_tenants_team(world):
    _, client, tokens, ids = world
    for method, path, body, _ in endpoints(ids["b_team"]):
        for caller in (*ROLES, "orgadmin"):
            assert call(client, method, path, body, tokens[caller]).status_code == 404


def test_organisation_level_endpoints(world):
    _, client, tokens, _ = world
    for caller in (*ROLES, "outsider"):
        assert call(client, "POST", "/api/v1/teams", {"name": f"t-{caller}"},
                    tokens[caller]).status_code == 403
        assert call(client, "POST", "/api/v1/users", {"username": f"u{caller}",
                    "password": "p" * 12}, tokens[caller]).status_code == 403
    assert call(client, "POST", "/api/v1/teams", {"name": "new"},
                tokens["orgadmin"]).status_code == 201
    teams = call(client, "GET", "/api/v1/teams", None, tokens["member"]).json()
    assert [t["name"] for t in teams] == ["core"]
    b_teams = call(client, "GET", "/api/v1/teams", None, tokens["b-admin"]).json()
    assert [t["name"] for t in b_teams] == ["b-core"]


def test_audit_retention_is_for_organisation_admins(world):
    _, client, tokens, _ = world
    for caller in (*ROLES, "outsider"):
        for method, path, body in (("GET", "/api/v1/audit/retention", None),
                                   ("PUT", "/api/v1/audit/retention", {"days": 30}),
                                   ("POST", "/api/v1/audit/retention/prune", None)):
            assert call(client, method, path, body, tokens[caller]).status_code == 403
    assert call(client, "PUT", "/api/v1/audit/retention", {"days": 30},
                tokens["orgadmin"]).json()["days"] == 30
    assert call(client, "GET", "/api/v1/audit/retention", None,
                tokens["b-admin"]).json()["days"] is None  # another tenant's setting
    assert call(client, "POST", "/api/v1/audit/retention/prune", None,
                tokens["orgadmin"]).status_code == 200
    # A person's token is not a runtime credential.
    assert call(client, "GET", "/api/v1/runtime/audit", None,
                tokens["orgadmin"]).status_code == 401


def test_unauthenticated_expired_revoked_and_read_only_credentials(world):
    app, client, tokens, ids = world
    path = f"/api/v1/teams/{ids['team']}/policies"
    assert call(client, "GET", path, None, None).status_code == 401
    assert call(client, "GET", path, None, "rst_forged").status_code == 401
    with app.state.db.sessions() as db:
        db.execute(update(ApiToken).values(expires=datetime.now(UTC) - timedelta(seconds=1))
                   .where(ApiToken.token_hash == __import__(
                       "runestone_server.security", fromlist=["x"]).token_hash(
                       tokens["auditor"])))
        db.commit()
    assert call(client, "GET", path, None, tokens["auditor"]).status_code == 401
    read_only = call(client, "POST", "/api/v1/tokens", {"name": "ro", "scopes": ["read"]},
                     tokens["admin"]).json()["token"]
    assert call(client, "GET", path, None, read_only).status_code == 200
    assert call(client, "POST", path, {"text": GOOD_POLICY}, read_only).status_code == 403
    created = call(client, "POST", "/api/v1/tokens", {"name": "w", "scopes": ["write", "read"]},
                   tokens["admin"]).json()
    assert call(client, "DELETE", f"/api/v1/tokens/{created['id']}", None,
                tokens["admin"]).status_code == 204
    assert call(client, "GET", path, None, created["token"]).status_code == 401
    listed = call(client, "GET", "/api/v1/tokens", None, tokens["admin"]).json()
    assert [(t["name"], t["revoked"] is not None) for t in listed] == \
        [("t", False), ("ro", False), ("w", True)]
    assert all("token" not in t and "token_hash" not in t for t in listed)
    # Nobody lists or revokes another user's tokens.
    assert [t["name"] for t in call(client, "GET", "/api/v1/tokens", None,
                                    tokens["member"]).json()] == ["t"]
    first = listed[0]["id"]
    assert call(client, "DELETE", f"/api/v1/tokens/{first}", None,
                tokens["member"]).status_code == 404
    assert call(client, "POST", "/api/v1/tokens", {"name": "x", "scopes": ["write"]},
                read_only).status_code == 403


def test_login_issues_a_session_token(world):
    app, client, _, _ = world
    with app.state.db.sessions() as db:
        db.execute(update(User).where(User.username == "member").values(
            password_hash=hash_password("correct horse battery")))
        db.commit()
    bad = client.post("/api/v1/login", json={"organisation": "a", "username": "member",
                                             "password": "wrong"})
    assert bad.status_code == 401
    good = client.post("/api/v1/login", json={"organisation": "a", "username": "member",
                                              "password": "correct horse battery"})
    assert good.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {good.json()['token']}"})
    assert me.json()["teams"] == {"core": "member"}


def test_removing_a_member_ends_their_access(world):
    _, client, tokens, ids = world
    team = ids["team"]
    members = f"/api/v1/teams/{team}/members"
    assert call(client, "GET", members, None, tokens["auditor"]).status_code == 200
    assert call(client, "DELETE", f"{members}/owner", None, tokens["admin"]).status_code == 403
    assert call(client, "DELETE", f"{members}/nobody", None, tokens["owner"]).status_code == 404
    assert call(client, "DELETE", f"{members}/auditor", None, tokens["admin"]).status_code == 204
    assert call(client, "GET", members, None, tokens["auditor"]).status_code == 404
    assert "auditor" not in {m["username"] for m in call(client, "GET", members, None,
                                                         tokens["owner"]).json()}
    events = call(client, "GET", f"/api/v1/teams/{team}/events", None, tokens["owner"]).json()
    assert events[0]["kind"] == "member.removed"
    assert events[0]["detail"] == {"username": "auditor"}
    assert call(client, "DELETE", f"{members}/owner", None, tokens["owner"]).status_code == 204
    assert call(client, "DELETE", f"/api/v1/teams/{ids['b_team']}/members/b-admin", None,
                tokens["orgadmin"]).status_code == 404


def body_routes(app, ids) -> list[tuple[str, str]]:
    """Every route of the app, API and dashboard, that takes a body: (method, a path)."""
    from starlette.routing import Route

    def every(routes):
        for route in routes:
            if isinstance(route, Route):
                yield route
            elif getattr(route, "original_router", None) is not None:
                yield from every(route.original_router.routes)

    values = {"team_id": str(ids["team"]), "runtime_id": RUNTIME, "username": "outsider",
              "request_id": "r-1"}
    found = []
    for route in every(app.routes):
        for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            path = route.path
            for name in route.param_convertors:
                path = path.replace("{" + name + "}", values.get(name, "1"))
            found.append((method, path))
    return found


def test_every_body_is_bounded_for_every_caller_before_anything_else(world):
    """Over its path's limit, a body is refused 413 whoever sends it (nobody, a forged
    token, every role, another tenant), declared (Content-Length) or chunked, before
    authentication or parsing; at its limit the same route is reached (no 413), so the
    limits leave room for what is legitimately sent."""
    from runestone_server.bodylimit import limit_for

    app, client, tokens, ids = world
    routes = body_routes(app, ids)
    assert len(routes) > 40 and ("POST", "/api/v1/login") in routes
    bodies: dict[int, bytes] = {}
    for method, path in routes:
        limit = limit_for(path)
        over = bodies.setdefault(limit, b"{" + b" " * limit + b"}")
        assert len(over) > limit
        for caller in (None, "rst_forged", *ROLES, "orgadmin", "b-admin"):
            headers = {"Content-Type": "application/json"}
            if caller:
                headers["Authorization"] = f"Bearer {tokens.get(caller, caller)}"
            declared = client.request(method, path, content=over, headers=headers)
            assert declared.status_code == 413, (caller, method, path, declared.status_code)
            assert str(limit) in declared.json()["detail"]
        chunked = client.request(method, path, content=iter([over[:limit // 2],
                                                             over[limit // 2:]]),
                                 headers={"Content-Type": "application/json"})
        assert "content-length" not in {k.lower() for k in chunked.request.headers}
        assert chunked.status_code == 413, (method, path, chunked.status_code)
        at_limit = client.request(method, path, content=over[:limit],
                                  headers={"Content-Type": "application/json"})
        assert at_limit.status_code not in (413, 500), (method, path, at_limit.status_code)


BAD_JSON = {
    "NaN is not a JSON number": b'{"x": NaN}',
    "Infinity is not a JSON number": b'{"x": [1, Infinity]}',
    "the number 1e999 is too large": b'{"x": {"y": 1e999}}',
    "lone surrogate": b'{"x": "a\\ud800b"}',
    "lone surrogate ": b'{"\\udc00": 1}',
    "nested more than 64 levels deep": b'{"x": ' + b"[" * 65 + b"]" * 65 + b"}",
    # past json's own recursion limit, and within the smallest body limit (16 KiB)
    "nested more than 64 levels deep ": b"[" * 5000 + b"]" * 5000,
}


def test_every_json_body_is_read_strictly_for_every_caller(world):
    """Issue 17: NaN or Infinity in an approval's input, a lone surrogate (stored, then
    every read of it a 500) and 100,000 nested brackets were server errors. Every API route
    that takes a body, whoever calls it, refuses each with a 400 that says what is wrong."""
    app, client, tokens, ids = world
    routes = [(m, p) for m, p in body_routes(app, ids)
              if p.startswith("/api/") and not p.startswith("/api/v1/runtime/audit")]
    assert len(routes) > 30
    for method, path in routes:
        for caller in (None, "member", "orgadmin"):
            headers = {"Content-Type": "application/json"}
            if caller:
                headers["Authorization"] = f"Bearer {tokens[caller]}"
            for expected, body in BAD_JSON.items():
                answer = client.request(method, path, content=body, headers=headers)
                assert answer.status_code == 400, (caller, method, path, expected,
                                                   answer.status_code)
                assert expected.strip() in answer.json()["detail"], answer.text
