"""The dashboard's approval settings through its forms, over HTTP, on SQLite and PostgreSQL:
deleting an approver group (refused with the routes named while a route uses it) and the
team's fallback notification channels, each for managers only."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from test_web_security import PASSWORD, add_user, csrf_of, login


@pytest.fixture
def site(database_url, tmp_path):
    """acme: alice (org admin), bob (a member of core), olga (an approver of core); globex:
    mallory, another tenant's admin. Core has the groups "oncall" (used by the route
    "prod") and "spare" (used by none), and one e-mail channel; the team "payments" has one
    channel too."""
    from fastapi.testclient import TestClient

    from runestone_server.app import create_app
    from runestone_server.migrate import upgrade

    app = create_app(database_url, key_path=str(tmp_path / "server.ed25519"),
                     worker_interval=0)
    upgrade(app.state.db)
    for org, name, admin in (("acme", "alice", True), ("acme", "bob", False),
                             ("acme", "olga", False), ("globex", "mallory", True)):
        add_user(app, org, name, org_admin=admin)
    with TestClient(app) as client:
        token = client.post("/api/v1/login", json={"organisation": "acme", "username": "alice",
                                                   "password": PASSWORD}).json()["token"]

        def call(method: str, path: str, body=None, status: int = 200):
            answer = client.request(method, path, json=body,
                                    headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == status, answer.text
            return answer.json() if answer.content else None

        team = call("POST", "/api/v1/teams", {"name": "core"}, 201)["id"]
        payments = call("POST", "/api/v1/teams", {"name": "payments"}, 201)["id"]
        for name, role in (("bob", "member"), ("olga", "approver")):
            call("PUT", f"/api/v1/teams/{team}/members", {"username": name, "role": role})
        groups = f"/api/v1/teams/{team}/approver-groups"
        oncall = call("POST", groups, {"name": "oncall", "members": ["olga"]}, 201)["id"]
        spare = call("POST", groups, {"name": "spare", "members": ["bob"]}, 201)["id"]
        call("POST", f"/api/v1/teams/{team}/approval-routes", {
            "name": "prod", "labels": {"env": "prod"},
            "levels": [{"group_id": oncall, "timeout_seconds": 600}]}, 201)
        mail = call("POST", f"/api/v1/teams/{team}/channels", {
            "name": "approvers-mail", "kind": "email", "target": "approvers@example.org"},
            201)["id"]
        sibling = call("POST", f"/api/v1/teams/{payments}/channels", {
            "name": "payments-mail", "kind": "email", "target": "pay@example.org"}, 201)["id"]
        assert login(client, "acme", "alice").status_code == 303
        yield {"app": app, "client": client, "call": call, "team": team, "oncall": oncall,
               "spare": spare, "mail": mail, "sibling": sibling}
    app.state.db.engine.dispose()


def signed_in(site, org: str, name: str):
    from fastapi.testclient import TestClient

    client = TestClient(site["app"])
    assert login(client, org, name).status_code == 303
    return client


def group_names(site) -> list[str]:
    return [g["name"] for g in site["call"]("GET", f"/api/v1/teams/{site['team']}/"
                                                   "approver-groups")]


def fallback_ids(site) -> list[int]:
    return site["call"]("GET", f"/api/v1/teams/{site['team']}/approval-settings")[
        "fallback_channel_ids"]


def test_a_manager_deletes_a_group_from_the_approvers_page(site):
    client, team = site["client"], site["team"]
    page = client.get(f"/teams/{team}/approvers").text
    spare_form = f'action="/teams/{team}/approver-groups/{site["spare"]}/delete"'
    assert spare_form in page and f'/approver-groups/{site["oncall"]}/delete"' in page
    token = csrf_of(client, f"/teams/{team}/approvers")

    deleted = client.post(f"/teams/{team}/approver-groups/{site['spare']}/delete",
                          data={"csrf": token}, follow_redirects=False)
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"/teams/{team}/approvers"
    assert group_names(site) == ["oncall"]
    assert spare_form not in client.get(f"/teams/{team}/approvers").text

    # A group a route uses stays, and the page says which route, as an error.
    refused = client.post(f"/teams/{team}/approver-groups/{site['oncall']}/delete",
                          data={"csrf": token})
    assert refused.status_code == 409
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', refused.text)
    assert error and "the group decides in the routes prod" in error.group(1)
    assert "<h1>Approvers of" in refused.text  # the page itself, with its tables
    assert group_names(site) == ["oncall"]

    gone = client.post(f"/teams/{team}/approver-groups/{site['spare']}/delete",
                       data={"csrf": token})
    assert gone.status_code == 404 and "no such approver group" in gone.text


def test_only_managers_delete_groups(site):
    team, spare = site["team"], site["spare"]
    path = f"/teams/{team}/approver-groups/{spare}/delete"
    for name in ("bob", "olga"):  # a member and an approver: the page offers no delete
        with signed_in(site, "acme", name) as person:
            assert "/delete" not in person.get(f"/teams/{team}/approvers").text
            refused = person.post(path, data={"csrf": csrf_of(person)})
            assert refused.status_code == 403 and "roles" in refused.text
    with signed_in(site, "globex", "mallory") as other:
        assert other.post(path, data={"csrf": csrf_of(other)}).status_code == 404
    client = site["client"]
    assert client.post(path, data={"name": "x"}).status_code == 403  # no CSRF token
    # Another team's group is not found through this team's address.
    assert client.post(f"/teams/999/approver-groups/{spare}/delete",
                       data={"csrf": csrf_of(client)}).status_code == 404
    assert group_names(site) == ["oncall", "spare"]


def test_the_team_page_sets_the_fallback_notification_channels(site):
    client, team, mail = site["client"], site["team"], site["mail"]
    page = client.get(f"/teams/{team}").text
    assert 'id="approval-notifications"' in page
    box = re.search(rf'<input type="checkbox" name="channel_ids" value="{mail}"[^>]*>', page)
    assert box and "checked" not in box.group(0)
    assert "approvers-mail" in page and "payments-mail" not in page  # this team's only
    token = csrf_of(client, f"/teams/{team}")
    action = f"/teams/{team}/approval-settings"

    saved = client.post(action, data={"csrf": token, "channel_ids": str(mail)},
                        follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/teams/{team}#approval-notifications"
    assert fallback_ids(site) == [mail]
    page = client.get(f"/teams/{team}").text
    assert re.search(rf'value="{mail}" checked', page)

    # Another team's channel, or not a number: refused on the team page, nothing changed.
    for value, reason in ((str(site["sibling"]), "no such notification channels in this team"),
                          ("x", "channel ids are whole numbers")):
        refused = client.post(action, data={"csrf": token, "channel_ids": value})
        assert refused.status_code == 400 and reason in refused.text, refused.text[:500]
        assert "<h1>Team core</h1>" in refused.text
    assert fallback_ids(site) == [mail]

    # Nothing ticked: the fallback is told nothing again.
    assert client.post(action, data={"csrf": token}, follow_redirects=False).status_code == 303
    assert fallback_ids(site) == []


def test_only_managers_see_and_set_the_fallback_channels(site):
    team, mail = site["team"], site["mail"]
    action = f"/teams/{team}/approval-settings"
    for name in ("bob", "olga"):
        with signed_in(site, "acme", name) as person:
            page = person.get(f"/teams/{team}").text
            assert "approval-notifications" not in page and "approvers-mail" not in page
            refused = person.post(action, data={"csrf": csrf_of(person),
                                                "channel_ids": str(mail)})
            assert refused.status_code == 403
    with signed_in(site, "globex", "mallory") as other:
        refused = other.post(action, data={"csrf": csrf_of(other), "channel_ids": str(mail)})
        assert refused.status_code == 404
    assert fallback_ids(site) == []


def test_a_deleted_channel_is_forgotten_and_a_lingering_one_shown_as_gone(site):
    """Deleting a channel takes it out of the fallback setting; an id kept from before that
    (or written by hand) is shown as deleted, not hidden."""
    from runestone_server.approvals.models import ApprovalTeamSettings

    client, team, mail = site["client"], site["team"], site["mail"]
    site["call"]("PUT", f"/api/v1/teams/{team}/approval-settings",
                 {"fallback_channel_ids": [mail]})
    site["call"]("DELETE", f"/api/v1/teams/{team}/channels/{mail}", status=204)
    with site["app"].state.db.sessions() as db:
        assert db.scalar(select(ApprovalTeamSettings.fallback_channel_ids)) == []
    assert f"channel {mail} (deleted)" not in client.get(f"/teams/{team}").text

    with site["app"].state.db.sessions() as db:
        db.execute(update(ApprovalTeamSettings).values(fallback_channel_ids=[mail]))
        db.commit()
    assert f"channel {mail} (deleted)" in client.get(f"/teams/{team}").text


def test_saving_a_group_on_the_page_keeps_its_channels(site):
    """The page's group form edits members only: re-saving a group there must not clear the
    channels it was given through the API."""
    call, team, client = site["call"], site["team"], site["client"]
    groups = f"/api/v1/teams/{team}/approver-groups"
    call("PUT", f"{groups}/{site['oncall']}",
         {"name": "oncall", "members": ["olga"], "channel_ids": [site["mail"]]})
    token = csrf_of(client, f"/teams/{team}/approvers")
    saved = client.post(f"/teams/{team}/approver-groups",
                        data={"csrf": token, "name": "oncall", "members": "olga, bob"},
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text[:300]
    oncall = next(g for g in call("GET", groups) if g["name"] == "oncall")
    assert sorted(oncall["members"]) == ["bob", "olga"]
    assert oncall["channel_ids"] == [site["mail"]]


NUMBERISH = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "+5", "1e3", "1.5", " 7 ", "²", "٣", "Ⅻ", "0x10",
                     "9" * 12, "9" * 30, "9" * 5000, "2147483648", "\x00"]),
    st.integers().map(str),
    st.text(max_size=20),
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_numbers_typed_into_web_forms_never_make_a_server_error(site, data):
    """Every number a page reads from a form or a query string, fuzzed: a whole number in
    range is taken, anything else is a 4xx with a message, never a 500 (`²` passes
    `str.isdigit` and fails `int()`; thirty nines overflow the database's integer)."""
    client, team = site["client"], site["team"]
    value = data.draw(NUMBERISH)
    token = csrf_of(client, f"/teams/{team}/approvers")
    level = {"group1": str(site["oncall"]), "timeout1": "600", "quorum1": "1", "priority": "5"}
    field = data.draw(st.sampled_from(sorted(level)))
    answers = [
        client.post(f"/teams/{team}/approval-routes", follow_redirects=False,
                    data={"csrf": token, "name": "fuzzed", **level, field: value}),
        client.post(f"/teams/{team}/approval-settings", follow_redirects=False,
                    data={"csrf": token, "channel_ids": value}),
        client.post("/approvals/1/vote", follow_redirects=False,
                    data={"csrf": token, "vote": "approve", "minutes": value}),
        client.post(f"/teams/{team}/publications", follow_redirects=False,
                    data={"csrf": token, "number": value}),
        client.post("/tokens", follow_redirects=False,
                    data={"csrf": token, "name": "fuzzed", "scopes": "read", "days": value}),
        client.get("/approvals", params={"team": value}),
        client.get("/audit", params={"team": value}),
    ]
    assert all(a.status_code < 500 for a in answers), [(a.request.url, a.status_code)
                                                       for a in answers]
