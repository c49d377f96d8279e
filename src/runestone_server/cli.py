"""`runestone-server init | migrate | serve | quickstart | worker | backup | restore`."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Sequence

from sqlalchemy import select

from runestone_server.db import Database, default_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runestone-server", description=__doc__)
    parser.add_argument("--database-url", default=None,
                        help="default: $RUNESTONE_SERVER_DATABASE, else SQLite in the data "
                             "directory ($RUNESTONE_SERVER_HOME)")
    parser.add_argument("--config", default=None,
                        help="a TOML configuration file (default: $RUNESTONE_SERVER_CONFIG); "
                             "the environment wins over it (docs/operations.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create the database and the first admin")
    p.add_argument("--organisation", required=True)
    p.add_argument("--admin", required=True, help="the first admin's user name")
    p.add_argument("--password-env", default="RUNESTONE_ADMIN_PASSWORD",
                   help="environment variable holding the password (else prompted)")
    sub.add_parser("migrate", help="upgrade the database schema to this version")
    sub.add_parser("worker", help="run only the periodic worker (escalations, deliveries, "
                                  "alerts), beside servers started with "
                                  "RUNESTONE_SERVER_TICK=0")
    p = sub.add_parser("backup", help="write a checked snapshot of the SQLite database to "
                                      "FILE (online; replaced atomically)")
    p.add_argument("file")
    p = sub.add_parser("restore", help="replace the SQLite database with a checked backup")
    p.add_argument("file")
    p.add_argument("--force", action="store_true",
                   help="replace a database that holds data")
    for name, text in (("serve", "run the server"),
                       ("quickstart", "first run in one command: create the database and an "
                                      "organisation with an admin whose password is printed "
                                      "once, then serve")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8800)
    args = parser.parse_args(argv)
    from runestone_server import config, logs

    try:
        config.apply(args.config)
        log_level = logs.configure()
    except ValueError as exc:  # ConfigError, or a bad log setting: say it and stop
        print(f"runestone-server: {exc}", file=sys.stderr)
        return 2
    url = args.database_url or default_url()
    if args.command in ("backup", "restore"):
        return _backup(url, args)
    db = Database(url)
    from runestone_server.migrate import upgrade

    if args.command == "migrate":
        upgrade(db)
        print(f"database at the newest schema: {url.split('@')[-1]}")
        return 0
    if args.command == "init":
        return _init(db, args)
    upgrade(db)
    if args.command == "worker":
        return _worker(db)
    if args.command == "quickstart":
        _quickstart(db, f"http://{args.host}:{args.port}")
    import uvicorn

    from runestone_server.app import create_app

    # Open long-polls (approvals) must not hold a stopping server for their full 30 s.
    # log_config=None: uvicorn's loggers go through the handler logs.configure set up.
    # Proxy headers (X-Forwarded-Proto, -For) only when told a proxy is in front:
    # uvicorn's own default believes them from loopback, so any local process could claim
    # TLS or another client address (and escape the per-address sign-in throttle).
    uvicorn.run(create_app(url), host=args.host, port=args.port, log_config=None,
                log_level=log_level, access_log=log_level in ("debug", "info"),
                timeout_graceful_shutdown=5,
                proxy_headers=os.environ.get("RUNESTONE_SERVER_TRUST_PROXY") == "1")
    return 0


def _backup(url: str, args: argparse.Namespace) -> int:
    from pathlib import Path

    from runestone_server.backup import BackupError, backup, restore

    db = Database(url)
    try:
        if args.command == "backup":
            size = backup(db, Path(args.file))
            print(f"backup written to {args.file} ({size} bytes, integrity checked)")
        else:
            revisions = restore(db, Path(args.file), force=args.force)
            print(f"restored {args.file} (schema {', '.join(sorted(revisions))}); "
                  "`runestone-server migrate` brings an older backup up to this version")
    except BackupError as exc:
        print(f"runestone-server {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.engine.dispose()
    return 0


def _worker(db: Database) -> int:
    """The worker loop in the foreground until SIGTERM or Ctrl-C (a compose service)."""
    from runestone.sigterm import TermSignal
    from runestone_server.schema import load_all
    from runestone_server.worker import Worker

    load_all()
    _load_tasks()
    term = TermSignal()  # a flag, not Event.set: see runestone.sigterm
    worker = Worker(db, float(os.environ.get("RUNESTONE_SERVER_TICK", "1")) or 1.0)
    worker.start()
    print("runestone-server worker running", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        term.wait()
    worker.stop()
    return 0


def _load_tasks() -> None:
    """Import every domain module, which registers its worker tasks (as the app does)."""
    from runestone_server.app import domain_routers

    domain_routers()


def _quickstart(db: Database, address: str) -> None:
    """On an empty database, the organisation "demo" and its admin "admin" with a fresh
    password, said once; on one that has organisations already, nothing is made."""
    import secrets

    from runestone_server.models import Organisation, User
    from runestone_server.security import hash_password

    with db.sessions() as session:
        if session.scalar(select(Organisation).limit(1)) is None:
            password = secrets.token_urlsafe(12)
            org = Organisation(name="demo")
            session.add(org)
            session.flush()
            session.add(User(org_id=org.id, username="admin", org_admin=True,
                             password_hash=hash_password(password)))
            session.commit()
            print(f"created organisation demo, admin user admin, password {password} "
                  "(shown this once)")
        else:
            print("the database has organisations already; sign in as before")
    print(f"runestone-server: {address}/ (database {db.url.split('@')[-1]})", flush=True)


def _init(db: Database, args: argparse.Namespace) -> int:
    from runestone_server.migrate import upgrade
    from runestone_server.models import Organisation, User
    from runestone_server.security import hash_password

    upgrade(db)
    password = os.environ.get(args.password_env) or getpass.getpass("admin password: ")
    if len(password) < 12:
        print("the password needs at least 12 characters", file=sys.stderr)
        return 2
    with db.sessions() as session:
        if session.scalar(select(Organisation).where(Organisation.name == args.organisation)):
            print(f"organisation {args.organisation} exists already", file=sys.stderr)
            return 1
        org = Organisation(name=args.organisation)
        session.add(org)
        session.flush()
        session.add(User(org_id=org.id, username=args.admin, org_admin=True,
                         password_hash=hash_password(password)))
        session.commit()
    print(f"organisation {args.organisation} with admin {args.admin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
