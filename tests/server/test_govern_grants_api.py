"""The grants API on its own: what an approver may issue (a rule the runtime's loader
compiles, either an action or a rule, offline uses within the count), and a runtime pulling
from several threads at once gets one allotment, never more uses than the grant has."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from runestone_server.models import ApiToken, Organisation, Runtime, Team, User
from runestone_server.security import hash_password, new_token


@pytest.fixture
def world(server):
    app, client = server
    with app.state.db.sessions() as db:
        org = Organisation(name="a")
        db.add(org)
        db.flush()
        team = Team(org_id=org.id, name="core")
        admin = User(org_id=org.id, username="admin", org_admin=True,
                     password_hash=hash_password("x" * 12))
        db.add_all([team, admin])
        db.flush()
        token, digest = new_token("rst")
        db.add(ApiToken(org_id=org.id, user_id=admin.id, name="t", token_hash=digest,
                        scopes=["read", "write"], kind="api"))
        credential, cred_digest = new_token("rsr")
        db.add(Runtime(org_id=org.id, team_id=team.id, runtime_id="rt_" + "ab" * 8,
                       public_key="0" * 64, labels={"env": "dev"},
                       credential_hash=cred_digest))
        db.commit()
        ids = team.id
    return client, ids, {"Authorization": f"Bearer {token}"}, \
        {"Authorization": f"Bearer {credential}"}


@pytest.mark.parametrize("body, needle", [
    ({"rule": {"program": "git", "nonsense": ["x"]}}, "does not compile"),
    ({"rule": {"id": "x", "decision": "allow"}}, "matches nothing"),
    ({"rule": {"program": ["git"]}, "action": {"tool": "Bash", "input": {}}}, "either"),
    ({}, "either"),
    ({"rule": {"program": ["git"]}, "offline_uses": 9}, "cannot exceed"),
])
def test_what_an_approver_may_issue(world, body, needle):
    client, team, admin, _ = world
    answer = client.post(f"/api/v1/teams/{team}/grants", headers=admin,
                         json={"uses": 3, "expires_minutes": 10, **body})
    assert answer.status_code == 400 and needle in answer.text, answer.text


def test_racing_pulls_allot_once(world):
    client, team, admin, runtime = world
    made = client.post(f"/api/v1/teams/{team}/grants", headers=admin, json={
        "rule": {"program": ["git"]}, "uses": 5, "expires_minutes": 10, "offline_uses": 2})
    assert made.status_code == 201, made.text
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.get("/api/v1/runtime/grants",
                                                     headers=runtime), range(6)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert {a.json()["grants"][0]["grant"]["allotted"] for a in answers} == {2}
    listed = client.get(f"/api/v1/teams/{team}/grants", headers=admin).json()
    assert listed[0]["reserved"] == 2  # one allotment for the runtime, not six
    # Online uses are what is left: 3 of 5.
    key = {"action_key": "f" * 64}
    spent = [client.post(f"/api/v1/runtime/grants/{made.json()['grant_id']}/spend",
                         headers=runtime, json=key).status_code for _ in range(4)]
    assert spent == [200, 200, 200, 409]
