"""What the real-host tests share: the test's policy, the pinned host programs, a
Runestone home governed by that policy, the host's environment, the edits that break an
installed hook, and the fault cases every host meets alike.

A fault case here (`check_...`) takes `run`, which runs the host once in the project, asked
to run one command, and returns the model stand-in (model_api.py); each test adds what its
host tells the model (the stand-in's `said()`), which is where the hosts differ.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_faults import dying_daemon, stale_socket
from model_api import StandIn

from runestone.home import layout
from runestone.identity import create_identity

# The marker files are the oracle: a test asks the host to `touch` one and checks whether
# it exists afterwards, so "did the tool run" is observed, not inferred from the hook's answer.
POLICY = """[policy]
default = "ask"
include = ["default"]

[[rule]]
id = "test.allow"
decision = "allow"
reason = "the test allows this marker"
command = ["touch */allowed-marker"]

[[rule]]
id = "test.deny"
decision = "deny"
reason = "the test denies this marker"
command = ["touch */denied-marker"]
"""
BIN = Path(__file__).parent / "node_modules" / ".bin"


def host_program(name: str, title: str) -> Path:
    """The pinned program (tests/hosts/package.json); skipped when it is not installed,
    failed instead when RUNESTONE_TEST_HOSTS says it must be (as in CI)."""
    program = BIN / name
    if not program.exists():
        if os.environ.get("RUNESTONE_TEST_HOSTS"):
            pytest.fail(f"{program} is missing: run `npm ci --prefix tests/hosts`")
        pytest.skip(f"{title} is not installed (npm ci --prefix tests/hosts)")
    return program


def govern(policy: str = POLICY) -> None:
    """An identity and `policy` in the (temporary) Runestone home."""
    create_identity(layout())
    layout().policy_file.parent.mkdir(parents=True, exist_ok=True)
    layout().policy_file.write_text(policy)


def host_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a host runs in: `home` as its HOME, this test's Runestone home and
    Python path (for the hooks it starts), and the host's own settings in `extra`."""
    return {"PATH": os.environ["PATH"], "HOME": str(home),
            "RUNESTONE_HOME": os.environ["RUNESTONE_HOME"],
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **extra}


# --- breaking the installed hooks ---------------------------------------------------------

def edit_hooks(settings: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply `change` to each installed hook handler in `settings`: each in its group
    (`hooks.<event>[].hooks[]`) as Claude Code, Codex and Gemini CLI keep them, or each
    entry itself (`hooks.<event>[]`) as Copilot CLI does."""
    data = json.loads(settings.read_text())
    for entries in data["hooks"].values():
        for entry in entries:
            for handler in entry.get("hooks", [entry]):
                change(handler)
    settings.write_text(json.dumps(data))


def lose_the_interpreter(settings: Path) -> None:
    """The installed hooks name a Python that does not exist (the hook cannot start)."""
    settings.write_text(settings.read_text().replace(json.dumps(sys.executable)[1:-1],
                                                     "/nonexistent/python3"))


def cut_off_events(settings: Path, *, command: str = "command",
                   first: str = "hook_event_name") -> None:
    """In place of the host's event, JSON cut off mid-object (an event the hook cannot
    read) is fed to each installed hook; `command` names the handler's command field,
    `first` the event's first field."""
    cut_off = f"printf '{{\"{first}\": ' | "
    edit_hooks(settings, lambda h: h.update({command: cut_off + h[command]}))


# --- fault cases every host meets alike ---------------------------------------------------

Run = Callable[[str], StandIn]


def check_a_crashing_hook_blocks(run: Run, project: Path) -> StandIn:
    """A policy that does not load: the hook crashes (Runestone's exit 2 with the reason),
    and the host blocks."""
    layout().policy_file.write_text('[policy]\ndefault = "maybe"\n')
    api = run(f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    return api


def check_a_malformed_event_blocks(run: Run, project: Path, settings: Path,
                                   **where: str) -> StandIn:
    """What the hook cannot read (cut-off JSON in place of the host's event) is
    Runestone's exit 2 with the reason, and the host blocks; `where` as `cut_off_events`."""
    cut_off_events(settings, **where)
    api = run(f"touch {project}/allowed-marker")
    assert not (project / "allowed-marker").exists()
    return api


def says_malformed(api: StandIn) -> bool:
    said = api.said().lower()
    return "malformed" in said or "json" in said


def check_a_stale_socket_leaves_it_to_the_hook(run: Run, project: Path) -> None:
    """A socket file a dead daemon left, nobody listening: the hook decides in-process."""
    with stale_socket():
        run(f"touch {project}/allowed-marker")
        run(f"touch {project}/denied-marker")
    assert (project / "allowed-marker").exists()
    assert not (project / "denied-marker").exists()


def check_a_dying_daemon_blocks(run: Run, project: Path) -> StandIn:
    """The daemon took the request and died before answering: the outcome is unknown, so
    the hook denies, and the host blocks."""
    with dying_daemon() as taken:
        api = run(f"touch {project}/allowed-marker")
    assert taken, "the hook never reached the daemon"
    assert not (project / "allowed-marker").exists()
    return api


def check_a_failed_call_has_its_result(run: Run, project: Path) -> list[dict[str, Any]]:
    """A tool call that runs and fails (`touch` into a folder that does not exist): the
    result entries linked to its request (the test says how many, and what they say)."""
    from runestone.audit.query import read_entries

    run(f"touch {project}/no-such-dir/allowed-marker")
    entries = list(read_entries(layout().audit_dir))
    request = next(e for e in entries if e["kind"] == "request"
                   and "no-such-dir" in json.dumps(e.get("input")))
    return [e for e in entries if e["kind"] == "result"
            and e["request_id"] == request["request_id"]]


def check_a_sandbox_decision_contains(run: Run, project: Path, home: Path
                                      ) -> tuple[StandIn, dict[str, Any], dict[str, Any]]:
    """Under a policy whose default is `sandbox`, the command runs inside `runestone
    sandbox run`: its write in the project happens, its write outside does not (the
    original command would have made it), and the model reads what the sandbox refused
    (`sandbox_violations`). Returns the stand-in, and the audit log's decision and its
    result entry, which carries the sandbox's report. Skipped where the sandbox cannot run,
    failed instead when RUNESTONE_TEST_SANDBOX says it must."""
    from runestone.audit.query import read_entries
    from runestone.sandbox.probe import unavailable

    why = unavailable()
    if why:
        if os.environ.get("RUNESTONE_TEST_SANDBOX"):
            pytest.fail(f"RUNESTONE_TEST_SANDBOX is set and the sandbox cannot run: {why}")
        pytest.skip(f"sandboxing unavailable here: {why}")
    layout().policy_file.write_text('[policy]\ndefault = "sandbox"\ninclude = ["default"]\n')
    outside = home / "outside"
    outside.mkdir()
    api = run(f"touch {project}/contained-marker; touch {outside}/escaped")
    assert (project / "contained-marker").exists(), api.said()
    assert not (outside / "escaped").exists()
    assert "sandbox_violations" in api.said()
    entries = list(read_entries(layout().audit_dir))
    decision = next(e for e in entries if e["kind"] == "decision")
    assert decision["decision"] == "sandbox"
    result = next(e for e in entries if e["kind"] == "result"
                  and e["request_id"] == decision["request_id"])
    assert result["sandbox"]["blocked"]
    return api, decision, result
