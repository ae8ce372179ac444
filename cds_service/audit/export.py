"""Exports of the audit log: NDJSON (one invocation record a line), CSV (one card a row), and a FHIR R4
Bundle of AuditEvent resources shaped after IHE Basic Audit Log Patterns (BALP).

BALP profiles FHIR RESTful events; a CDS Hooks call is not one, so ``type`` is the DICOM/HL7 ``rest``
event type as the closest fit and ``subtype`` carries this service's own code
(``urn:palbociclib-cds:audit-subtype#cds-hooks-call``), as cds-hooks-notes §E suggests.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select

from cds_service.audit import tables
from cds_service.audit.queries import _latest_outcomes

record = tables.audit_record.c
DCM = "http://dicom.nema.org/resources/ontology/DCM"
CSV_COLUMNS = [
    "recordedAt",
    "recordId",
    "hookInstance",
    "serviceId",
    "hook",
    "patientId",
    "userId",
    "httpStatus",
    "latencyMs",
    "knowledgeVersion",
    "cardUuid",
    "ruleId",
    "indicator",
    "summary",
    "latestOutcome",
]


def invocations(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> Iterator[dict[str, Any]]:
    query = select(record.record_id, record.content).where(record.kind == "invocation").order_by(record.seq)
    if start:
        query = query.where(record.recorded_at >= start)
    if end:
        query = query.where(record.recorded_at < end)
    with engine.connect() as connection:
        for row in connection.execution_options(yield_per=500).execute(query):
            yield orjson.loads(row.content)


def ndjson(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> Iterator[bytes]:
    for content in invocations(engine, start, end):
        yield orjson.dumps(content) + b"\n"


def csv_rows(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> Iterator[str]:
    outcomes = _latest_outcomes(engine)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for content in invocations(engine, start, end):
        base = {key: content.get(key) for key in CSV_COLUMNS}
        for card in content.get("cards") or [{}]:
            writer.writerow(
                {
                    **base,
                    "cardUuid": card.get("uuid"),
                    "ruleId": card.get("ruleId"),
                    "indicator": card.get("indicator"),
                    "summary": card.get("summary"),
                    "latestOutcome": outcomes.get(card.get("uuid") or ""),
                }
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _outcome(status: int | None) -> str:
    if status is None or status < 400:
        return "0"
    return "4" if status < 500 else "8"


def audit_event(content: dict[str, Any]) -> dict[str, Any]:
    """One invocation as a BALP-shaped R4 AuditEvent: the EHR and the user as agents, the patient and the
    hookInstance (as the transaction id) as entities, each card as an entity detail."""
    caller = content.get("caller") or {}
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
            "who": {"identifier": {"value": caller.get("iss") or "unauthenticated CDS client"}},
            "requestor": False,
        },
        {
            "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
            "who": {"display": f"palbociclib CDS service {content.get('serviceId')}"},
            "requestor": False,
        },
    ]
    if content.get("userId"):
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "who": {"reference": content["userId"]},
                "requestor": True,
            }
        )
    entities: list[dict[str, Any]] = [
        {
            "what": {"identifier": {"value": content.get("hookInstance") or "unknown"}},
            "type": {
                "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                "code": "XrequestId",
            },
            "detail": [
                {"type": f"card {c.get('ruleId')}", "valueString": f"{c.get('indicator')}: {c.get('summary')}"}
                for c in content.get("cards") or []
            ]
            or None,
        }
    ]
    if content.get("patientId"):
        entities.append(
            {
                "what": {"reference": f"Patient/{content['patientId']}"},
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": content["recordId"],
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "Restful Operation",
        },
        "subtype": [
            {
                "system": "urn:palbociclib-cds:audit-subtype",
                "code": "cds-hooks-call",
                "display": f"CDS Hooks {content.get('hook') or 'service'} call",
            }
        ],
        "action": "E",
        "recorded": content["recordedAt"],
        "outcome": _outcome(content.get("httpStatus")),
        "agent": agents,
        "source": {
            "observer": {"display": "palbociclib-cds"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": entities,
    }
    if content.get("error"):
        event["outcomeDesc"] = str(content["error"].get("message"))
    for entity in entities:
        if entity.get("detail") is None:
            entity.pop("detail", None)
    return event


def fhir_bundle(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    events = [audit_event(content) for content in invocations(engine, start, end)]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "total": len(events),
        "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in events],
    }
