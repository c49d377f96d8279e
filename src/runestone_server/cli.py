"""`runestone-server init | migrate | serve`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from sqlalchemy import select

from runestone_server.db import Database, default_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runestone-server", description=__doc__)
    parser.add_argument("--database-url", default=None,
                        help="default: SQLite in the data directory ($RUNESTONE_SERVER_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create the database and the first admin")
    p.add_argument("--organisation", required=True)
    p.add_argument("--admin", required=True, help="the first admin's user name")
    p.add_argument("--password-env", default="RUNESTONE_ADMIN_PASSWORD",
                   help="environment variable holding the password (else prompted)")
    sub.add_parser("migrate", help="upgrade the database schema to this version")
    for name, text in (("serve", "run the server"),
                       ("quickstart", "first run in one command: create the database and an "
                                      "organisation with an admin whose password is printed "
                                      "once, then serve")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8800)
    args = parser.parse_args(argv)
    url = args.database_url or default_url()
    db = Database(url)
    from runestone_server.migrate import upgrade

    if args.command == "migrate":
        upgrade(db)
        print(f"database at the newest schema: {url.split('@')[-1]}")
        return 0
    if args.command == "init":
        return _init(db, args)
    upgrade(db)
    if args.command == "quickstart":
        _quickstart(db, f"http://{args.host}:{args.port}")
    import uvicorn

    from runestone_server.app import create_app

    # Open long-polls (approvals) must not hold a stopping server for their full 30 s.
    uvicorn.run(create_app(url), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=5)
    return 0


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
