"""Load shedding: a worker evaluates at most ``CDS_MAX_CONCURRENT_CALLS`` hook calls at once.

Beyond that a call is refused at once with 503 and ``Retry-After`` rather than queued: under overload a queue
only grows, every answer comes too late for the clinician waiting on it, and memory grows with it. The counter
lives in the event loop's thread, so it needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cds_service.errors import Overloaded


class Admission:
    def __init__(
        self, limit: int, retry_after: int, backlog: Callable[[], int] = lambda: 0, max_backlog: int = 1
    ) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.active = 0
        self._backlog = backlog
        self._max_backlog = max_backlog

    def audit_behind(self) -> bool:
        """The audit store is so far behind that more calls would only queue more records in memory."""
        return self._backlog() >= self._max_backlog

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.audit_behind():
            raise Overloaded(
                f"the audit log is {self._backlog()} records behind; retry in {self.retry_after} s",
                retry_after=self.retry_after,
            )
        if self.active >= self.limit:
            raise Overloaded(
                f"the service is evaluating {self.active} calls, its limit; retry in {self.retry_after} s",
                retry_after=self.retry_after,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
