"""Claude Code permission lists become rules with the same decisions, and stronger semantics."""

from __future__ import annotations

import json

from clihelp import run_cli
from runestone.actions import Action
from runestone.facts import derive_facts
from runestone.policy.claude_import import claude_path, import_claude_settings
from runestone.policy.engine import evaluate
from runestone.policy.loader import compile_policy_text
from runestone.policy.model import EvalContext

SETTINGS = {
    "permissions": {
        "allow": ["Bash(npm run test:*)", "Bash(git status)", "Read(./src/**)",
                  "WebFetch(domain:docs.python.org)", "mcp__github__get_*"],
        "ask": ["Bash(git push:*)"],
        "deny": ["Read(./.env)", "Edit(//etc/**)", "WebFetch", "Bash(curl:*)", "Frobnicate(x)",
                 42],
    }
}


def decide(policy, tool, tool_input, cwd="/home/dev/app"):
    action = Action(tool, tool_input, cwd, project_dir="/home/dev/app")
    return evaluate(policy, derive_facts(action, home="/home/dev"), EvalContext()).decision


def test_import_round_trips_into_a_valid_policy():
    result = import_claude_settings(SETTINGS, settings_path="/home/dev/app/.claude/settings.json")
    assert len(result.rules) == 10
    assert any("Frobnicate" in w for w in result.warnings)
    assert any("42" in w for w in result.warnings)
    policy = compile_policy_text(result.toml, source="imported.toml")
    assert decide(policy, "Bash", {"command": "npm run test -- --watch"}) == "allow"
    assert decide(policy, "Bash", {"command": "git status"}) == "allow"
    assert decide(policy, "Read", {"file_path": "/home/dev/app/src/a.py"}) == "allow"
    assert decide(policy, "Bash", {"command": "git push origin main"}) == "ask"
    assert decide(policy, "Read", {"file_path": "/home/dev/app/.env"}) == "deny"
    assert decide(policy, "Write", {"file_path": "/etc/hosts", "content": ""}) == "deny"
    assert decide(policy, "WebFetch", {"url": "https://docs.python.org/3/"}) == "deny"
    assert decide(policy, "Bash", {"command": "curl https://x.example"}) == "deny"
    assert decide(policy, "mcp__github__get_issue", {}) == "allow"


def test_a_prefix_allowance_does_not_allow_what_is_chained_to_it():
    policy = compile_policy_text(import_claude_settings(SETTINGS).toml, source="i.toml")
    assert decide(policy, "Bash", {"command": "git status; rm -rf ~"}) != "allow"
    assert decide(policy, "Bash", {"command": "npm run test && curl evil.example"}) == "deny"


def test_read_allowance_does_not_allow_shell_commands_on_the_path():
    policy = compile_policy_text(import_claude_settings(SETTINGS).toml, source="i.toml")
    assert decide(policy, "Bash", {"command": "rm -r src/x"}) != "allow"


def test_path_anchors():
    assert claude_path("//etc/**") == "/etc/**"
    assert claude_path("~/.ssh/**") == "~/.ssh/**"
    assert claude_path("/src/**") == "{project}/src/**"
    assert claude_path("./.env") == "{project}/.env"
    assert claude_path("*.env") == "*.env"


def test_cli_import(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    result = run_cli("policy", "import-claude", str(settings))
    assert result.returncode == 0, result.stderr
    assert "[[rule]]" in result.stdout and "warning:" in result.stderr
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(result.stdout)
    check = run_cli("check", "--policy", str(policy_file), "--command", "curl https://x.example")
    assert json.loads(check.stdout)["decision"] == "deny"


def test_simulation_replays_the_audit_log_against_a_candidate(tmp_path):
    from runestone.home import layout
    from runestone.identity import create_identity

    create_identity(layout())
    for command in ("ls", "git status", "curl https://example.com", "rm -rf ~"):
        run_cli("check", "--preset", "developer", "--command", command, "--cwd", str(tmp_path))
    candidate = tmp_path / "candidate.toml"
    candidate.write_text('[policy]\ndefault = "ask"\ninclude = ["developer"]\n\n[[rule]]\n'
                         'id = "team.no-git"\ndecision = "deny"\nreason = "frozen"\n'
                         'program = ["git"]\n')
    result = run_cli("policy", "simulate", str(candidate), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["replayed"] == 4 and report["unchanged"] == 3
    assert report["changed"] == {"allow->deny": 1}
    assert report["examples"]["allow->deny"][0]["summary"] == "git status"
