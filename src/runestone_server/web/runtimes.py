"""The team page's revoke form: a manager revokes an enrolled runtime for good.

It calls the API's own function (`api.runtimes.revoke_runtime`), so the role check, the
server event and the cancelled asks are the API's. Revocation cannot be undone, so the
form asks for a reason and for the runtime's id typed again: a click on the wrong row
revokes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from runestone_server.api import runtimes
from runestone_server.auth import DB, MANAGE_ROLES, Id, team_for
from runestone_server.web import csrf, forms
from runestone_server.web.render import PageRoute, Signed, see_other
from runestone_server.web.teams import team_page_with_error

router = APIRouter(route_class=PageRoute)


@router.post("/teams/{team_id}/runtimes/{runtime_id}/revoke")
async def revoke(team_id: Id, runtime_id: runtimes.RuntimeId, request: Request,
                 viewer: Signed, db: DB) -> Response:
    form = await forms.read(request)
    csrf.check(viewer.secret, form.get(csrf.FIELD))
    team_for(db, viewer.principal, team_id, MANAGE_ROLES)  # 404 / 403 before anything else
    if form.get("confirm", "").strip() != runtime_id:
        return team_page_with_error(request, viewer, db, team_id, HTTPException(
            400, f"to revoke {runtime_id}, type its id in the confirmation field"))
    try:
        body = runtimes.RevokeIn(reason=form.get("reason", ""))
        runtimes.revoke_runtime(team_id, runtime_id, body, viewer.principal, db)
    except ValidationError:
        return team_page_with_error(request, viewer, db, team_id, HTTPException(
            400, "say why the runtime is revoked (a reason of at most 2000 characters)"))
    except HTTPException as exc:
        db.rollback()
        return team_page_with_error(request, viewer, db, team_id, exc)
    return see_other(f"/teams/{team_id}#runtimes")
