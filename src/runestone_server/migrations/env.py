"""Alembic environment: the URL and the connection come from runestone-server."""

from __future__ import annotations

from alembic import context

from runestone_server.audit.fulltext import include_name
from runestone_server.schema import metadata

config = context.config
connection = config.attributes.get("connection")
target_metadata = metadata

if connection is None:
    from runestone_server.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True,
                          # audit full text: objects the models do not describe
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True,
                      # audit full text: an FTS5 table / expression index the models
                      # do not describe (see audit/fulltext.py)
                      include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()
