"""An initialised runtime with its audit log, approvals, and the approval page on a free port."""

from __future__ import annotations

import pytest

from runestone.approvals.page import ApprovalPage
from runestone.approvals.service import Approvals, ApprovalSettings
from runestone.gatekeeper import open_audit_log
from runestone.home import layout
from runestone.identity import create_identity


@pytest.fixture
def runtime(isolated_home):
    where = layout()
    create_identity(where)
    audit = open_audit_log(where)
    approvals = Approvals(where, audit=audit, settings=ApprovalSettings(ttl_seconds=600))
    yield where, audit, approvals
    approvals.close()
    audit.close()


@pytest.fixture
def page(runtime):
    _where, _audit, approvals = runtime
    server = ApprovalPage(approvals, port=0)
    approvals.settings = approvals.settings._replace(page_url=f"http://127.0.0.1:{server.port}")
    server.start()
    yield server
    server.close()
