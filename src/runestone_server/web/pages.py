"""The dashboard's router: every page module's routes under one `router`, which app.py
includes. Each page module owns one area; the approvals and audit pages exist when their
domains do."""

from __future__ import annotations

import importlib

from fastapi import APIRouter
from fastapi.routing import APIRoute

from runestone_server.web import login, overview, policies, runtimes, static_files, teams

router = APIRouter(include_in_schema=False)
for module in (static_files, login, overview, teams, runtimes, policies):
    router.include_router(module.router)

# Pages over other domains' service layers, present when those domains are; the roll-up
# task behind the overview needs the audit domain.
for name in ("runestone_server.web.approvals", "runestone_server.web.team_approvals",
             "runestone_server.web.audit", "runestone_server.web.rollup",
             "runestone_server.web.govern", "runestone_server.web.grants"):
    try:
        module = importlib.import_module(name)
        if hasattr(module, "router"):
            router.include_router(module.router)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("runestone_server.approvals",
                                             "runestone_server.audit",
                                             "runestone_server.govern", name)):
            raise


def page_routes(start: APIRouter | None = None) -> list[APIRoute]:
    """Every page route, however deeply included: what the security tests enumerate, so a
    new form is covered by them without being listed."""
    found: list[APIRoute] = []
    for route in (start or router).routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif isinstance(getattr(route, "original_router", None), APIRouter):
            found.extend(page_routes(route.original_router))  # type: ignore[attr-defined]
    return found
