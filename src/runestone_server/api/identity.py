"""Sign-in, users, teams, memberships and API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from runestone_server.auth import DB, MANAGE_ROLES, READ_ROLES, Id, Who, team_for
from runestone_server.events import record
from runestone_server.models import (
    ROLES,
    ApiToken,
    Membership,
    Team,
    User,
    aware,
)
from runestone_server.security import hash_password, new_token
from runestone_server.signin import Throttled, client_address, sign_in
from runestone_server.sso.mapping import passwords_allowed

router = APIRouter(prefix="/api/v1")
SESSION_HOURS = 12


class Login(BaseModel):
    organisation: str = Field(max_length=200)
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class TokenOut(BaseModel):
    id: int
    token: str
    expires: datetime | None


@router.post("/login", response_model=TokenOut,
             responses={429: {"description": "too many failed logins for this account or "
                                             "address; Retry-After says when to try again"}})
def login(body: Login, request: Request, db: DB) -> TokenOut:
    try:
        user = sign_in(db, body.organisation, body.username, body.password,
                       client_address(request))
    except Throttled as exc:
        raise HTTPException(429, str(exc),
                            headers={"Retry-After": str(exc.retry_after)}) from None
    if user is None:
        raise HTTPException(401, "wrong organisation, user name or password")
    if not passwords_allowed(db, user):
        raise HTTPException(403, "this organisation signs in through single sign-on; "
                                 "passwords are off (except for its first admin)")
    token, digest = new_token("rss")
    expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
    row = ApiToken(org_id=user.org_id, user_id=user.id, name="session", token_hash=digest,
                   scopes=["read", "write"], kind="session", expires=expires)
    db.add(row)
    db.commit()
    return TokenOut(id=row.id, token=token, expires=expires)


class Me(BaseModel):
    id: int
    username: str
    org_admin: bool
    teams: dict[str, str]


@router.get("/me", response_model=Me)
def me(who: Who, db: DB) -> Me:
    rows = db.execute(select(Team.name, Membership.role).join(
        Membership, Membership.team_id == Team.id).where(Membership.user_id == who.user.id))
    return Me(id=who.user.id, username=who.user.username, org_admin=who.user.org_admin,
              teams={name: role for name, role in rows})


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=12, max_length=1000)
    org_admin: bool = False


class UserOut(BaseModel):
    id: int
    username: str
    org_admin: bool


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: NewUser, who: Who, db: DB) -> UserOut:
    if not who.user.org_admin:
        raise HTTPException(403, "only an organisation admin creates users")
    if db.scalar(select(User).where(User.org_id == who.org_id, User.username == body.username)):
        raise HTTPException(409, "a user with this name exists")
    user = User(org_id=who.org_id, username=body.username,
                password_hash=hash_password(body.password), org_admin=body.org_admin)
    db.add(user)
    db.flush()
    record(db, who.org_id, None, who.name, "user.created", {"username": body.username})
    db.commit()
    return UserOut(id=user.id, username=user.username, org_admin=user.org_admin)


class NewTeam(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TeamOut(BaseModel):
    id: int
    name: str


@router.post("/teams", response_model=TeamOut, status_code=201)
def create_team(body: NewTeam, who: Who, db: DB) -> TeamOut:
    if not who.user.org_admin:
        raise HTTPException(403, "only an organisation admin creates teams")
    if db.scalar(select(Team).where(Team.org_id == who.org_id, Team.name == body.name)):
        raise HTTPException(409, "a team with this name exists")
    team = Team(org_id=who.org_id, name=body.name)
    db.add(team)
    db.flush()
    record(db, who.org_id, team.id, who.name, "team.created", {"name": body.name})
    db.commit()
    return TeamOut(id=team.id, name=team.name)


@router.get("/teams", response_model=list[TeamOut])
def list_teams(who: Who, db: DB) -> list[TeamOut]:
    query = select(Team).where(Team.org_id == who.org_id)
    if not who.user.org_admin:
        query = query.join(Membership, Membership.team_id == Team.id).where(
            Membership.user_id == who.user.id)
    return [TeamOut(id=t.id, name=t.name) for t in db.scalars(query.order_by(Team.id))]


class NewMember(BaseModel):
    username: str = Field(max_length=200)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")


class MemberOut(BaseModel):
    username: str
    role: str


@router.put("/teams/{team_id}/members", response_model=MemberOut)
def set_member(team_id: Id, body: NewMember, who: Who, db: DB) -> MemberOut:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    user = db.scalar(select(User).where(User.org_id == who.org_id,
                                        User.username == body.username))
    if user is None:
        raise HTTPException(404, "no such user in this organisation")
    membership = db.scalar(select(Membership).where(Membership.team_id == team.id,
                                                    Membership.user_id == user.id))
    if membership is None:
        membership = Membership(org_id=who.org_id, team_id=team.id, user_id=user.id,
                                role=body.role)
        db.add(membership)
    else:
        membership.role = body.role
    record(db, who.org_id, team.id, who.name, "member.set",
           {"username": body.username, "role": body.role})
    db.commit()
    return MemberOut(username=user.username, role=body.role)


@router.delete("/teams/{team_id}/members/{username}", status_code=204)
def remove_member(team_id: Id, username: str, who: Who, db: DB) -> None:
    """Take a user out of the team: their role here ends at once (sessions and tokens stay
    theirs, but carry no role in this team any more)."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    user = db.scalar(select(User).where(User.org_id == who.org_id, User.username == username))
    if user is None:
        raise HTTPException(404, "no such user in this organisation")
    membership = db.scalar(select(Membership).where(Membership.team_id == team.id,
                                                    Membership.user_id == user.id))
    if membership is None:
        return  # not a member: nothing to remove (a repeated DELETE is no error)
    if membership.role == "owner" and not who.user.org_admin and \
            _role(db, team.id, who.user.id) != "owner":
        raise HTTPException(403, "only an owner or an organisation admin removes an owner")
    db.delete(membership)
    record(db, who.org_id, team.id, who.name, "member.removed", {"username": username})
    db.commit()


def _role(db: DB, team_id: int, user_id: int) -> str | None:
    return db.scalar(select(Membership.role).where(Membership.team_id == team_id,
                                                   Membership.user_id == user_id))


@router.get("/teams/{team_id}/members", response_model=list[MemberOut])
def list_members(team_id: Id, who: Who, db: DB) -> list[MemberOut]:
    team = team_for(db, who, team_id, READ_ROLES)
    rows = db.execute(select(User.username, Membership.role).join(
        Membership, Membership.user_id == User.id).where(Membership.team_id == team.id))
    return [MemberOut(username=u, role=r) for u, r in rows]


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=lambda: ["read"])
    days: int | None = Field(default=90, ge=1, le=3650)


@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(body: NewToken, who: Who, db: DB) -> TokenOut:
    if not set(body.scopes) <= {"read", "write"} or not body.scopes:
        raise HTTPException(400, "scopes are 'read' and/or 'write'")
    if not set(body.scopes) <= set(who.scopes):
        raise HTTPException(403, "a token cannot have more scopes than its creator")
    token, digest = new_token("rst")
    expires = datetime.now(UTC) + timedelta(days=body.days) if body.days else None
    row = ApiToken(org_id=who.org_id, user_id=who.user.id, name=body.name, token_hash=digest,
                   scopes=sorted(set(body.scopes)), kind="api", expires=expires)
    db.add(row)
    db.flush()
    record(db, who.org_id, None, who.name, "token.created",
           {"id": row.id, "name": body.name, "scopes": row.scopes})
    db.commit()
    return TokenOut(id=row.id, token=token, expires=expires)


class TokenInfo(BaseModel):
    """A token as listed: everything but the secret, which was shown once and not kept."""

    id: int
    name: str
    scopes: list[str]
    created: datetime
    expires: datetime | None
    revoked: datetime | None


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(who: Who, db: DB) -> list[TokenInfo]:
    """The caller's own API tokens (sessions are not listed)."""
    rows = db.scalars(select(ApiToken).where(
        ApiToken.org_id == who.org_id, ApiToken.user_id == who.user.id,
        ApiToken.kind == "api").order_by(ApiToken.id))
    return [TokenInfo(id=t.id, name=t.name, scopes=list(t.scopes), created=aware(t.created),
                      expires=aware(t.expires), revoked=aware(t.revoked)) for t in rows]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: Id, who: Who, db: DB) -> None:
    row = db.scalar(select(ApiToken).where(ApiToken.id == token_id,
                                           ApiToken.org_id == who.org_id,
                                           ApiToken.user_id == who.user.id))
    if row is None:
        raise HTTPException(404, "no such token")
    row.revoked = datetime.now(UTC)
    record(db, who.org_id, None, who.name, "token.revoked", {"id": token_id})
    db.commit()
