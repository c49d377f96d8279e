"""The runtime's own tools, attacked: paths and symlinks, environment secrets, timeouts,
SSRF through addresses and redirects, and the policy in front of all of them."""

from __future__ import annotations

import http.server
import os
import threading
from dataclasses import replace

import pytest

from runestone.gatekeeper import Gatekeeper
from runestone.home import layout
from runestone.identity import create_identity
from runestone.tools import http as http_tool
from runestone.tools.runner import run_tool
from runestone.tools.settings import (
    FileSettings,
    HttpSettings,
    ShellSettings,
    ToolSettings,
    ToolSettingsError,
)
from runestone.tools.shell import ToolRefused

POLICY = """
[policy]
default = "ask"
include = ["destructive-fs"]

[[rule]]
id = "t.shell"
decision = "allow"
reason = "test shell"
program = ["echo", "sleep", "yes", "head", "env", "printenv", "cat", "true", "sh"]

[[rule]]
id = "t.write"
decision = "allow"
reason = "test writes"
tool = ["Write"]

[[rule]]
id = "t.fetch"
decision = "allow"
reason = "test fetches"
family = ["web_fetch"]
"""


@pytest.fixture
def setup(isolated_home, tmp_path):
    create_identity(layout())
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    keeper = Gatekeeper.from_layout(layout(), policy_file=policy)
    work = tmp_path / "work"
    work.mkdir()
    settings = ToolSettings(shell=ShellSettings(cwd_prefixes=(str(work),), timeout_seconds=5,
                                                output_cap_bytes=1000),
                            files=FileSettings(roots=(str(work),), max_bytes=100),
                            http=HttpSettings(allow_networks=("127.0.0.1/32",),
                                              max_redirects=2, max_response_bytes=1000))
    return keeper, settings, work


def call(setup, name, **params):
    keeper, settings, work = setup
    return run_tool(keeper, settings, name, params, cwd=str(work), agent="test")


def test_shell_exec_runs_allowed_commands_with_a_filtered_environment(setup, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    response = call(setup, "shell.exec", command="env", env={"GITHUB_TOKEN": "x", "LANG": "C"})
    assert response.decision == "allow", response.reason
    assert "AWS_SECRET_ACCESS_KEY" not in response.result["stdout"]
    assert "LANG=C" in response.result["stdout"]
    assert response.result["env_dropped"] == ["GITHUB_TOKEN"]


def test_shell_exec_limits(setup):
    keeper, settings, work = setup
    denied = call(setup, "shell.exec", command="rm -rf ~")
    assert denied.decision == "deny" and denied.result is None
    outside = call(setup, "shell.exec", command="echo hi", cwd="/")
    assert outside.decision == "deny" and "only under" in outside.reason
    slow = call(setup, "shell.exec", command="sleep 30")
    assert slow.result["timed_out"] is True
    loud = call(setup, "shell.exec", command="yes | head -c 5000")
    assert len(loud.result["stdout"]) == 1000 and loud.result["stdout_truncated"]
    sandboxed = run_tool(keeper, replace(settings, shell=replace(
        settings.shell, sandbox=("env", "SANDBOXED=yes"))), "shell.exec",
        {"command": "printenv SANDBOXED"}, cwd=str(work))
    assert sandboxed.result["stdout"].strip() == "yes"


def test_files_write_stays_inside_its_roots(setup, tmp_path):
    _, _, work = setup
    written = call(setup, "files.write", path="notes.txt", content="hello")
    assert written.decision == "allow" and (work / "notes.txt").read_text() == "hello"
    assert call(setup, "files.write", path=str(tmp_path / "outside.txt"),
                content="x").decision == "deny"
    (tmp_path / "secret.txt").write_text("keep")
    os.symlink(tmp_path / "secret.txt", work / "link.txt")
    through_link = call(setup, "files.write", path="link.txt", content="pwned")
    assert through_link.decision == "deny" and (tmp_path / "secret.txt").read_text() == "keep"
    os.symlink(tmp_path, work / "escape")
    escaped = call(setup, "files.write", path="escape/new.txt", content="x")
    assert escaped.decision == "deny" and not (tmp_path / "new.txt").exists()
    assert "deny list" in call(setup, "files.write", path="id.pem", content="x").reason
    assert "cap" in call(setup, "files.write", path="big.txt", content="x" * 101).reason


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        routes = {"/metadata": "http://169.254.169.254/latest/meta-data/",
                  "/loop": "/loop", "/hop": "/ok", "/file": "file:///etc/passwd"}
        if self.path in routes:
            self.send_response(302)
            self.send_header("Location", routes[self.path])
            self.end_headers()
            return
        body = b"x" * 5000 if self.path == "/big" else b"fine"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_request_fetches_and_follows_allowed_redirects(setup, server):
    response = call(setup, "http.request", url=f"{server}/hop")
    assert response.decision == "allow", response.reason
    assert response.result["status"] == 200 and response.result["body"] == "fine"
    assert len(response.result["hops"]) == 2
    big = call(setup, "http.request", url=f"{server}/big")
    assert big.result["truncated"] and big.result["body_bytes"] == 1000


@pytest.mark.parametrize("path, needle", [("/metadata", "metadata"), ("/loop", "redirects"),
                                          ("/file", "only http")])
def test_http_request_refuses_dangerous_redirects(setup, server, path, needle):
    response = call(setup, "http.request", url=f"{server}{path}")
    assert response.decision == "deny" and needle in response.reason


def test_private_and_loopback_addresses_are_refused_after_resolution():
    settings = HttpSettings()
    for url in ("http://127.0.0.1/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/",
                "http://169.254.169.254/", "http://0x7f000001/", "http://2130706433/",
                "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "ftp://example.com/"):
        with pytest.raises(ToolRefused):
            http_tool.check_target(url, settings)
    denied = replace(settings, deny_domains=("evil.example",))
    with pytest.raises(ToolRefused, match="deny list"):
        http_tool.check_target("https://api.evil.example/x", denied)
    allow_only = replace(settings, allow_domains=("docs.python.org",))
    with pytest.raises(ToolRefused, match="allow list"):
        http_tool.check_target("https://example.com/", allow_only)


def test_unknown_tools_and_bad_parameters(setup):
    assert call(setup, "shell.rm").decision == "deny"
    assert call(setup, "shell.exec", command=3).decision == "deny"
    assert call(setup, "http.request", url="http://x", method="TRACE").decision == "deny"


def test_settings_are_validated(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[tools.shell]\ntimeout_seconds = 5\ncwd_prefixes = ['/srv']\n")
    settings = ToolSettings.load(config)
    assert settings.shell.timeout_seconds == 5 and settings.shell.cwd_prefixes == ("/srv",)
    config.write_text("[tools.shell]\ntimeuot = 5\n")
    with pytest.raises(ToolSettingsError, match="timeuot"):
        ToolSettings.load(config)
