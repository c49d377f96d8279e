"""Every table of the control plane, in one metadata: what Alembic and the tests compare.

Each domain keeps its tables in its own `models` module; importing them here registers
them on the shared `Base`. A new domain adds one line.
"""

from __future__ import annotations

import importlib

from runestone_server.models import Base

DOMAIN_MODELS = (
    "runestone_server.audit.models",
    "runestone_server.approvals.models",
    "runestone_server.notify.models",
    "runestone_server.alerts.models",
    "runestone_server.web.models",
    "runestone_server.govern.models",
    "runestone_server.throttle",
    "runestone_server.stream.models",
    "runestone_server.sso.models",
)


def load_all() -> type[Base]:
    """Import every domain's models that exist; the Base with the complete metadata."""
    for name in DOMAIN_MODELS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base


metadata = load_all().metadata
