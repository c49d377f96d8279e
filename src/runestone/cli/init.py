"""`runestone init`: the runtime's home, a commented starter policy and its identity."""

from __future__ import annotations

import argparse
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

    try:
        identity = load_identity(where)
        print(f"identity: kept {identity.runtime_id}")
    except IdentityError:
        identity = create_identity(where)
        print(f"identity: created {identity.runtime_id} ({identity.name})")
        print(f"key:      {where.private_key_file} (mode 0600)")
    print("\nNext: `runestone policy test` checks the policy; "
          "`runestone explain 'git push -f'` shows a decision.")
    return 0
