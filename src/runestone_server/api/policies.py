"""Policies: immutable versions, diffs, publication by team or label, and the runtime pull."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runestone.remote.signing import policy_message
from runestone_server.auth import (
    AUDIT_ROLES,
    AUTHOR_ROLES,
    DB,
    MAX_ID,
    READ_ROLES,
    Id,
    QueryId,
    RuntimeCaller,
    Who,
    team_for,
)
from runestone_server.events import record
from runestone_server.models import PolicyVersion, Publication, Runtime, ServerEvent
from runestone_server.revocation import ensure_live

router = APIRouter(prefix="/api/v1")


class NewVersion(BaseModel):
    text: str = Field(max_length=1_000_000)
    message: str = Field(default="", max_length=2000)


class VersionOut(BaseModel):
    number: int
    hash: str
    message: str
    author_id: int
    created: datetime


def _out(v: PolicyVersion) -> VersionOut:
    return VersionOut(number=v.number, hash=v.hash, message=v.message, author_id=v.author_id,
                      created=v.created)


def validate(text: str) -> str:
    """Compile with the runtime's own loader (its [[test]] cases included); the hash."""
    from runestone.policy import PolicyError
    from runestone.policy.loader import compile_policy_text

    try:
        return compile_policy_text(text, source="policy version").hash
    except PolicyError as exc:
        raise HTTPException(400, f"the policy does not load: {exc}") from exc


@router.post("/teams/{team_id}/policies", response_model=VersionOut, status_code=201)
def create_version(team_id: Id, body: NewVersion, who: Who, db: DB) -> VersionOut:
    team = team_for(db, who, team_id, AUTHOR_ROLES)
    digest = validate(body.text)
    number = (db.scalar(select(func.max(PolicyVersion.number)).where(
        PolicyVersion.team_id == team.id)) or 0) + 1
    version = PolicyVersion(org_id=who.org_id, team_id=team.id, number=number, text=body.text,
                            hash=digest, author_id=who.user.id, message=body.message)
    db.add(version)
    record(db, who.org_id, team.id, who.name, "policy.version",
           {"number": number, "hash": digest, "message": body.message})
    db.commit()
    return _out(version)


def _version(db: DB, team_id: Id, number: int) -> PolicyVersion:
    version = db.scalar(select(PolicyVersion).where(PolicyVersion.team_id == team_id,
                                                    PolicyVersion.number == number))
    if version is None:
        raise HTTPException(404, "no such version")
    return version


@router.get("/teams/{team_id}/policies", response_model=list[VersionOut])
def list_versions(team_id: Id, who: Who, db: DB) -> list[VersionOut]:
    team = team_for(db, who, team_id, READ_ROLES)
    return [_out(v) for v in db.scalars(select(PolicyVersion).where(
        PolicyVersion.team_id == team.id).order_by(PolicyVersion.number))]


@router.get("/teams/{team_id}/policies/{number}")
def get_version(team_id: Id, number: Id, who: Who, db: DB) -> dict[str, object]:
    team = team_for(db, who, team_id, READ_ROLES)
    version = _version(db, team.id, number)
    return {**_out(version).model_dump(mode="json"), "text": version.text}


@router.get("/teams/{team_id}/diff")
def diff(team_id: Id, old: QueryId, new: QueryId, who: Who, db: DB) -> dict[str, str]:
    team = team_for(db, who, team_id, READ_ROLES)
    a, b = _version(db, team.id, old), _version(db, team.id, new)
    lines = difflib.unified_diff(a.text.splitlines(keepends=True),
                                 b.text.splitlines(keepends=True), f"v{old}", f"v{new}")
    return {"diff": "".join(lines)}


class Publish(BaseModel):
    number: int = Field(ge=1, le=MAX_ID)
    selector: dict[str, str] = Field(default_factory=dict)


@router.post("/teams/{team_id}/publications", status_code=201)
def publish(team_id: Id, body: Publish, who: Who, db: DB) -> dict[str, object]:
    """Publish a version to the team (or to its runtimes matching every selector label).
    Rolling back is publishing an older version."""
    team = team_for(db, who, team_id, AUTHOR_ROLES)
    version = _version(db, team.id, body.number)
    db.add(Publication(org_id=who.org_id, team_id=team.id, version_id=version.id,
                       selector=body.selector, published_by=who.user.id))
    record(db, who.org_id, team.id, who.name, "policy.published",
           {"number": version.number, "hash": version.hash, "selector": body.selector})
    db.commit()
    return {"number": version.number, "hash": version.hash, "selector": body.selector}


@router.get("/teams/{team_id}/events")
def events(team_id: Id, who: Who, db: DB,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, object]]:
    team = team_for(db, who, team_id, AUDIT_ROLES)
    rows = db.scalars(select(ServerEvent).where(ServerEvent.team_id == team.id).order_by(
        ServerEvent.id.desc()).limit(limit))
    return [{"id": e.id, "actor": e.actor, "kind": e.kind, "detail": e.detail,
             "created": e.created.isoformat()} for e in rows]


def applicable_publication(db: Session, runtime: Runtime) -> Publication | None:
    """The newest publication of the runtime's team whose selector its labels match: the
    policy assigned to it (what it pulls, and what drift alerts compare against)."""
    publications = db.scalars(select(Publication).where(
        Publication.org_id == runtime.org_id, Publication.team_id == runtime.team_id,
    ).order_by(Publication.id.desc()))
    return next((p for p in publications
                 if all(runtime.labels.get(k) == v for k, v in p.selector.items())), None)


@router.get("/runtime/policy")
def pull(request: Request, runtime: RuntimeCaller, db: DB) -> Response:
    """The newest publication that applies to this runtime, signed; 304 if unchanged."""
    ensure_live(db, runtime.id)  # its contact and active policy are not stored once revoked
    runtime.last_seen = datetime.now(UTC)
    chosen = applicable_publication(db, runtime)
    if chosen is None:
        db.commit()
        return Response(status_code=204)
    version = db.get(PolicyVersion, chosen.version_id)
    assert version is not None
    runtime.policy_hash = version.hash
    db.commit()
    etag = f'"{version.hash}"'
    if request.headers.get("If-None-Match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    message = policy_message(runtime.runtime_id, version.number, version.hash, version.text)
    body = {"runtime_id": runtime.runtime_id, "number": version.number, "hash": version.hash,
            "text": version.text, "signature": request.app.state.key.sign(message)}
    import json

    return Response(json.dumps(body), media_type="application/json", headers={"ETag": etag})
