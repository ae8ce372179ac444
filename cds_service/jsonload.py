"""JSON parsing with the cyclic garbage collector paused.

Parsed JSON holds no reference cycles, yet every 700 new containers start a collection that scans them again,
and the older generations are scanned over and over as a large body grows the heap. For a hook call reading 18
search pages of 10,000 entries each, that was four fifths of the parsing time (0.88 s of 1.08 s), and it held the
event loop past the call's deadline on a busy host.
"""

from __future__ import annotations

import gc
from typing import Any

import orjson


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads`` without collections while it runs; raises ``orjson.JSONDecodeError`` as it does."""
    if not gc.isenabled():  # paused by a caller, or by another parse on another thread: leave it so
        return orjson.loads(data)
    gc.disable()
    try:
        return orjson.loads(data)
    finally:
        gc.enable()
