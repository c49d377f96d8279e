"""`runestone enroll`, `runestone policy pull`, `runestone status`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from runestone.home import Layout, layout
from runestone.remote import client


def run_enroll(args: argparse.Namespace) -> int:
    labels = {}
    for item in args.label or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"runestone enroll: label {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        labels[key] = value
    from runestone.identity import IdentityError

    try:
        config = client.enroll(layout(), args.server, args.token, labels)
        state = client.pull(layout())
    except IdentityError as exc:  # no `runestone init` yet: say so, not a traceback
        print(f"runestone enroll: {exc}", file=sys.stderr)
        return 2
    except client.RemoteError as exc:
        print(f"runestone enroll: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled {config['runtime_id']} with {config['server']} (team {config['team_id']})")
    print(f"policy: {state.get('number', 'none published yet')}")
    return 0


def run_pull() -> int:
    try:
        state = client.pull(layout())
    except client.RemoteError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: state.get(k) for k in ("number", "hash", "last_error", "grants",
                                                 "grants_error")}))
    return 0


def run_status() -> int:
    where = layout()
    config = client.load_remote(where)
    state = client.read_state(where)
    if config is None:
        print(f"policy: local file {where.policy_file} (not enrolled with a control plane)")
        return 0
    checked = state.get("checked")
    print(f"control plane: {config['server']} (team {config['team_id']}, runtime "
          f"{config['runtime_id']})")
    if state.get("hash"):
        print(f"policy: version {state['number']}, sha256:{state['hash'][:16]}, fetched "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['fetched']))}")
    else:
        print("policy: none received yet (the local policy applies)")
    if where.remote_policy_file.exists():
        problem = client.cached_problem(where, config)
        if problem:
            print(f"POLICY REFUSED: {problem} Every action is denied until then.")
    if checked:
        print(f"last checked: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(checked))}"
              + (f" ({state['last_error']})" if state.get("last_error") else ""))
    _print_grants(where, state)
    _print_shipping(where)
    return 0


def _print_grants(where: Layout, state: dict) -> None:
    """The control plane's grants this runtime holds (verified), and a pull's last problem."""
    from runestone.remote.grants import ServerGrants

    grants = ServerGrants.from_layout(where)
    held = grants.cached() if grants is not None else []
    now = time.time()
    live = [g for g in held if float(g.get("expires", 0)) > now]
    line = f"grants: {len(live)} from the control plane"
    if state.get("grants_error"):
        line += f" (last pull: {state['grants_error']})"
    print(line)
    for grant in live:
        print(f"  {grant['grant_id']}: {grant.get('summary', '')[:80]}, {grant.get('uses')} "
              f"use(s) in all, {grant.get('allotted') or 0} for offline use, until "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(float(grant['expires'])))}")


def _print_shipping(where: Layout) -> None:
    """How far the audit log has reached the control plane, and what stopped it last."""
    from runestone.remote.shipper import local_head, read_ship_state

    shipped = read_ship_state(where)
    head = local_head(where.audit_dir)
    acknowledged = int(shipped.get("acknowledged") or 0)
    when = shipped.get("shipped")
    line = (f"audit: {acknowledged} of {head} entries acknowledged by the server"
            + (f", last shipped {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}"
               if when else ", never shipped"))
    refused = shipped.get("refused")
    if shipped.get("last_error") and not refused:
        line += f" (last attempt: {shipped['last_error']})"
    print(line)
    if isinstance(refused, dict):
        from runestone.remote.shipper import REFUSED_ADVICE

        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(refused.get("at") or 0))
        print(f"AUDIT REFUSED BY THE CONTROL PLANE (since {at}): {refused.get('message')}.\n"
              f"{REFUSED_ADVICE}")
