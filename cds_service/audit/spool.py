"""A local append-only spool for audit records the database could not take.

Each line is one record (JSON), written and fsynced before the response goes out; when the database is
back the lines are replayed in order and the spool is cleared. A file lock keeps the workers of one
machine from interleaving writes and replays.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = path.with_suffix(path.suffix + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, entry: dict[str, Any]) -> None:
        self.extend([entry])

    def extend(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` in order, with one fsync for all of them."""
        option = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
        line = b"".join(orjson.dumps(entry, option=option) + b"\n" for entry in entries)
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self) -> bool:
        """Whether anything waits to be replayed: one stat, cheap enough for every write."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def depth(self) -> int:
        try:
            with open(self.path, "rb") as handle:
                return sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            return 0

    def replay(self, write: Callable[[dict[str, Any]], object]) -> int:
        """Hand every spooled entry to ``write`` in order; stop at the first failure, keeping the rest."""
        with self._locked():
            try:
                lines = [line for line in self.path.read_bytes().splitlines() if line.strip()]
            except FileNotFoundError:
                return 0
            done = 0
            try:
                for line in lines:
                    write(orjson.loads(line))
                    done += 1
            finally:
                rest = lines[done:]
                temporary = self.path.with_suffix(".tmp")
                with open(temporary, "wb") as handle:
                    handle.write(b"".join(line + b"\n" for line in rest))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.path)
            return done
