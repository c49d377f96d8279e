"""Audit search on SQLite and PostgreSQL: every filter, keyset pages that stay stable, full
text on both engines (and the PostgreSQL index really used), tenants and teams kept apart,
roles, the story of one request, exports that parse back, and the compliance report.

Rows are inserted directly (what ingest stores), so these tests do not depend on ingest."""

from __future__ import annotations

import csv
import functools
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, text

from runestone_server import worker
from runestone_server.audit import fulltext
from runestone_server.audit.ingest import document_fields
from runestone_server.audit.models import AuditChain, AuditEntry
from runestone_server.audit.search import Filters, Scope, walk
from runestone_server.models import (
    ApiToken,
    Membership,
    Organisation,
    Runtime,
    ServerEvent,
    Team,
    User,
)
from runestone_server.security import hash_password, new_token

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOOLS = ("Bash", "Write", "WebFetch")
DECISIONS = ("allow", "deny", "ask")


@functools.cache
def _password_hash() -> str:
    return hash_password("x" * 12)  # argon2 is slow on purpose: once per run


def _user(db, org, name, *, team=None, role=None, org_admin=False) -> str:
    user = User(org_id=org.id, username=name, password_hash=_password_hash(),
                org_admin=org_admin)
    db.add(user)
    db.flush()
    if team is not None:
        db.add(Membership(org_id=org.id, team_id=team.id, user_id=user.id, role=role))
    token, digest = new_token("rst")
    db.add(ApiToken(org_id=org.id, user_id=user.id, name="t", token_hash=digest,
                    scopes=["read", "write"]))
    return token


def _runtime(db, team, runtime_id) -> Runtime:
    runtime = Runtime(org_id=team.org_id, team_id=team.id, runtime_id=runtime_id,
                      public_key="00" * 32, labels={"host": runtime_id},
                      credential_hash=runtime_id.ljust(64, "0")[:64])
    db.add(runtime)
    db.flush()
    return runtime


def row(team, runtime_id, seq, **values):
    """One stored entry as ingest would write it; `entry` mirrors the columns."""
    moment = values.pop("time", T0 + timedelta(minutes=seq))
    entry = {"kind": values.get("kind", "decision"), "seq": seq, "runtime": runtime_id,
             "time": moment.isoformat(), **{k: v for k, v in values.items()
                                             if k not in ("kind",)}}
    reason, purpose = document_fields(entry)
    return {"org_id": team.org_id, "team_id": team.id, "runtime_id": runtime_id, "seq": seq,
            "kind": values.get("kind", "decision"), "request_id": values.get("request_id"),
            "time": moment, "tool": values.get("tool"), "decision": values.get("decision"),
            "severity": values.get("severity"), "rule": values.get("rule"),
            "agent": values.get("agent"), "user": values.get("user"),
            "approver": values.get("approver"), "summary": values.get("summary"),
            "action_hash": None, "policy_hash": None, "hash": f"{runtime_id}-{seq}".ljust(64,
                                                                                  "0"),
            "entry": entry, "received": moment, "reason": reason, "purpose": purpose}


@pytest.fixture
def world(server):
    """Org A: team core (auditor, member, owner), team other (outsider owns it), an org
    admin. Org B: an admin and a team whose entries share words and request ids with A's."""
    app, client = server
    with app.state.db.sessions() as db:
        a, b = Organisation(name="a"), Organisation(name="b")
        db.add_all([a, b])
        db.flush()
        core, other, b_team = (Team(org_id=a.id, name="core"), Team(org_id=a.id, name="other"),
                               Team(org_id=b.id, name="b-core"))
        db.add_all([core, other, b_team])
        db.flush()
        tokens = {role: _user(db, a, role, team=core, role=role)
                  for role in ("owner", "auditor", "member", "approver")}
        tokens["outsider"] = _user(db, a, "outsider", team=other, role="owner")
        tokens["orgadmin"] = _user(db, a, "orgadmin", org_admin=True)
        tokens["b-admin"] = _user(db, b, "b-admin", org_admin=True)
        for team, name in ((core, "rt-core-1"), (core, "rt-core-2"), (other, "rt-other"),
                           (b_team, "rt-b")):
            _runtime(db, team, name)
        db.commit()
        teams = {"core": core, "other": other, "b": b_team}
    return app, client, tokens, teams


def seed(app, rows) -> None:
    with app.state.db.sessions() as db:
        db.execute(insert(AuditEntry), rows)
        db.commit()


def get(client, path, token, **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def everything(client, path, token, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = get(client, path, token, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def varied(team, runtime_id, count, start=1):
    rows = []
    for i in range(start, start + count):
        rows.append(row(team, runtime_id, i, kind=("decision", "request", "approval")[i % 3],
                        request_id=f"req_{i % 10}", tool=TOOLS[i % 3],
                        decision=DECISIONS[i % 3], severity=("low", "high")[i % 2],
                        rule=f"rule.{i % 4}", agent=("claude-code", "codex")[i % 2],
                        user=("alice", "bob", "carol")[i % 3] if i % 5 else None,
                        approver="dave" if i % 7 == 0 else None,
                        summary=f"command number {i}"))
    return rows


def test_every_filter_returns_exactly_the_matching_entries(world):
    app, client, tokens, teams = world
    rows = varied(teams["core"], "rt-core-1", 40) + varied(teams["core"], "rt-core-2", 20)
    seed(app, rows)
    path = f"/api/v1/teams/{teams['core'].id}/audit"
    cases = {"runtime": ("runtime_id", "rt-core-2"), "agent": ("agent", "codex"),
             "user": ("user", "bob"), "tool": ("tool", "WebFetch"),
             "decision": ("decision", "deny"), "rule": ("rule", "rule.3"),
             "approver": ("approver", "dave"), "kind": ("kind", "approval"),
             "severity": ("severity", "high"), "request_id": ("request_id", "req_4")}
    for param, (column, value) in cases.items():
        got = everything(client, path, tokens["auditor"], **{param: value}, limit=500)
        expected = {(r["runtime_id"], r["seq"]) for r in rows if r[column] == value}
        assert expected, param  # the case is not vacuous
        assert {(g["runtime_id"], g["seq"]) for g in got} == expected, param
    since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    got = everything(client, path, tokens["auditor"], since=since.isoformat(),
                     until=until.isoformat(), tool="Bash")
    expected = {(r["runtime_id"], r["seq"]) for r in rows
                if since <= r["time"] < until and r["tool"] == "Bash"}
    assert {(g["runtime_id"], g["seq"]) for g in got} == expected and expected
    # Naive times are UTC, other offsets are converted.
    local = (since.astimezone(__import__("datetime").timezone(timedelta(hours=2)))).isoformat()
    assert len(everything(client, path, tokens["auditor"], since=local,
                          until=until.isoformat(), tool="Bash")) == len(expected)


def test_keyset_pages_are_complete_ordered_and_stable_under_new_entries(world):
    app, client, tokens, teams = world
    # Many entries share a timestamp: the id breaks the tie, nothing is lost or repeated.
    rows = [row(teams["core"], "rt-core-1", i, time=T0 + timedelta(seconds=i // 4),
                tool="Bash", summary=f"s{i}") for i in range(1, 51)]
    seed(app, rows)
    path = f"/api/v1/teams/{teams['core'].id}/audit"
    first = get(client, path, tokens["auditor"], limit=7).json()
    assert len(first["items"]) == 7 and first["next_cursor"]
    # New entries arrive (newer than everything) while the reader pages on.
    seed(app, [row(teams["core"], "rt-core-1", i, time=T0 + timedelta(hours=1), tool="Bash")
               for i in range(51, 61)])
    items, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = get(client, path, tokens["auditor"], limit=7, cursor=cursor).json()
        items += page["items"]
        cursor = page["next_cursor"]
    seqs = [i["seq"] for i in items]
    assert sorted(seqs) == list(range(1, 51))  # each old entry exactly once, no new one
    keys = [(i["time"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)
    ascending = everything(client, path, tokens["auditor"], limit=9, order="asc")
    assert [i["seq"] for i in ascending] == list(range(1, 61))
    assert get(client, path, tokens["auditor"], cursor="not-a-cursor").status_code == 400


def test_full_text_on_both_engines(world, monkeypatch):
    app, client, tokens, teams = world
    core = teams["core"]
    seed(app, [
        row(core, "rt-core-1", 1, tool="Bash", summary="cat /etc/passwd", rule="secrets.read"),
        row(core, "rt-core-1", 2, tool="WebFetch", summary="https://example.com/upload"),
        row(core, "rt-core-1", 3, tool="Bash", summary="ls -la", reason="Exfiltration risk"),
        row(core, "rt-core-1", 4, tool="Write", summary="notes.txt", user="Zoë"),
        # Issue 17: the agent's stated purpose (Claude Code's description) was kept but not
        # found by text search.
        row(core, "rt-core-1", 5, kind="request", tool="Bash", summary="openssl x509",
            purpose="Rotate the staging certificates"),
    ])
    path = f"/api/v1/teams/{core.id}/audit"

    def seqs(q, **extra):
        return sorted(i["seq"] for i in everything(client, path, tokens["auditor"], q=q,
                                                   **extra))

    # Both SQLite plans: rare words driven from the text index, common words checked row by
    # row along the time index (COMMON_AT = 1 makes every query "common").
    for common_at in (fulltext.COMMON_AT, 1):
        monkeypatch.setattr(fulltext, "COMMON_AT", common_at)
        assert seqs("passwd") == [1]  # inside a path
        assert seqs("ETC passwd") == [1]  # every word, any case
        assert seqs("etc example") == []
        assert seqs("exam*") == [2]  # prefix
        assert seqs("exfiltration") == [3]  # the decision's reason
        assert seqs("secrets") == [1]  # the rule
        assert seqs("zoë") == [4]
        assert seqs("staging certificates") == [5]  # the agent's own words
        assert seqs("bash", tool="Bash") == [1, 3, 5]
        assert seqs("bash", tool="Write") == []
        assert seqs('") OR 1=1 --') == []  # not syntax, just words
        assert get(client, path, tokens["auditor"], q="!!! ---").status_code == 400
    # Deleting (retention) removes entries from the text index too.
    with app.state.db.sessions() as db:
        db.execute(delete(AuditEntry).where(AuditEntry.seq == 1))
        db.commit()
    assert seqs("passwd") == []
    if app.state.db.engine.dialect.name == "sqlite":
        with app.state.db.engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM audit_entries_fts WHERE "
                                          "audit_entries_fts MATCH 'passwd'")) == 0
            assert connection.scalar(text("SELECT count(*) FROM audit_entries_fts WHERE "
                                          "audit_entries_fts MATCH 'notes'")) == 1
        # New rows are indexed by the worker tick (and by any text search before it runs).
        seed(app, [row(core, "rt-core-1", 9, summary="kubectl rollout", tool="Bash")])
        worker.run_once(app.state.db)
        with app.state.db.engine.connect() as connection:
            assert connection.scalar(text(
                "SELECT indexed FROM audit_entries_fts_state")) == connection.scalar(
                text("SELECT max(id) FROM audit_entries"))
            assert connection.scalar(text("SELECT count(*) FROM audit_entries_fts WHERE "
                                          "audit_entries_fts MATCH 'rollout'")) == 1
        # Retention empties the table; SQLite restarts ids below the high-water mark.
        with app.state.db.sessions() as db:
            db.execute(delete(AuditEntry))
            db.commit()
        seed(app, [row(core, "rt-core-1", 10, summary="helm upgrade", tool="Bash")])
        assert seqs("helm") == [10] and seqs("rollout") == []
    if app.state.db.engine.dialect.name == "postgresql":
        assert_gin_index_used(app)


def assert_gin_index_used(app) -> None:
    """The query repeats the indexed expression exactly; if it drifted, PostgreSQL could
    only answer by reading the whole table."""
    from sqlalchemy import select

    from runestone_server.audit.fulltext import PG_INDEX, match

    query = select(AuditEntry.id).where(match("postgresql", "passwd exam*"))
    with app.state.db.engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        compiled = query.compile(connection)
        plan = "\n".join(r[0] for r in connection.exec_driver_sql(
            "EXPLAIN " + str(compiled), compiled.params))
    assert PG_INDEX in plan, plan


def test_tenants_and_teams_never_mix(world):
    app, client, tokens, teams = world
    seed(app, [row(teams["core"], "rt-core-1", 1, request_id="req_same", summary="shared word"),
               row(teams["other"], "rt-other", 1, request_id="req_same", summary="shared word"),
               row(teams["b"], "rt-b", 1, request_id="req_same", summary="shared word")])
    with app.state.db.sessions() as db:
        for team in teams.values():
            db.add(ServerEvent(org_id=team.org_id, team_id=team.id, actor="server",
                               kind="approval.requested", detail={"request_id": "req_same"}))
        db.commit()
    core = f"/api/v1/teams/{teams['core'].id}/audit"
    for params in ({}, {"q": "shared"}, {"request_id": "req_same"}):
        got = everything(client, core, tokens["auditor"], **params)
        assert {i["runtime_id"] for i in got} == {"rt-core-1"}, params
        org = everything(client, "/api/v1/audit", tokens["orgadmin"], **params)
        assert {i["runtime_id"] for i in org} == {"rt-core-1", "rt-other"}, params
        b = everything(client, "/api/v1/audit", tokens["b-admin"], **params)
        assert {i["runtime_id"] for i in b} == {"rt-b"}, params
    story = get(client, f"{core}/requests/req_same", tokens["auditor"]).json()["timeline"]
    assert [(s["source"], s.get("runtime_id") or s["team_id"]) for s in story] == [
        ("runtime", "rt-core-1"), ("server", teams["core"].id)]
    org_story = get(client, "/api/v1/audit/requests/req_same", tokens["orgadmin"]).json()
    assert len(org_story["timeline"]) == 4
    one_team = everything(client, "/api/v1/audit", tokens["orgadmin"],
                          team=teams["other"].id)
    assert {i["runtime_id"] for i in one_team} == {"rt-other"}
    # Another tenant's team: not found, for every audit endpoint.
    b_path = f"/api/v1/teams/{teams['b'].id}/audit"
    for suffix in ("", "/requests/req_same", "/export", "/report"):
        assert get(client, b_path + suffix, tokens["orgadmin"]).status_code == 404
    assert get(client, "/api/v1/audit/export", tokens["b-admin"]).text.count("rt-core") == 0


def test_roles(world):
    app, client, tokens, teams = world
    seed(app, [row(teams["core"], "rt-core-1", 1, request_id="req_x")])
    base = f"/api/v1/teams/{teams['core'].id}/audit"
    paths = (base, f"{base}/requests/req_x", f"{base}/export", f"{base}/report")
    for path in paths:
        for caller, status in (("owner", 200), ("auditor", 200), ("orgadmin", 200),
                               ("member", 403), ("approver", 403), ("outsider", 404)):
            assert get(client, path, tokens[caller]).status_code == status, (caller, path)
        assert client.get(path).status_code == 401
    for path in ("/api/v1/audit", "/api/v1/audit/requests/req_x", "/api/v1/audit/export",
                 "/api/v1/audit/report"):
        assert get(client, path, tokens["orgadmin"]).status_code == 200, path
        for caller in ("owner", "auditor", "member"):
            assert get(client, path, tokens[caller]).status_code == 403, (caller, path)


def test_story_of_one_request_across_runtime_and_server(world):
    app, client, tokens, teams = world
    core = teams["core"]
    t = T0
    seed(app, [
        row(core, "rt-core-1", 1, kind="request", request_id="req_s", time=t, tool="Bash",
            summary="git push"),
        row(core, "rt-core-1", 2, kind="decision", request_id="req_s", decision="ask",
            time=t + timedelta(seconds=1)),
        row(core, "rt-core-1", 3, kind="approval", request_id="req_s", decision="approved",
            approver="server", time=t + timedelta(seconds=30)),
        row(core, "rt-core-1", 4, kind="execution", request_id="req_s",
            time=t + timedelta(seconds=31)),
        row(core, "rt-core-1", 5, kind="result", request_id="req_s",
            time=t + timedelta(seconds=32)),
        row(core, "rt-core-1", 6, kind="request", request_id="req_other", time=t),
    ])
    with app.state.db.sessions() as db:
        for seconds, kind in ((2, "approval.requested"), (10, "approval.escalated"),
                              (20, "approval.vote"), (29, "approval.decided")):
            db.add(ServerEvent(org_id=core.org_id, team_id=core.id, actor="server", kind=kind,
                               detail={"request_id": "req_s"},
                               created=t + timedelta(seconds=seconds)))
        db.add(ServerEvent(org_id=core.org_id, team_id=core.id, actor="server",
                           kind="approval.requested", detail={"request_id": "req_other"}))
        db.commit()
    body = get(client, f"/api/v1/teams/{core.id}/audit/requests/req_s",
               tokens["auditor"]).json()
    assert [item["kind"] for item in body["timeline"]] == [
        "request", "decision", "approval.requested", "approval.escalated", "approval.vote",
        "approval.decided", "approval", "execution", "result"]
    assert body["timeline"][0]["entry"]["summary"] == "git push"  # whole runtime entry
    assert get(client, f"/api/v1/teams/{core.id}/audit/requests/req_none",
               tokens["auditor"]).status_code == 404
    # The server's events are found through the request-id index, not by reading them all.
    from sqlalchemy import select

    from runestone_server.audit.search import event_request_id

    engine = app.state.db.engine
    query = select(ServerEvent.id).where(event_request_id(engine.dialect.name, "req_s"))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET enable_seqscan = off"))
        compiled = query.compile(connection)
        params = compiled.params if engine.dialect.name == "postgresql" else tuple(
            compiled.params[k] for k in compiled.positiontup or ())
        prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        plan = " ".join(str(r[-1]) for r in connection.exec_driver_sql(
            prefix + str(compiled), params))
    assert "ix_server_events_request_id" in plan, plan


def test_exports_parse_back_with_the_filters_applied(world):
    app, client, tokens, teams = world
    core = teams["core"]
    rows = varied(core, "rt-core-1", 30)
    rows.append(row(core, "rt-core-1", 31, tool="Bash", decision="deny",
                    summary='echo "a, b"\nnext line; ünïcode'))
    seed(app, rows)
    base = f"/api/v1/teams/{core.id}/audit/export"
    response = get(client, base, tokens["auditor"], format="jsonl", tool="Bash")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    expected = sorted(r["seq"] for r in rows if r["tool"] == "Bash")
    assert [item["seq"] for item in lines] == expected  # oldest first
    assert lines[-1]["entry"]["summary"] == 'echo "a, b"\nnext line; ünïcode'
    as_csv = get(client, base, tokens["auditor"], format="csv", tool="Bash", order="desc")
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    assert [int(r["seq"]) for r in parsed] == expected[::-1]
    assert parsed[0]["summary"] == 'echo "a, b"\nnext line; ünïcode'
    assert parsed[0]["decision"] == "deny" and parsed[0]["approver"] == ""
    # Walking in small batches (what a long export does) loses and repeats nothing.
    with app.state.db.sessions() as db:
        walked = [e.seq for e in walk(db, Scope(core.org_id, core.id), Filters(), batch=4)]
    assert walked == list(range(1, 32))
    assert get(client, base, tokens["auditor"], q="???").status_code == 400


def test_compliance_report(world):
    app, client, tokens, teams = world
    core = teams["core"]
    t = T0
    rows = [
        row(core, "rt-core-1", 1, kind="request", request_id="req_a", tool="Bash",
            summary="terraform apply", time=t),
        row(core, "rt-core-1", 2, kind="decision", request_id="req_a", decision="ask",
            time=t),
        row(core, "rt-core-1", 3, kind="approval", request_id="req_a", decision="approved",
            approver="dave", reason="change ticket 42", time=t + timedelta(minutes=1)),
        row(core, "rt-core-1", 4, kind="decision", request_id="req_b", decision="deny",
            rule="secrets.read", summary="cat .env", time=t + timedelta(minutes=2)),
        row(core, "rt-core-1", 5, kind="decision", request_id="req_c", decision="deny",
            rule="secrets.read", time=t + timedelta(minutes=3)),
        row(core, "rt-core-1", 6, kind="decision", request_id="req_d", decision="deny",
            rule="net.upload", time=t + timedelta(minutes=4)),
        row(core, "rt-core-1", 7, kind="decision", decision="allow", time=t + timedelta(
            minutes=5)),
        # rt-core-2 is missing seq 2 inside the period.
        row(core, "rt-core-2", 1, kind="request", request_id="req_e", tool="Write",
            summary="deploy.yaml", time=t),
        row(core, "rt-core-2", 3, kind="decision", decision="allow", time=t),
        # Outside the period: not counted.
        row(core, "rt-core-1", 8, kind="decision", decision="deny", rule="late",
            time=t + timedelta(days=40)),
        row(teams["other"], "rt-other", 1, kind="decision", decision="deny", rule="other",
            time=t),
    ]
    seed(app, rows)
    with app.state.db.sessions() as db:
        runtimes = {r.runtime_id: r for r in db.query(Runtime)}
        for name, status, problem in (("rt-core-1", "ok", None),
                                      ("rt-core-2", "ok", None)):
            db.add(AuditChain(org_id=core.org_id, team_id=core.id,
                              runtime_ref=runtimes[name].id, runtime_id=name, last_seq=8,
                              last_hash="h" * 64, base_seq=0, base_hash="g" * 64,
                              status=status, problem=problem,
                              # Just verified: these rows' hashes are made up, so the
                              # worker's re-walk (tested in test_audit_columns) must not
                              # find them due while the report is read.
                              reverified=datetime.now(UTC)))
        db.add(ServerEvent(org_id=core.org_id, team_id=core.id, actor="server",
                           kind="approval.decided", created=t + timedelta(minutes=6),
                           detail={"request_id": "req_e", "state": "approved", "level": 1,
                                   "approvers": ["erin", "frank"], "reason": "ok"}))
        db.commit()
    policy = client.post(f"/api/v1/teams/{core.id}/policies",
                         json={"text": '[policy]\ndefault = "ask"\ninclude = ["default"]\n',
                               "message": "first"},
                         headers={"Authorization": f"Bearer {tokens['owner']}"})
    assert policy.status_code == 201, policy.text
    until = datetime.now(UTC) + timedelta(minutes=1)
    report = get(client, f"/api/v1/teams/{core.id}/audit/report", tokens["auditor"],
                 since=t.isoformat(), until=until.isoformat()).json()
    assert report["decisions"] == {"ask": 1, "deny": 3, "allow": 2}
    assert report["denied"]["total"] == 3
    assert report["denied"]["by_rule"] == [{"rule": "secrets.read", "count": 2},
                                           {"rule": "net.upload", "count": 1}]
    assert report["approvals"]["total"] == 2 and not report["approvals"]["truncated"]
    approvals = report["approvals"]["items"]
    assert [(a["source"], a["approvers"], a["outcome"], a["summary"]) for a in approvals] == [
        ("runtime", ["dave"], "approved", "terraform apply"),
        ("server", ["erin", "frank"], "approved", "deploy.yaml")]
    assert approvals[0]["reason"] == "change ticket 42"
    assert [(p["kind"], p["detail"]["message"]) for p in report["policy_changes"]["items"]] \
        == [("policy.version", "first")]
    chains = {c["runtime_id"]: c for c in report["chains"]}
    assert chains["rt-core-1"]["intact"] and chains["rt-core-1"]["period"]["entries"] == 7
    assert not chains["rt-core-2"]["intact"] and chains["rt-core-2"]["period"]["missing"] == 1
    assert "rt-other" not in chains and not report["all_chains_intact"]
    # A chain the ingest found broken is reported as such.
    with app.state.db.sessions() as db:
        db.query(AuditChain).filter(AuditChain.runtime_id == "rt-core-1").update(
            {"status": "broken", "problem": "seq 5 does not chain to seq 4"})
        db.commit()
    again = get(client, f"/api/v1/teams/{core.id}/audit/report", tokens["auditor"],
                since=t.isoformat(), until=until.isoformat()).json()
    broken = {c["runtime_id"]: c for c in again["chains"]}["rt-core-1"]
    assert broken["status"] == "broken" and not broken["intact"]
    assert get(client, f"/api/v1/teams/{core.id}/audit/report", tokens["auditor"],
               since=until.isoformat(), until=t.isoformat()).status_code == 400


def test_the_server_benchmark_runs(tmp_path):
    """bench/server.py on a few thousand entries: every probe answers (a failing request
    stops it), on each engine the tests run on."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    postgres = os.environ.get("RUNESTONE_TEST_POSTGRES", "")
    engines = "sqlite,postgresql" if postgres else "sqlite"
    script = Path(__file__).parents[2] / "bench" / "server.py"
    result = subprocess.run(
        [sys.executable, str(script), "--entries", "3000", "--ingest", "400", "--samples", "2",
         "--engines", engines, "--postgres", postgres or "unused"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RUNESTONE_SERVER_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = result.stdout.split("Summary:", 1)[1]
    assert "team: full text, rare word" in summary and "ingest, entries/s" in summary
    assert summary.splitlines()[1].split() == engines.split(",")


def test_approver_search_finds_each_listed_approver(world):
    """Issue 17: a runtime records the control plane's approvers as `server:alice,bob`,
    and searching for alice matched only that whole string. Now each listed name is found,
    exactly (not a prefix, not another case, not the source), on both engines."""
    app, client, tokens, teams = world
    core = teams["core"]
    seed(app, [
        row(core, "rt-core-1", 1, kind="approval", approver="server:alice,bob"),
        row(core, "rt-core-1", 2, kind="approval", approver="server:bob"),
        row(core, "rt-core-1", 3, kind="approval", approver="dave"),
        row(core, "rt-core-1", 4, kind="approval", approver="server:alicex,bo_b"),
        row(core, "rt-core-1", 5, kind="approval", approver="server:x,alice"),
    ])
    path = f"/api/v1/teams/{core.id}/audit"

    def seqs(name):
        return sorted(i["seq"] for i in everything(client, path, tokens["auditor"],
                                                   approver=name))

    assert seqs("alice") == [1, 5]
    assert seqs("bob") == [1, 2]
    assert seqs("dave") == [3]
    assert seqs("server:alice,bob") == [1]
    for nobody in ("ALICE", "ali", "server", "%", "bo%", "b_b", ""):
        assert seqs(nobody) == [], nobody
    assert seqs("bo_b") == [4]
    from runestone_server.audit.report import approvers_of

    # The compliance report lists the people too, not the stored string.
    assert approvers_of("server:erin,frank") == ["erin", "frank"]
    assert approvers_of("dave") == ["dave"] and approvers_of(None) == []


def test_approver_search_keeps_its_rows_and_order_and_uses_the_index(world):
    """Issue 20: on PostgreSQL the approver filter is answered from an index (the listed
    names' array). It finds what it found before on both engines: the exact approver and a
    name among the listed ones, in page order across pages; never a name that is only a
    prefix, suffix or substring of a listed one, and never another team's or org's rows."""
    app, client, tokens, teams = world
    core = teams["core"]
    seed(app, [
        row(core, "rt-core-1", 1, kind="approval", approver="server:alice,bob"),
        row(core, "rt-core-1", 2, kind="approval", approver="alice"),
        row(core, "rt-core-1", 3, kind="approval", approver="server:malice,alicee"),
        row(core, "rt-core-1", 4, kind="approval", approver="local:carol"),
        row(core, "rt-core-1", 5, kind="approval", approver="server:bob,alice"),
        row(core, "rt-core-1", 6, kind="decision", decision="allow"),
        row(core, "rt-core-1", 7, kind="approval", approver="server:al,ice"),
        row(core, "rt-core-1", 8, kind="approval", approver="server:alice",
            time=T0 + timedelta(minutes=5)),  # same time as 5: ties broken by id
        row(teams["other"], "rt-other", 1, kind="approval", approver="server:alice"),
        row(teams["b"], "rt-b", 1, kind="approval", approver="alice"),
    ])
    path = f"/api/v1/teams/{core.id}/audit"

    def seqs(name):
        return [i["seq"] for i in everything(client, path, tokens["auditor"], approver=name,
                                             limit=2)]

    assert seqs("alice") == [8, 5, 2, 1]
    assert seqs("bob") == [5, 1]
    assert seqs("carol") == [4] and seqs("local:carol") == [4]
    assert seqs("malice") == [3] and seqs("alicee") == [3]
    assert seqs("al") == [7] and seqs("ice") == [7]
    assert seqs("alice,bob") == [1] and seqs("bob,alice") == [5]
    assert seqs("server:alice") == [8]
    for nobody in ("ali", "lic", "lice", "alic", "Alice", "ice,bob", "alice,", "local",
                   "al,ice,x", " alice"):
        assert seqs(nobody) == [], nobody

    from sqlalchemy import select

    from runestone_server.audit.search import approver_matches
    from runestone_server.audit.search_schema import PG_APPROVER_INDEX

    engine = app.state.db.engine
    if engine.dialect.name != "postgresql":
        return
    # Ten rows: left alone, any plan reads them all. Only the bitmap scans stay allowed,
    # and the OR can be one only if each arm has an index: the names array its GIN index.
    query = select(AuditEntry.id).where(approver_matches("postgresql", "alice"))
    with engine.connect() as connection:
        for method in ("seqscan", "indexscan", "indexonlyscan"):
            connection.execute(text(f"SET enable_{method} = off"))
        compiled = query.compile(connection)
        plan = [r[0].strip() for r in connection.exec_driver_sql(
            "EXPLAIN " + str(compiled), compiled.params)]
    # The index searched for the name, not read whole (it is partial on `approver IS NOT
    # NULL`, which the OR implies, so a plan could also scan all of it).
    scans = [n for n, line in enumerate(plan) if f"Scan on {PG_APPROVER_INDEX} " in line]
    assert scans and "@> '{alice}'" in "".join(plan[scans[0] + 1:scans[0] + 2]), \
        "\n".join(plan)
