"""Whose agent a runtime runs is pinned by the enrolment token, never declared by the
runtime (issue 17: a self-declared `user` label let a runtime's owner approve their own ask),
on SQLite and PostgreSQL, as the owner of a runtime would try it."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from runestone_server.models import Membership, Organisation, Runtime, Team, User
from runestone_server.security import hash_password

PASSWORD = "correct horse battery"


@pytest.fixture
def org(server):
    app, client = server
    with app.state.db.sessions() as db:
        acme = Organisation(name="acme")
        db.add(acme)
        db.flush()
        team = Team(org_id=acme.id, name="core")
        db.add(team)
        db.flush()
        digest = hash_password(PASSWORD)
        for name, role in (("admin", "admin"), ("alice", "approver"), ("bob", "approver")):
            user = User(org_id=acme.id, username=name, password_hash=digest)
            db.add(user)
            db.flush()
            db.add(Membership(org_id=acme.id, team_id=team.id, user_id=user.id, role=role))
        db.commit()
        team_id = team.id
    tokens = {name: client.post("/api/v1/login", json={
        "organisation": "acme", "username": name, "password": PASSWORD}).json()["token"]
        for name in ("admin", "alice", "bob")}

    def call(who, method, path, body=None):
        return client.request(method, path, json=body,
                              headers={"Authorization": f"Bearer {tokens[who]}"})

    group = call("admin", "POST", f"/api/v1/teams/{team_id}/approver-groups",
                 {"name": "approvers", "members": ["alice", "bob"]}).json()["id"]
    assert call("admin", "POST", f"/api/v1/teams/{team_id}/approval-routes", {
        "name": "all", "levels": [{"group_id": group, "timeout_seconds": 600}]}
    ).status_code == 201
    return app, client, call, team_id


def enroll(client, call, team_id, token_labels, runtime_labels):
    made = call("admin", "POST", f"/api/v1/teams/{team_id}/enrollment-tokens",
                {"labels": token_labels})
    assert made.status_code == 201, made.text
    runtime_id = "rt_" + secrets.token_hex(8)
    enrolled = client.post("/api/v1/enroll", json={
        "token": made.json()["token"], "runtime_id": runtime_id,
        "public_key": secrets.token_hex(32), "labels": runtime_labels})
    assert enrolled.status_code == 201, enrolled.text
    return runtime_id, enrolled.json()["credential"]


def ask(client, credential, request_id, user):
    answer = client.post("/api/v1/runtime/approvals", headers={
        "Authorization": f"Bearer {credential}"}, json={
        "request_id": request_id, "action_hash": secrets.token_hex(32), "tool": "Bash",
        "summary": "ssh prod", "rules": ["rce.remote-shell"], "user": user,
        "mode": "defer"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def labels_of(app, runtime_id):
    with app.state.db.sessions() as db:
        return db.scalar(select(Runtime.labels).where(Runtime.runtime_id == runtime_id))


def test_a_pinned_owner_cannot_approve_their_agents_ask_whatever_the_runtime_says(org):
    app, client, call, team_id = org
    runtime_id, credential = enroll(client, call, team_id, {"user": "alice"},
                                    {"user": "bob", "env": "prod"})
    assert labels_of(app, runtime_id) == {"user": "alice", "login": "bob", "env": "prod"}
    approval = ask(client, credential, "req_disguised", user="somebody-else")
    detail = call("bob", "GET", f"/api/v1/approvals/{approval}").json()
    assert detail["requester"]["user"] == "alice"  # who asks is the pinned owner
    refused = call("alice", "POST", f"/api/v1/approvals/{approval}/votes", {"vote": "approve"})
    assert refused.status_code == 403 and "own agent" in refused.json()["detail"]
    # The approval page names the pinned owner without the "named by the runtime" note.
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    assert client.post("/login", data={"csrf": token, "organisation": "acme",
                                       "username": "bob", "password": PASSWORD, "next": "/"},
                       follow_redirects=False).status_code == 303
    html = client.get(f"/approvals/{approval}").text
    assert "alice" in html and "named by the runtime itself" not in html
    approved = call("bob", "POST", f"/api/v1/approvals/{approval}/votes", {"vote": "approve"})
    assert approved.status_code < 300, approved.text
    assert call("bob", "GET", f"/api/v1/approvals/{approval}").json()["state"] == "approved"


def test_a_runtime_cannot_declare_whose_agent_it_is(org):
    """Without a pinned user, the runtime's `user` label is only its machine login; it is
    not shown as the requester's identity nor matched by routes as one."""
    app, client, call, team_id = org
    runtime_id, credential = enroll(client, call, team_id, {}, {"user": "bob"})
    labels = labels_of(app, runtime_id)
    assert "user" not in labels and labels["login"] == "bob"
    approval = ask(client, credential, "req_claims_bob", user="bob")
    # What the runtime says for the call still counts against self-approval.
    refused = call("bob", "POST", f"/api/v1/approvals/{approval}/votes", {"vote": "approve"})
    assert refused.status_code == 403


def test_the_pinned_user_must_be_a_person_of_the_organisation(org):
    _, _, call, team_id = org
    for nobody in ("mallory", "", "ALICE"):
        made = call("admin", "POST", f"/api/v1/teams/{team_id}/enrollment-tokens",
                    {"labels": {"user": nobody}})
        assert made.status_code == 422, (nobody, made.text)
    assert "active user" in made.json()["detail"]
