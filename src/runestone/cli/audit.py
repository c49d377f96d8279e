"""`runestone audit verify | tail | show | search | export | checkpoint`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque

from runestone.audit.query import Query, export, one_line, read_entries, search
from runestone.audit.verify import verify_log
from runestone.home import layout
from runestone.identity import IdentityError, load_identity


def run_audit(args: argparse.Namespace) -> int:
    where = layout()
    directory = where.audit_dir
    action = args.audit_command
    if action == "ship":
        from runestone.remote.shipper import run_ship

        return run_ship(where)
    if action == "verify":
        try:
            identity = load_identity(where)
        except IdentityError as exc:
            print(f"cannot verify: {exc}", file=sys.stderr)
            return 2
        report = verify_log(directory, identity.runtime_id, identity.public_key)
        for warning in report.warnings:
            print(f"warning: {warning}")
        if report.ok:
            print(f"intact: {report.entries} entries in {report.segments} segment(s), "
                  f"{report.checkpoints} checkpoint(s); head seq {report.head_seq} "
                  f"{report.head_hash[:16]}…")
            return 0
        print(f"BROKEN: {report.problem}")
        print(f"(verified {report.entries} entries before the break)")
        return 1
    if action == "tail":
        for entry in deque(read_entries(directory), maxlen=max(args.n, 0)):
            print(one_line(entry))
        if args.follow:
            seen = max((e.get("seq", 0) for e in read_entries(directory)), default=0)
            try:
                while True:
                    time.sleep(0.5)
                    for entry in read_entries(directory):
                        if entry.get("seq", 0) > seen:
                            print(one_line(entry), flush=True)
                            seen = entry["seq"]
            except KeyboardInterrupt:
                return 0
        return 0
    if action == "show":
        found = list(search(directory, Query(request_id=args.request_id)))
        if not found:
            print(f"no entries for {args.request_id}", file=sys.stderr)
            return 1
        for entry in found:
            print(json.dumps(entry, indent=2, ensure_ascii=False, sort_keys=True))
        return 0
    if action == "checkpoint":
        from runestone.gatekeeper import open_audit_log

        log = open_audit_log(where)
        if log is None:
            return 2
        entry = log.checkpoint()
        print(f"checkpoint at seq {entry['checkpoint']['seq']} "
              f"{entry['checkpoint']['hash'][:16]}…")
        return 0
    query = Query(since=args.since, until=args.until, tool=args.tool, decision=args.decision,
                  rule=args.rule, kind=args.kind, text=args.text)
    if action == "search":
        for entry in search(directory, query):
            print(one_line(entry))
        return 0
    for chunk in export(search(directory, query), args.format):
        sys.stdout.write(chunk)
    return 0
