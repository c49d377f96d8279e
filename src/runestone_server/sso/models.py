"""An organisation's OpenID Provider, its pending sign-ins, and the identities it linked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runestone_server.models import Base, utcnow


class SsoProvider(Base):
    """One provider per organisation. `group_map` is a list of {group, team, role}: a member
    of `group` (in the `groups_claim` of the ID token) gets `role` in `team`.
    `local_passwords` False turns password sign-in off for everyone but the first admin."""

    __tablename__ = "sso_providers"
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret: Mapped[str] = mapped_column(Text)
    username_claim: Mapped[str] = mapped_column(String(100), default="preferred_username")
    groups_claim: Mapped[str] = mapped_column(String(100), default="groups")
    group_map: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    local_passwords: Mapped[bool] = mapped_column(Boolean, default=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SsoState(Base):
    """A sign-in under way: what the callback checks (state, bound to the browser by a
    cookie), the nonce the ID token must carry and the PKCE verifier. Used once."""

    __tablename__ = "sso_states"
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    nonce: Mapped[str] = mapped_column(String(100))
    verifier: Mapped[str] = mapped_column(String(200))
    next_path: Mapped[str] = mapped_column(String(500), default="/")
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SsoIdentity(Base):
    """The provider's subject a user signs in as. A user is found by this link only, never by
    a matching name, so a provider cannot take over a local account (the first admin)."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("org_id", "issuer", "subject"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    last_login: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
