"""Canonical JSON and digests for tamper-evident audit records."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(content: Any) -> bytes:
    """Sorted keys, no whitespace, UTC datetimes as RFC 3339: the same content always gives the same bytes."""
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chain_digest(previous: str, seq: int, content_digest: str) -> str:
    """Each record's link: the previous link, its own position and its content."""
    return digest(f"{previous}|{seq}|{content_digest}".encode())
