"""`runestone approvals`: decide what the policy asked about, from another terminal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import time

from runestone.actions import Action, ActionError, parse_action_json
from runestone.approvals.service import ApprovalError, Approvals, local_approver
from runestone.approvals.store import Grant, Request
from runestone.gatekeeper import open_audit_log
from runestone.home import layout
from runestone.identity import IdentityError


def run_approvals(args: argparse.Namespace) -> int:
    where = layout()
    try:
        audit = open_audit_log(where)
        if audit is None:
            return 2
        approvals = Approvals(where, audit=audit)
    except (IdentityError, OSError, ValueError, sqlite3.Error) as exc:
        print(f"runestone: approvals unavailable: {_plainly(exc, where.state_dir)}",
              file=sys.stderr)
        return 2
    command = args.approvals_command
    approver = getattr(args, "approver", "") or local_approver(approvals.settings)
    try:
        if command == "list":
            return _list(approvals, show_all=args.all)
        if command == "show":
            request = approvals.store.request(args.request_id)
            if request is None:
                print(f"no approval request {args.request_id}", file=sys.stderr)
                return 1
            print(json.dumps({**request._asdict(), "link": approvals.link(request)}, indent=2,
                             ensure_ascii=False))
            return 0
        if command in ("approve", "deny"):
            decided = approvals.decide(
                args.request_id, approve=command == "approve", approver=approver,
                reason=args.reason, scope=getattr(args, "scope", "once"),
                minutes=getattr(args, "minutes", 30))
            extra = f" (grants: {decided.grant_id})" if decided.grant_id else ""
            print(f"{decided.id}: {decided.state} by {decided.approver}, scope "
                  f"{decided.scope}{extra}")
            if command == "approve":
                from runestone.cli.suggest import offer_rule

                return offer_rule(where, decided.action, save=args.save_rule,
                                  approver=decided.approver or approver)
            return 0
        if command == "cancel":
            approvals.cancel(args.request_id, approver)
            print(f"{args.request_id}: cancelled")
            return 0
        if command == "grant":
            return _grant(approvals, args, approver)
        if command == "revoke":
            approvals.revoke(args.grant_id, approver)
            print(f"{args.grant_id}: revoked")
            return 0
        if command == "serve":
            from runestone.approvals.page import ApprovalPage

            page = ApprovalPage(approvals, port=args.port)
            print(f"approval page on http://127.0.0.1:{page.port}/approve/<token>  (Ctrl-C "
                  "stops)", file=sys.stderr)
            try:
                page.serve_forever()
            except KeyboardInterrupt:
                page.close()
            return 0
    except ApprovalError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:  # a full disk: what failed, not a traceback
        print(f"runestone approvals {command}: {_plainly(exc, where.state_dir)}; what could "
              "not be written did not happen (`runestone approvals list` shows what stands)",
              file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(OSError, sqlite3.Error):
            approvals.close()
    return 2


def _plainly(exc: BaseException, state_dir: object) -> str:
    """One line for a storage failure: which store, what the system said, the likely cause."""
    if isinstance(exc, sqlite3.Error):
        return (f"the approvals store in {state_dir} could not be used ({exc}; is the disk "
                "full?)")
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where} (is the disk full?)"
    return str(exc)


def _grant(approvals: Approvals, args: argparse.Namespace, approver: str) -> int:
    cwd = args.cwd or os.getcwd()
    action: Action | None = None
    if args.grant_command is not None:
        action = Action("Bash", {"command": args.grant_command}, cwd, agent=args.agent,
                        session=args.session or "")
    elif args.action is not None:
        try:
            action = parse_action_json(args.action, default_cwd=cwd)
        except ActionError as exc:
            print(f"runestone: {exc}", file=sys.stderr)
            return 1
    uses = args.uses if args.uses is not None else (1 if action is not None else None)
    grant = approvals.grant(approver=approver, minutes=args.minutes, uses=uses, action=action,
                            rule_id=args.rule, session=args.session)
    print(f"{grant.id}: {grant.kind} grant for {grant.summary}, {args.minutes} min, "
          f"{'unlimited' if grant.uses_left is None else grant.uses_left} use(s)")
    return 0


def _list(approvals: Approvals, show_all: bool) -> int:
    now = time.time()
    approvals.store.expire_due(now)
    states = ("pending", "approved", "denied", "expired", "consumed", "cancelled") \
        if show_all else ("pending", "approved")
    requests = approvals.store.requests(states)
    grants = approvals.store.grants(active_at=None if show_all else now)
    if not requests and not grants:
        print("nothing pending, no active grants")
    for request in requests:
        print(_request_line(request, now))
    for grant in grants:
        print(_grant_line(grant, now))
    return 0


def _request_line(request: Request, now: float) -> str:
    left = int(request.expires - now)
    timing = f"expires in {left // 60}m{left % 60:02d}s" if left > 0 else "expired"
    who = request.approver or ""
    return (f"{request.id}  {request.state:9} {timing:18} {request.tool}: {request.summary[:60]}"
            f"  [{', '.join(request.rules) or 'opaque'}] {who}")


def _grant_line(grant: Grant, now: float) -> str:
    state = "revoked" if grant.revoked else ("active" if grant.active(now) else "spent/expired")
    left = int(grant.expires - now)
    uses = "unlimited" if grant.uses_left is None else f"{grant.uses_left} left"
    return (f"{grant.id}  grant {state:8} {max(left, 0) // 60}m left, {uses}, used {grant.uses}"
            f"  {grant.summary}  by {grant.created_by}")
