"""The verified claims to a user and team memberships, by the organisation's group map.

A user is found through the provider's subject (`SsoIdentity`), never by a matching name:
a provider asserting `preferred_username = alice` does not become the local admin alice. A
new subject gets a user of its own (no usable password). Memberships in the teams the map
names follow the groups at every sign-in (added, changed, removed); teams the map does not
name are left alone. A person none of whose groups the map knows is refused.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from runestone_server.events import record
from runestone_server.models import ROLES, Membership, Team, User, utcnow
from runestone_server.sso.flow import SsoError
from runestone_server.sso.models import SsoIdentity, SsoProvider

NO_PASSWORD = "!sso"  # not an argon2 hash: no password ever matches it


def groups_of(claims: dict[str, Any], claim: str) -> list[str]:
    value = claims.get(claim, [])
    if isinstance(value, str):
        value = [value]
    return [g for g in value if isinstance(g, str)] if isinstance(value, list) else []


def grants(provider: SsoProvider, groups: list[str]) -> dict[str, str]:
    """team name -> the strongest role the groups give in it."""
    found: dict[str, str] = {}
    for item in provider.group_map:
        if item.get("group") in groups:
            team, role = item["team"], item["role"]
            if team not in found or ROLES.index(role) < ROLES.index(found[team]):
                found[team] = role
    return found


def user_for(db: Session, provider: SsoProvider, claims: dict[str, Any]) -> User:
    """The signed-in user, created or updated from the claims; commits."""
    groups = groups_of(claims, provider.groups_claim)
    teams = {t.name: t for t in db.scalars(select(Team).where(
        Team.org_id == provider.org_id))}
    wanted = {name: role for name, role in grants(provider, groups).items() if name in teams}
    if not wanted:
        raise SsoError(f"none of your groups ({', '.join(groups) or 'none'}) gives a role in a "
                       "team of this organisation; ask an admin to map one")
    subject = str(claims["sub"])
    link = db.scalar(select(SsoIdentity).where(
        SsoIdentity.org_id == provider.org_id, SsoIdentity.issuer == provider.issuer,
        SsoIdentity.subject == subject))
    if link is None:
        name = claims.get(provider.username_claim)
        name = name if isinstance(name, str) and name.strip() else subject
        name = name.strip()[:200]
        if db.scalar(select(User.id).where(User.org_id == provider.org_id,
                                           User.username == name)) is not None:
            raise SsoError(f"a user named {name!r} exists already and is not linked to this "
                           "provider; an admin must rename one of them")
        user = User(org_id=provider.org_id, username=name, password_hash=NO_PASSWORD)
        db.add(user)
        db.flush()
        link = SsoIdentity(org_id=provider.org_id, issuer=provider.issuer, subject=subject,
                           user_id=user.id)
        db.add(link)
        record(db, provider.org_id, None, "system:sso", "sso.user_created",
               {"username": name, "issuer": provider.issuer, "subject": subject})
    else:
        user = db.get(User, link.user_id)
        if user is None or not user.active:
            raise SsoError("your user is deactivated in this organisation")
    link.last_login = utcnow()
    managed = {item["team"] for item in provider.group_map if item["team"] in teams}
    current = {m.team_id: m for m in db.scalars(select(Membership).where(
        Membership.user_id == user.id))}
    for name in managed:
        team = teams[name]
        role = wanted.get(name)
        member = current.get(team.id)
        if role is None and member is not None:
            db.execute(delete(Membership).where(Membership.id == member.id))
        elif role is not None and member is None:
            db.add(Membership(org_id=provider.org_id, team_id=team.id, user_id=user.id,
                              role=role))
        elif role is not None and member is not None:
            member.role = role
    record(db, provider.org_id, None, f"user:{user.username}", "sso.login",
           {"groups": groups, "teams": wanted})
    db.commit()
    return user


def passwords_allowed(db: Session, user: User) -> bool:
    """False when the organisation turned local passwords off and this is not its first
    admin (who keeps a password, so the organisation is never locked out by its provider)."""
    provider = db.get(SsoProvider, user.org_id)
    if provider is None or provider.local_passwords:
        return True
    first = db.scalar(select(User.id).where(User.org_id == user.org_id, User.org_admin)
                      .order_by(User.id).limit(1))
    return user.id == first
