"""Turn a patient's record (a FHIR Bundle with draft orders) into the CDS Hooks request an EHR would send.

Draft orders are the MedicationRequests with status ``draft``; everything else is the record the
prefetch templates are run against. Used by ``evaluate``, the fixture tests and the EHR simulator.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cds_service import yamlload
from cds_service.fhir.local import LocalFhirStore, record_resources
from cds_service.prefetch.templates import render, token_values
from cds_service.services import ServiceDefinition
from cds_service.snapshot.fhirjson import parse_datetime, reference_id


def load_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def is_draft_order(resource: dict[str, Any]) -> bool:
    return resource.get("resourceType") == "MedicationRequest" and resource.get("status") == "draft"


def split_record(bundle: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """(patient, draft orders with the Medications they reference, the rest of the record)."""
    resources = record_resources(bundle)
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    drafts = [r for r in resources if is_draft_order(r)]
    referenced = {reference_id(d.get("medicationReference"))[1] for d in drafts}
    medications = [r for r in resources if r.get("resourceType") == "Medication" and str(r.get("id")) in referenced]
    record = [r for r in resources if not is_draft_order(r)]
    return patient, drafts + medications, record


def build_context(
    patient_id: str, drafts: list[dict[str, Any]], hook: str, user_id: str = "Practitioner/cds-evaluate"
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "userId": user_id,
        "patientId": patient_id,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]},
    }
    if hook == "order-select":
        context["selections"] = [
            f"{d['resourceType']}/{d['id']}"
            for d in drafts
            if d.get("resourceType") == "MedicationRequest" and d.get("id")
        ]
    return context


def build_prefetch(
    service: ServiceDefinition, context: dict[str, Any], store: LocalFhirStore
) -> dict[str, dict[str, Any] | None]:
    values = token_values(context)
    prefetch: dict[str, dict[str, Any] | None] = {}
    for spec in service.prefetch:
        query = render(spec.template, values)
        if query is not None:
            prefetch[spec.key] = store.query(query)
    return prefetch


def request_from_record(
    bundle: dict[str, Any], service: ServiceDefinition, *, with_prefetch: bool = True, hook_instance: str | None = None
) -> dict[str, Any]:
    patient, drafts, record = split_record(bundle)
    if patient is None or not patient.get("id"):
        raise ValueError("the Bundle holds no Patient with an id")
    context = build_context(str(patient["id"]), drafts, service.hook)
    request: dict[str, Any] = {
        "hook": service.hook,
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "context": context,
    }
    if with_prefetch:
        request["prefetch"] = build_prefetch(service, context, LocalFhirStore(record))
    return request


def record_time(bundle: dict[str, Any]) -> datetime | None:
    """The moment a scenario describes: its Bundle.timestamp."""
    return parse_datetime(bundle.get("timestamp"))


def load_manifest(fixtures_dir: Path) -> dict[str, Any]:
    """``scenarios.yaml`` and the topic manifests ``scenarios-<topic>.yaml``, merged: one reference time,
    scenario names unique."""
    merged: dict[str, Any] = {"scenarios": []}
    for path in sorted(fixtures_dir.glob("scenarios*.yaml")):
        part: dict[str, Any] = yamlload.safe_load(path.read_text()) or {}
        reference = part.get("reference_time")
        if merged.setdefault("reference_time", reference) != reference:
            raise ValueError(f"{path.name}: reference_time differs from the other manifests")
        merged["scenarios"].extend(part.get("scenarios") or [])
    names = [s["name"] for s in merged["scenarios"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"scenario names used twice: {duplicates}")
    return merged
