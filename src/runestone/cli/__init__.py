"""The `runestone` command line. Subcommands import their modules lazily, so that a hook
invocation pays only for what it uses."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: the daemon client path imports neither it nor re

if TYPE_CHECKING:  # argparse is imported by build_parser: the hook's fast path never needs it
    import argparse
    from collections.abc import Callable, Sequence
    from typing import NoReturn

    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def _policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--policy", metavar="FILE", help="policy file (default: the configured one)")
    group.add_argument("--preset", choices=("default", "developer", "contained"),
                       help="a built-in preset instead of a policy file")
    parser.add_argument("--home-dir", metavar="DIR",
                        help="the home directory `~` and $HOME resolve to (default: $HOME)")


def _add_init(sub: Subcommands) -> None:
    p = sub.add_parser("init", help="create the runtime's home: starter policy and identity")
    p.add_argument("--force-policy", action="store_true",
                   help="rewrite the starter policy even if one exists")
    p.add_argument("--new-identity", action="store_true",
                   help="retire this runtime's identity (keys, enrolment, audit log) into "
                        "retired/ and create a new one, as after a revocation")


def _add_check(sub: Subcommands) -> None:
    p = sub.add_parser("check", help="decide actions read from stdin (JSON or JSON Lines)")
    _policy_options(p)
    p.add_argument("--command", dest="shell_command", metavar="CMD",
                   help="decide this shell command instead of reading stdin")
    p.add_argument("--cwd", default=None, help="working directory for --command (default: .)")
    p.add_argument("--approval", choices=("ask", "wait", "defer"), default=None,
                   help="when policy asks: answer ask (the agent host asks), wait for a human "
                        "here, or deny now with an approval link (default: $RUNESTONE_APPROVAL "
                        "or ask)")
    p.add_argument("--wait-seconds", type=float, default=None,
                   help="how long --approval wait blocks (default 300)")


def _add_explain(sub: Subcommands) -> None:
    p = sub.add_parser("explain", help="show how a command is analysed and which rule decides")
    _policy_options(p)
    p.add_argument("shell_command", metavar="CMD", help="the shell command to explain")
    p.add_argument("--cwd", default=None, help="working directory (default: .)")


def _add_policy(sub: Subcommands) -> None:
    p = sub.add_parser("policy", help="test, show, validate or import policies")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    for name, text in (("test", "run the policy's examples and tests with a report"),
                       ("validate", "check a policy without running its tests"),
                       ("show", "print the policy's hash and rules")):
        q = psub.add_parser(name, help=text)
        _policy_options(q)
    q = psub.add_parser("packs", help="list the built-in packs")
    psub.add_parser("pull", help="fetch and verify the policy the control plane assigns")
    q = psub.add_parser("simulate", help="replay the audit log against a candidate policy")
    q.add_argument("candidate", help="the candidate policy file")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q = psub.add_parser("suggest", help="propose rules from the asks humans approved, with "
                        "the asks each would have saved and a replay of the audit log")
    _policy_options(q)
    q.add_argument("--min-approvals", type=int, default=1,
                   help="propose only rules learned from at least this many approvals")
    q.add_argument("--save", metavar="RULE_ID", action="append", default=[],
                   help="append this proposal to the policy file (repeatable)")
    q.add_argument("--json", action="store_true", help="print the proposals as JSON")
    q = psub.add_parser("import-claude", help="turn Claude Code permissions into rules")
    q.add_argument("settings", help="a Claude Code settings.json")


def _add_corpus(sub: Subcommands) -> None:
    p = sub.add_parser("corpus", help="run a corpus of tool calls and print the table")
    p.add_argument("directory", help="a folder of *.jsonl files (for example ../shared/corpus)")
    p.add_argument("--home-dir", metavar="DIR", help="home directory the corpus assumes")
    p.add_argument("--show", action="store_true", help="print every case, not only failures")


def _add_audit(sub: Subcommands) -> None:
    p = sub.add_parser("audit", help="verify, read, search and export the audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    asub.add_parser("verify", help="check every link, hash and checkpoint signature")
    q = asub.add_parser("tail", help="the newest entries")
    q.add_argument("-n", type=int, default=20, help="how many (default 20)")
    q.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    q = asub.add_parser("show", help="the whole story of one tool call")
    q.add_argument("request_id")
    for name, text in (("search", "entries matching filters"),
                       ("export", "entries as JSON Lines or CSV")):
        q = asub.add_parser(name, help=text)
        q.add_argument("--since", default="", help="RFC 3339 time, inclusive")
        q.add_argument("--until", default="", help="RFC 3339 time, inclusive")
        q.add_argument("--tool", default="")
        q.add_argument("--decision", default="", choices=("", "allow", "deny", "ask"))
        q.add_argument("--rule", default="")
        q.add_argument("--kind", default="")
        q.add_argument("--text", default="", help="case-insensitive text anywhere in an entry")
        if name == "export":
            q.add_argument("--format", default="jsonl", choices=("jsonl", "csv"))
    asub.add_parser("checkpoint", help="write a signed checkpoint of the head now")
    asub.add_parser("ship", help="send the entries the control plane does not have yet")


def _add_approvals(sub: Subcommands) -> None:
    p = sub.add_parser("approvals", help="list, show, approve, deny, grant and revoke")
    ap = p.add_subparsers(dest="approvals_command", required=True)
    q = ap.add_parser("list", help="pending requests and active grants")
    q.add_argument("--all", action="store_true", help="every request and grant, not only live")
    q = ap.add_parser("show", help="one request, whole")
    q.add_argument("request_id")
    for name, text in (("approve", "approve a pending request"), ("deny", "deny it")):
        q = ap.add_parser(name, help=text)
        q.add_argument("request_id")
        q.add_argument("--reason", default="", required=name == "deny")
        q.add_argument("--as", dest="approver", default="", help="approver name (default: "
                       "$RUNESTONE_APPROVER or the login name)")
        if name == "approve":
            q.add_argument("--scope", choices=("once", "rule-session"), default="once",
                           help="this exact action once (default), or what the same rules "
                                "ask about in the same session for --minutes")
            q.add_argument("--minutes", type=int, default=30)
            q.add_argument("--save-rule", action="store_true",
                           help="also save the smallest general rule that would have allowed "
                                "it (printed first) to the policy file, scoped to the project")
    q = ap.add_parser("cancel", help="withdraw a pending request")
    q.add_argument("request_id")
    q = ap.add_parser("grant", help="pre-approve an exact action or a rule's matches")
    target = q.add_mutually_exclusive_group(required=True)
    target.add_argument("--command", dest="grant_command", metavar="CMD",
                        help="a shell command, as the agent will send it (Bash tool)")
    target.add_argument("--action", metavar="JSON", help="a PreToolUse-shaped action")
    target.add_argument("--rule", metavar="RULE_ID", help="whatever this rule asks about")
    q.add_argument("--cwd", default=None, help="the action's working directory (default: .)")
    q.add_argument("--session", default=None, help="only in this session")
    q.add_argument("--agent", default="", help="the agent the action comes from")
    q.add_argument("--minutes", type=int, required=True)
    q.add_argument("--uses", type=int, default=None, help="how many times (default: 1 for an "
                   "action, unlimited for a rule)")
    q.add_argument("--as", dest="approver", default="")
    q = ap.add_parser("revoke", help="revoke a grant")
    q.add_argument("grant_id")
    q.add_argument("--as", dest="approver", default="")
    q = ap.add_parser("serve", help="serve the approval page on 127.0.0.1")
    q.add_argument("--port", type=int, default=8765)


def _add_hook(sub: Subcommands) -> None:
    p = sub.add_parser("hook", help="the hook an agent host runs (stdin in, its answer out)")
    p.add_argument("host", help="claude-code, codex, gemini, cursor or copilot")


def _add_exec(sub: Subcommands) -> None:
    import argparse

    p = sub.add_parser("exec", help="decide, then run a command and audit its result")
    _policy_options(p)
    p.add_argument("--approval", choices=("wait", "defer", "ask"), default=None,
                   help="when policy asks (default: wait for a human)")
    p.add_argument("--wait-seconds", type=float, default=None)
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")


def _add_mcp(sub: Subcommands) -> None:
    import argparse

    p = sub.add_parser("mcp", help="govern MCP: a gateway in front of a server, or serve tools")
    msub = p.add_subparsers(dest="mcp_command", required=True)
    q = msub.add_parser("wrap", help="a stdio MCP server that relays to the real one and gates "
                        "tools/call")
    _policy_options(q)
    q.add_argument("--name", default=None, help="the server's name in mcp__<server>__<tool> "
                   "(default: the server's own serverInfo.name)")
    q.add_argument("--url", default=None, help="a streamable-HTTP MCP server to front")
    q.add_argument("--sandbox", metavar="PROFILE", default=None,
                   help="start the stdio server inside the sandbox with this profile")
    q.add_argument("server", nargs=argparse.REMAINDER, help="-- SERVER COMMAND [ARGS...]")
    q = msub.add_parser("serve", help="an MCP server offering the runtime's governed tools")
    _policy_options(q)


def _add_enroll(sub: Subcommands) -> None:
    p = sub.add_parser("enroll", help="enroll this runtime with a control plane")
    p.add_argument("--server", required=True)
    p.add_argument("--token", required=True, help="a one-time enrollment token")
    p.add_argument("--label", action="append", help="KEY=VALUE, repeatable")


def _add_status(sub: Subcommands) -> None:
    sub.add_parser("status", help="which policy is active, where from, when last checked")


def _add_daemon(sub: Subcommands) -> None:
    p = sub.add_parser("daemon", help="serve hooks, the approval page and a local API")
    _policy_options(p)
    p.add_argument("--port", type=int, default=8765, help="127.0.0.1 port (default 8765)")
    p.add_argument("--approval", choices=("ask", "wait", "defer"), default=None)
    p.add_argument("--on-demand", action="store_true",
                   help="as a hook starts it (RUNESTONE_DAEMON=auto): one per home, an "
                        "ephemeral port, gone after RUNESTONE_DAEMON_IDLE seconds idle")


def _add_install(sub: Subcommands) -> None:
    p = sub.add_parser("install", help="add Runestone's hook to an agent host's settings")
    p.add_argument("host")
    p.add_argument("--settings", metavar="FILE", help="the settings file (default: the "
                   "host's user settings)")
    p.add_argument("--http", action="store_true",
                   help="also register the daemon's HTTP hook (where the host supports it)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--target", choices=("posix", "windows"), default=None,
                   help="the system the host runs on (default: this one); windows writes "
                   "each host's Windows command form")
    p.add_argument("--python", metavar="PATH", default=None,
                   help="the interpreter the hook runs (default: this one; required for "
                   "--target windows from another system)")


def _add_uninstall(sub: Subcommands) -> None:
    p = sub.add_parser("uninstall", help="remove only what `install` added")
    p.add_argument("host")
    p.add_argument("--settings", metavar="FILE")


def _add_doctor(sub: Subcommands) -> None:
    p = sub.add_parser("doctor", help="prove the installed hook denies, warn what fails open")
    p.add_argument("host")
    p.add_argument("--settings", metavar="FILE")


def _add_sandbox(sub: Subcommands) -> None:
    import argparse

    p = sub.add_parser("sandbox", help="run a command contained, or check the sandbox works")
    ssub = p.add_subparsers(dest="sandbox_command", required=True)
    q = ssub.add_parser("run", help="run a command under bubblewrap with a sandbox profile")
    _policy_options(q)
    q.add_argument("--profile", default="default", help="the profile (default: default)")
    q.add_argument("--project", metavar="DIR", default=None,
                   help="the writable project directory (default: the working directory)")
    q.add_argument("--request", metavar="ID", default=None,
                   help="run the command a hook stored for this request (what a rewritten "
                        "host command does)")
    q.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    ssub.add_parser("check", help="whether sandboxing works on this machine")


def _add_demo(sub: Subcommands) -> None:
    sub.add_parser("demo", help="walk through a few real decisions on the built-in presets")


# Each command's parser, added only when needed: in a fresh process, building all of them
# costs 9.1-9.5 ms (argparse formats help text as each argument is added), `check`'s alone
# 3.5-4.9 ms (the first help formatter imports `shutil`).
_COMMANDS: dict[str, Callable[[Subcommands], None]] = {
    "init": _add_init,
    "check": _add_check,
    "explain": _add_explain,
    "policy": _add_policy,
    "corpus": _add_corpus,
    "audit": _add_audit,
    "approvals": _add_approvals,
    "hook": _add_hook,
    "exec": _add_exec,
    "mcp": _add_mcp,
    "enroll": _add_enroll,
    "status": _add_status,
    "daemon": _add_daemon,
    "install": _add_install,
    "uninstall": _add_uninstall,
    "doctor": _add_doctor,
    "sandbox": _add_sandbox,
    "demo": _add_demo,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `command` (a name in `_COMMANDS`), only that
    command's subcommand is added (the parse is the same, and so is its help)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="runestone",
        description="Govern AI agents' tool calls: policy before, approval during, audit after.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, add in _COMMANDS.items():
        if command is None or name == command:
            add(sub)
    return parser


# The cyclic garbage collector's thresholds for a command's process. Python's default looks
# for cycles every 700 new containers: a command's start-up and its decisions allocate in
# bursts of short-lived ones, most freed by their last reference, so a batch of 2,232
# decisions ran some 150 collections (40 ms of its 0.7 s) and a hook some thirty (1 ms of
# 40). Collections still come, so memory stays bounded in a daemon or a hook that waits
# long for a human.
COLLECTOR_THRESHOLDS = (50_000, 20, 20)


def console_main() -> NoReturn:
    """The `runestone` command's entry point (and `python -m runestone`'s)."""
    import gc

    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """End this process with `code`, first freezing every object out of the cyclic garbage
    collector. The interpreter's exit would otherwise walk them all again to find cycles
    that exiting frees anyway: about 8 ms of a 63 ms cold hook. Nothing waits on that walk:
    output is flushed at exit as before, a command's audit entries were fsynced before it
    answered, and objects freed by their last reference still are (closing their files and
    connections). Only where the process ends: a process that goes on (a test calling
    `main`) would keep its garbage cycles for good."""
    import gc

    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A reader that goes away (`| head`) ends output quietly."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "hook" and not args[1].startswith("-"):
        # The hot path (hooks installed before the `-c` entry; see hook_command): skip
        # argparse.
        from runestone.cli.hook import start

        return start(args[1])
    if len(args) == 4 and args[:3] == ["sandbox", "run", "--request"]:
        # What a hook's rewritten command runs: every sandboxed agent command pays this.
        from runestone.cli.sandbox import run_request

        return run_request(args[3])
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        # Storage that fails (a full disk, a read-only home) is said in one line naming
        # what failed; commands that know better say more themselves. Anything else is a
        # bug and keeps its traceback.
        import sqlite3

        if not isinstance(exc, OSError | sqlite3.Error):
            raise
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        command = next((a for a in args if not a.startswith("-")), "")
        print(f"runestone {command}: {type(exc).__name__}: {what}{where} (is the disk full, "
              "or the home read-only?)", file=sys.stderr)
        return 1


def _dispatch(words: list[str]) -> int:
    named = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(named if named in _COMMANDS else None)
    args = parser.parse_args(words)
    if args.version:
        from runestone import __version__

        print(f"runestone {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "init":
        from runestone.cli.init import run_init

        return run_init(args)
    if args.command in ("check", "explain"):
        from runestone.cli import check

        return check.run_check(args) if args.command == "check" else check.run_explain(args)
    if args.command == "policy":
        from runestone.cli.policy import run_policy

        return run_policy(args)
    if args.command == "corpus":
        from runestone.cli.corpus import run_corpus_command

        return run_corpus_command(args)
    if args.command == "audit":
        from runestone.cli.audit import run_audit

        return run_audit(args)
    if args.command == "approvals":
        from runestone.cli.approvals import run_approvals

        return run_approvals(args)
    if args.command == "hook":
        from runestone.cli.hook import run_hook

        return run_hook(args.host)
    if args.command == "exec":
        from runestone.cli.exec import run_exec

        return run_exec(args)
    if args.command == "mcp":
        from runestone.cli.mcp import run_mcp

        return run_mcp(args)
    if args.command == "enroll":
        from runestone.cli.remote import run_enroll

        return run_enroll(args)
    if args.command == "status":
        from runestone.cli.remote import run_status

        return run_status()
    if args.command == "daemon":
        from runestone.cli.daemon import run_daemon

        return run_daemon(args)
    if args.command in ("install", "uninstall", "doctor"):
        from runestone.cli.install import run_install_command

        return run_install_command(args)
    if args.command == "sandbox":
        from runestone.cli.sandbox import run_sandbox

        return run_sandbox(args)
    if args.command == "demo":
        from runestone.cli.demo import run_demo

        return run_demo(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
