"""Prefetch template tokens (CDS Hooks 2.0 §Prefetch tokens).

Tokens are ``{{context.<field>}}`` for root-level primitive context fields, and the user identifiers
``userPractitionerId``, ``userPractitionerRoleId``, ``userPatientId`` and ``userRelatedPersonId`` derived
from ``context.userId`` (``Practitioner/123`` gives ``userPractitionerId`` = ``123``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


def token_values(context: Mapping[str, Any]) -> dict[str, str]:
    values = {f"context.{k}": v for k, v in context.items() if isinstance(v, str | int) and not isinstance(v, bool)}
    user = context.get("userId")
    if isinstance(user, str) and "/" in user:
        kind, _, ident = user.rpartition("/")
        token = _USER_TOKENS.get(kind.rsplit("/", 1)[-1])
        if token and ident:
            values[token] = ident
    return {k: str(v) for k, v in values.items()}


def render(template: str, values: Mapping[str, str]) -> str | None:
    """The query with tokens filled in (values URL-encoded), or ``None`` if a token has no value."""
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return quote(value, safe="")

    rendered = _TOKEN.sub(fill, template)
    return None if missing else rendered


def tokens_in(template: str) -> list[str]:
    return _TOKEN.findall(template)
