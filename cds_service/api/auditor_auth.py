"""Auditor authentication: a role of its own, separate from the EHRs that call the hooks.

Auditors sign in with a user name and password (checked against PBKDF2 hashes from settings) and get an
HMAC-signed, HttpOnly, SameSite=Strict session cookie; API clients may send HTTP Basic credentials
instead. Anything else gets 401 (API) or the sign-in page (browser).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from cds_service.api.deps import Runtime, RuntimeDep

COOKIE = "cds_audit_session"
SESSION_SECONDS = 8 * 3600
_basic = HTTPBasic(auto_error=False)


def _key(runtime: Runtime) -> bytes:
    secret = runtime.settings.audit_session_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    material = "\0".join(f"{k}={v}" for k, v in sorted(runtime.settings.auditors.items()))
    return hashlib.sha256(b"cds-audit-session\0" + material.encode()).digest()


def issue_session(runtime: Runtime, username: str) -> str:
    payload = f"{username}|{int(time.time()) + SESSION_SECONDS}"
    signature = hmac.new(_key(runtime), payload.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(f"{payload}|{signature}".encode()).decode()


def session_user(runtime: Runtime, token: str | None) -> str | None:
    if not token:
        return None
    try:
        username, expires, signature = base64.urlsafe_b64decode(token.encode()).decode().rsplit("|", 2)
        expected = hmac.new(_key(runtime), f"{username}|{expires}".encode(), hashlib.sha256).hexdigest()
        if (
            hmac.compare_digest(signature, expected)
            and int(expires) > time.time()
            and username in runtime.settings.auditors
        ):
            return username
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def current_auditor(
    request: Request, runtime: RuntimeDep, basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> str:
    user = session_user(runtime, request.cookies.get(COOKIE))
    if user is None and basic is not None and runtime.auditors.verify(basic.username, basic.password):
        user = basic.username
    if user is None:
        # The page's own requests get no Basic challenge: a browser would answer it with its native prompt.
        from_page = request.headers.get("X-Requested-With") == "audit-page"
        challenge = 'Cookie realm="audit"' if from_page else 'Basic realm="audit"'
        raise HTTPException(status_code=401, detail="auditor sign-in required", headers={"WWW-Authenticate": challenge})
    return user


AuditorDep = Annotated[str, Depends(current_auditor)]
