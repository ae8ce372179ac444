"""One audit writer at a time across the processes sharing a SQLite file.

SQLite's busy handler sleeps between retries (1, 2, 5, 10 ... 100 ms), so two workers whose writers meet
on the database's write lock wait far longer than the lock is held, and one can lose many rounds in a row.
An advisory ``flock`` on a file beside the database queues the writers instead: the next one takes the
lock within a fraction of a millisecond of its release. A writer that cannot have it within the busy timeout
goes on without it and leaves the decision to SQLite (which then spools the batch as before). The kernel
drops the lock of a process that dies, so a crashed worker cannot hold it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_FIRST_PAUSE_S = 0.000_02
_LONGEST_PAUSE_S = 0.000_2


class WriterLock:
    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Hold the lock for the block; yields whether it was had (``False``: timed out, the block runs anyway)."""
        had = self._acquire()
        try:
            yield had
        finally:
            if had:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _acquire(self) -> bool:
        deadline = time.monotonic() + self.timeout_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE_S)

    def close(self) -> None:
        os.close(self._fd)
