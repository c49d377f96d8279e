"""Paths and URLs in MCP arguments are judged like the host tools' own: where `Write`,
`Read`, `Edit` or `WebFetch` is denied, the MCP tool doing the same is denied too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.actions import Action
from runestone.actions.mcp_args import argument_targets, tool_access
from runestone.policy import compile_policy_text, load_preset

HOME = "/home/dev"
PROJECT = "/home/dev/project"
PATHS = ["~/.ssh/authorized_keys", "~/.ssh/id_rsa", "~/.bashrc", "~/.aws/credentials",
         "/etc/passwd", "/etc/sudoers", f"{PROJECT}/.env", f"{PROJECT}/.git/hooks/pre-commit",
         f"{PROJECT}/src/app.py", "src/app.py", "~/.claude/settings.json", "/tmp/scratch.txt",
         "../other/notes.md", "~/.config/runestone/policy.toml", "/dev/sda"]
URLS = ["http://169.254.169.254/latest/meta-data", "https://example.com/x",
        "http://127.0.0.1:8080/admin", "file:///etc/passwd", "http://10.0.0.5/"]
# (host tool and its input key, the MCP tool named like it, its key)
PAIRS = [(("Write", "file_path"), ("write_file", "path")),
         (("Read", "file_path"), ("read_text_file", "path")),
         (("Edit", "file_path"), ("edit_file", "path")),
         (("Write", "file_path"), ("create_file", "filename"))]


def decide(policy, tool: str, arguments: dict) -> str:
    action = Action(tool, arguments, PROJECT, project_dir=PROJECT)
    return policy.decide(action, home=HOME).decision


@settings(max_examples=300, deadline=None)
@given(preset=st.sampled_from(["default", "developer"]), path=st.sampled_from(PATHS),
       pair=st.sampled_from(PAIRS), server=st.sampled_from(["filesystem", "fs", "x_y"]))
def test_an_mcp_file_tool_is_denied_where_the_host_tool_is(preset, path, pair, server):
    policy = load_preset(preset)
    (host, host_key), (mcp_tool, mcp_key) = pair
    extra = {"content": "x"} if host == "Write" else {}
    host_decision = decide(policy, host, {host_key: path, **extra})
    mcp_decision = decide(policy, f"mcp__{server}__{mcp_tool}", {mcp_key: path, **extra})
    if host_decision == "deny":
        assert mcp_decision == "deny", (host, path)


@settings(max_examples=100, deadline=None)
@given(preset=st.sampled_from(["default", "developer"]), url=st.sampled_from(URLS),
       tool=st.sampled_from(["fetch", "fetch_url", "browse_page", "scrape"]))
def test_an_mcp_url_is_denied_where_webfetch_is(preset, url, tool):
    policy = load_preset(preset)
    if decide(policy, "WebFetch", {"url": url}) == "deny":
        assert decide(policy, f"mcp__web__{tool}", {"url": url}) == "deny"


def test_the_ssh_key_write_of_the_issue():
    for preset in ("default", "developer"):
        policy = load_preset(preset)
        assert decide(policy, "mcp__filesystem__write_file",
                      {"path": "~/.ssh/authorized_keys", "content": "ssh-ed25519 AAAA"}) == "deny"


def test_access_comes_from_what_the_tool_says_it_does():
    assert tool_access("write_file") == ("write",)
    assert tool_access("read_text_file") == ("read",)
    assert tool_access("deleteRepository") == ("delete",)
    assert tool_access("frobnicate") == ("read", "write")  # unknown: caught either way
    paths, _ = argument_targets("move_file", {"source": "/a", "destination": "/b"})
    assert paths == [("/a", "delete"), ("/b", "write")]
    paths, urls = argument_targets("anything", {"content": "/etc/passwd is a file",
                                                "url": "https://example.com"})
    assert paths == [] and urls == ["https://example.com"]


def test_an_allowed_mcp_call_stays_allowed_for_harmless_paths():
    policy = compile_policy_text("""
[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "t.fs"
decision = "allow"
reason = "the test server"
mcp_server = ["fs"]
""")
    assert decide(policy, "mcp__fs__write_file", {"path": "src/app.py", "content": "x"}) \
        == "allow"
    assert decide(policy, "mcp__fs__write_file", {"path": "~/.bashrc", "content": "x"}) \
        == "deny"
