"""Prefetch template tokens: values from the hook context, and rendering with URL-encoded values."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.prefetch.templates import render, token_values, tokens_in


@pytest.mark.parametrize(
    ("user_id", "token", "value"),
    [
        ("Practitioner/123", "userPractitionerId", "123"),
        ("PractitionerRole/role-9", "userPractitionerRoleId", "role-9"),
        ("Patient/p1", "userPatientId", "p1"),
        ("RelatedPerson/rp", "userRelatedPersonId", "rp"),
        ("https://ehr.example.org/fhir/Practitioner/123", "userPractitionerId", "123"),
        ("https://ehr.example.org/fhir/PractitionerRole/r", "userPractitionerRoleId", "r"),
    ],
)
def test_user_tokens(user_id: str, token: str, value: str) -> None:
    values = token_values({"userId": user_id, "patientId": "p"})
    assert values[token] == value
    assert values["context.userId"] == user_id
    others = {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"} - {token}
    assert not others & set(values)


@pytest.mark.parametrize(
    "user_id", ["Device/1", "123", "Practitioner/", "", 123, None, {"reference": "Practitioner/1"}]
)
def test_no_user_token_without_a_known_user_reference(user_id: Any) -> None:
    values = token_values({"userId": user_id})
    assert not {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"} & set(values)


def test_only_primitive_context_fields_are_tokens() -> None:
    context: dict[str, Any] = {
        "userId": "Practitioner/123",
        "patientId": "pat-1",
        "encounterId": "enc-9",
        "count": 7,
        "flag": True,
        "ratio": 0.5,
        "draftOrders": {"resourceType": "Bundle", "entry": []},
        "selections": ["MedicationRequest/1"],
        "nothing": None,
    }
    values = token_values(context)
    assert values == {
        "context.userId": "Practitioner/123",
        "context.patientId": "pat-1",
        "context.encounterId": "enc-9",
        "context.count": "7",
        "userPractitionerId": "123",
    }
    assert all(isinstance(v, str) for v in values.values())


def test_empty_context() -> None:
    assert token_values({}) == {}


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("Patient/{{context.patientId}}", {"context.patientId": "123"}, "Patient/123"),
        ("Patient/{{ context.patientId }}", {"context.patientId": "123"}, "Patient/123"),
        (
            "Observation?patient={{context.patientId}}&code=http://loinc.org|751-8",
            {"context.patientId": "p1"},
            "Observation?patient=p1&code=http://loinc.org|751-8",  # the template itself is not encoded
        ),
        ("Patient/{{context.patientId}}", {"context.patientId": "a b"}, "Patient/a%20b"),
        ("Patient/{{context.patientId}}", {"context.patientId": "a/b"}, "Patient/a%2Fb"),
        ("X?p={{context.patientId}}", {"context.patientId": "x&y=z"}, "X?p=x%26y%3Dz"),
        ("X?p={{context.patientId}}", {"context.patientId": "a,b#c?d"}, "X?p=a%2Cb%23c%3Fd"),
        ("X?p={{context.patientId}}", {"context.patientId": "é"}, "X?p=%C3%A9"),
        (
            "PractitionerRole?practitioner={{userPractitionerId}}&p={{context.patientId}}",
            {"userPractitionerId": "9", "context.patientId": "1"},
            "PractitionerRole?practitioner=9&p=1",
        ),
        ("Patient?_count=1", {}, "Patient?_count=1"),
        ("{{context.patientId}}{{context.patientId}}", {"context.patientId": "z"}, "zz"),
    ],
)
def test_render(template: str, values: dict[str, str], expected: str) -> None:
    assert render(template, values) == expected


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("Patient/{{context.patientId}}", {}),
        ("Encounter/{{context.encounterId}}", {"context.patientId": "1"}),
        ("X?a={{context.patientId}}&b={{userPractitionerId}}", {"context.patientId": "1"}),
    ],
)
def test_render_without_a_value_gives_none(template: str, values: dict[str, str]) -> None:
    assert render(template, values) is None


def test_render_with_token_values_from_context() -> None:
    values = token_values({"userId": "Practitioner/dr 1", "patientId": "p/1"})
    assert render("Practitioner/{{userPractitionerId}}", values) == "Practitioner/dr%201"
    assert render("Condition?patient={{context.patientId}}", values) == "Condition?patient=p%2F1"
    assert render("Encounter/{{context.encounterId}}", values) is None


def test_tokens_in() -> None:
    template = "A?x={{context.patientId}}&y={{ userPractitionerId }}&z={{bad token}}"
    assert tokens_in(template) == ["context.patientId", "userPractitionerId"]
    assert tokens_in("Patient?_count=1") == []
