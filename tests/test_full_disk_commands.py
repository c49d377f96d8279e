"""A full disk makes commands say plainly what failed, never a traceback (issue 17:
`audit ship` died in `_write_ship_state`, `approvals approve` in the approvals store).

The disk is "full" for the command's process alone: RLIMIT_FSIZE with SIGXFSZ ignored makes
every write past the limit fail with EFBIG, as the durability tests do; decisions stayed
safe before, so what is checked is the message and that nothing was half done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from clihelp import run_cli

LIMITED = textwrap.dedent("""
    import resource, signal, sys
    from runestone.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
    sys.exit(main(sys.argv[2:]))
""")


def limited(size: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`runestone ARGS` in a process that cannot write a file past `size` bytes."""
    return subprocess.run([sys.executable, "-c", LIMITED, str(size), *args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def pending_request() -> str:
    assert run_cli("init").returncode == 0
    asked = run_cli("check", "--approval", "defer", "--command", "ssh prod-db uptime",
                    "--cwd", "/tmp/p")
    return json.loads(asked.stdout)["request_id"]


def test_approve_and_deny_on_a_full_disk_say_what_failed_and_decide_nothing(isolated_home):
    request_id = pending_request()
    for args in (("approvals", "approve", request_id),
                 ("approvals", "deny", request_id, "--reason", "no"),
                 ("approvals", "cancel", request_id)):
        done = limited(1000, *args)
        assert done.returncode in (1, 2), (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert "is the disk full?" in done.stderr, done.stderr
    listed = run_cli("approvals", "list")
    assert f"{request_id}  pending" in listed.stdout, listed.stdout


def test_audit_ship_on_a_full_disk_says_what_failed(isolated_home):
    assert run_cli("init").returncode == 0
    done = limited(10, "audit", "ship")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "could not record how far shipping got" in done.stderr
    assert "is the disk full?" in done.stderr
    assert not list((isolated_home / "state").glob("audit-ship*.tmp"))


def test_any_command_that_cannot_write_says_so_in_one_line(isolated_home):
    """The command line's own net: a command with no words of its own for a failed write
    still names the command and the error, without a traceback."""
    done = limited(10, "init")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "runestone init: OSError: File too large" in done.stderr
    assert "is the disk full" in done.stderr
