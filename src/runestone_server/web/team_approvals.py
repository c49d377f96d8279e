"""The team page's approval notifications: which of the team's channels are told of the asks
no route matches (the team's fallback, decided by its owners, admins and approvers).

Shown to managers only, like the API (a channel's name tells where the team's asks go), and
saved through `approvals.fallback`, so the checks and the server event are the API's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from runestone_server.approvals import fallback
from runestone_server.auth import DB, MANAGE_ROLES, MAX_ID, Id, team_for
from runestone_server.web import csrf, forms
from runestone_server.web.render import PageRoute, Signed, see_other

router = APIRouter(route_class=PageRoute)
MAX_CHANNELS = 50  # as the API allows


def fallback_context(db: DB, org_id: int, team_id: int) -> dict[str, Any]:
    """What the team page's form needs: the team's channels, the chosen ones, and chosen
    ids whose channel was deleted since (saving the form drops them)."""
    choices = fallback.team_channels(db, org_id, team_id)
    chosen = fallback.settings_out(db, org_id, team_id)["fallback_channel_ids"]
    known = {c.id for c in choices}
    return {"choices": choices, "chosen": set(chosen),
            "gone": [c for c in chosen if c not in known]}


def _channel_ids(values: list[str]) -> list[int]:
    if len(values) > MAX_CHANNELS:
        raise HTTPException(400, f"at most {MAX_CHANNELS} channels")
    ids = [forms.whole_number(v, 1, MAX_ID) for v in values]
    if None in ids:
        raise HTTPException(400, "channel ids are whole numbers")
    return [i for i in ids if i is not None]


@router.post("/teams/{team_id}/approval-settings")
async def save_fallback_channels(team_id: Id, request: Request, viewer: Signed,
                                 db: DB) -> Response:
    """The ticked channels replace the fallback's; none ticked stops these notifications."""
    from runestone_server.web.teams import team_page_with_error

    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)
    try:
        fallback.save_settings(db, viewer.principal, team_id,
                               _channel_ids(form.all("channel_ids")))
    except HTTPException as exc:
        db.rollback()
        return team_page_with_error(request, viewer, db, team_id, exc)
    return see_other(f"/teams/{team_id}#approval-notifications")
