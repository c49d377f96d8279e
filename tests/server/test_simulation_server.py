"""Simulation over a team's ingested history: the runtime's engine, the team's rows only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runestone.actions import Action
from runestone.audit.records import decision_entry, new_request_id, request_entry
from runestone.facts import derive_facts
from runestone.policy import load_preset
from runestone.policy.engine import evaluate
from runestone.policy.model import EvalContext
from runestone_server.audit.models import AuditEntry
from runestone_server.models import ApiToken, Organisation, Team, User
from runestone_server.security import hash_password, new_token

CANDIDATE = ('[policy]\ndefault = "ask"\ninclude = ["default"]\n\n[[rule]]\nid = "team.no-curl"\n'
             'decision = "deny"\nreason = "no curl"\nprogram = ["curl"]\n')


def _history(db, org_id: int, team_id: int, runtime: str, commands: list[str]) -> None:
    """Rows as a runtime writes them: a request and its decision under the default preset."""
    policy = load_preset("default")
    when = datetime.now(UTC) - timedelta(hours=1)
    for seq, command in enumerate(commands):
        action = Action("Bash", {"command": command}, "/tmp")
        decision = evaluate(policy, derive_facts(action), EvalContext())
        rid = new_request_id()
        for offset, entry in enumerate((request_entry(action, rid),
                                        decision_entry(action, decision, rid))):
            db.add(AuditEntry(org_id=org_id, team_id=team_id, runtime_id=runtime,
                              seq=2 * seq + offset + 1, kind=entry["kind"], request_id=rid,
                              time=when + timedelta(seconds=seq), tool="Bash",
                              decision=entry.get("decision"), hash=f"{seq}{offset}".ljust(64, "0"),
                              entry=entry))


def _setup(app):
    with app.state.db.sessions() as db:
        orgs = [Organisation(name="a"), Organisation(name="b")]
        db.add_all(orgs)
        db.flush()
        teams = [Team(org_id=orgs[0].id, name="core"), Team(org_id=orgs[0].id, name="quiet"),
                 Team(org_id=orgs[1].id, name="theirs")]
        db.add_all(teams)
        admin = User(org_id=orgs[0].id, username="admin", org_admin=True,
                     password_hash=hash_password("x" * 12))
        db.add(admin)
        db.flush()
        token, digest = new_token("rst")
        db.add(ApiToken(org_id=orgs[0].id, user_id=admin.id, name="t", token_hash=digest,
                        scopes=["read", "write"]))
        _history(db, orgs[0].id, teams[0].id, "rt_aaaaaaaa",
                 ["curl https://example.com", "ls -la", "curl -s https://x.example"])
        _history(db, orgs[1].id, teams[2].id, "rt_bbbbbbbb", ["curl https://theirs.example"])
        db.commit()
        return {"Authorization": f"Bearer {token}"}, [t.id for t in teams]


def test_the_candidate_is_replayed_over_the_teams_history(server):
    app, client = server
    headers, (core, quiet, theirs) = _setup(app)
    answer = client.post(f"/api/v1/teams/{core}/simulations", headers=headers,
                         json={"text": CANDIDATE})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["replayed"] == 3
    assert result["changed"] == {"ask->deny": 2}
    assert result["unchanged"] == 1
    summaries = {e["summary"] for e in result["examples"]["ask->deny"]}
    assert summaries == {"curl https://example.com", "curl -s https://x.example"}
    assert all(e["rules"] == ["team.no-curl"] for e in result["examples"]["ask->deny"])

    # A stored version by number gives the same answer; another team has no history.
    assert client.post(f"/api/v1/teams/{core}/policies", headers=headers,
                       json={"text": CANDIDATE}).status_code == 201
    by_number = client.post(f"/api/v1/teams/{core}/simulations", headers=headers,
                            json={"number": 1}).json()
    assert by_number["changed"] == result["changed"]
    assert by_number["candidate_hash"] == result["candidate_hash"]
    empty = client.post(f"/api/v1/teams/{quiet}/simulations", headers=headers,
                        json={"text": CANDIDATE}).json()
    assert empty["replayed"] == 0 and empty["changed"] == {}
    # Another tenant's team is not found, and its history never counts.
    assert client.post(f"/api/v1/teams/{theirs}/simulations", headers=headers,
                       json={"text": CANDIDATE}).status_code == 404


def test_a_bad_candidate_is_refused_with_the_reason(server):
    app, client = server
    headers, (core, _, _) = _setup(app)
    bad = client.post(f"/api/v1/teams/{core}/simulations", headers=headers,
                      json={"text": '[policy]\ndefault = "maybe"\n'})
    assert bad.status_code == 400 and "does not load" in bad.json()["detail"]
    both = client.post(f"/api/v1/teams/{core}/simulations", headers=headers,
                       json={"text": CANDIDATE, "number": 1})
    assert both.status_code == 422
    missing = client.post(f"/api/v1/teams/{core}/simulations", headers=headers,
                          json={"number": 7})
    assert missing.status_code == 404
