"""The organisation admin's single sign-on settings: `GET|PUT|DELETE /api/v1/sso`.

The client secret is write-only (never returned). Saving checks the issuer's discovery
document, so a typo is refused at once rather than at the first sign-in.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from runestone_server.auth import DB, Who
from runestone_server.events import record
from runestone_server.models import Team, utcnow
from runestone_server.sso.flow import SsoError, discover, redirect_uri
from runestone_server.sso.models import SsoProvider

router = APIRouter(prefix="/api/v1", tags=["sso"])
Role = Literal["owner", "admin", "policy_author", "approver", "auditor", "member"]


class GroupGrant(BaseModel):
    group: str = Field(min_length=1, max_length=200)
    team: str = Field(min_length=1, max_length=200)
    role: Role


class SsoIn(BaseModel):
    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: str = Field(min_length=1, max_length=2000)
    username_claim: str = Field(default="preferred_username", max_length=100)
    groups_claim: str = Field(default="groups", max_length=100)
    group_map: list[GroupGrant] = Field(default_factory=list, max_length=500)
    local_passwords: bool = Field(default=True, description="false: only the first admin "
                                                            "signs in with a password")


class SsoOut(BaseModel):
    issuer: str
    client_id: str
    username_claim: str
    groups_claim: str
    group_map: list[GroupGrant]
    local_passwords: bool
    redirect_uri: str = Field(description="register this at the provider")


def _admin(who: Who) -> None:
    if not who.user.org_admin:
        raise HTTPException(403, "only an organisation admin sets single sign-on")


def _out(row: SsoProvider) -> SsoOut:
    return SsoOut(issuer=row.issuer, client_id=row.client_id,
                  username_claim=row.username_claim, groups_claim=row.groups_claim,
                  group_map=[GroupGrant.model_validate(g) for g in row.group_map],
                  local_passwords=row.local_passwords, redirect_uri=redirect_uri())


@router.get("/sso", response_model=SsoOut)
def get_sso(who: Who, db: DB) -> SsoOut:
    _admin(who)
    row = db.get(SsoProvider, who.org_id)
    if row is None:
        raise HTTPException(404, "no single sign-on is set for this organisation")
    return _out(row)


@router.put("/sso", response_model=SsoOut)
def put_sso(body: SsoIn, who: Who, db: DB) -> SsoOut:
    """Set the organisation's OpenID Provider, its group map and whether local passwords
    stay on."""
    _admin(who)
    teams = set(db.scalars(select(Team.name).where(Team.org_id == who.org_id)))
    unknown = sorted({g.team for g in body.group_map} - teams)
    if unknown:
        raise HTTPException(400, f"no such team: {', '.join(unknown)}")
    try:
        discover(body.issuer)
    except SsoError as exc:
        raise HTTPException(400, str(exc)) from exc
    row = db.get(SsoProvider, who.org_id) or SsoProvider(org_id=who.org_id)
    row.issuer, row.client_id, row.client_secret = body.issuer, body.client_id, \
        body.client_secret
    row.username_claim, row.groups_claim = body.username_claim, body.groups_claim
    row.group_map = [g.model_dump() for g in body.group_map]
    row.local_passwords, row.updated = body.local_passwords, utcnow()
    db.add(row)
    record(db, who.org_id, None, who.name, "sso.configured",
           {"issuer": body.issuer, "client_id": body.client_id,
            "local_passwords": body.local_passwords, "groups": len(body.group_map)})
    db.commit()
    return _out(row)


@router.delete("/sso", status_code=204)
def delete_sso(who: Who, db: DB) -> None:
    """Turn single sign-on off (passwords work again for every user that has one)."""
    _admin(who)
    row = db.get(SsoProvider, who.org_id)
    if row is not None:
        db.delete(row)
        record(db, who.org_id, None, who.name, "sso.removed", {})
        db.commit()
