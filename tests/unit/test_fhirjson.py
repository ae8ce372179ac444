"""Defensive FHIR JSON readers: dates, codings, references, and garbage that must never raise."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.snapshot.fhirjson import (
    as_dict,
    as_float,
    as_list,
    as_str,
    bundle_resources,
    codings,
    concept_text,
    evidence,
    first_datetime,
    parse_date,
    parse_datetime,
    reference_id,
    subject_patient_id,
)
from cds_service.snapshot.model import Code

GARBAGE: list[Any] = [
    None,
    0,
    42,
    -1.5,
    True,
    False,
    "",
    "   ",
    "not a date",
    [],
    [1, 2, 3],
    [None, {"a": [None]}],
    {},
    {"coding": None},
    {"coding": "abc"},
    {"coding": [None, 3, "x", [], {"code": None}, {"code": ""}, {"code": "  "}]},
    {"reference": 5},
    {"reference": ["Medication/1"]},
    {"start": 2020},
    {"nested": {"deeper": [{"junk": object()}]}},
    object(),
    b"bytes",
    (1, 2),
]


# ---------------------------------------------------------------------------------------------- dates
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("  2026-11-20  ", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T15:30:00Z", datetime(2026, 11, 20, 15, 30, tzinfo=UTC)),
        ("2026-11-20T15:30:00.123Z", datetime(2026, 11, 20, 15, 30, 0, 123000, tzinfo=UTC)),
        ("2026-11-20T15:30:00+00:00", datetime(2026, 11, 20, 15, 30, tzinfo=UTC)),
        ("2026-11-20T15:30:00", datetime(2026, 11, 20, 15, 30, tzinfo=UTC)),  # no zone: UTC
        (
            "2026-11-20T15:30:00+02:00",
            datetime(2026, 11, 20, 15, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            "2026-11-20T01:00:00-05:00",
            datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
        ),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_parse_datetime(value: str, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


def test_timezone_offset_is_kept() -> None:
    parsed = parse_datetime("2026-11-20T15:30:00+02:00")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parsed.astimezone(UTC).hour == 13


@pytest.mark.parametrize(
    "value",
    [
        "2026-13",  # month 13
        "2026-00",
        "2025-02-29",  # not a leap year
        "2026-11-31",
        "abcd",
        "20261",
        "2026-11-20T25:00:00Z",
        "yesterday",
        "",
        "   ",
        *GARBAGE,
    ],
)
def test_parse_datetime_rejects_garbage(value: Any) -> None:
    assert parse_datetime(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1960", date(1960, 1, 1)),
        ("1960-05", date(1960, 5, 1)),
        ("1960-05-17", date(1960, 5, 17)),
        ("2026-11-20T23:30:00-05:00", date(2026, 11, 20)),  # the date as written, not in UTC
        ("nope", None),
        (None, None),
        (19600517, None),
    ],
)
def test_parse_date(value: Any, expected: date | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("resource", "fields", "expected"),
    [
        ({"a": "2026-01-01"}, ("a",), datetime(2026, 1, 1, tzinfo=UTC)),
        ({"a": "bad", "b": "2026-02"}, ("a", "b"), datetime(2026, 2, 1, tzinfo=UTC)),
        ({"a": {"start": "2026-03-01"}}, ("a",), datetime(2026, 3, 1, tzinfo=UTC)),
        ({"a": {"end": "2026-03-09"}}, ("a",), datetime(2026, 3, 9, tzinfo=UTC)),
        ({"a": {"start": "2026-03-01", "end": "2026-03-09"}}, ("a",), datetime(2026, 3, 1, tzinfo=UTC)),
        ({"a": {"start": 5}}, ("a",), None),
        ({"a": {}}, ("a",), None),
        ({"a": "2026"}, ("missing", "a"), datetime(2026, 1, 1, tzinfo=UTC)),
        ({"a": "2026"}, (), None),
        ({}, ("a", "b"), None),
        ({"a": [1, 2]}, ("a",), None),
    ],
)
def test_first_datetime(resource: dict[str, Any], fields: tuple[str, ...], expected: datetime | None) -> None:
    assert first_datetime(resource, *fields) == expected


# ---------------------------------------------------------------------------------------------- primitives
@pytest.mark.parametrize("value", GARBAGE)
def test_readers_never_raise_on_garbage(value: Any) -> None:
    assert isinstance(as_dict(value), dict)
    assert isinstance(as_list(value), list)
    assert as_str(value) is None or isinstance(as_str(value), str)
    assert as_float(value) is None or isinstance(as_float(value), float)
    assert all(isinstance(c, Code) for c in codings(value))
    assert isinstance(concept_text(value), str)
    kind, rid = reference_id(value)
    assert kind is None or isinstance(kind, str)
    assert rid is None or isinstance(rid, str)
    assert list(bundle_resources(value)) == []


@pytest.mark.parametrize(("value", "expected"), [({"a": 1}, {"a": 1}), ([], {}), ("x", {}), (None, {}), (1, {})])
def test_as_dict(value: Any, expected: dict[str, Any]) -> None:
    assert as_dict(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [([1, 2], [1, 2]), ({"a": 1}, [{"a": 1}]), ("abc", []), (None, []), (5, []), ((1, 2), [])],
)
def test_as_list(value: Any, expected: list[Any]) -> None:
    assert as_list(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x", "x"), (" x ", " x "), ("", None), ("  ", None), (5, None), (None, None), (["x"], None)],
)
def test_as_str(value: Any, expected: str | None) -> None:
    assert as_str(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (1.5, 1.5), (-0.25, -0.25), (0, 0.0), (True, None), (False, None), ("1.5", None), (None, None)],
)
def test_as_float(value: Any, expected: float | None) -> None:
    assert as_float(value) == expected


# ---------------------------------------------------------------------------------------------- codings
def test_codings_of_a_codeable_concept() -> None:
    concept = {
        "coding": [
            {"system": "http://loinc.org", "code": " 751-8 ", "display": "ANC"},
            {"system": None, "code": 12345},
            {"code": ""},
            "junk",
            {"system": "s", "display": "no code"},
        ],
        "text": "Neutrophils",
    }
    assert codings(concept) == [Code("http://loinc.org", "751-8", "ANC"), Code("", "12345", None)]


def test_codings_of_a_bare_coding() -> None:
    assert codings({"system": "http://snomed.info/sct", "code": "10828004"}) == [
        Code("http://snomed.info/sct", "10828004", None)
    ]


def test_codings_single_coding_object_instead_of_list() -> None:
    assert codings({"coding": {"system": "s", "code": "c"}}) == [Code("s", "c", None)]


@pytest.mark.parametrize(
    ("concept", "expected"),
    [
        ({"text": "Neutrophils", "coding": [{"code": "1", "display": "ANC"}]}, "Neutrophils"),
        ({"text": "  ", "coding": [{"code": "1", "display": "ANC"}, {"code": "2", "display": "Neut"}]}, "ANC; Neut"),
        ({"coding": [{"code": "1"}]}, ""),
        ({"code": "1", "display": "Bare"}, "Bare"),
        # a Coding's code is optional: its display still names the concept
        ({"coding": [{"display": "Itraconazole 100 mg capsule"}]}, "Itraconazole 100 mg capsule"),
        ({"coding": [{"system": "s", "display": "A"}, {"code": "2", "display": "B"}, {"display": " "}]}, "A; B"),
        ({"coding": {"display": "Single"}}, "Single"),
        ({"display": "Bare, no code"}, "Bare, no code"),
        ({"coding": "not a list"}, ""),
        ({}, ""),
        (None, ""),
    ],
)
def test_concept_text(concept: Any, expected: str) -> None:
    assert concept_text(concept) == expected


# ---------------------------------------------------------------------------------------------- references
@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"reference": "Medication/123"}, ("Medication", "123")),
        ({"reference": "Medication/123/_history/2"}, ("Medication", "123")),
        ({"reference": "https://ehr.example.org/fhir/Medication/123"}, ("Medication", "123")),
        ({"reference": "https://ehr.example.org/fhir/Medication/123/_history/7"}, ("Medication", "123")),
        ({"reference": "Patient/abc/"}, ("Patient", "abc")),
        ({"reference": "#contained-1"}, (None, "#contained-1")),
        ({"reference": "123"}, (None, "123")),
        (
            {"reference": "urn:uuid:0f5c1a2e-1111-2222-3333-444455556666"},
            (None, "urn:uuid:0f5c1a2e-1111-2222-3333-444455556666"),
        ),
        ({"reference": ""}, (None, None)),
        ({"display": "only a display"}, (None, None)),
        ({"reference": None}, (None, None)),
        ("Medication/123", (None, None)),  # a string is not a Reference
        (None, (None, None)),
    ],
)
def test_reference_id(reference: Any, expected: tuple[str | None, str | None]) -> None:
    assert reference_id(reference) == expected


def _split_reference(ref: str) -> tuple[str | None, str | None]:
    """The general reading, which the common ``Type/id`` form skips."""
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (None, ref)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Patient", "p1", "_history", "", "x y", "#a"]), min_size=1, max_size=4))
def test_every_reference_reads_as_the_general_split_reads_it(segments: list[str]) -> None:
    ref = "/".join(segments)
    if ref.strip() and not ref.startswith("#"):
        assert reference_id({"reference": ref}) == _split_reference(ref)


# ---------------------------------------------------------------------------------------------- evidence, bundles
def test_evidence() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    found = evidence({"resourceType": "Observation", "id": "o1"}, when, "ANC 1.3")
    assert found.reference == "Observation/o1"
    assert found.date == when
    assert found.description == "ANC 1.3"
    anonymous = evidence({}, None, "x")
    assert anonymous.resource_type == "Resource"
    assert anonymous.resource_id is None
    assert anonymous.reference == "Resource"


def test_bundle_resources() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Observation", "id": "1"}},
            {"resource": {"resourceType": "OperationOutcome", "id": "oo"}},
            {"resource": {"id": "no-type"}},
            {"resource": {"resourceType": 7}},
            {"fullUrl": "x"},
            "junk",
            {"resource": {"resourceType": "Condition", "id": "2"}},
        ],
    }
    assert [r["id"] for r in bundle_resources(bundle)] == ["1", "2"]


def test_bundle_resources_of_a_single_resource() -> None:
    patient = {"resourceType": "Patient", "id": "p"}
    assert list(bundle_resources(patient)) == [patient]
    assert list(bundle_resources({"resourceType": "Bundle"})) == []
    assert list(bundle_resources({"resourceType": "Bundle", "entry": {"resource": patient}})) == [patient]


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"subject": {"reference": "Patient/p1"}}, "p1"),
        ({"subject": {"reference": "Patient/p1"}, "patient": {"reference": "Patient/p2"}}, "p1"),
        ({"subject": {"reference": "Group/g1"}, "patient": {"reference": "Patient/p2"}}, "p2"),
        ({"subject": {"reference": "#contained"}, "patient": {"reference": "Patient/p2"}}, "p2"),
        ({"subject": {"reference": "https://ehr.example.org/fhir/Patient/p3/_history/2"}}, "p3"),
        ({"patient": {"reference": "p4"}}, "p4"),
        ({"subject": {"reference": "Practitioner/x"}}, None),
        ({"subject": {"display": "no reference"}}, None),
        ({}, None),
    ],
)
def test_subject_patient_id(resource: dict[str, Any], expected: str | None) -> None:
    assert subject_patient_id(resource) == expected
