"""Single sign-on in Debian's Chromium: the login page's single sign-on form, the real
local OpenID Provider's sign-in page (tests/oidc_provider.py), back to the dashboard
signed in, mapped to the team and role the person's groups give, and signed out again."""

from __future__ import annotations

from sqlalchemy import select

from liveserver import ServerProcess, api
from oidc_provider import ProviderProcess


def test_sign_in_through_the_provider_in_a_browser(browser, tmp_path, shots):
    url = f"sqlite:///{tmp_path / 'sso.sqlite3'}"
    server = ServerProcess(url, tmp_path / "server")
    provider = ProviderProcess(tmp_path / "provider", server.base, {"ana": ["eng"]})
    provider.start()
    server.init()
    server.start()
    context = browser.new_context()
    try:
        admin = server.login()
        api(server.base, "POST", "/api/v1/teams", admin, {"name": "core"})
        api(server.base, "PUT", "/api/v1/sso", admin, {
            "issuer": provider.issuer, "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "group_map": [{"group": "eng", "team": "core", "role": "approver"}]})
        page = context.new_page()
        page.goto(f"{server.base}/login")
        page.fill('input[name="org"]', "acme")
        page.click("#sso")
        page.wait_for_url(f"{provider.issuer}/authorize*")
        assert "Test provider sign-in" in page.content()
        page.fill("#username", "ana")
        page.click("#signin")
        page.wait_for_url(f"{server.base}/")
        page.screenshot(path=str(shots / "sso-signed-in.png"))
        assert "ana" in page.inner_text("body")
        cookies = {c["name"]: c for c in context.cookies(server.base)}
        assert cookies["runestone_session"]["httpOnly"]
        assert "runestone_sso_state" not in cookies

        from runestone_server.db import Database
        from runestone_server.models import Membership, Team, User

        db = Database(url)
        with db.sessions() as session:
            row = session.execute(select(Team.name, Membership.role).join(
                Membership, Membership.team_id == Team.id).join(
                User, User.id == Membership.user_id).where(User.username == "ana")).one()
        db.engine.dispose()
        assert tuple(row) == ("core", "approver")

        page.click("text=Sign out")
        page.wait_for_url(f"{server.base}/login*")
        page.goto(f"{server.base}/")
        assert "/login" in page.url  # the session ended
    finally:
        context.close()
        server.stop()
        provider.stop()
