"""Malformed FHIR data in the prefetch or the draft orders never becomes a 500.

Seeded random mutations replace, delete or retype elements deep inside the resources of a realistic
request (keeping the CDS Hooks envelope valid); every answer must be a 200 or a 4xx with an
OperationOutcome.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.knowledge import Knowledge
from tests.support import SIGN, hook_request

JUNK: list[Any] = [
    None,
    0,
    -1.5,
    1e308,
    "",
    "x",
    "2026-13-45T99:00",
    "Patient/",
    [],
    {},
    [None, 1, "a"],
    {"coding": "x"},
    {"coding": [None, 1, {"code": 5, "system": []}]},
    {"reference": {"a": 1}},
    True,
    {"value": "1.2", "unit": 5},
    [{"resource": None}],
    "#missing",
]


def _mutate(node: Any, rng: random.Random, rate: float) -> None:
    if isinstance(node, dict):
        for key in list(node):
            if key == "resourceType":
                continue
            roll = rng.random()
            if roll < rate:
                node[key] = copy.deepcopy(rng.choice(JUNK))
            elif roll < rate * 1.5:
                del node[key]
            else:
                _mutate(node[key], rng, rate)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if rng.random() < rate:
                node[index] = copy.deepcopy(rng.choice(JUNK))
            else:
                _mutate(item, rng, rate)


@pytest.mark.parametrize("seed", range(6))
def test_mutated_fhir_data_never_gives_a_500(client: TestClient, knowledge: Knowledge, seed: int) -> None:
    rng = random.Random(seed)
    base = hook_request(knowledge, "realistic-full-record")
    statuses: dict[int, int] = {}
    for _ in range(40):
        request = copy.deepcopy(base)
        for value in request["prefetch"].values():
            _mutate(value, rng, 0.08)
        for entry in request["context"]["draftOrders"]["entry"]:
            _mutate(entry["resource"], rng, 0.08)
        response = client.post(f"/cds-services/{SIGN}", json=request)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["resourceType"] == "OperationOutcome"
    assert statuses.get(200, 0) > 0
