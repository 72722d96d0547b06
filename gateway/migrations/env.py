from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
connectable = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
