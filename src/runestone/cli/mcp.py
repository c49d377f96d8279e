"""`runestone mcp wrap|serve`."""

from __future__ import annotations

import argparse
import asyncio
import sys


def run_mcp(args: argparse.Namespace) -> int:
    if args.mcp_command == "serve" or getattr(args, "url", None):
        try:
            import mcp  # noqa: F401 - only to say clearly when the extra is missing
        except ImportError:
            print("this needs the MCP SDK: pip install 'runestone[mcp]'", file=sys.stderr)
            return 2
    if args.mcp_command == "serve":
        from runestone.mcp.serve import serve

        return serve(args)
    from runestone.mcp.gateway import Gateway
    from runestone.mcp.upstream import HttpUpstream, StdioUpstream

    argv = list(args.server or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if bool(argv) == bool(args.url):
        print("runestone mcp wrap: give either --url URL or -- SERVER COMMAND", file=sys.stderr)
        return 2
    if getattr(args, "sandbox", None):
        if args.url:
            print("runestone mcp wrap: --sandbox contains a stdio server it starts, not a "
                  "--url", file=sys.stderr)
            return 2
        argv = _contained(args, argv)
    upstream = HttpUpstream(args.url) if args.url else StdioUpstream(argv)
    gatekeeper, load_error = _gatekeeper(args)
    gateway = Gateway(upstream, gatekeeper=gatekeeper, load_error=load_error,
                      server_name=args.name)
    try:
        return asyncio.run(gateway.run())
    except KeyboardInterrupt:
        return 130


def _contained(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """The server's command, started by `runestone sandbox run` with the named profile:
    the server works inside the sandbox, and never starts if the sandbox cannot."""
    import os

    wrapper = [sys.executable, "-P", "-m", "runestone", "sandbox", "run", "--profile", args.sandbox,
               "--project", os.getcwd()]
    if args.policy:
        wrapper += ["--policy", args.policy]
    elif args.preset:
        wrapper += ["--preset", args.preset]
    return [*wrapper, "--", *argv]


def _gatekeeper(args: argparse.Namespace) -> tuple[object | None, str]:
    from runestone.audit import AuditWriteError
    from runestone.gatekeeper import Gatekeeper
    from runestone.home import layout
    from runestone.policy import PolicyError

    try:
        return Gatekeeper.from_layout(layout(), policy_file=args.policy, preset=args.preset,
                                      home=getattr(args, "home_dir", None)), ""
    except (PolicyError, AuditWriteError) as exc:
        print(f"runestone mcp: every tools/call will be refused: {exc}", file=sys.stderr)
        return None, str(exc)
