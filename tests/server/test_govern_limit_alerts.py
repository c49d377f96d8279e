"""The control plane adds up the limit hits of a team's runtimes and alerts: two runtimes'
real gatekeepers stop a looping agent with a policy `[[limit]]`, ship their logs, and one
`limit_hits` alert fires once the team's hits reach the threshold (not before, not twice,
not for another team)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from notify_receivers import make_tenant
from test_alerts import evaluate, rule
from test_govern_usage import Rt


@pytest.fixture
def tenants(server):
    app, client = server
    return app, client, make_tenant(app, "acme"), make_tenant(app, "globex")


def test_limit_hits_across_runtimes_fire_one_alert(tenants, tmp_path):
    app, client, (org, team, token), (_org_b, team_b, token_b) = tenants
    rule(client, team, token, "limit_hits", conditions={"threshold": 3, "window_minutes": 10})
    rule(client, team_b, token_b, "limit_hits", conditions={"threshold": 1})
    one, two = (Rt(app, tmp_path, name, org, team) for name in ("one", "two"))
    # The policy's loop limit: the same action at most twice per session in 10 minutes.
    assert [one.run("claude", "git status") for _ in range(3)] == ["allow", "allow", "deny"]
    one.ship(client)
    assert evaluate(app, org) == []  # one hit < 3
    assert [two.run("codex", "git diff") for _ in range(4)] == ["allow", "allow", "deny",
                                                               "deny"]
    two.ship(client)
    [alert] = evaluate(app, org)
    assert alert.detail["count"] == 3 and alert.detail["limits"] == {"loop": 3}
    assert sorted(alert.detail["runtimes"]) == sorted([one.runtime_id, two.runtime_id])
    assert evaluate(app, org) == []  # the same alert, within its de-duplication window
    later = datetime.now(UTC) + timedelta(minutes=30)
    assert evaluate(app, org, later) == []  # out of the window: no hits count
