"""Notification channels of a team: create (the webhook secret is shown once), list,
delete, and each channel's recent deliveries. Owners and admins only: a channel's target
decides where the team's approval requests and alerts go."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.utils import parseaddr
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select

import runestone_server.notify.delivery  # noqa: F401 - registers the worker task
from runestone_server.auth import DB, MANAGE_ROLES, Id, Who, team_for
from runestone_server.events import record
from runestone_server.models import aware
from runestone_server.notify import settings
from runestone_server.notify.models import Channel, Delivery
from runestone_server.notify.references import forget_channel
from runestone_server.notify.targets import TargetRefused, check_configured

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NewChannel(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "slack", "email"]
    target: str = Field(min_length=1, max_length=2000)


class ChannelOut(BaseModel):
    id: int
    team_id: int | None
    name: str
    kind: str
    target: str
    created: datetime
    secret: str | None = None  # only in the response that created it


def _out(channel: Channel, secret: str | None = None) -> ChannelOut:
    return ChannelOut(id=channel.id, team_id=channel.team_id, name=channel.name,
                      kind=channel.kind, target=channel.target,
                      created=aware(channel.created), secret=secret)


def check_target(kind: str, target: str) -> str:
    """An http(s) URL with a host for webhooks, addresses for e-mail; else a 400. A URL
    into the server's own network is refused here already (and again at each send), unless
    the server allows private targets."""
    target = target.strip()
    if kind in ("webhook", "slack"):
        try:
            check_configured(target, allow_private=settings.allow_private_webhooks())
        except TargetRefused as exc:
            raise HTTPException(400, str(exc)) from None
        return target
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    for address in addresses:
        name, parsed = parseaddr(address)
        if name or parsed != address or "@" not in address or any(c.isspace()
                                                                  for c in address):
            raise HTTPException(400, f"not an e-mail address: {address!r}")
    if not addresses:
        raise HTTPException(400, "the target must list at least one e-mail address")
    return ", ".join(addresses)


def _channel(db: DB, org_id: int, team_id: int, channel_id: int) -> Channel:
    channel = db.scalar(select(Channel).where(Channel.id == channel_id,
                                              Channel.org_id == org_id,
                                              Channel.team_id == team_id))
    if channel is None:
        raise HTTPException(404, "no such channel")
    return channel


@router.post("/teams/{team_id}/channels", response_model=ChannelOut, status_code=201)
def create_channel(team_id: Id, body: NewChannel, who: Who, db: DB) -> ChannelOut:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    target = check_target(body.kind, body.target)
    secret = secrets.token_urlsafe(32) if body.kind == "webhook" else ""
    channel = Channel(org_id=who.org_id, team_id=team.id, name=body.name, kind=body.kind,
                      target=target, secret=secret)
    db.add(channel)
    db.flush()
    record(db, who.org_id, team.id, who.name, "notify.channel_created",
           {"channel": channel.id, "name": body.name, "kind": body.kind})
    db.commit()
    return _out(channel, secret or None)


@router.get("/teams/{team_id}/channels", response_model=list[ChannelOut])
def list_channels(team_id: Id, who: Who, db: DB) -> list[ChannelOut]:
    team = team_for(db, who, team_id, MANAGE_ROLES)
    return [_out(c) for c in db.scalars(select(Channel).where(
        Channel.org_id == who.org_id, Channel.team_id == team.id).order_by(Channel.id))]


@router.delete("/teams/{team_id}/channels/{channel_id}", status_code=204)
def delete_channel(team_id: Id, channel_id: Id, who: Who, db: DB) -> Response:
    """Deleting a channel deletes its deliveries too: pending ones must not be sent to a
    target the team has removed. Groups, the fallback and alert rules forget it."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    channel = _channel(db, who.org_id, team.id, channel_id)
    db.execute(delete(Delivery).where(Delivery.channel_id == channel.id,
                                      Delivery.org_id == who.org_id))
    forget_channel(db, who.org_id, team.id, channel.id)
    db.delete(channel)
    record(db, who.org_id, team.id, who.name, "notify.channel_deleted",
           {"channel": channel.id, "name": channel.name})
    db.commit()
    return Response(status_code=204)


@router.get("/teams/{team_id}/channels/{channel_id}/deliveries")
def list_deliveries(team_id: Id, channel_id: Id, who: Who, db: DB,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    ) -> list[dict[str, object]]:
    """The newest deliveries of a channel with their status, to see what reached whom."""
    team = team_for(db, who, team_id, MANAGE_ROLES)
    channel = _channel(db, who.org_id, team.id, channel_id)
    rows = db.scalars(select(Delivery).where(Delivery.channel_id == channel.id,
                                             Delivery.org_id == who.org_id)
                      .order_by(Delivery.id.desc()).limit(limit))
    return [{"id": d.id, "subject": d.subject, "status": d.status, "attempts": d.attempts,
             "last_error": d.last_error, "created": aware(d.created).isoformat(),
             "delivered": aware(d.delivered).isoformat() if d.delivered else None}
            for d in rows]
