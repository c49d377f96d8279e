"""The real command line: check, explain, init, policy, corpus and demo."""

from __future__ import annotations

import json
import os
import stat

from clihelp import run_cli


def test_check_reads_a_pretool_use_object():
    action = {"tool_name": "Bash", "tool_input": {"command": "git push -f"}, "cwd": "/tmp/p"}
    result = run_cli("check", "--preset", "default", stdin=json.dumps(action))
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["decision"] == "deny"
    assert set(decision) >= {"decision", "reason", "rules", "policy_hash", "action_hash",
                             "opaque"}


def test_check_answers_jsonl_one_line_per_action_and_denies_malformed_lines():
    lines = [
        json.dumps({"id": "a", "tool_name": "Bash", "tool_input": {"command": "ls"},
                    "cwd": "/tmp/p"}),
        "{not json",
        json.dumps({"id": "c", "tool_name": "Bash", "tool_input": {"command": "$(x) y"},
                    "cwd": "/tmp/p"}),
        json.dumps({"id": "d", "tool_input": {}}),
    ]
    result = run_cli("check", "--preset", "developer", stdin="\n".join(lines))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == ["a", 2, "c", "d"]
    assert out[0]["decision"] == "allow"
    assert out[1]["decision"] == "deny" and "Malformed JSON on line 2" in out[1]["reason"]
    assert out[2]["decision"] == "ask" and out[2]["opaque"]
    assert out[3]["decision"] == "deny" and "tool_name" in out[3]["reason"]


def test_check_with_command_option_and_empty_input():
    result = run_cli("check", "--preset", "default", "--command", "cat ~/.ssh/id_rsa")
    assert json.loads(result.stdout)["decision"] == "deny"
    empty = run_cli("check", "--preset", "default", stdin="")
    assert empty.returncode == 0
    assert json.loads(empty.stdout)["decision"] == "deny"


def test_check_with_a_broken_policy_fails_loudly(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[policy]\ndefault = "ask"\n[[rule]]\nid = "x"\ndecision = "deny"\n')
    result = run_cli("check", "--policy", str(policy), "--command", "ls")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "p.toml:3" in result.stderr and "reason" in result.stderr


def test_explain_lists_commands_opaque_parts_and_the_rule():
    result = run_cli("explain", "--preset", "default", "--cwd", "/home/dev/app",
                     "--home-dir", "/home/dev", "sudo sh -c \"r''m -rf ~\"; $(echo x)")
    assert result.returncode == 0, result.stderr
    assert "rm -rf /home/dev" in result.stdout
    assert "via sudo" in result.stdout
    assert "Opaque" in result.stdout and "command" in result.stdout
    assert "DENY" in result.stdout and "fs.rm-contains-project-or-home" in result.stdout


def test_init_creates_home_policy_and_identity(isolated_home):
    result = run_cli("init")
    assert result.returncode == 0, result.stderr
    key = isolated_home / "keys" / "runtime.ed25519"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (isolated_home / "policy.toml").read_text().startswith("# Runestone policy")
    identity = json.loads((isolated_home / "identity.json").read_text())
    assert identity["runtime_id"].startswith("rt_")
    again = run_cli("init")
    assert "kept" in again.stdout
    assert json.loads((isolated_home / "identity.json").read_text()) == identity
    tested = run_cli("policy", "test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " 0 failed" in tested.stdout
    check = run_cli("check", "--command", "npm test", "--cwd", "/tmp/project")
    assert json.loads(check.stdout)["decision"] == "allow"


def test_without_a_policy_the_default_preset_is_used_and_said(isolated_home):
    result = run_cli("check", "--command", "ls")
    assert json.loads(result.stdout)["decision"] == "ask"
    assert "using the 'default' preset" in result.stderr


def test_policy_test_reports_failures(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('[policy]\n[[test]]\ncommand = "ls"\nexpect = "allow"\n')
    result = run_cli("policy", "test", "--policy", str(policy))
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "0 passed, 1 failed" in result.stdout


def test_policy_show_and_packs():
    shown = run_cli("policy", "show", "--preset", "developer")
    assert "git.push-force" in shown.stdout
    packs = run_cli("policy", "packs")
    assert "secrets" in packs.stdout.split()


def test_demo_runs():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    assert "DENY" in result.stdout and "ALLOW" in result.stdout and "ASK" in result.stdout


def test_audit_commands_end_to_end(isolated_home):
    assert run_cli("init").returncode == 0
    for command in ("git status", "git push --force", "cat .env"):
        run_cli("check", "--command", command, "--cwd", "/tmp/project")
    verified = run_cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact: 6 entries" in verified.stdout
    tail = run_cli("audit", "tail", "-n", "2")
    assert len(tail.stdout.splitlines()) == 2 and "cat .env" in tail.stdout
    denied = run_cli("audit", "search", "--decision", "deny")
    assert "git push --force" in denied.stdout and "cat .env" in denied.stdout
    request_id = denied.stdout.split("[")[-1].split("]")[0]
    story = run_cli("audit", "show", request_id)
    assert '"kind": "request"' in story.stdout and '"kind": "decision"' in story.stdout
    csv_out = run_cli("audit", "export", "--format", "csv", "--rule", "git.push-force")
    assert csv_out.stdout.splitlines()[0].startswith("seq,time,kind")
    assert len(csv_out.stdout.splitlines()) == 2
    jsonl = run_cli("audit", "export")
    assert len(jsonl.stdout.splitlines()) == 6
    assert run_cli("audit", "checkpoint").returncode == 0
    segment = next((isolated_home / "state" / "audit").glob("segment-*.jsonl"))
    segment.write_bytes(segment.read_bytes().replace(b"git push --force", b"git push --forcX"))
    broken = run_cli("audit", "verify")
    assert broken.returncode == 1 and "BROKEN: segment-00000001.jsonl line" in broken.stdout


def _nested(depth: int, line_id: str = "") -> str:
    """An action whose command is `depth` nested arrays (issue 17: 100,000 of them made
    `check` die with a RecursionError, so the lines after it got no decision)."""
    head = f'{{"id": "{line_id}", ' if line_id else "{"
    return head + '"tool_name": "Bash", "tool_input": {"command": ' + "[" * depth + \
        "]" * depth + '}, "cwd": "/tmp/p"}'


def test_check_denies_lines_nested_too_deeply_and_goes_on():
    good = [json.dumps({"id": name, "tool_name": "Bash", "tool_input": {"command": "ls"},
                        "cwd": "/tmp/p"}) for name in ("a", "b", "c")]
    lines = [_nested(100_000), good[0], _nested(990), good[1], _nested(300), good[2]]
    result = run_cli("check", "--preset", "developer", stdin="\n".join(lines))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == [1, "a", 3, "b", 5, "c"]
    for refused in out[0::2]:
        assert refused["decision"] == "deny"
        assert "nested more than 200 levels deep" in refused["reason"]
    assert [o["decision"] for o in out[1::2]] == ["allow"] * 3
    # One document, not JSON Lines: one clear deny.
    single = run_cli("check", "--preset", "developer", stdin=_nested(100_000))
    assert single.returncode == 0 and "Traceback" not in single.stderr
    assert "nested more than 200 levels deep" in json.loads(single.stdout)["reason"]


def _entries():
    from runestone.audit.query import read_entries
    from runestone.home import layout

    return list(read_entries(layout().audit_dir))


def test_explain_audits_nothing_and_asks_nobody(isolated_home):
    """Issue 17: explain wrote request and decision entries that looked like real checks
    (and an ask opened a real approval request)."""
    assert run_cli("init").returncode == 0
    before = _entries()
    for command in ("ssh prod-db uptime", "rm -rf ~", "ls", "find / -exec rm -rf {} \\;"):
        result = run_cli("explain", command)
        assert result.returncode == 0, result.stderr
        assert "Not audited: explain decides nothing that runs" in result.stdout
    assert "Decision: ASK" in run_cli("explain", "ssh prod-db uptime").stdout
    assert _entries() == before
    assert "req_" not in run_cli("approvals", "list").stdout


def test_malformed_lines_are_denied_and_audited(isolated_home):
    """Issue 17: the README says every request and decision is appended, but the denies
    for malformed lines were not."""
    assert run_cli("init").returncode == 0
    good = json.dumps({"id": "a", "tool_name": "Bash", "tool_input": {"command": "ls"},
                       "cwd": "/tmp/p"})
    lines = [good, "{not json", _nested(5000), json.dumps({"tool_input": {}}),
             '{"tool_name": "Bash", "tool_input": {"command": NaN}}', good]
    result = run_cli("check", stdin="\n".join(lines))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    refused = [o for o in out if o["decision"] == "deny"]
    assert len(refused) == 4
    entries = _entries()
    requests = [e for e in entries if e["kind"] == "request"
                and e["tool"] == "(malformed input)"]
    assert [r["input"]["line"] for r in requests] == [2, 3, 4, 5]
    assert requests[0]["input"]["text"] == "{not json"
    assert len(requests[1]["input"]["text"]) == 4096  # the beginning, with the length
    assert requests[1]["input"]["length"] == len(lines[2])
    decisions = {e["request_id"]: e for e in entries if e["kind"] == "decision"}
    assert [decisions[r["request_id"]]["reason"] for r in requests] == \
        [o["reason"] for o in refused]
    assert all(decisions[r["request_id"]]["decision"] == "deny" for r in requests)
    # The hook audits what it cannot read too, and the chain verifies.
    hook = run_cli("hook", "claude-code", stdin="{broken")
    assert "malformed hook input" in hook.stdout + hook.stderr
    assert sum(e["kind"] == "request" and e["tool"] == "(malformed input)"
               for e in _entries()) == 5
    assert run_cli("audit", "verify").returncode == 0


def test_enroll_on_a_home_without_init_says_to_run_init(isolated_home):
    """Issue 17: it printed a traceback. Nothing is sent (the server address is never
    contacted) and nothing is written."""
    result = run_cli("enroll", "--server", "http://127.0.0.1:9", "--token", "rse_x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "run `runestone init`" in result.stderr
    assert not (isolated_home / "keys").exists()


def test_explain_of_find_exec_reads_the_paths_find_finds():
    """Issue 17: `find / -exec rm -rf {} \\;` read as `rm -rf {}` and asked, and explain
    said every part was understood while its reason said it could not tell. It is read as
    a recursive delete of what find finds under / and denied, and explain agrees with its
    reason."""
    result = run_cli("explain", "--preset", "default", "--cwd", "/home/dev/app",
                     "--home-dir", "/home/dev", "find / -exec rm -rf {} \\;")
    assert result.returncode == 0, result.stderr
    assert "via find -exec" in result.stdout and "rm --recursive --force /" in result.stdout
    assert "Decision: DENY" in result.stdout
    assert "every part was understood" in result.stdout
    assert "could not tell" not in result.stdout


def _subcommand_parser(parser, name):
    import argparse

    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def test_a_command_parsed_with_only_its_own_parser_reads_and_helps_alike():
    """`_dispatch` builds only the named command's parser: what it parses, and the help it
    prints, are those of the whole command line's."""
    from runestone.cli import _COMMANDS, build_parser

    whole = build_parser()
    for name in _COMMANDS:
        alone = build_parser(name)
        assert _subcommand_parser(alone, name).format_help() == \
            _subcommand_parser(whole, name).format_help()
    for argv in (["check", "--preset", "developer", "--command", "ls -la", "--cwd", "/tmp"],
                 ["audit", "search", "--decision", "deny", "--text", "x"],
                 ["sandbox", "run", "--profile", "p", "--", "make", "-j2"],
                 ["approvals", "grant", "--rule", "r", "--minutes", "5"]):
        assert vars(build_parser(argv[0]).parse_args(argv)) == vars(whole.parse_args(argv))


def test_an_unknown_command_is_told_the_whole_list():
    done = run_cli("frobnicate")
    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr
    assert "'check'" in done.stderr and "'sandbox'" in done.stderr
