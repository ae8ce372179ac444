"""Group commit: records that queue while a batch is being written go together in the next one; every
caller hears its own record's fate; a caller that gives up does not lose its record; close drains."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

from cds_service.audit.group_commit import GroupCommit, WriterClosed
from cds_service.audit.records import InvocationRecord
from cds_service.audit.store import SqlAuditStore
from cds_service.schemas.feedback import FeedbackItem
from tests.support import REFERENCE_TIME


class Gated:
    """A batch writer that holds its first batch until released, so later entries pile up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, entries: list[dict[str, Any]]) -> list[bool | Exception]:
        self.batches.append([e["n"] for e in entries])
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(5)
        return [ValueError(f"bad {e['n']}") if e.get("bad") else e["n"] % 2 == 0 for e in entries]


def test_entries_queued_behind_a_commit_share_the_next_one() -> None:
    writer = Gated()
    group = GroupCommit(writer, max_batch=64)
    first = group.submit({"n": 0})
    assert writer.first_started.wait(5)
    later = [group.submit({"n": n}) for n in range(1, 11)]
    writer.release.set()
    assert first.result(5) is True
    assert [f.result(5) for f in later] == [n % 2 == 0 for n in range(1, 11)]
    assert writer.batches == [[0], list(range(1, 11))]
    group.close()


def test_batches_are_bounded() -> None:
    writer = Gated()
    group = GroupCommit(writer, max_batch=4)
    group.submit({"n": 0})
    assert writer.first_started.wait(5)
    later = [group.submit({"n": n}) for n in range(1, 10)]
    writer.release.set()
    for future in later:
        future.result(5)
    assert writer.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    group.close()


def test_each_caller_hears_its_own_failure() -> None:
    writer = Gated()
    writer.release.set()
    group = GroupCommit(writer)
    good, bad = group.submit({"n": 2}), group.submit({"n": 3, "bad": True})
    assert good.result(5) is True
    with pytest.raises(ValueError, match="bad 3"):
        bad.result(5)
    group.close()


def test_a_failing_batch_fails_all_its_callers_and_the_writer_goes_on() -> None:
    calls: list[int] = []

    def explode(entries: list[dict[str, Any]]) -> list[bool | Exception]:
        calls.append(len(entries))
        if len(calls) == 1:
            raise OSError("disk gone")
        return [True] * len(entries)

    group = GroupCommit(explode)
    with pytest.raises(OSError, match="disk gone"):
        group.write({"n": 1})
    assert group.write({"n": 2}) is True
    group.close()


def test_a_cancelled_caller_still_has_its_record_written() -> None:
    writer = Gated()
    group = GroupCommit(writer)
    group.submit({"n": 0})
    assert writer.first_started.wait(5)
    gone = group.submit({"n": 1})
    assert gone.cancel()
    writer.release.set()
    group.close()
    assert writer.batches == [[0], [1]]
    with pytest.raises(CancelledError):
        gone.result(0)


def test_close_writes_what_is_queued_then_refuses() -> None:
    writer = Gated()
    group = GroupCommit(writer)
    futures = [group.submit({"n": n}) for n in range(5)]
    assert writer.first_started.wait(5)
    threading.Timer(0.05, writer.release.set).start()
    group.close()
    assert all(f.done() for f in futures)
    assert sorted(n for batch in writer.batches for n in batch) == list(range(5))
    with pytest.raises(WriterClosed):
        group.submit({"n": 9})


def _invocation(n: int) -> InvocationRecord:
    record = InvocationRecord(service_id="palbociclib-order-sign", received_at=REFERENCE_TIME, knowledge_version="k")
    record.hook_instance = f"hook-{n}"
    record.responded_at = REFERENCE_TIME
    record.http_status = 200
    return record


def test_concurrent_writers_on_sqlite_lose_nothing_and_keep_the_chain(tmp_path: Path) -> None:
    store = SqlAuditStore(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    threads = [
        threading.Thread(target=lambda k=k: [store.record_invocation(_invocation(k * 100 + i)) for i in range(25)])
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    instances = [r["hookInstance"] for r in store.records("invocation")]
    assert sorted(instances) == sorted(f"hook-{k * 100 + i}" for k in range(8) for i in range(25))
    result = store.verify()
    assert result.ok
    assert result.records == 200
    store.close()


def test_the_same_feedback_twice_in_one_batch_is_stored_once(tmp_path: Path) -> None:
    store = SqlAuditStore(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    item = FeedbackItem.model_validate(
        {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-11-21T10:00:00Z"}
    )
    entry: dict[str, Any] = {
        "kind": "feedback",
        "content": store._stamp("feedback", {"card": "card-1"}),
        "columns": {"service_id": "s"},
        "feedback": {"service_id": "s", "card_uuid": "card-1", "outcome": "accepted", "content_digest": "d"},
    }
    twin = {**entry, "content": store._stamp("feedback", {"card": "card-1"})}
    assert store._write_batch([entry, twin]) == [True, False]
    assert store.record_feedback("s", [item]).stored == 1
    assert store.record_feedback("s", [item]).duplicates == 1
    assert store.verify().ok
    store.close()
