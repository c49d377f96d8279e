"""Each alert event kind: when a rule of that kind fires, and under which de-duplication key.

A checker looks at the new rows since the cursor (denies, server events) or at the state
now (silent runtimes, drift, deny spikes) and yields candidates; `evaluate` drops those
already fired within the rule's window. The key says what "the same alert" means: the
same runtime and rule for a deny, the same silence (same last_seen) for a silent runtime,
the same pair of hashes for drift, so a new occurrence is a new alert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone.policy.engine import SEVERITY_ORDER
from runestone_server.alerts.models import AlertRule
from runestone_server.alerts.sources import Batch, audit_entry_model
from runestone_server.models import PolicyVersion, Runtime, aware

SEVERITIES = tuple(SEVERITY_ORDER)


class Conditions(BaseModel):
    """A rule's conditions; each event kind reads the ones it needs."""

    min_severity: str = Field(default="high", pattern="^(low|medium|high|critical)$")
    # deny_spike and limit_hits: denies (limit hits) in the window
    threshold: int = Field(default=10, ge=1, le=1_000_000)
    window_minutes: int = Field(default=10, ge=1, le=10_080)
    silent_minutes: int = Field(default=30, ge=1, le=525_600)  # runtime_silent
    grace_minutes: int = Field(default=10, ge=0, le=10_080)  # drift: time to pull a policy


@dataclass
class Candidate:
    """An alert about to fire; `path` is the dashboard page (on this server) that shows
    what it is about, for the notification's link."""

    key: str
    subject: str
    text: str
    detail: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def audit_search(team_id: int, **filters: str | None) -> str:
    return "/audit?" + urlencode({"team": team_id, **{k: v for k, v in filters.items() if v}})


Checker = Callable[[Session, AlertRule, Conditions, Batch, datetime], Iterator[Candidate]]


def deny(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
         now: datetime) -> Iterator[Candidate]:
    floor = SEVERITY_ORDER[conditions.min_severity]
    for row in batch.denies:
        if row.team_id != rule.team_id or SEVERITY_ORDER.get(row.severity or "", -1) < floor:
            continue
        yield Candidate(
            key=f"deny:{row.runtime_id}:{row.rule or '-'}",
            subject=f"Denied ({row.severity}): {row.tool or 'a tool call'} on {row.runtime_id}",
            text=f"{row.summary or ''}\nRule: {row.rule or '(default)'}  Agent: "
                 f"{row.agent or '?'}  User: {row.user or '?'}",
            detail={"runtime_id": row.runtime_id, "seq": row.seq, "rule": row.rule,
                    "severity": row.severity, "tool": row.tool, "request_id": row.request_id},
            path=f"/audit/calls/{quote(row.request_id, safe='')}?team={rule.team_id}"
            if row.request_id else audit_search(
                rule.team_id, runtime=row.runtime_id, decision="deny", rule=row.rule))


def _events(kind: str, key: Callable[[dict[str, Any], int], str],
            subject: Callable[[dict[str, Any]], str],
            path: Callable[[dict[str, Any], int], str]) -> Checker:
    """A checker firing on each new server event of `kind` in the rule's team."""

    def check(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
              now: datetime) -> Iterator[Candidate]:
        for event in batch.events:
            if event.kind != kind or event.team_id != rule.team_id:
                continue
            detail = dict(event.detail or {})
            lines = "\n".join(f"{k}: {v}" for k, v in sorted(detail.items()))
            yield Candidate(key=key(detail, event.id), subject=subject(detail),
                            text=f"{lines}\nBy: {event.actor}",
                            detail={**detail, "event_id": event.id},
                            path=path(detail, rule.team_id))

    return check


approval_expired = _events(
    "approval.expired",
    lambda d, n: f"approval:{d.get('request_id') or d.get('approval_id') or n}",
    lambda d: f"Approval expired unanswered: {d.get('tool') or 'request'} "
              f"({d.get('severity') or '?'})",
    lambda d, team: f"/approvals/{d['approval_id']}" if d.get("approval_id")
    else f"/teams/{team}")
chain_problem = _events(
    "audit.chain_problem",
    lambda d, n: f"chain:{d.get('runtime_id')}:{d.get('problem')}:{d.get('seq')}",
    lambda d: f"Audit chain problem on {d.get('runtime_id')}: {d.get('problem')}",
    lambda d, team: f"/teams/{team}")
policy_published = _events(
    "policy.published",
    lambda d, n: f"published:{d.get('hash')}:{sorted((d.get('selector') or {}).items())}",
    lambda d: f"Policy v{d.get('number')} published"
              + (f" to {d.get('selector')}" if d.get("selector") else ""),
    lambda d, team: f"/teams/{team}/policies/{d['number']}" if d.get("number")
    else f"/teams/{team}/policies")


def runtime_silent(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
                   now: datetime) -> Iterator[Candidate]:
    """A runtime not heard from (or never, since enrolment) for silent_minutes. A revoked
    runtime is silent on purpose (the server refuses it): not an alert."""
    cutoff = now - timedelta(minutes=conditions.silent_minutes)
    heard = func.coalesce(Runtime.last_seen, Runtime.enrolled)
    for runtime in db.scalars(select(Runtime).where(
            Runtime.org_id == rule.org_id, Runtime.team_id == rule.team_id, heard < cutoff,
            Runtime.revoked.is_(None))):
        last = aware(runtime.last_seen or runtime.enrolled)
        minutes = int((now - last).total_seconds() // 60)
        yield Candidate(
            key=f"silent:{runtime.runtime_id}:{last.isoformat()}",
            subject=f"Runtime {runtime.runtime_id} silent for {minutes} minutes",
            text=f"Last seen {last.isoformat() if runtime.last_seen else 'never'}; "
                 f"labels {runtime.labels}",
            detail={"runtime_id": runtime.runtime_id, "last_seen": last.isoformat(),
                    "minutes": minutes},
            path=f"/teams/{rule.team_id}")


def drift(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
          now: datetime) -> Iterator[Candidate]:
    """A runtime whose latest decision used a policy other than the one assigned to it,
    decided more than grace_minutes after that assignment was published."""
    from runestone_server.api.policies import applicable_publication

    entry = audit_entry_model()
    if entry is None:
        return
    grace = timedelta(minutes=conditions.grace_minutes)
    for runtime in db.scalars(select(Runtime).where(Runtime.org_id == rule.org_id,
                                                    Runtime.team_id == rule.team_id)):
        publication = applicable_publication(db, runtime)
        if publication is None:
            continue
        latest = db.execute(select(entry.policy_hash, entry.time, entry.seq).where(
            entry.org_id == rule.org_id, entry.runtime_id == runtime.runtime_id,
            entry.kind == "decision").order_by(entry.seq.desc()).limit(1)).first()
        if latest is None or not latest.policy_hash:
            continue
        expected = db.scalar(select(PolicyVersion.hash).where(
            PolicyVersion.id == publication.version_id,
            PolicyVersion.org_id == rule.org_id))
        if expected is None or latest.policy_hash == expected:
            continue
        if aware(latest.time) < aware(publication.created) + grace:
            continue  # decided before it had time to pull the new policy
        yield Candidate(
            key=f"drift:{runtime.runtime_id}:{latest.policy_hash}:{expected}",
            subject=f"Policy drift on {runtime.runtime_id}",
            text=f"It decides with policy {latest.policy_hash[:12]} but is assigned "
                 f"{expected[:12]} (publication {publication.id}).",
            detail={"runtime_id": runtime.runtime_id, "observed": latest.policy_hash,
                    "expected": expected, "publication": publication.id,
                    "seq": latest.seq},
            path=f"/teams/{rule.team_id}")


def deny_spike(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
               now: datetime) -> Iterator[Candidate]:
    """At least `threshold` denies in the team within the last window_minutes."""
    entry = audit_entry_model()
    if entry is None:
        return
    since = now - timedelta(minutes=conditions.window_minutes)
    count = db.scalar(select(func.count()).select_from(entry).where(
        entry.org_id == rule.org_id, entry.team_id == rule.team_id, entry.time >= since,
        entry.kind == "decision", entry.decision == "deny")) or 0
    if count >= conditions.threshold:
        yield Candidate(
            key=f"spike:{rule.team_id}",
            subject=f"Deny spike: {count} denies in {conditions.window_minutes} minutes",
            text=f"{count} tool calls were denied in the last {conditions.window_minutes} "
                 f"minutes (threshold {conditions.threshold}).",
            detail={"count": count, "window_minutes": conditions.window_minutes,
                    "threshold": conditions.threshold},
            path=audit_search(rule.team_id, decision="deny", kind="decision",
                              since=since.isoformat(timespec="seconds")))


MAX_LIMIT_ROWS = 20_000  # the newest asks and denies of a window read for limit hits


def limit_hits(db: Session, rule: AlertRule, conditions: Conditions, batch: Batch,
               now: datetime) -> Iterator[Candidate]:
    """At least `threshold` decisions in the team within window_minutes that one of the
    policy's `[[limit]]`s made (a `limit:ID` rule: a session or agent over its cap, or
    repeating itself): the runtimes count, the control plane adds them up per team."""
    entry = audit_entry_model()
    if entry is None:
        return
    since = now - timedelta(minutes=conditions.window_minutes)
    rows = db.execute(select(entry.runtime_id, entry.entry).where(
        entry.org_id == rule.org_id, entry.team_id == rule.team_id, entry.time >= since,
        entry.kind == "decision", entry.decision.in_(("ask", "deny"))).order_by(
        entry.id.desc()).limit(MAX_LIMIT_ROWS))
    limits: dict[str, int] = {}
    runtimes: set[str] = set()
    for runtime_id, body in rows:
        rules = body.get("rules") if isinstance(body, dict) else None
        hit = [r for r in rules or [] if isinstance(r, str) and r.startswith("limit:")]
        for name in hit[:1]:
            limits[name[len("limit:"):]] = limits.get(name[len("limit:"):], 0) + 1
            runtimes.add(runtime_id)
    count = sum(limits.values())
    if count >= conditions.threshold:
        worst = ", ".join(f"{k} ({n})" for k, n in sorted(limits.items(),
                                                           key=lambda kv: -kv[1])[:5])
        yield Candidate(
            key=f"limits:{rule.team_id}",
            subject=f"Limits hit {count} times in {conditions.window_minutes} minutes",
            text=f"{count} calls were stopped by the policy's limits in the last "
                 f"{conditions.window_minutes} minutes on {len(runtimes)} runtime(s) "
                 f"(threshold {conditions.threshold}): {worst}.",
            detail={"count": count, "limits": limits, "runtimes": sorted(runtimes),
                    "window_minutes": conditions.window_minutes,
                    "threshold": conditions.threshold},
            path=f"/teams/{rule.team_id}/usage")


CHECKERS: dict[str, Checker] = {
    "deny": deny,
    "approval_expired": approval_expired,
    "chain_problem": chain_problem,
    "policy_published": policy_published,
    "runtime_silent": runtime_silent,
    "drift": drift,
    "deny_spike": deny_spike,
    "limit_hits": limit_hits,
}
