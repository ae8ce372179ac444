"""Bring an audit database to the newest schema (Alembic ``upgrade head``), at start-up and from the CLI."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def upgrade(engine: Engine, attempts: int = 10) -> None:
    """Upgrade to head. Several workers may start at once: PostgreSQL serialises them with an advisory
    lock; on SQLite the loser of a race retries once the winner has finished."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
