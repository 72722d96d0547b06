"""Alembic migrations, configured in code (no alembic.ini): see ``gateway.migrations.runner``."""
