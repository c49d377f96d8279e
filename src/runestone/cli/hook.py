"""`runestone hook <host>`: the command an agent host runs before and after each tool call.

Kept light on purpose: when the daemon runs, this process only forwards the host's JSON
over a Unix socket and prints the answer; the policy engine is imported only when it must
decide in-process. Every failure is the host's own fail-closed answer.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: see _decide

if TYPE_CHECKING:
    from typing import NoReturn

    from runestone.home import Layout
    from runestone.integrations.hosts import HostAdapter
    from runestone.integrations.reply import Reply


def main() -> NoReturn:
    """The installed hook's entry point: `python -P -c "from runestone.cli.hook import main;
    main()" HOST` (runestone.integrations.install.hook_command says why not `-m`)."""
    hosts = sys.argv[1:]
    if len(hosts) != 1 or hosts[0].startswith("-"):
        print("runestone hook: name one host, e.g. claude-code", file=sys.stderr)
        sys.exit(2)
    code = start(hosts[0])
    from runestone.cli import exit_now

    exit_now(code)


def start(host_name: str) -> int:
    """Answer one hook call for `host_name`, set up for a short life: an agent host runs this
    before every tool call. The cyclic garbage collector waits (COLLECTOR_THRESHOLDS says
    why)."""
    import gc

    from runestone.cli import COLLECTOR_THRESHOLDS

    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return run_hook(host_name)


def run_hook(host_name: str) -> int:
    from runestone.integrations.client import HOST_NAMES

    if host_name not in HOST_NAMES:
        print(f"runestone: unknown host {host_name!r}; one of {', '.join(HOST_NAMES)}",
              file=sys.stderr)
        return 2
    try:
        body = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        return _emit(_adapter(host_name).failure(f"unreadable hook input ({exc}); denied"))
    try:
        reply = _decide(host_name, body)
    except Exception as exc:  # the last line of defence: never exit in a way that passes
        reply = _adapter(host_name).failure(f"internal error ({type(exc).__name__}: {exc}); "
                                            "denied", body)
    return _emit(reply)


def _adapter(host_name: str) -> HostAdapter:
    from runestone.integrations.hosts import host

    return host(host_name)


class _Answer:
    """The daemon's answer, printed as a Reply is (without importing typing for one)."""

    __slots__ = ("exit_code", "stderr", "stdout")

    def __init__(self, stdout: str, exit_code: int, stderr: str) -> None:
        self.stdout, self.exit_code, self.stderr = stdout, exit_code, stderr


def _decide(host_name: str, body: str) -> Reply | _Answer:
    """Through the daemon when one listens: that path imports the bare socket client and
    nothing else of the runtime (no typing, re or pathlib), since it runs before every tool
    call; in-process otherwise."""
    from runestone.integrations.client import DaemonFailed, ask_daemon, daemon_socket_path

    try:
        answer = ask_daemon(daemon_socket_path(), f"/hooks/{host_name}", body)
    except DaemonFailed as exc:
        return _adapter(host_name).failure(f"{exc}; denied to be safe, retry the call", body)
    if answer is not None:
        return _Answer(*answer)
    from runestone.home import layout

    return _in_process(_adapter(host_name), body, layout())


def _in_process(adapter: HostAdapter, body: str, where: Layout) -> Reply:
    from runestone.audit import AuditWriteError
    from runestone.gatekeeper import Gatekeeper
    from runestone.integrations.hook import handle_hook
    from runestone.integrations.links import CallLinks
    from runestone.policy import PolicyError

    try:
        gatekeeper = Gatekeeper.from_layout(where)
    except PolicyError as exc:
        return adapter.failure(f"the policy cannot be loaded, nothing is allowed:\n{exc}", body)
    except AuditWriteError as exc:
        return adapter.failure(f"the audit log cannot be opened ({exc}); no audit, no allow",
                               body)
    reply = handle_hook(gatekeeper, adapter, body, CallLinks(where.state_dir / "calls"))
    if gatekeeper.audit is not None:  # initialised: a daemon can run here
        from runestone.daemon import on_demand

        if on_demand.wanted():
            on_demand.start_in_background(str(where.state_dir))
    return reply


def _emit(reply: Reply | _Answer) -> int:
    if reply.stdout:
        sys.stdout.write(reply.stdout + ("\n" if not reply.stdout.endswith("\n") else ""))
    if reply.stderr:
        print(reply.stderr, file=sys.stderr)
    sys.stdout.flush()
    return reply.exit_code
