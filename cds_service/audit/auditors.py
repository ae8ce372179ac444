"""Auditor credentials: PBKDF2-SHA256 hashes from settings, never plain passwords.

A hash reads ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``; ``python -m cds_service audit
hash-password`` makes one. Verified credentials are cached briefly, so a page that calls the API several
times a second does not pay the key derivation each time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

ITERATIONS = 240_000
_CACHE_SECONDS = 300.0


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${derived.hex()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, expected = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        derived = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(derived.hex(), expected)


class Auditors:
    def __init__(self, hashes: dict[str, str]) -> None:
        self._hashes = dict(hashes)
        self._verified: dict[tuple[str, str], float] = {}

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def verify(self, username: str, password: str) -> bool:
        encoded = self._hashes.get(username)
        if encoded is None:
            return False
        key = (username, hashlib.sha256(f"{encoded}\0{password}".encode()).hexdigest())
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return True
        if not check_password(password, encoded):
            return False
        self._verified[key] = now + _CACHE_SECONDS
        return True
