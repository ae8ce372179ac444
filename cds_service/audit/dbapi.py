"""The audit writer's statements, compiled once per dialect and run on the pooled DBAPI connection.

A group commit runs four or five statements per batch. Through SQLAlchemy's ``Connection`` each of them
builds an execution context and a result object, and the batch checks a connection out through the pool's
event machinery: on the served benchmark call that was about two thirds of the writer thread's time, and the
writer shares the core with the event loop. The statements are still the Core ones, compiled by the
dialect with its bind processors (SQLite stores datetimes as text), so the SQL and the stored values are
what SQLAlchemy would have sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement

Processor = Callable[[Any], Any]


class CompiledStatement:
    """One statement for one dialect: its SQL text, and how a mapping of values becomes the DBAPI's
    parameters (in order for a positional paramstyle, by name otherwise)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] = ()) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys) or None))
        self.sql = compiled.string
        binds: dict[str, BindParameter[Any]] = {name: bind for bind, name in compiled.bind_names.items()}
        self._order: list[str] | None = list(compiled.positiontup or ()) if compiled.positional else None
        self._fixed = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
        self._processors: dict[str, Processor] = {}
        for name, bind in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        merged = {**self._fixed, **values}
        for name, processor in self._processors.items():
            if name in merged:
                merged[name] = processor(merged[name])
        if self._order is None:
            return merged
        return tuple(merged[name] for name in self._order)

    def execute(self, cursor: Any, values: Mapping[str, Any] | None = None) -> Any:
        cursor.execute(self.sql, self.parameters(values or {}))
        return cursor

    def execute_many(self, cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        cursor.executemany(self.sql, [self.parameters(row) for row in rows])


def in_transaction(engine: Engine, work: Callable[[Any], Any]) -> Any:
    """``work(cursor)`` in one transaction on a pooled DBAPI connection, committed when it returns.

    A DBAPI error is raised as SQLAlchemy's (``IntegrityError``, ``OperationalError`` ...), as a
    ``Connection`` would raise it, and the connection is then discarded rather than returned to the pool:
    after a failed statement or a lost server it may not be fit for the next batch."""
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        raw = engine.raw_connection()
    except dbapi_error as exc:  # the server cannot be reached: raised unwrapped by the pool
        raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
    try:
        cursor = raw.cursor()
        try:
            result = work(cursor)
        finally:
            cursor.close()
        raw.commit()
        return result
    except dbapi_error as exc:
        raw.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
    finally:
        raw.close()
