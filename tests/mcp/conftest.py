"""What the gateway tests share: a runtime and a policy that allows the clock and reading a
git repository, and denies changing it."""

from __future__ import annotations

import pytest

from runestone.home import layout
from runestone.identity import create_identity

POLICY = """
[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "t.time"
decision = "allow"
reason = "reading the clock"
mcp_server = ["mcp-time", "time"]
mcp_tool = ["get_current_time"]

[[rule]]
id = "t.git-read"
decision = "allow"
reason = "reading the repository"
mcp_server = ["mcp-git"]
mcp_tool = ["git_status", "git_log", "git_diff*", "git_show"]

[[rule]]
id = "t.git-write"
decision = "deny"
reason = "the agent may not change the repository"
mcp_server = ["mcp-git"]
mcp_tool = ["git_add", "git_commit", "git_reset", "git_create_branch", "git_checkout"]

[[rule]]
id = "t.fake"
decision = "allow"
reason = "the broken test server"
mcp_server = ["fake"]
"""


@pytest.fixture
def policy(isolated_home, tmp_path):
    create_identity(layout())
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path
