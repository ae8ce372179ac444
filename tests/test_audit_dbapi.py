"""The audit writer's DBAPI path (``cds_service.audit.dbapi``) stores what SQLAlchemy's Core would store, and
fails as a SQLAlchemy ``Connection`` would, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from cds_service.audit import migrate, tables
from cds_service.audit.dbapi import CompiledStatement, in_transaction
from tests.support import reset_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    else:
        url = os.environ.get("CDS_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("CDS_TEST_POSTGRES_URL is not set")
        reset_postgres(url)
    created = create_engine(url)
    migrate.upgrade(created)
    yield created
    created.dispose()


def _record(seq: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "record_id": f"00000000-0000-4000-8000-{seq:012d}",
        "kind": "invocation",
        # Not UTC, with microseconds: the stored form must not depend on who converted it.
        "recorded_at": datetime(2026, 12, 7, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1))),
        "hook_instance": "h-1",
        "service_id": "palbociclib-order-sign",
        "patient_id": "p-1",
        "user_id": None,
        "http_status": 200,
        "latency_ms": 12.5,
        "content": '{"a":1}',
        "content_digest": "c" * 64,
        "prev_digest": "0" * 64,
        "chain_digest": "d" * 64,
    }
    return {**row, **changes}


def test_a_record_written_on_the_dbapi_path_is_stored_as_sqlalchemy_stores_it(engine: Any) -> None:
    with engine.begin() as connection:
        connection.execute(insert(tables.audit_record), [_record(1)])
    statement = CompiledStatement(insert(tables.audit_record), engine.dialect, tuple(_record(2)))
    in_transaction(engine, lambda cursor: statement.execute_many(cursor, [_record(2)]))

    columns = ", ".join(c for c in _record(0) if c not in ("seq", "record_id"))
    with engine.connect() as connection:
        # The driver's own values, before any SQLAlchemy result processing: the bytes in the table.
        stored = connection.exec_driver_sql(f"SELECT {columns} FROM audit_record ORDER BY seq").all()
        read_back = connection.execute(select(tables.audit_record.c.recorded_at).order_by("seq")).scalars().all()
    assert len(stored) == 2
    assert stored[0] == stored[1]
    assert read_back[0] == read_back[1]
    # And a range query on the column finds both (on SQLite, a datetime stored as differently formatted text
    # would compare wrongly).
    with engine.connect() as connection:
        since = datetime(2026, 12, 7, 14, 4, 5, tzinfo=UTC)
        found = connection.execute(select(tables.audit_record.c.seq).where(tables.audit_record.c.recorded_at >= since))
        assert sorted(found.scalars()) == [1, 2]


def test_bound_literals_and_named_values_reach_the_statement(engine: Any) -> None:
    with engine.begin() as connection:
        connection.execute(insert(tables.chain_head).values(id=1, seq=7, chain_digest="e" * 64))
    head = tables.chain_head.c
    read = CompiledStatement(select(head.seq, head.chain_digest).where(head.id == 1), engine.dialect)
    assert in_transaction(engine, lambda cursor: read.execute(cursor).fetchone()) == (7, "e" * 64)


def test_a_constraint_violation_is_sqlalchemys_integrity_error_and_nothing_of_the_batch_is_kept(
    engine: Any,
) -> None:
    statement = CompiledStatement(insert(tables.audit_record), engine.dialect, tuple(_record(1)))
    duplicate_id = _record(2, record_id=_record(1)["record_id"])
    with pytest.raises(IntegrityError):
        in_transaction(engine, lambda cursor: statement.execute_many(cursor, [_record(1), duplicate_id]))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_record")).scalar() == 0
    # The pool still serves a working connection afterwards.
    in_transaction(engine, lambda cursor: statement.execute_many(cursor, [_record(3)]))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT seq FROM audit_record")).scalars().all() == [3]


def test_a_database_that_cannot_be_opened_is_sqlalchemys_operational_error(tmp_path: Path) -> None:
    unreachable = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'audit.sqlite3'}")
    with pytest.raises(OperationalError):
        in_transaction(unreachable, lambda cursor: cursor.execute("SELECT 1"))


def test_work_that_fails_outside_the_database_rolls_back(engine: Any) -> None:
    statement = CompiledStatement(insert(tables.audit_record), engine.dialect, tuple(_record(1)))

    def fails(cursor: Any) -> None:
        statement.execute_many(cursor, [_record(1)])
        raise KeyError("not a database error")

    with pytest.raises(KeyError):
        in_transaction(engine, fails)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_record")).scalar() == 0
