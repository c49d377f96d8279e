"""Control-plane audit benchmark: ingest rate and search latency over a million entries, on
SQLite and on PostgreSQL, printed side by side in one run.

For each engine, on a fresh database migrated like a real server:
  1. bulk load: N realistic entries (4 teams of one organisation plus a second tenant, 45
     runtimes, 90 days; request -> decision -> approval -> execution -> result) written with
     executemany (SQLite) or COPY (PostgreSQL) into the real table, indexes and full-text
     index in place, with the server's approval events (requested, vote, decided) of every
     ask. This is how the benchmark gets to a million rows quickly; it is NOT the
     ingest path and its rate is printed only for orientation.
  2. ingest: real hash-chained runtime entries shipped through the real endpoint
     (POST /api/v1/runtime/audit, in batches of the runtime shipper's size unless `--batch`
     says otherwise, in-process HTTP client), which verifies
     every link and stores each entry; measured on top of the N rows already there.
  3. latency (p50 / p95) of typical searches through the HTTP API as an auditor or org
     admin, beside two baselines from the same run: a primary-key lookup (SQL) and an
     authenticated trivial request (GET /api/v1/me).

Page timings (the dashboard) are added by appending probes in `probes()`: each probe is a
name and a function of a random generator, timed `--samples` times.

Usage: python bench/server.py [--entries 1000000] [--engines sqlite,postgresql]
           [--ingest 20000] [--batch N] [--samples 25] [--postgres URL] [--explain]
           [--ingest-only]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DAYS = 90
TEAMS = 4
RUNTIMES_PER_TEAM = 10
USERS = 300
AGENTS = ("claude-code", "codex", "gemini-cli", "cursor")
TOOLS = (("Bash", 50), ("Read", 15), ("Write", 8), ("Edit", 10), ("WebFetch", 5),
         ("Grep", 6), ("mcp__github__create_issue", 3), ("http.request", 3))
PROGRAMS = ("git", "npm", "python", "pytest", "ls", "cat", "curl", "docker", "kubectl", "make",
            "terraform", "rm", "cp", "mv", "grep", "sed", "find", "ssh", "scp", "pip", "cargo",
            "go", "node", "yarn", "helm", "aws", "gcloud", "psql", "redis-cli", "tar")
VERBS = ("push", "status", "install", "run", "test", "apply", "delete", "get", "build",
         "deploy", "logs", "describe", "sync", "exec", "plan", "copy", "list", "diff")
RULE_FAMILIES = ("git", "fs", "net", "secrets", "pkg", "cloud", "k8s", "db", "shell", "mcp")
SEVERITIES = ("low", "medium", "high", "critical")
COLUMNS = ("org_id", "team_id", "runtime_id", "seq", "kind", "request_id", "time", "tool",
           "decision", "severity", "rule", "agent", "user", "approver", "summary",
           "action_hash", "policy_hash", "hash", "entry", "received", "reason", "purpose")


# --- the synthetic history --------------------------------------------------------------


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    """Made-up words; drawn with Zipf-like weights, so a few are common and most are rare."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 10))))
    return sorted(words)


@dataclass
class World:
    """What the generated history is made of, so probes can ask for values that exist."""

    org_id: int
    other_org_id: int
    teams: list[int]
    other_team: int
    runtimes: dict[str, int]  # runtime_id -> team id
    users: list[str]
    rules: list[str]
    words: list[str]
    start: datetime
    end: datetime
    request_ids: list[str] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)  # server_events rows


def history(world: World, count: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """`count` rows in time order, as ingest would store them (columns in COLUMNS order)."""
    rng = random.Random(seed)
    tool_names = [t for t, _ in TOOLS]
    tool_weights = [w for _, w in TOOLS]
    word_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(world.words))))
    tool_weights = list(itertools.accumulate(tool_weights))
    runtime_ids = list(world.runtimes)
    seqs = dict.fromkeys(runtime_ids, 0)
    org_of = {rid: (world.other_org_id if team == world.other_team else world.org_id)
              for rid, team in world.runtimes.items()}
    span = (world.end - world.start).total_seconds()
    calls = count // 3 + 1
    produced = 0
    for call in range(calls):
        moment = world.start + timedelta(seconds=span * call / calls)
        runtime_id = rng.choice(runtime_ids)
        team, org = world.runtimes[runtime_id], org_of[runtime_id]
        tool = rng.choices(tool_names, cum_weights=tool_weights)[0]
        words = rng.choices(world.words, cum_weights=word_weights, k=2)
        summary = f"{rng.choice(PROGRAMS)} {rng.choice(VERBS)} {words[0]} /srv/{words[1]}"
        user, agent = rng.choice(world.users), rng.choice(AGENTS)
        request_id = f"req_{call:012x}{rng.getrandbits(48):012x}"
        if call % 997 == 0:
            world.request_ids.append(request_id)
        roll = rng.random()
        decision = "allow" if roll < 0.80 else ("ask" if roll < 0.92 else "deny")
        rule = rng.choice(world.rules) if decision != "allow" or roll < 0.3 else None
        severity = rng.choice(SEVERITIES) if rule else None
        action_hash = f"{rng.getrandbits(256):064x}"
        steps: list[tuple[str, dict[str, Any]]] = [
            ("request", {"input": {"command": summary}, "cwd": "/srv/app", "agent": agent,
                         "session": f"s{call % 5000}", "user": user}),
            ("decision", {"decision": decision, "rules": [rule] if rule else [],
                          "reason": f"rule {rule} matched {words[0]}" if rule else "allowed",
                          "severity": severity}),
        ]
        approver = None
        if decision == "ask":
            approver = rng.choice(world.users)
            outcome = "approved" if rng.random() < 0.7 else "denied"
            for after, kind, detail in (
                    (0.1, "approval.requested", {"tool": tool, "rule": rule}),
                    (20, "approval.vote", {"user": approver, "vote": outcome[:-1]}),
                    (20.01, "approval.decided", {"state": outcome, "approvers": [approver]})):
                world.events.append((org, team, "server", kind, json.dumps(
                    {"request_id": request_id, **detail}),
                    moment + timedelta(seconds=after)))
            steps.append(("approval", {"decision": outcome, "approver": approver,
                                       "reason": "reviewed"}))
            allowed = outcome == "approved"
        else:
            allowed = decision == "allow"
        if allowed:
            steps.append(("execution", {"exit_code": 0}))
            steps.append(("result", {"exit_code": 0, "duration_ms": rng.randint(5, 5000)}))
        for offset, (kind, extra) in enumerate(steps):
            seqs[runtime_id] += 1
            seq = seqs[runtime_id]
            at = moment + timedelta(milliseconds=offset * 40)
            entry = {"kind": kind, "request_id": request_id, "tool": tool, "summary": summary,
                     "action_hash": action_hash, "time": at.isoformat(), "runtime": runtime_id,
                     "seq": seq, "prev": "0" * 64, "hash": f"{rng.getrandbits(256):064x}",
                     **extra}
            yield (org, team, runtime_id, seq, kind, request_id, at, tool,
                   extra.get("decision"), severity if kind == "decision" else None,
                   rule if kind in ("decision", "approval") else None,
                   agent if kind == "request" else None, user if kind == "request" else None,
                   approver if kind == "approval" else None,
                   summary if kind != "approval" else "reviewed", action_hash,
                   None, entry["hash"], json.dumps(entry), at, extra.get("reason"), None)
            produced += 1
            if produced >= count:
                return


def bulk_load(db: Any, world: World, count: int) -> float:
    """Write `count` rows straight into audit_entries; seconds taken."""
    rows = history(world, count)
    start = time.perf_counter()
    if db.engine.dialect.name == "sqlite":
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA cache_size = -524288")  # 512 MB for this load only
            sql = (f"INSERT INTO audit_entries ({', '.join(_q(c) for c in COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(COLUMNS))})")
            chunk: list[tuple[Any, ...]] = []
            for item in rows:
                chunk.append(_sqlite_row(item))
                if len(chunk) == 20_000:
                    cursor.executemany(sql, chunk)
                    chunk.clear()
            cursor.executemany(sql, chunk)
            cursor.executemany(
                "INSERT INTO server_events (org_id, team_id, actor, kind, detail, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*e[:5], e[5].strftime("%Y-%m-%d %H:%M:%S.%f")) for e in world.events])
            raw.commit()
        finally:
            raw.close()
        from runestone_server.audit.fulltext import catch_up

        catch_up(db.engine)  # what the worker does tick by tick: index new rows for text
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    else:
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY audit_entries ({', '.join(_q(c) for c in COLUMNS)}) "
                             "FROM STDIN") as copy:
                for item in rows:
                    copy.write_row(item)
            with cursor.copy("COPY server_events (org_id, team_id, actor, kind, detail, "
                             "created) FROM STDIN") as copy:
                for event in world.events:
                    copy.write_row(event)
            raw.commit()
        finally:
            raw.close()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE audit_entries")
            connection.exec_driver_sql("VACUUM ANALYZE server_events")
    return time.perf_counter() - start


def _q(column: str) -> str:
    return '"user"' if column == "user" else column


def _sqlite_row(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQLAlchemy's own SQLite storage of timezone-aware times: UTC, no offset."""
    out = list(item)
    out[6] = item[6].strftime("%Y-%m-%d %H:%M:%S.%f")
    out[19] = item[19].strftime("%Y-%m-%d %H:%M:%S.%f")
    return tuple(out)


# --- the server -------------------------------------------------------------------------


@dataclass
class Context:
    engine: str
    app: Any
    client: Any
    world: World
    auditor: str  # token of an auditor of teams[0]
    org_admin: str
    runtime_credentials: dict[str, str]


def setup(url: str, where: Path) -> Context:
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app
    from runestone_server.migrate import upgrade
    from runestone_server.models import (
        ApiToken,
        Membership,
        Organisation,
        Runtime,
        Team,
        User,
    )
    from runestone_server.security import hash_password, new_token, token_hash

    app = create_app(url, key_path=str(where / "server.ed25519"), worker_interval=0)
    upgrade(app.state.db)
    rng = random.Random(3)
    with app.state.db.sessions() as db:
        org, other = Organisation(name="bench"), Organisation(name="other-tenant")
        db.add_all([org, other])
        db.flush()
        teams = [Team(org_id=org.id, name=f"team-{i}") for i in range(TEAMS)]
        other_team = Team(org_id=other.id, name="theirs")
        db.add_all([*teams, other_team])
        db.flush()
        password = hash_password("bench-password")
        tokens = {}
        for name, admin in (("auditor", False), ("orgadmin", True)):
            user = User(org_id=org.id, username=name, password_hash=password, org_admin=admin)
            db.add(user)
            db.flush()
            if not admin:
                db.add(Membership(org_id=org.id, team_id=teams[0].id, user_id=user.id,
                                  role="auditor"))
            token, digest = new_token("rst")
            db.add(ApiToken(org_id=org.id, user_id=user.id, name="bench", token_hash=digest,
                            scopes=["read", "write"]))
            tokens[name] = token
        runtimes: dict[str, int] = {}
        credentials: dict[str, str] = {}
        for team in [*teams, other_team]:
            count = RUNTIMES_PER_TEAM if team is not other_team else 5
            for i in range(count):
                runtime_id = f"rt-{team.id}-{i}-{uuid.uuid4().hex[:6]}"
                credential = f"rsc_{uuid.uuid4().hex}"
                db.add(Runtime(org_id=team.org_id, team_id=team.id, runtime_id=runtime_id,
                               public_key="00" * 32, labels={"host": runtime_id},
                               credential_hash=token_hash(credential)))
                runtimes[runtime_id] = team.id
                credentials[runtime_id] = credential
        db.commit()
        end = datetime.now(UTC).replace(microsecond=0)
        world = World(org_id=org.id, other_org_id=other.id, teams=[t.id for t in teams],
                      other_team=other_team.id, runtimes=runtimes,
                      users=[f"user{i:03d}" for i in range(USERS)],
                      rules=[f"{f}.rule-{i}" for f in RULE_FAMILIES for i in range(8)],
                      words=vocabulary(rng), start=end - timedelta(days=DAYS), end=end)
    client = TestClient(app)
    return Context(url.split(":")[0], app, client, world, tokens["auditor"],
                   tokens["orgadmin"], credentials)


def ingest_rate(ctx: Context, count: int, batch: int) -> float:
    """Entries per second through POST /api/v1/runtime/audit: real chained entries, every
    link verified by the server, each stored once."""
    from runestone.audit.entry import genesis, seal

    names = [rid for rid, team in ctx.world.runtimes.items() if team == ctx.world.teams[1]][:4]
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    per_runtime = count // len(names)
    for runtime_id in names:
        # Fresh runtimes (ingest chains from genesis); the bulk rows used other ones.
        runtime_id_new = runtime_id + "-ing"
        prev, entries = genesis(runtime_id_new), []
        for seq in range(1, per_runtime + 1):
            body = {"kind": "request" if seq % 2 else "decision", "request_id": f"req_i{seq//2}",
                    "tool": "Bash", "summary": f"git push origin feature-{seq}",
                    "time": datetime.now(UTC).isoformat(), "runtime": runtime_id_new,
                    "decision": None if seq % 2 else "allow", "agent": "codex",
                    "user": "user001", "input": {"command": f"git push origin feature-{seq}"}}
            item = seal(body, seq=seq, prev=prev)
            prev = item["hash"]
            entries.append(item)
        _add_runtime(ctx, runtime_id_new, ctx.world.teams[1])
        for start in range(0, len(entries), batch):
            batches.append((runtime_id_new, entries[start:start + batch]))
    started = time.perf_counter()
    sent = 0
    for runtime_id, chunk in batches:
        response = ctx.client.post("/api/v1/runtime/audit", json={"entries": chunk},
                                   headers=_auth(ctx.runtime_credentials[runtime_id]))
        if response.status_code != 200 or response.json()["stored"] != len(chunk):
            raise SystemExit(f"ingest failed: {response.status_code} {response.text[:300]}")
        sent += len(chunk)
    return sent / (time.perf_counter() - started)


def _add_runtime(ctx: Context, runtime_id: str, team_id: int) -> None:
    from runestone_server.models import Runtime
    from runestone_server.security import token_hash

    credential = f"rsc_{uuid.uuid4().hex}"
    with ctx.app.state.db.sessions() as db:
        db.add(Runtime(org_id=ctx.world.org_id, team_id=team_id, runtime_id=runtime_id,
                       public_key="00" * 32, labels={}, credential_hash=token_hash(credential)))
        db.commit()
    ctx.runtime_credentials[runtime_id] = credential


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- what is timed ----------------------------------------------------------------------


@dataclass
class Probe:
    name: str
    run: Callable[[random.Random], Any]
    samples: int | None = None  # None: --samples


def probes(ctx: Context) -> list[Probe]:
    """Every timed operation. Page timings (dashboard) are appended here the same way."""
    from sqlalchemy import func, select

    from runestone_server.audit.models import AuditEntry
    from runestone_server.audit.search import encode_cursor

    w, team = ctx.world, ctx.world.teams[0]
    base = f"/api/v1/teams/{team}/audit"
    with ctx.app.state.db.sessions() as db:
        top = db.scalar(select(func.max(AuditEntry.id))) or 1
    common_word, rare_word = w.words[0], w.words[1500]

    def api(path: str, token: str, window: Callable[[random.Random], dict[str, str]] | None
            = None, **params: Any) -> Callable[[random.Random], Any]:
        def run(rng: random.Random) -> Any:
            values = {k: (v(rng) if callable(v) else v) for k, v in params.items()}
            values.update(window(rng) if window else {})
            response = ctx.client.get(path, params=values, headers=_auth(token))
            if response.status_code != 200:
                raise SystemExit(f"{path} {values}: {response.status_code} {response.text}")
            return response
        return run

    def pk_lookup(rng: random.Random) -> Any:
        with ctx.app.state.db.sessions() as db:
            return db.get(AuditEntry, rng.randint(1, top))

    def week(rng: random.Random) -> dict[str, str]:
        since = w.start + timedelta(days=rng.uniform(0, DAYS - 7))
        return {"since": since.isoformat(), "until": (since + timedelta(days=7)).isoformat()}

    def deep_cursor(rng: random.Random) -> str:
        return encode_cursor(w.start + timedelta(days=rng.uniform(1, DAYS)), 2**62)

    def story(rng: random.Random) -> Any:
        request_id = rng.choice(w.request_ids)
        return ctx.client.get(f"/api/v1/audit/requests/{request_id}",
                              headers=_auth(ctx.org_admin))

    def pick(values: list[str] | tuple[str, ...]) -> Callable[[random.Random], str]:
        return lambda rng: rng.choice(values)

    day = (w.end - timedelta(days=1)).isoformat()
    return [
        Probe("baseline: primary-key lookup (SQL)", pk_lookup),
        Probe("baseline: GET /api/v1/me (auth only)", api("/api/v1/me", ctx.auditor)),
        Probe("team: newest page (50)", api(base, ctx.auditor)),
        Probe("team: page deep in history (cursor)", api(base, ctx.auditor, cursor=deep_cursor)),
        Probe("team: decision=deny", api(base, ctx.auditor, decision="deny")),
        Probe("team: kind=approval", api(base, ctx.auditor, kind="approval")),
        Probe("team: tool + 7-day range", api(base, ctx.auditor, window=week, tool=pick(
            ("Bash", "WebFetch", "mcp__github__create_issue")))),
        Probe("team: user (1 of 300)", api(base, ctx.auditor, user=pick(w.users))),
        Probe("team: rule (1 of 80)", api(base, ctx.auditor, rule=pick(w.rules))),
        Probe("team: approver", api(base, ctx.auditor, approver=pick(w.users))),
        Probe("team: runtime", api(base, ctx.auditor, runtime=pick(
            [r for r, t in w.runtimes.items() if t == team]))),
        Probe("team: full text, common word", api(base, ctx.auditor, q=common_word)),
        Probe("team: full text, rare word", api(base, ctx.auditor, q=rare_word)),
        Probe("team: full text + decision=deny", api(base, ctx.auditor, q=common_word,
                                                     decision="deny")),
        Probe("org: newest page (org admin)", api("/api/v1/audit", ctx.org_admin)),
        Probe("org: user + agent", api("/api/v1/audit", ctx.org_admin, user=pick(w.users),
                                       agent=pick(AGENTS))),
        Probe("story of one request (org)", story),
        Probe("export: last day of a team (JSONL)", api(f"{base}/export", ctx.auditor,
                                                        since=day), samples=3),
        Probe("report: a team, 7 days", api(f"{base}/report", ctx.auditor, window=week),
              samples=3),
    ]


PENDING_ASKS = 300


def page_probes(ctx: Context) -> list[Probe]:
    """The dashboard's pages as a signed-in approver sees them, over the same history: the
    overview (after the worker's daily roll-up has caught up), the approvals inbox with
    PENDING_ASKS open requests and its live rows, and the audit search page."""
    from sqlalchemy import select

    from runestone_server.approvals.service import NewAsk, RuntimeRef, submit
    from runestone_server.models import Membership, Runtime, User
    from runestone_server.security import hash_password
    from runestone_server.web import sessions
    from runestone_server.web.rollup import roll_up_once

    w, team = ctx.world, ctx.world.teams[0]
    db_ = ctx.app.state.db
    with db_.sessions() as db:
        approver = User(org_id=w.org_id, username="approver",
                        password_hash=hash_password("bench-password"))
        db.add(approver)
        db.flush()
        db.add(Membership(org_id=w.org_id, team_id=team, user_id=approver.id,
                          role="approver"))
        runtime = db.scalar(select(Runtime).where(Runtime.team_id == team).limit(1))
        assert runtime is not None
        for i in range(PENDING_ASKS):
            submit(db, RuntimeRef.of(runtime), NewAsk(
                request_id=f"req_bench_{i:06d}", action_hash=f"{i:064x}", tool="Bash",
                summary=f"kubectl rollout restart deploy/api-{i}", rules=("cloud.kubectl",),
                severity="high", input={"command": f"kubectl rollout restart deploy/api-{i}"},
                user=f"user{i % USERS:03d}"))
        db.commit()
        secret = sessions.start(db, approver)
        auditor = db.scalar(select(User).where(User.org_id == w.org_id,
                                               User.username == "auditor"))
        assert auditor is not None
        auditor_secret = sessions.start(db, auditor)
        db.commit()
    started = time.perf_counter()
    with db_.sessions() as db:
        while roll_up_once(db):
            pass
    print(f"[{ctx.engine}] dashboard roll-up of the history: "
          f"{time.perf_counter() - started:.1f} s (the worker does it in ticks)", flush=True)

    def page(path: str, as_auditor: bool = False, **params: Any) -> Callable[[random.Random], Any]:
        cookies = {sessions.COOKIE: auditor_secret if as_auditor else secret}

        def run(rng: random.Random) -> Any:
            values = {k: (v(rng) if callable(v) else v) for k, v in params.items()}
            ctx.client.cookies.clear()
            response = ctx.client.get(path, params=values, cookies=cookies)
            if response.status_code != 200:
                raise SystemExit(f"page {path}: {response.status_code} {response.text[:300]}")
            return response
        return run

    return [
        Probe("page: overview", page("/")),
        Probe(f"page: approvals inbox ({PENDING_ASKS} open)", page("/approvals")),
        Probe("page: inbox live rows", page("/approvals/rows")),
        Probe("page: audit search, newest", page("/audit", True, team=str(team))),
        Probe("page: audit search, decision=deny", page("/audit", True, team=str(team),
                                                        decision="deny")),
        Probe("page: audit search, full text", page("/audit", True, team=str(team),
                                                    q=w.words[1500])),
    ]


def measure(probe: Probe, samples: int, rng: random.Random) -> tuple[float, float]:
    probe.run(rng)  # warm
    times = []
    for _ in range(probe.samples or samples):
        start = time.perf_counter()
        probe.run(rng)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def explain(ctx: Context) -> None:
    """Print the plans of the main searches (to check that indexes are used)."""
    from runestone_server.audit import fulltext
    from runestone_server.audit.search import Filters, Scope, page_query

    scope = Scope(ctx.world.org_id, ctx.world.teams[0])
    dialect = ctx.app.state.db.engine.dialect.name
    cases = {"newest": Filters(), "deny": Filters(decision="deny"),
             "user": Filters(user=ctx.world.users[5]), "text": Filters(q=ctx.world.words[1500]),
             "common text": Filters(q=ctx.world.words[0])}
    with ctx.app.state.db.engine.connect() as connection:
        if dialect == "postgresql":  # what search.steer does for team pages
            connection.exec_driver_sql("SET enable_incremental_sort = off")
        for name, filters in cases.items():
            common = fulltext.common(ctx.app.state.db.engine, filters.q) if filters.q else False
            compiled = page_query(dialect, scope, filters, common_words=common).compile(
                connection)
            prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
            params: Any = compiled.params
            if dialect == "sqlite":
                params = tuple(params[k] for k in compiled.positiontup or ())
            plan = connection.exec_driver_sql(prefix + str(compiled), params).all()
            print(f"  plan [{name}]:")
            for line in plan:
                print("    " + str(line[-1]))


def run_engine(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runestone-bench-") as where:
        ctx = setup(url, Path(where))
        try:
            print(f"[{name}] bulk loading {args.entries:,} entries ...", flush=True)
            seconds = bulk_load(ctx.app.state.db, ctx.world, args.entries)
            print(f"[{name}] loaded in {seconds:.1f} s ({args.entries / seconds:,.0f} rows/s, "
                  "bulk load, not the ingest path)", flush=True)
            rate = ingest_rate(ctx, args.ingest, args.batch)
            print(f"[{name}] ingest: {rate:,.0f} entries/s through POST /api/v1/runtime/audit",
                  flush=True)
            if args.explain:
                explain(ctx)
            rng = random.Random(11)
            timings = {}
            for probe in [] if args.ingest_only else [*probes(ctx), *page_probes(ctx)]:
                timings[probe.name] = measure(probe, args.samples, rng)
                p50, p95 = timings[probe.name]
                print(f"[{name}] {probe.name:<42} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms",
                      flush=True)
            return {"bulk_rows_per_s": args.entries / seconds, "ingest_per_s": rate,
                    "timings": timings}
        finally:
            ctx.client.close()
            ctx.app.state.db.engine.dispose()


def postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"runestone_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{server_url.rpartition('/')[0]}/{name}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=20_000,
                        help="entries shipped through the ingest endpoint")
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=os.environ.get("RUNESTONE_BENCH_POSTGRES",
                                                             DEFAULT_PG))
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--batch", type=int, default=None,
                        help="entries per ingest request (default: the runtime shipper's)")
    parser.add_argument("--ingest-only", action="store_true",
                        help="load and time ingest only, no searches or pages")
    args = parser.parse_args(argv)
    if args.batch is None:
        from runestone.remote.shipper import BATCH_ENTRIES

        args.batch = BATCH_ENTRIES
    results = {}
    for engine in args.engines.split(","):
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="runestone-bench-db-") as where:
                results["sqlite"] = run_engine("sqlite", f"sqlite:///{where}/bench.sqlite3",
                                               args)
        elif engine == "postgresql":
            url, drop = postgres_database(args.postgres)
            try:
                results["postgresql"] = run_engine("postgresql", url, args)
            finally:
                drop()
        else:
            parser.error(f"unknown engine {engine}")
    print(f"\nSummary: {args.entries:,} entries; latency p50 / p95 in ms")
    engines = list(results)
    print(f"{'':<44}" + "".join(f"{e:>24}" for e in engines))
    print(f"{'ingest, entries/s (real endpoint)':<44}" + "".join(
        f"{results[e]['ingest_per_s']:>24,.0f}" for e in engines))
    print(f"{'bulk load, rows/s (not ingest)':<44}" + "".join(
        f"{results[e]['bulk_rows_per_s']:>24,.0f}" for e in engines))
    for name in results[engines[0]]["timings"]:
        print(f"{name:<44}" + "".join(
            "{:>24}".format("{:.2f} / {:.2f}".format(*results[e]["timings"][name]))
            for e in engines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
