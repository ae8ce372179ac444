"""Random (version 4) UUIDs for request ids, record ids and card ids, from a pooled read of the OS's CSPRNG.

``uuid.uuid4()`` reads 16 bytes with ``os.urandom``, which releases the interpreter lock around its system
call: on the event loop that hands the lock to the audit writer thread, and the call waits to get it back,
twice for every hook call. One read of the pool serves 256 ids.
"""

from __future__ import annotations

import os
import threading
import uuid

_POOL_BYTES = 4096


class _RandomPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0

    def take16(self) -> bytes:
        with self._lock:
            if self._at >= len(self._buffer):
                self._buffer = os.urandom(_POOL_BYTES)
                self._at = 0
            start = self._at
            self._at = start + 16
            return self._buffer[start : start + 16]

    def discard(self) -> None:
        """A forked child must not hand out the ids its parent will also hand out."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.discard)


def uuid4() -> uuid.UUID:
    return uuid.UUID(bytes=_pool.take16(), version=4)
