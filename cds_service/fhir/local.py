"""An in-memory FHIR search over a patient's record, for the prefetch queries this service issues.

It answers the service's own templates (read by id; ``patient``/``subject``, token ``code`` and ``status``
lists, ``_sort=-date``, ``_count``) the way a FHIR server would, so the offline ``evaluate`` command and
the tests build the exact prefetch an EHR would send.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from cds_service.snapshot.fhirjson import as_dict, as_list, codings, first_datetime, subject_patient_id

_DATE_FIELDS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "issued",
    "authoredOn",
    "recordedDate",
    "onsetDateTime",
    "performedDateTime",
    "performedPeriod",
    "dateAsserted",
)
_OLDEST = datetime(1, 1, 1, tzinfo=UTC)


def _token_match(values: list[str], concept: Any) -> bool:
    codes = codings(concept)
    for wanted in values:
        system, _, code = wanted.rpartition("|")
        if any(c.code == code and (not system or c.system == system) for c in codes):
            return True
    return False


def _status_of(resource: dict[str, Any], name: str) -> str | None:
    if name == "clinical-status":
        found = codings(resource.get("clinicalStatus"))
        return found[0].code if found else None
    value = resource.get("status")
    return value if isinstance(value, str) else None


class LocalFhirStore:
    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self._resources = [r for r in resources if isinstance(r.get("resourceType"), str)]

    def read(self, kind: str, rid: str) -> dict[str, Any] | None:
        return next((r for r in self._resources if r["resourceType"] == kind and r.get("id") == rid), None)

    def search(self, kind: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        found = [r for r in self._resources if r["resourceType"] == kind]
        sort_desc = False
        count: int | None = None
        for name, value in params:
            values = value.split(",")
            if name in ("patient", "subject"):
                wanted = {v.rpartition("/")[2] for v in values}
                found = [r for r in found if subject_patient_id(r) in wanted]
            elif name == "code":
                found = [r for r in found if _token_match(values, r.get("code"))]
            elif name in ("status", "clinical-status"):
                found = [r for r in found if _status_of(r, name) in values]
            elif name == "_sort":
                sort_desc = value in ("-date", "-_lastUpdated")
            elif name == "_count":
                count = int(value)
        if sort_desc:
            found.sort(key=lambda r: first_datetime(r, *_DATE_FIELDS) or _OLDEST, reverse=True)
        return found[:count] if count is not None else found

    def query(self, relative: str) -> dict[str, Any] | None:
        """The answer to ``Type/id`` or ``Type?params``: a resource, a searchset Bundle, or ``None``."""
        path, _, query = relative.partition("?")
        parts = [p for p in path.split("/") if p]
        if not query and len(parts) == 2:
            return self.read(parts[0], unquote(parts[1]))
        resources = self.search(parts[0], parse_qsl(query, keep_blank_values=True))
        return searchset(resources)


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{r['resourceType']}/{r.get('id')}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def record_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        as_dict(as_dict(e).get("resource")) for e in as_list(bundle.get("entry")) if as_dict(as_dict(e).get("resource"))
    ]
