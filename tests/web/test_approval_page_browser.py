"""The runtime's local approval page (127.0.0.1) in a real Chromium: its own Approve and
Deny buttons must work. With `Referrer-Policy: no-referrer` Chromium posted the form with
`Origin: null`, which the page refuses as a foreign site, so no click could decide."""

from __future__ import annotations

import pytest

from runestone.actions import Action
from runestone.approvals.page import ApprovalPage
from runestone.approvals.service import Approvals, ApprovalSettings
from runestone.gatekeeper import Gatekeeper, open_audit_log
from runestone.home import layout
from runestone.identity import create_identity
from runestone.policy import load_preset

ACTION = Action("Bash", {"command": "ssh prod-db uptime"}, "/home/dev/app", session="s1")


@pytest.fixture
def approval_link(isolated_home):
    where = layout()
    create_identity(where)
    audit = open_audit_log(where)
    approvals = Approvals(where, audit=audit, settings=ApprovalSettings(ttl_seconds=600))
    server = ApprovalPage(approvals, port=0)
    approvals.settings = approvals.settings._replace(page_url=f"http://127.0.0.1:{server.port}")
    server.start()
    gatekeeper = Gatekeeper(load_preset("default"), audit=audit, approvals=approvals,
                            approval_mode="defer", home="/home/dev")
    decision = gatekeeper.check(ACTION)
    approval = dict(decision.approval)
    yield approval["link"], approval["request"], approvals
    server.close()
    approvals.close()
    audit.close()


@pytest.mark.parametrize(("button", "state"), [("Approve", "approved"), ("Deny", "denied")])
def test_the_buttons_decide_in_chromium(browser, approval_link, button, state):
    link, request_id, approvals = approval_link
    context = browser.new_context()
    try:
        tab = context.new_page()
        origins: list[str | None] = []
        tab.on("request", lambda r: origins.append(r.headers.get("origin"))
               if r.method == "POST" else None)
        tab.goto(link)
        assert "ssh prod-db uptime" in tab.content()
        tab.get_by_role("button", name=button).click()
        tab.wait_for_load_state()
        body = tab.inner_text("body")
        assert state.capitalize() in body and "another site" not in body, body
        assert origins and origins[0] == link.split("/approve/")[0]
    finally:
        context.close()
    assert approvals.store.request(request_id).state == state
