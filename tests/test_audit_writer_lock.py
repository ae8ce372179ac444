"""The writer lock that queues audit writers of several processes on one SQLite file.

flock locks belong to an open file: a second ``WriterLock`` on the same path, even in this process, is
another holder, so these tests need no second process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.audit.records import InvocationRecord
from cds_service.audit.store import SqlAuditStore
from cds_service.audit.writer_lock import WriterLock
from tests.support import reset_postgres


def _record(instance: str) -> InvocationRecord:
    record = InvocationRecord(
        service_id="palbociclib-order-sign", received_at=datetime(2026, 11, 20, tzinfo=UTC), knowledge_version="t"
    )
    record.hook_instance = instance
    record.http_status = 200
    return record


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite3"


@pytest.fixture
def store(database: Path) -> Iterator[SqlAuditStore]:
    opened = SqlAuditStore(f"sqlite:///{database}", busy_timeout_ms=5000)
    yield opened
    opened.close()


def _other_holder(database: Path, timeout_s: float = 5.0) -> WriterLock:
    return WriterLock(database.with_name(database.name + ".writer-lock"), timeout_s)


def test_a_held_lock_excludes_another_holder_until_released(tmp_path: Path) -> None:
    first, second = WriterLock(tmp_path / "w.lock", 5.0), WriterLock(tmp_path / "w.lock", 0.05)
    with first.held() as had:
        assert had is True
        with second.held() as second_had:
            assert second_had is False  # timed out: the block still runs, without the lock
    with second.held() as second_had:
        assert second_had is True
    first.close()
    second.close()


def test_a_waiting_holder_gets_the_lock_once_released(tmp_path: Path) -> None:
    first, second = WriterLock(tmp_path / "w.lock", 5.0), WriterLock(tmp_path / "w.lock", 5.0)
    got: list[float] = []

    def wait_for_it() -> None:
        with second.held() as had:
            assert had
            got.append(time.monotonic())

    with first.held():
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.2)
        assert not got, "the second holder ran while the first held the lock"
        released = time.monotonic()
    waiter.join(timeout=5)
    assert len(got) == 1
    assert got[0] >= released
    first.close()
    second.close()


def test_the_store_writes_under_the_lock_of_its_database_file(database: Path, store: SqlAuditStore) -> None:
    other = _other_holder(database)
    with other.held():
        written = store.submit_invocation(_record("held-back"))
        time.sleep(0.3)
        assert not written.done(), "the record was written while another process's writer held the lock"
        assert store.records("invocation") == []
    assert written.result(timeout=5) is True
    assert [r["hookInstance"] for r in store.records("invocation")] == ["held-back"]
    assert store.verify().ok
    other.close()


def test_a_lock_held_past_the_busy_timeout_does_not_stop_the_write(database: Path) -> None:
    """A stuck holder of the lock (not of the database) delays the write by the busy timeout, no more."""
    store = SqlAuditStore(f"sqlite:///{database}", busy_timeout_ms=200)
    other = _other_holder(database)
    with other.held():
        started = time.monotonic()
        assert store.submit_invocation(_record("late")).result(timeout=5) is True
        waited = time.monotonic() - started
    assert 0.2 <= waited < 3
    assert [r["hookInstance"] for r in store.records("invocation")] == ["late"]
    store.close()
    other.close()


def test_the_lock_file_lies_beside_the_database_and_postgres_needs_none(database: Path, store: SqlAuditStore) -> None:
    assert (database.parent / "audit.sqlite3.writer-lock").exists()
    url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    reset_postgres(url)
    postgres = SqlAuditStore(url)
    try:
        assert postgres._writer_lock is None
        assert postgres.submit_invocation(_record("pg")).result(timeout=5) is True
    finally:
        postgres.close()
