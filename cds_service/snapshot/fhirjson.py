"""Defensive readers for FHIR R4 JSON.

The hot path reads plain dicts rather than validating whole resources with fhir.resources (about 50 times
slower); every reader here tolerates a missing or wrongly typed element and returns ``None`` or empty.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cds_service.snapshot.model import Code, Evidence


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):  # a tuple: compiled, ``int | float`` takes the generic isinstance
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range is no lab value
            return None
    return None


def codings(concept: Any) -> list[Code]:
    """The codings of a CodeableConcept (or a bare Coding), skipping malformed ones."""
    # Called for nearly every element of every resource of a call: plain type checks, no helper calls.
    if not isinstance(concept, dict):
        return []
    if "coding" in concept:
        items = concept["coding"]
        if not isinstance(items, list):
            items = [items] if isinstance(items, dict) else []
    else:
        items = [concept]
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, str):
            code = code.strip()
            if not code:
                continue
        elif isinstance(code, int):
            code = str(code)
        else:
            continue
        display = item.get("display")
        out.append(
            Code(
                system=str(item.get("system") or ""),
                code=code,
                display=display if isinstance(display, str) and display.strip() else None,
            )
        )
    return out


def concept_text(concept: Any) -> str:
    """Human text of a CodeableConcept: its text, else the displays of its codings."""
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text
    # Every coding's display, also of a coding without a code (a Coding's code is optional: some systems send
    # a medicine as {"display": "ketoconazole 200 MG Oral Tablet"} alone), which ``codings`` leaves out.
    items = concept.get("coding", [concept])
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return ""
    displays = []
    for item in items:
        if isinstance(item, dict):
            display = item.get("display")
            if isinstance(display, str) and display.strip():
                displays.append(display)
    return "; ".join(displays)


def parse_datetime(value: Any) -> datetime | None:
    """FHIR date, dateTime or instant as an aware datetime (partial dates at their start, UTC if no zone)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            parsed = date.fromisoformat(text)
            return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)  # reads "Z" since Python 3.11
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    moment = parse_datetime(value)
    return moment.date() if moment else None


def first_datetime(resource: dict[str, Any], *fields: str) -> datetime | None:
    """The first parseable date among fields; Period-valued fields give their start."""
    for name in fields:
        value = resource.get(name)
        if isinstance(value, dict):
            value = value.get("start") or value.get("end")
        moment = parse_datetime(value)
        if moment is not None:
            return moment
    return None


def evidence(resource: dict[str, Any], when: datetime | None, description: str) -> Evidence:
    return Evidence(
        resource_type=str(resource.get("resourceType") or "Resource"),
        resource_id=as_str(resource.get("id")),
        date=when,
        description=description,
    )


def bundle_resources(value: Any) -> list[dict[str, Any]]:
    """Resources of a searchset Bundle, or the resource itself; OperationOutcome entries are skipped.

    A list, not a generator: compiled, a generator costs several times a list append per resource."""
    value = as_dict(value)
    if value.get("resourceType") == "Bundle":
        out: list[dict[str, Any]] = []
        for entry in as_list(value.get("entry")):
            resource = as_dict(as_dict(entry).get("resource"))
            kind = resource.get("resourceType")
            if isinstance(kind, str) and kind != "OperationOutcome":
                out.append(resource)
        return out
    if isinstance(value.get("resourceType"), str):
        return [value]
    return []


def reference_id(reference: Any) -> tuple[str | None, str | None]:
    """``(type, id)`` of a Reference (relative or absolute URL); ``(None, "#x")`` for contained ones."""
    if not isinstance(reference, dict):
        return None, None
    ref = as_str(reference.get("reference"))
    if ref is None:
        return None, None
    if ref.startswith("#"):
        return None, ref
    kind, slash, rid = ref.partition("/")
    if slash and kind and rid and "/" not in rid and kind != "_history" and rid != "_history":
        return kind, rid  # the usual relative reference, without the general split below
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, ref


def subject_patient_id(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about (``subject``, else ``patient``), when it names one."""
    # Two plain calls, not a loop over a tuple of names: this runs for every resource of a call.
    found = _patient_id(resource.get("subject"))
    return found if found is not None else _patient_id(resource.get("patient"))


def _patient_id(reference: Any) -> str | None:
    kind, rid = reference_id(reference)
    if rid is not None and not rid.startswith("#") and (kind is None or kind == "Patient"):
        return rid
    return None
