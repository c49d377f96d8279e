"""`runestone init`: the runtime's home, a commented starter policy and its identity."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from runestone.home import layout
from runestone.identity import IdentityError, create_identity, load_identity


def run_init(args: argparse.Namespace) -> int:
    where = layout()
    where.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    where.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    print(f"config: {where.config_dir}\nstate:  {where.state_dir}")

    if where.policy_file.exists() and not args.force_policy:
        print(f"policy:   kept {where.policy_file}")
    else:
        starter = (resources.files("runestone.policy") / "starter.toml").read_text("utf-8")
        where.policy_file.write_text(starter, encoding="utf-8")
        print(f"policy:   wrote {where.policy_file} (starter: developer preset)")

    if args.new_identity:
        from runestone.retire import retire_identity

        try:
            retired = retire_identity(where)
        except IdentityError as exc:
            print(f"runestone init: {exc}", file=sys.stderr)
            return 1
        print(f"identity: retired {retired.runtime_id} with its keys, enrolment and audit log "
              f"(kept in {retired.config_dir} and {retired.state_dir})")
    try:
        identity = load_identity(where)
        print(f"identity: kept {identity.runtime_id}")
    except IdentityError:
        from runestone.retire import orphaned_log_owner

        owner = orphaned_log_owner(where)
        if owner is not None:
            print(f"runestone init: {where.audit_dir} holds the audit log of {owner}, whose "
                  "identity is gone; a new identity must not continue its chain. Restore that "
                  "identity (identity.json and keys/), or move the audit directory aside, then "
                  "run `runestone init` again.", file=sys.stderr)
            return 1
        identity = create_identity(where)
        print(f"identity: created {identity.runtime_id} ({identity.name})")
        print(f"key:      {where.private_key_file} (mode 0600)")
        if args.new_identity:
            print("\nNot enrolled: the local policy governs until `runestone enroll --server URL "
                  "--token TOKEN` enrols this identity (with a new token).")
    print("\nNext: `runestone policy test` checks the policy; "
          "`runestone explain 'git push -f'` shows a decision.")
    return 0
