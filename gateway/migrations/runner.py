"""Apply the schema: ``gateway migrate``, and ``gateway serve`` on the embedded default."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from gateway.config import Settings
from gateway.db import sync_url

HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def current_and_head(database_url: str) -> tuple[str | None, str | None]:
    """The database's revision and the code's head revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current, script.get_current_head()


def ensure_current(settings: Settings) -> None:
    """Migrate the embedded SQLite default; elsewhere refuse to start on an old schema."""
    if settings.is_sqlite:
        upgrade(settings.database_url)
        return
    current, head = current_and_head(settings.database_url)
    if current != head:
        raise SystemExit(
            f"GATEWAY_DATABASE_URL: schema is at {current or 'nothing'}, code needs {head}: "
            "run `gateway migrate`"
        )
