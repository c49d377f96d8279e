"""The cached team policy governs only as the control plane signed it (a real server, on
SQLite and PostgreSQL): an edit of `policy.remote.toml` is refused on the next load (the
hook denies, `check` refuses, `status` says so), `policy pull` restores it although the
server's version did not change, and an edit of both the file and the recorded hash is
caught by `status`'s signature check."""

from __future__ import annotations

import json

from liveserver import ServerProcess, api, enroll_runtime, runestone

NO_CURL = ('[policy]\nname = "team"\ndefault = "ask"\ninclude = ["default"]\n\n'
           '[[rule]]\nid = "team.no-curl"\ndecision = "deny"\nreason = "no curl here"\n'
           'program = ["curl"]\n\n[[test]]\ncommand = "curl https://example.com"\n'
           'expect = "deny"\n')
EDITED = NO_CURL.replace('decision = "deny"', 'decision = "allow"').replace(
    'expect = "deny"', 'expect = "allow"')
CURL = {"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "curl https://example.com"}, "cwd": "/tmp"}


def _hook(home) -> dict:
    answer = runestone(home, "hook", "claude-code", stdin=json.dumps(CURL))
    return json.loads(answer.stdout)["hookSpecificOutput"]


def test_an_edited_cached_policy_is_refused_and_restored(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server")
    server.init()
    server.start()
    try:
        token = server.login()
        team = api(server.base, "POST", "/api/v1/teams", token, {"name": "core"})["id"]
        api(server.base, "POST", f"/api/v1/teams/{team}/policies", token, {"text": NO_CURL})
        api(server.base, "POST", f"/api/v1/teams/{team}/publications", token, {"number": 1})
        home = tmp_path / "laptop"
        assert enroll_runtime(server.base, token, team, home).returncode == 0
        cached = home / "policy.remote.toml"
        assert cached.read_text() == NO_CURL
        assert _hook(home)["permissionDecision"] == "deny"
        assert "POLICY REFUSED" not in runestone(home, "status").stdout

        cached.write_text(EDITED)  # what an agent's `sed -i` on the cache would do
        refused = _hook(home)
        assert refused["permissionDecision"] == "deny"
        assert "changed on disk" in refused["permissionDecisionReason"]
        checked = runestone(home, "check", "--command", "curl https://example.com")
        assert checked.returncode == 2 and "changed on disk" in checked.stderr
        status = runestone(home, "status").stdout
        assert "version 1" in status and "POLICY REFUSED" in status
        assert "changed on disk" in status

        # The server's version is unchanged (no 304 for a cache that fails): pulled again.
        assert runestone(home, "policy", "pull").returncode == 0
        assert cached.read_text() == NO_CURL
        assert "POLICY REFUSED" not in runestone(home, "status").stdout
        assert json.loads(runestone(home, "check", "--command", "curl https://x.org")
                          .stdout)["rules"] == ["team.no-curl"]

        # Both the file and the recorded hash rewritten: the hook's cheap compare passes,
        # the signature does not, and status says so (and a pull restores it).
        cached.write_text(EDITED)
        edited_hash = json.loads(runestone(home, "check", "--policy", str(cached),
                                           "--command", "ls").stdout)["policy_hash"]
        state_file = home / "state" / "remote-state.json"
        state = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**state, "hash": edited_hash}))
        status = runestone(home, "status").stdout
        assert "POLICY REFUSED" in status and "signature" in status
        assert runestone(home, "policy", "pull").returncode == 0
        assert cached.read_text() == NO_CURL
    finally:
        server.stop()
