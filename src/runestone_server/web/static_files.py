"""The dashboard's two static files (style sheet, the live inbox's script), served from the
package by exact name only: no path from the URL ever reaches the file system."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Response

from runestone_server.web.render import PageRoute

router = APIRouter(route_class=PageRoute)
FILES = {"app.css": "text/css; charset=utf-8",
         "live.js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    kind = FILES.get(name)
    if kind is None:
        raise HTTPException(404, "no such file")
    data = resources.files("runestone_server.web").joinpath("static", name).read_bytes()
    response = Response(data, media_type=kind)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
