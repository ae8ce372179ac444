"""The audit store: an append-only, hash-chained log on SQLAlchemy Core, with a local spool.

Every write is one record: its canonical JSON content, that content's digest, and a link digest over the
previous link, its position and its content, so an edited, removed or reordered record breaks the chain at
that point (``verify``). Appends are serialised through the ``chain_head`` row (a write lock on SQLite and
PostgreSQL alike), so several workers and replicas share one chain. A record is committed before the
response that it describes is sent; when the database cannot take it, it goes to the fsynced spool and is
replayed, in order, before the next write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, bindparam, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError

from cds_service import ids, metrics
from cds_service.audit import migrate, tables
from cds_service.audit.canonical import GENESIS, canonical, chain_digest, digest
from cds_service.audit.dbapi import CompiledStatement, in_transaction
from cds_service.audit.group_commit import GroupCommit
from cds_service.audit.records import InvocationRecord
from cds_service.audit.spool import Spool
from cds_service.audit.writer_lock import WriterLock
from cds_service.schemas.feedback import FeedbackItem

log = logging.getLogger(__name__)
_INDEXED = ("hook_instance", "service_id", "patient_id", "user_id", "http_status", "latency_ms")


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: list[str]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None


class AuditStore(Protocol):
    def backlog(self) -> int: ...

    def record_invocation(self, record: InvocationRecord) -> None: ...

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult: ...

    def feedback_for(self, card_uuid: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


_HEAD = tables.chain_head.c
_LOCK_HEAD = update(tables.chain_head).where(_HEAD.id == 1).values(seq=_HEAD.seq)
_READ_HEAD = select(_HEAD.seq, _HEAD.chain_digest).where(_HEAD.id == 1)
_MOVE_HEAD = update(tables.chain_head).where(_HEAD.id == 1)
_RECORD_COLUMNS = (
    "seq",
    "record_id",
    "kind",
    "recorded_at",
    "content",
    "content_digest",
    "prev_digest",
    "chain_digest",
    *_INDEXED,
)
_CARD_COLUMNS = ("card_uuid", "record_seq", "hook_instance", "service_id", "rule_id", "indicator", "issued_at")
_FEEDBACK_COLUMNS = ("record_seq", "service_id", "card_uuid", "outcome", "content_digest")


class _AppendStatements:
    """The append path's statements for one dialect (``dbapi.CompiledStatement``)."""

    def __init__(self, dialect: Dialect) -> None:
        feedback = tables.feedback_index.c
        self.lock_head = CompiledStatement(_LOCK_HEAD, dialect)
        self.read_head = CompiledStatement(_READ_HEAD, dialect)
        self.move_head = CompiledStatement(_MOVE_HEAD, dialect, ("seq", "chain_digest"))
        self.insert_record = CompiledStatement(insert(tables.audit_record), dialect, _RECORD_COLUMNS)
        self.insert_card = CompiledStatement(insert(tables.card_index), dialect, _CARD_COLUMNS)
        self.insert_feedback = CompiledStatement(insert(tables.feedback_index), dialect, _FEEDBACK_COLUMNS)
        self.feedback_stored = CompiledStatement(
            select(feedback.id)
            .where(
                feedback.service_id == bindparam("service_id"),
                feedback.card_uuid == bindparam("card_uuid"),
                feedback.content_digest == bindparam("content_digest"),
            )
            .limit(1),
            dialect,
        )


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def connect(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # durable at commit, also across power loss
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return connect


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix) :])
    return None


def _one_snapshot(connection: Connection) -> None:
    """Make every read of ``connection`` see the same committed state. Otherwise the chain head and the records,
    read by separate statements while workers append, disagree, and a sound log looks truncated."""
    if connection.dialect.name == "sqlite":
        # pysqlite opens no transaction for SELECTs; an explicit one holds one WAL snapshot until rollback.
        connection.exec_driver_sql("BEGIN")
    elif connection.dialect.name == "postgresql":
        connection.execution_options(isolation_level="REPEATABLE READ")


def feedback_digest(item: FeedbackItem) -> str:
    return digest(canonical(item.model_dump(mode="json", exclude_none=True)))


class SqlAuditStore:
    def __init__(self, url: str, spool_path: Path | None = None, *, busy_timeout_ms: int = 5000) -> None:
        """``busy_timeout_ms``: how long a write waits for the database before the record is spooled."""
        database = _sqlite_file(url)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"connect_timeout": max(1, busy_timeout_ms // 1000)} if url.startswith("postgresql") else {}
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        migrate.upgrade(self.engine)
        self._ensure_head()
        self._sql = _AppendStatements(self.engine.dialect)
        self._writer_lock = (
            WriterLock(database.with_name(database.name + ".writer-lock"), busy_timeout_ms / 1000)
            if database is not None
            else None
        )
        default_spool = (database.parent if database else Path(".")) / "audit-spool.jsonl"
        self.spool = Spool(spool_path or default_spool)
        self._writer = GroupCommit(self._write_batch)
        metrics.track_spool(self.spool.depth)

    def _ensure_head(self) -> None:
        try:
            with self.engine.begin() as connection:
                if connection.execute(select(tables.chain_head.c.id)).first() is None:
                    connection.execute(insert(tables.chain_head).values(id=1, seq=0, chain_digest=GENESIS))
        except IntegrityError:
            pass  # another worker created it first

    # -- writing -------------------------------------------------------------------------------
    def _append(self, cursor: Any, entries: Sequence[dict[str, Any]]) -> list[bool | Exception]:
        """Chain ``entries`` onto the log in the cursor's transaction; ``False`` for a feedback item already
        stored."""
        sql = self._sql
        # Writing the head first takes the write lock before reading it, so appends never interleave.
        sql.lock_head.execute(cursor)
        head_seq, head_digest = sql.read_head.execute(cursor).fetchone()
        seq, previous = int(head_seq), str(head_digest)
        results: list[bool | Exception] = []
        records: list[dict[str, Any]] = []
        cards: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        batch_feedback: set[tuple[str, str, str]] = set()
        for entry in entries:
            item = entry.get("feedback")
            if item:
                key = (item["service_id"], item["card_uuid"], item["content_digest"])
                if key in batch_feedback or self._feedback_stored(cursor, key):
                    results.append(False)
                    continue
                batch_feedback.add(key)
                feedback.append({**item, "record_seq": seq + 1})
            seq += 1
            content = entry["content"]
            body = canonical(content)
            content_digest = digest(body)
            link = chain_digest(previous, seq, content_digest)
            columns = entry.get("columns") or {}
            records.append(
                {
                    "seq": seq,
                    "record_id": str(content["recordId"]),
                    "kind": entry["kind"],
                    "recorded_at": datetime.fromisoformat(content["recordedAt"].replace("Z", "+00:00")),
                    "content": body.decode(),
                    "content_digest": content_digest,
                    "prev_digest": previous,
                    "chain_digest": link,
                    **{name: columns.get(name) for name in _INDEXED},
                }
            )
            cards.extend(
                {**c, "record_seq": seq, "issued_at": datetime.fromisoformat(c["issued_at"].replace("Z", "+00:00"))}
                for c in entry.get("cards") or ()
            )
            previous = link
            results.append(True)
        if records:
            sql.insert_record.execute_many(cursor, records)
            if cards:
                sql.insert_card.execute_many(cursor, cards)
            if feedback:
                sql.insert_feedback.execute_many(cursor, feedback)
            sql.move_head.execute(cursor, {"seq": seq, "chain_digest": previous})
        return results

    def _feedback_stored(self, cursor: Any, key: tuple[str, str, str]) -> bool:
        values = {"service_id": key[0], "card_uuid": key[1], "content_digest": key[2]}
        return self._sql.feedback_stored.execute(cursor, values).fetchone() is not None

    def _write(self, entry: dict[str, Any]) -> bool:
        """One spool-shaped entry into the database; ``False`` when it is a duplicate feedback item."""
        result = in_transaction(self.engine, lambda cursor: self._append(cursor, [entry])[0])
        return result is True

    def _write_batch(self, entries: list[dict[str, Any]]) -> list[bool | Exception]:
        """The group writer's batch: committed together, or spooled together when the database is away.
        Spooled entries go first, so the chain keeps the order in which records were made."""
        if self._writer_lock is None:
            return self._write_batch_locked(entries)
        with self._writer_lock.held():
            return self._write_batch_locked(entries)

    def _write_batch_locked(self, entries: list[dict[str, Any]]) -> list[bool | Exception]:
        try:
            if self.spool.pending():
                self.spool.replay(self._write)
            results: list[bool | Exception] = in_transaction(self.engine, lambda cursor: self._append(cursor, entries))
            return results
        except IntegrityError:
            # Not expected (duplicates are checked under the lock); write one by one so one entry sinks alone.
            return [self._write_one(entry) for entry in entries]
        except DBAPIError as exc:
            log.error("audit database unavailable; %d record(s) spooled: %s", len(entries), type(exc).__name__)
            self.spool.extend(entries)
            return [True] * len(entries)

    def _write_one(self, entry: dict[str, Any]) -> bool | Exception:
        try:
            return self._write(entry)
        except IntegrityError as exc:
            return exc
        except DBAPIError:
            self.spool.append(entry)
            return True

    def _durable(self, entry: dict[str, Any]) -> bool:
        """Commit ``entry`` (with whatever else is queued), or spool it when the database is unreachable."""
        return self._writer.write(entry)

    @staticmethod
    def _stamp(kind: str, content: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "recordId": str(ids.uuid4()),
            "recordedAt": now.isoformat().replace("+00:00", "Z"),
            **content,
            "kind": kind,
        }

    def backlog(self) -> int:
        """Records queued for the writer and not yet committed or spooled."""
        return self._writer.queued()

    def record_invocation(self, record: InvocationRecord) -> None:
        self.submit_invocation(record).result()

    def submit_invocation(self, record: InvocationRecord) -> Future[bool]:
        """Queue the record of a hook call; the future resolves once it is committed or spooled."""
        content = self._stamp("invocation", orjson.loads(canonical(record.content())))
        columns = {
            "hook_instance": record.hook_instance,
            "service_id": record.service_id,
            "patient_id": record.patient_id,
            "user_id": record.user_id,
            "http_status": record.http_status,
            "latency_ms": record.latency_ms,
        }
        cards = [
            {
                "card_uuid": c["uuid"],
                "hook_instance": record.hook_instance or "",
                "service_id": record.service_id,
                "rule_id": c["ruleId"],
                "indicator": c["indicator"],
                "issued_at": content["recordedAt"],
            }
            for c in record.cards
            if c.get("uuid")
        ]
        return self._writer.submit({"kind": "invocation", "content": content, "columns": columns, "cards": cards})

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        stored = duplicates = 0
        unknown: list[str] = []
        for item in items:
            item_digest = feedback_digest(item)
            content = self._stamp(
                "feedback",
                {
                    "serviceId": service_id,
                    "feedback": item.model_dump(mode="json", exclude_none=True),
                    "feedbackDigest": item_digest,
                },
            )
            entry = {
                "kind": "feedback",
                "content": content,
                "columns": {"service_id": service_id},
                "feedback": {
                    "service_id": service_id,
                    "card_uuid": item.card,
                    "outcome": item.outcome,
                    "content_digest": item_digest,
                },
            }
            if not self._durable(entry):
                duplicates += 1
                continue
            stored += 1
            if not self._card_known(item.card):
                unknown.append(item.card)
        return FeedbackResult(stored, duplicates, unknown)

    def record_access(self, auditor: str, action: str, parameters: dict[str, Any]) -> None:
        """An auditor's read of the log is itself a record."""
        content = self._stamp("auditor-access", {"auditor": auditor, "action": action, "parameters": parameters})
        self._durable({"kind": "auditor-access", "content": content, "columns": {"user_id": auditor}})

    def record_auth_failure(self, path: str, reason: str) -> None:
        """A refused caller (no token content is kept, only why it was refused)."""
        content = self._stamp("auth-failure", {"path": path, "reason": reason})
        self._durable({"kind": "auth-failure", "content": content, "columns": {}})

    def remember_jti(self, iss: str, jti: str, expires_at: int, now: int) -> bool:
        """``True`` the first time a token id is seen (any worker, any replica); ``False`` on a replay."""
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(tables.seen_jti).where(tables.seen_jti.c.expires_at < now - 3600))
                connection.execute(insert(tables.seen_jti).values(iss=iss[:512], jti=jti[:256], expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def _card_known(self, card_uuid: str) -> bool:
        try:
            with self.engine.connect() as connection:
                return (
                    connection.execute(
                        select(tables.card_index.c.card_uuid).where(tables.card_index.c.card_uuid == card_uuid)
                    ).first()
                    is not None
                )
        except DBAPIError:
            return True  # cannot tell while the database is away; the join happens when it is back

    # -- reading -------------------------------------------------------------------------------
    def feedback_for(self, card_uuid: str) -> list[dict[str, Any]]:
        query = (
            select(tables.audit_record.c.content)
            .join(tables.feedback_index, tables.feedback_index.c.record_seq == tables.audit_record.c.seq)
            .where(tables.feedback_index.c.card_uuid == card_uuid)
            .order_by(tables.audit_record.c.seq)
        )
        with self.engine.connect() as connection:
            return [orjson.loads(row.content) for row in connection.execute(query)]

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(tables.audit_record.c.content).order_by(tables.audit_record.c.seq)
        if kind:
            query = query.where(tables.audit_record.c.kind == kind)
        with self.engine.connect() as connection:
            return [orjson.loads(row.content) for row in connection.execute(query)]

    # -- integrity -------------------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Walk the chain from its anchor; name the first record that was altered, removed or reordered."""
        record = tables.audit_record.c
        with self.engine.connect() as connection:
            _one_snapshot(connection)
            anchor = connection.execute(select(tables.chain_anchor).order_by(tables.chain_anchor.c.id.desc())).first()
            head = connection.execute(select(tables.chain_head).where(tables.chain_head.c.id == 1)).first()
            expected_seq = anchor.first_seq if anchor else 1
            previous = anchor.prev_digest if anchor else GENESIS
            count = 0
            for row in connection.execute(select(tables.audit_record).order_by(record.seq)):
                problem = self._check(row, expected_seq, previous)
                if problem:
                    return VerifyResult(
                        False,
                        count,
                        row.seq if problem != "missing" else expected_seq,
                        problem if problem != "missing" else f"record {expected_seq} is missing (removed)",
                    )
                previous, expected_seq, count = row.chain_digest, row.seq + 1, count + 1
            if head is not None and (head.seq != expected_seq - 1 or head.chain_digest != previous):
                return VerifyResult(False, count, expected_seq, f"records from {expected_seq} on were removed")
        return VerifyResult(True, count)

    @staticmethod
    def _check(row: Any, expected_seq: int, previous: str) -> str | None:
        if row.seq != expected_seq:
            return "missing"
        if digest(row.content.encode()) != row.content_digest:
            return f"record {row.seq} was altered (content does not match its digest)"
        if row.prev_digest != previous or chain_digest(previous, row.seq, row.content_digest) != row.chain_digest:
            return f"record {row.seq} does not follow record {row.seq - 1} (altered, removed or reordered)"
        content = orjson.loads(row.content)
        for column, field in (
            ("hook_instance", "hookInstance"),
            ("patient_id", "patientId"),
            ("user_id", "userId"),
            ("service_id", "serviceId"),
        ):
            if content.get(field) is not None and getattr(row, column) != content.get(field):
                return f"record {row.seq}: its {column} column was altered"
        return None

    def purge(self, before: datetime) -> int:
        """Delete records older than ``before``; the anchor keeps the rest of the chain verifiable."""
        record = tables.audit_record.c
        with self.engine.begin() as connection:
            connection.execute(
                update(tables.chain_head).where(tables.chain_head.c.id == 1).values(seq=tables.chain_head.c.seq)
            )
            first_kept = connection.execute(
                select(record.seq, record.prev_digest).where(record.recorded_at >= before).order_by(record.seq)
            ).first()
            if first_kept is None:
                return 0
            doomed = [r.seq for r in connection.execute(select(record.seq).where(record.seq < first_kept.seq))]
            if not doomed:
                return 0
            connection.execute(delete(tables.card_index).where(tables.card_index.c.record_seq < first_kept.seq))
            connection.execute(delete(tables.feedback_index).where(tables.feedback_index.c.record_seq < first_kept.seq))
            connection.execute(delete(tables.audit_record).where(record.seq < first_kept.seq))
            connection.execute(delete(tables.chain_anchor))
            connection.execute(
                insert(tables.chain_anchor).values(id=1, first_seq=first_kept.seq, prev_digest=first_kept.prev_digest)
            )
        self._durable(
            {
                "kind": "purge",
                "content": self._stamp("purge", {"before": before.astimezone(UTC).isoformat(), "removed": len(doomed)}),
                "columns": {},
            }
        )
        return len(doomed)

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(tables.chain_head.c.id).limit(1))
        except DBAPIError:
            return False
        return True

    def close(self) -> None:
        self._writer.close()
        self.engine.dispose()
        if self._writer_lock is not None:
            self._writer_lock.close()
