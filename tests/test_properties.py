"""Property-based tests: arbitrary JSON into the request parser, and mutated FHIR resources into the
snapshot builder and every rule, never raise anything but the service's own 4xx errors."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.errors import InvalidRequest
from cds_service.knowledge import Knowledge
from cds_service.orders import palbociclib_orders
from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.scenarios import record_resources
from cds_service.schemas.parse import parse_hook_request
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.medications import index_medications
from tests.support import SIGN, scenario

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)
KEYS = st.sampled_from(
    [
        "code",
        "coding",
        "system",
        "value",
        "unit",
        "valueQuantity",
        "valueString",
        "status",
        "effectiveDateTime",
        "subject",
        "reference",
        "medicationCodeableConcept",
        "medicationReference",
        "dosageInstruction",
        "doseAndRate",
        "timing",
        "repeat",
        "contained",
        "component",
        "clinicalStatus",
        "gender",
        "birthDate",
        "ingredient",
        "interpretation",
    ]
)
BASE_RECORD = record_resources(scenario("realistic-full-record")) + record_resources(
    scenario("partner-fulvestrant-contained-medication")
)
NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)


def _clean_order() -> Any:
    from cds_service.terminology import load_valuesets

    drafts = [r for r in BASE_RECORD if r.get("status") == "draft"]
    [(_, order), *_] = palbociclib_orders(drafts, None, load_valuesets(), index_medications(BASE_RECORD))
    return order


CLEAN_ORDER = _clean_order()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(JSON)
def test_any_json_body_parses_or_is_a_400(body: Any) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_hook_request(body, SIGN, "order-sign")


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization"]),
        JSON,
        max_size=6,
    ),
    st.dictionaries(
        st.sampled_from(["userId", "patientId", "draftOrders", "selections", "encounterId"]), JSON, max_size=5
    ),
)
def test_near_requests_parse_or_are_a_400(body: dict[str, Any], context: dict[str, Any]) -> None:
    body = {**body, "hook": "order-sign", "context": context}
    with contextlib.suppress(InvalidRequest):
        parse_hook_request(body, SIGN, "order-sign")


def _mutate(resource: Any, keys: list[str], values: list[Any]) -> Any:
    """Replace the values under some keys, wherever they occur, with arbitrary JSON."""
    mutated = copy.deepcopy(resource)
    targets = dict(zip(keys, values, strict=False))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                if key in targets and key != "resourceType":
                    node[key] = targets[key]
                else:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(mutated)
    return mutated


@FAST
@given(
    st.lists(st.integers(min_value=0, max_value=len(BASE_RECORD) - 1), min_size=1, max_size=8),
    st.lists(KEYS, min_size=1, max_size=4),
    st.lists(JSON, min_size=1, max_size=4),
)
def test_mutated_fhir_resources_never_break_the_snapshot_or_a_rule(
    knowledge: Knowledge, picks: list[int], keys: list[str], values: list[Any]
) -> None:
    resources = [
        _mutate(BASE_RECORD[i], keys, values) if n % 2 == 0 else copy.deepcopy(BASE_RECORD[i])
        for n, i in enumerate(picks)
    ]
    drafts = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    data = PatientData(resources={"all": tuple(resources)}, outcomes={"all": KeyOutcome("all", "prefetched")})
    snapshot = build_snapshot(
        data, patient_id="real-pat", draft_orders=drafts, evaluated_orders=[], as_of=NOW, vs=knowledge.valuesets
    )
    found = palbociclib_orders(drafts, None, knowledge.valuesets, index_medications(resources))
    orders = [order for _, order in found] + [CLEAN_ORDER]
    for order in orders:
        for rule in knowledge.rules:
            rule.evaluate(snapshot, order, rule.thresholds)
