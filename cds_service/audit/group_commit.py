"""Group commit: one thread per process writes the audit records, as many to a transaction as have queued.

With one transaction per record, every hook call waits for its own commit and its own fsync, and concurrent
writers queue on the database's write lock (SQLite's busy handler sleeps between retries). Here a record
still is committed before its caller goes on, but one commit serves every record that arrived while the
previous one was being written, so throughput follows the load instead of the disk's fsync rate.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

Entry = dict[str, Any]
WriteBatch = Callable[[list[Entry]], list[bool | Exception]]
"""One answer per entry, in order: ``True`` written, ``False`` left out (a duplicate), or what failed it."""


class WriterClosed(RuntimeError):
    """The writer no longer takes records (the service is shutting down)."""


class GroupCommit:
    def __init__(self, write_batch: WriteBatch, *, max_batch: int = 64, name: str = "audit-writer") -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Entry, Future[bool]] | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> Future[bool]:
        """Queue ``entry``; the future resolves once it is committed (or spooled), with the batch writer's answer."""
        future: Future[bool] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the audit writer is closed")
            self._queue.put((entry, future))
        return future

    def write(self, entry: Entry) -> bool:
        return self.submit(entry).result()

    def queued(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Write what is queued, then stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _take(self) -> tuple[list[tuple[Entry, Future[bool]]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            if not batch:
                continue
            # A caller that gave up waiting (a dropped connection) cancels its future; its record is kept anyway.
            waiting = [future.set_running_or_notify_cancel() for _, future in batch]
            try:
                results = self._write_batch([entry for entry, _ in batch])
            except BaseException as exc:  # the callers must hear of it, whatever it is
                log.error("audit batch write failed: %s", type(exc).__name__)
                for (_, future), live in zip(batch, waiting, strict=True):
                    if live:
                        future.set_exception(exc)
                continue
            for (_, future), live, result in zip(batch, waiting, results, strict=True):
                if not live:
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
