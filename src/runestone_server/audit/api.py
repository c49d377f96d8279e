"""Audit ingest endpoints: runtimes ship batches and learn where to resume; people see each
runtime's chain health, re-verify stored chains, and set the organisation's retention.

The ingest body is read with a size cap before it is parsed, so an oversized or malformed
batch costs little and gets a clear 4xx; a well-formed batch with a broken chain gets 409
with what was refused and why.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

import runestone_server.audit.reverify  # registers the worker task
import runestone_server.stream.deliver  # noqa: F401 - registers the stream's worker task
from runestone_server.audit import retention
from runestone_server.audit.ingest import chain_state, ingest
from runestone_server.audit.models import AuditChain, AuditRetention
from runestone_server.audit.verify import verify_stored
from runestone_server.auth import AUDIT_ROLES, DB, READ_ROLES, Id, RuntimeCaller, Who, team_for
from runestone_server.models import Runtime
from runestone_server.revocation import ensure_live

router = APIRouter(prefix="/api/v1", tags=["audit"])

MAX_BATCH = 1000
MAX_BODY = 16 * 1024 * 1024  # the shipper sends 2 MiB batches (one bigger entry alone)
RETRIES = 5


class Batch(BaseModel):
    """A run of entries in seq order, as written by the runtime, and signed checkpoints."""

    entries: list[dict[str, Any]] = Field(max_length=MAX_BATCH)
    checkpoints: list[dict[str, Any]] = Field(default_factory=list, max_length=64)


class Problem(BaseModel):
    problem: str
    seq: int
    message: str


class IngestOut(BaseModel):
    runtime_id: str
    acknowledged: int
    last_hash: str
    stored: int
    duplicates: int
    checkpoints: int
    status: str
    problem: Problem | None


class ChainProblem(BaseModel):
    message: str | None
    seq: int | None


class ResumeOut(BaseModel):
    runtime_id: str
    acknowledged: int
    last_hash: str
    status: str
    problem: ChainProblem | None


async def batch_body(request: Request) -> Batch:
    """The request body, at most MAX_BODY bytes, parsed; a clear 4xx otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"the batch is larger than {MAX_BODY} bytes; send fewer "
                                 "entries per batch")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_BODY:
            raise HTTPException(413, f"the batch is larger than {MAX_BODY} bytes; send fewer "
                                     "entries per batch")
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from exc
    except RecursionError:  # 100,000 nested brackets: a clear refusal, not a 500
        raise HTTPException(400, "the body is nested too deeply to be an audit batch") \
            from None
    try:
        return Batch.model_validate(parsed)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(400, f"not a batch ({where}: {first['msg']}); expected "
                                 f"{{\"entries\": [at most {MAX_BATCH} entries], "
                                 "\"checkpoints\": [...]}") from exc


_BATCH_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": Batch.model_json_schema()}}}}


@router.post("/runtime/audit", response_model=IngestOut, openapi_extra=_BATCH_SCHEMA,
             responses={409: {"description": "part of the batch was refused: gap, fork, "
                                             "altered entry or bad checkpoint signature"}})
def ship(runtime: RuntimeCaller, db: DB,
         batch: Annotated[Batch, Depends(batch_body)]) -> IngestOut:
    """Store a batch of this runtime's entries; idempotent, resumable from `acknowledged`."""
    for attempt in range(RETRIES):
        try:
            ensure_live(db, runtime.id)  # in the batch's transaction: revoked, nothing stored
            result = ingest(db, runtime, batch.entries, batch.checkpoints)
            break
        except (IntegrityError, OperationalError):
            # Another batch of this runtime won a race (the chain row's creation, or SQLite's
            # write lock): start again from the head it left.
            db.rollback()
            if attempt == RETRIES - 1:
                raise HTTPException(503, "the audit store is busy; retry the batch") from None
            time.sleep(0.05 * (attempt + 1))
    body = result.as_dict()
    if result.problem is not None:
        raise HTTPException(409, body)
    return IngestOut.model_validate(body)


@router.get("/runtime/audit", response_model=ResumeOut)
def resume(runtime: RuntimeCaller, db: DB) -> ResumeOut:
    """Where this runtime's shipping resumes: the last seq the server stored."""
    return ResumeOut.model_validate(chain_state(db, runtime))


class ChainOut(BaseModel):
    runtime_id: str
    last_seq: int
    base_seq: int
    checkpoint_seq: int | None
    status: str
    problem: str | None
    problem_seq: int | None


def _chains(db: Session, team_id: int, org_id: int) -> list[AuditChain]:
    return list(db.scalars(select(AuditChain).where(
        AuditChain.team_id == team_id, AuditChain.org_id == org_id)
        .order_by(AuditChain.runtime_id)))


@router.get("/teams/{team_id}/audit/chains", response_model=list[ChainOut])
def list_chains(team_id: Id, who: Who, db: DB) -> list[ChainOut]:
    """Each runtime's chain on the server: head, pruned start, latest checkpoint, health."""
    team = team_for(db, who, team_id, READ_ROLES)
    return [ChainOut(runtime_id=c.runtime_id, last_seq=c.last_seq, base_seq=c.base_seq,
                     checkpoint_seq=c.checkpoint_seq, status=c.status, problem=c.problem,
                     problem_seq=c.problem_seq) for c in _chains(db, team.id, who.org_id)]


class VerifyOut(BaseModel):
    runtime_id: str
    ok: bool = Field(description="true only when the status is verified")
    status: str = Field(description="verified, or broken: by a problem this verification "
                                    "found or one found earlier (on ingest or before)")
    entries: int
    checkpoints: int
    start_seq: int
    head_seq: int
    head_hash: str
    problem: str = Field(description="the chain's first problem ('' when verified)")
    problem_seq: int | None
    stored_problem: str = Field(description="what this verification found in the stored "
                                            "entries and checkpoints ('' when they verify)")


@router.get("/teams/{team_id}/audit/verify", response_model=list[VerifyOut])
def verify_team(team_id: Id, who: Who, db: DB) -> list[VerifyOut]:
    """Re-verify every stored chain of the team's runtimes, from genesis or the kept
    checkpoint retention left, entry by entry and checkpoint by checkpoint. A problem found
    is kept on the chain (and raised as an `audit.chain_problem` event), so the chain list,
    the dashboard and the report say broken too."""
    team = team_for(db, who, team_id, AUDIT_ROLES)
    runtimes = db.scalars(select(Runtime).where(Runtime.team_id == team.id,
                                                Runtime.org_id == who.org_id)
                          .order_by(Runtime.runtime_id))
    return [VerifyOut.model_validate(verify_stored(db, r).as_dict()) for r in runtimes]


class RetentionIn(BaseModel):
    days: int | None = Field(default=None, ge=1, le=36_500,
                             description="days of entries to keep; null keeps everything")


class RetentionOut(BaseModel):
    days: int | None
    last_pruned: str | None


def _org_admin(who: Who) -> None:
    if not who.user.org_admin:
        raise HTTPException(403, "only an organisation admin sets audit retention")


@router.get("/audit/retention", response_model=RetentionOut)
def get_retention(who: Who, db: DB) -> RetentionOut:
    _org_admin(who)
    row = db.get(AuditRetention, who.org_id)
    return RetentionOut(days=row.days if row else None,
                        last_pruned=row.last_pruned.isoformat()
                        if row and row.last_pruned else None)


@router.put("/audit/retention", response_model=RetentionOut)
def put_retention(body: RetentionIn, who: Who, db: DB) -> RetentionOut:
    """Keep `days` of audit entries for the organisation (pruned by the worker)."""
    _org_admin(who)
    retention.set_retention(db, who.org_id, body.days, who.name)
    return get_retention(who, db)


class PruneOut(BaseModel):
    deleted: int
    cutoff: str
    runtimes: list[dict[str, Any]]


@router.post("/audit/retention/prune", response_model=PruneOut)
def prune_now(who: Who, db: DB) -> PruneOut:
    """Prune now to the organisation's retention (normally the worker does this)."""
    _org_admin(who)
    row = db.get(AuditRetention, who.org_id)
    if row is None:
        raise HTTPException(400, "no retention is set: entries are kept forever")
    result = retention.prune_org(db, who.org_id, row.days)
    return PruneOut(deleted=result.deleted, cutoff=result.cutoff.isoformat(),
                    runtimes=result.runtimes)
