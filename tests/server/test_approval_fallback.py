"""The team's fallback notifications: an ask that matches no route is decided by the team's
owners, admins and approvers, and the channels a manager set on the team are told of it,
as a routed ask's group channels are. On SQLite and PostgreSQL; the last test through a
real server process, a real runtime and a real webhook receiver."""

from __future__ import annotations

import json
import time

from notify_receivers import HttpReceiver
from sqlalchemy import select
from test_approvals_end_to_end import Org, approval_id_of, check
from test_approvals_routing import app_client as app_client  # the fixtures, shared
from test_approvals_routing import world as world

from liveserver import ServerProcess, api

SETTINGS = "/api/v1/teams/{team}/approval-settings"


def channel(world, team: int, name: str, user: str = "admin") -> int:
    """An e-mail channel of the team (e-mail needs no reachable host to be created)."""
    return world.ok(user, "POST", f"/api/v1/teams/{team}/channels", {
        "name": name, "kind": "email", "target": f"{name}@example.org"}, status=201)["id"]


def deliveries(app, channel_id: int) -> list:
    from runestone_server.notify.models import Delivery

    with app.state.db.sessions() as db:
        return list(db.scalars(select(Delivery).where(Delivery.channel_id == channel_id)
                               .order_by(Delivery.id)))


def notified(app, request_id: str) -> dict:
    from runestone_server.models import ServerEvent

    with app.state.db.sessions() as db:
        [event] = db.scalars(select(ServerEvent).where(
            ServerEvent.kind == "approval.notified",
            ServerEvent.detail["request_id"].as_string() == request_id))
        return dict(event.detail)


def test_an_ask_no_route_matches_is_sent_to_the_teams_fallback_channels(world):
    team = world.ids["team"]
    dev_group = world.group("dev", ["ops2"])
    world.route("dev only", [(dev_group, 600, 1)], labels={"env": "dev"})
    mail = channel(world, team, "approvers")

    # Before any setting, a fallback ask reaches nobody (what this setting is for).
    before = world.ask("prod", "req_unset")
    assert notified(world.app, "req_unset")["channels"] == []
    assert deliveries(world.app, mail) == []
    assert world.ok("admin", "GET", SETTINGS.format(team=team)) == {
        "team_id": team, "fallback_channel_ids": []}

    saved = world.ok("admin", "PUT", SETTINGS.format(team=team),
                     {"fallback_channel_ids": [mail, mail]})
    assert saved == {"team_id": team, "fallback_channel_ids": [mail]}
    asked = world.ask("prod", "req_fallback", severity="high")
    assert asked["id"] != before["id"]
    detail = world.ok("admin", "GET", f"/api/v1/approvals/{asked['id']}")
    assert detail["route"] is None  # prod matches no route: the fallback
    [sent] = deliveries(world.app, mail)
    assert sent.subject == "approval needed: Bash (high) from dev1"
    assert sent.payload["link"].endswith(f"/approvals/{asked['id']}")
    assert sent.payload["data"]["approval_id"] == asked["id"]
    assert sent.dedup_key == f"approval:{asked['id']}:level:0"
    event = notified(world.app, "req_fallback")
    assert (event["group"], event["channels"], event["errors"]) == (
        "team approvers", [mail], [])

    # A routed ask goes to its group's channels, never to the fallback's.
    routed = world.ask("dev", "req_routed")
    assert world.ok("admin", "GET", f"/api/v1/approvals/{routed['id']}")["route"] == "dev only"
    assert len(deliveries(world.app, mail)) == 1

    # A channel deleted since: the setting forgets it, and the ask is still routed.
    world.ok("admin", "DELETE", f"/api/v1/teams/{team}/channels/{mail}", status=204)
    assert world.ok("admin", "GET", SETTINGS.format(team=team))["fallback_channel_ids"] == []
    world.ask("prod", "req_gone")
    event = notified(world.app, "req_gone")
    assert (event["group"], event["channels"], event["errors"]) == ("team approvers", [], [])

    # An empty list stops these notifications.
    cleared = world.ok("admin", "PUT", SETTINGS.format(team=team), {"fallback_channel_ids": []})
    assert cleared["fallback_channel_ids"] == []


def test_the_fallback_channels_are_set_by_managers_to_the_teams_own_channels(world):
    from runestone_server.models import Organisation, Team
    from runestone_server.notify.models import Channel

    team, b_team = world.ids["team"], world.ids["b_team"]
    path = SETTINGS.format(team=team)
    mine = channel(world, team, "mine")
    theirs = channel(world, b_team, "theirs", user="b-admin")
    with world.app.state.db.sessions() as db:
        acme = db.scalar(select(Organisation).where(Organisation.name == "acme"))
        other_team = Team(org_id=acme.id, name="payments")
        db.add(other_team)
        db.flush()
        sibling = Channel(org_id=acme.id, team_id=other_team.id, name="payments",
                          kind="email", target="payments@example.org", secret="")
        db.add(sibling)
        db.commit()
        sibling_id = sibling.id

    for name in ("ops1", "carol"):  # an approver and a member read and change nothing
        assert world.as_user(name, "GET", path).status_code == 403
        assert world.as_user(name, "PUT", path, {"fallback_channel_ids": [mine]}) \
            .status_code == 403
    for name in ("stranger", "b-admin"):  # not in the team; another tenant
        assert world.as_user(name, "GET", path).status_code == 404
        assert world.as_user(name, "PUT", path, {"fallback_channel_ids": [mine]}) \
            .status_code == 404
    for foreign in (theirs, sibling_id, 999_999):  # another tenant's, another team's, none
        refused = world.as_user("admin", "PUT", path, {"fallback_channel_ids": [mine, foreign]})
        assert refused.status_code == 400 and str(foreign) in refused.json()["detail"]
    assert world.as_user("admin", "PUT", path, {"fallback_channel_ids": [0]}).status_code == 422
    assert world.ok("admin", "GET", path)["fallback_channel_ids"] == []
    assert world.ok("admin", "PUT", path, {"fallback_channel_ids": [mine]})[
        "fallback_channel_ids"] == [mine]
    assert world.ok("b-admin", "GET", SETTINGS.format(team=b_team))[
        "fallback_channel_ids"] == []  # one team's setting is not another's
    assert "approval.fallback-channels-saved" in _kinds(world.app, team)


def _kinds(app, team: int) -> list[str]:
    from runestone_server.models import ServerEvent

    with app.state.db.sessions() as db:
        return list(db.scalars(select(ServerEvent.kind).where(ServerEvent.team_id == team)))


def wait_for(condition, timeout: float = 30.0, what: str = "it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_ask_matching_no_route_reaches_a_real_receiver(database_url, tmp_path):
    """A real server process and runtime: the runtime's ask matches no route; the team's
    fallback channel, a signed webhook, receives it with the approval link. Nobody decides,
    so it expires as a routed ask's last level does, and the team's approval_expired alert
    is delivered to the same receiver."""
    from runestone_server.notify.signing import verify_signature

    with HttpReceiver() as webhook:
        server = ServerProcess(database_url, tmp_path / "server", RUNESTONE_SERVER_TICK="0.3",
                               RUNESTONE_SERVER_APPROVAL_TIMEOUT="4",
                               RUNESTONE_NOTIFY_BASE_DELAY="0.2",
                               RUNESTONE_ALERTS_SETTLE="0", RUNESTONE_ALERTS_INTERVAL="0.2",
                               RUNESTONE_SERVER_ALLOW_PRIVATE_WEBHOOKS="1")
        server.init()
        server.start()
        try:
            org = Org(server)
            org.person("lead1", role="admin")  # a team admin: the fallback's approver
            hook = api(server.base, "POST", f"/api/v1/teams/{org.team}/channels", org.admin,
                       {"name": "team-hook", "kind": "webhook", "target": webhook.url})
            org.route("prod", [(org.group("prod-oncall", ["lead1"]), 600, 1)],
                      labels={"env": "prod"})
            api(server.base, "PUT", SETTINGS.format(team=org.team), org.admin,
                {"fallback_channel_ids": [hook["id"]]})
            api(server.base, "POST", f"/api/v1/teams/{org.team}/alert-rules", org.admin,
                {"name": "expired", "event": "approval_expired", "channel_ids": [hook["id"]]})
            home = tmp_path / "runtime"
            org.enroll(home, {"env": "dev"})  # the prod route does not match

            asked = check(home, "--approval", "defer")
            assert asked["decision"] == "deny"
            approval = approval_id_of(asked)
            assert [a["id"] for a in api(server.base, "GET", "/api/v1/approvals",
                                         org.tokens["lead1"])] == [approval]

            posted = wait_for(lambda: webhook.requests, what="the webhook")[0]
            assert verify_signature(hook["secret"], posted.headers["X-Runestone-Timestamp"],
                                    posted.body, posted.headers["X-Runestone-Signature"])
            message = json.loads(posted.body)
            assert message["link"] == f"{server.base}/approvals/{approval}"
            assert message["subject"].startswith("approval needed: Bash")
            assert message["data"]["approval_id"] == approval

            # Unanswered, it expires (a deny) and the expiry alert reaches the receiver.
            wait_for(lambda: len(webhook.requests) >= 2, what="the expiry alert")
            alert = json.loads(webhook.requests[1].body)
            assert alert["subject"].startswith("[Runestone alert] Approval expired")
            assert alert["link"] == f"{server.base}/approvals/{approval}"
            detail = api(server.base, "GET", f"/api/v1/approvals/{approval}", org.admin)
            assert (detail["route"], detail["state"]) == (None, "expired")
            kinds = [step["kind"] for step in detail["timeline"]]
            assert kinds == ["approval.requested", "approval.notified", "approval.expired"]
            assert detail["timeline"][1]["detail"]["channels"] == [hook["id"]]
        finally:
            server.stop()
