"""Dose, schedule, start, reasons and food instruction of a palbociclib MedicationRequest, in every encoding
the clinical brief (§1.2) lists, and never an exception on malformed input."""

from __future__ import annotations

import copy
import json
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.snapshot.model import DoseSchedule, OrderDetails, Product
from cds_service.snapshot.order_details import (
    DOSE_PROBLEM,
    SCHEDULE_PROBLEM,
    describe_order,
    describe_schedule,
    text_per_day,
    text_schedule,
    text_strength,
)
from cds_service.terminology import ValueSets
from tests.unit.fhir import RXNORM, UCUM

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"
TAB_125 = Product(RXNORM, "2284105", "palbociclib 125 MG Oral Tablet", frozenset({"palbociclib"}), "tablet", 125.0)
TAB_100 = Product(RXNORM, "2284102", "palbociclib 100 MG Oral Tablet", frozenset({"palbociclib"}), "tablet", 100.0)
TAB_75 = Product(RXNORM, "2284107", "palbociclib 75 MG Oral Tablet", frozenset({"palbociclib"}), "tablet", 75.0)
CAP_125 = Product(RXNORM, "1601390", "Ibrance 125 MG Oral Capsule", frozenset({"palbociclib"}), "capsule", 125.0)
NO_STRENGTH = Product(RXNORM, "1601377", "palbociclib-containing concept", frozenset({"palbociclib"}), None, None)

DAILY = {"frequency": 1, "period": 1, "periodUnit": "d"}


def qty(value: Any, unit: str | None = "mg", code: str | None = "mg") -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if unit is not None:
        out["unit"] = unit
    if code is not None:
        out["system"] = UCUM
        out["code"] = code
    return out


def days(value: float, code: str = "d") -> dict[str, Any]:
    return {"value": value, "unit": "day", "system": UCUM, "code": code}


def order(
    dose: dict[str, Any] | None = None,
    *,
    repeat: dict[str, Any] | None = None,
    code: str | None = None,
    text: str | None = None,
    dispense: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A draft palbociclib MedicationRequest with one dosage instruction."""
    dosage: dict[str, Any] = {}
    if text is not None:
        dosage["text"] = text
    timing: dict[str, Any] = {}
    if repeat is not None:
        timing["repeat"] = repeat
    if code is not None:
        timing["code"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": code}]
        }
    if timing:
        dosage["timing"] = timing
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "palbo",
        "status": "draft",
        "intent": "order",
        "dosageInstruction": [dosage],
    }
    if dispense is not None:
        resource["dispenseRequest"] = dispense
    resource.update(extra)
    return resource


def labelled(dose: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return order(dose or qty(125), repeat={**DAILY, "boundsDuration": days(21)}, **extra)


def schedule_of(resource: dict[str, Any], product: Product | None = TAB_125) -> DoseSchedule:
    schedule = describe_schedule(resource, product)
    assert schedule is not None
    return schedule


def dose_problems(schedule: DoseSchedule) -> list[str]:
    return [p for p in schedule.problems if p.startswith(DOSE_PROBLEM)]


# --------------------------------------------------------------------------------------------- dose forms


@pytest.mark.parametrize(
    ("dose", "product", "expected_mg"),
    [
        (qty(125), TAB_125, 125.0),
        (qty(125, unit="mg", code=None), TAB_125, 125.0),
        (qty(125, unit="MG", code=None), TAB_125, 125.0),
        (qty(125, unit="milligrams", code=None), TAB_125, 125.0),
        (qty(0.125, unit="g", code="g"), TAB_125, 125.0),
        (qty(1, unit="tablet", code="{tablet}"), TAB_125, 125.0),
        (qty(1, unit="tablet", code=None), TAB_125, 125.0),
        (qty(1, unit="TAB", code=None), TAB_100, 100.0),
        (qty(1, unit=None, code="TAB"), TAB_75, 75.0),
        (qty(1, unit="capsule", code="{capsule}"), CAP_125, 125.0),
        (qty(1, unit="CAP", code=None), CAP_125, 125.0),
        (qty(1, unit="tablet", code="1"), TAB_125, 125.0),
        (qty(2, unit="tablet", code="{tablet}"), TAB_75, 150.0),
        (qty(100), None, 100.0),
        (qty("125"), TAB_125, 125.0),
    ],
    ids=[
        "mg",
        "mg-unit-only",
        "MG-uppercase",
        "milligrams-word",
        "grams",
        "1-tablet-ucum",
        "1-tablet-unit-only",
        "TAB",
        "TAB-as-code",
        "1-capsule",
        "CAP",
        "unity-code-beside-tablet",
        "2-tablets-of-75",
        "mg-without-product",
        "numeric-string-value",
    ],
)
def test_dose_per_administration(dose: dict[str, Any], product: Product | None, expected_mg: float) -> None:
    schedule = schedule_of(labelled(dose), product)
    assert schedule.dose_mg == expected_mg
    assert schedule.daily_dose_mg == expected_mg
    assert dose_problems(schedule) == []


def test_dose_quantity_directly_on_the_dosage_is_read() -> None:
    resource = order(repeat={**DAILY, "boundsDuration": days(21)})
    resource["dosageInstruction"][0]["doseQuantity"] = qty(125)
    assert schedule_of(resource).dose_mg == 125.0


def test_dose_and_rate_given_as_an_object_is_read() -> None:
    resource = order(repeat={**DAILY, "boundsDuration": days(21)})
    resource["dosageInstruction"][0]["doseAndRate"] = {"doseQuantity": qty(100)}
    assert schedule_of(resource, TAB_100).dose_mg == 100.0


def test_ordered_dose_wins_over_calculated() -> None:
    resource = labelled()
    resource["dosageInstruction"][0]["doseAndRate"] = [
        {"type": {"coding": [{"code": "calculated"}]}, "doseQuantity": qty(150)},
        {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": qty(125)},
    ]
    assert schedule_of(resource).dose_mg == 125.0


def test_contained_medication_gives_the_strength_of_a_tablet_count() -> None:
    resource = labelled(qty(1, unit="tablet", code="{tablet}"))
    resource["medicationReference"] = {"reference": "#med"}
    resource["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med",
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": "palbociclib"},
                    "strength": {"numerator": qty(100), "denominator": qty(1, unit="tablet", code="{tablet}")},
                }
            ],
        }
    ]
    assert schedule_of(resource, None).dose_mg == 100.0


@pytest.mark.parametrize(
    ("product", "text", "mg"),
    [
        (None, "palbociclib 125 MG Oral Tablet", 125.0),
        (TAB_100, "palbociclib 125 MG Oral Tablet", 100.0),  # the product code wins
        (None, "palbociclib", None),
    ],
)
def test_medicine_text_gives_the_strength_when_no_code_does(
    product: Product | None, text: str, mg: float | None
) -> None:
    schedule = describe_schedule(labelled(qty(1, unit="tablet", code="{tablet}")), product, text)
    assert schedule is not None
    assert schedule.dose_mg == mg


@pytest.mark.parametrize(
    ("text", "mg"),
    [
        ("palbociclib 100 MG Oral Tablet", 100.0),
        ("Ibrance 125mg capsule", 125.0),
        ("IBRANCE 75 mg tablet; palbociclib 75 MG", 75.0),
        ("palbociclib", None),
        ("palbociclib 75 mg / 100 mg", None),  # two amounts: not guessed
        ("oral solution 5 mg/mL", None),  # a concentration
        ("100 MG/DAY", None),  # a rate
        ("1100 mg", 1100.0),
    ],
)
def test_text_strength(text: str, mg: float | None) -> None:
    assert text_strength(text) == mg


@pytest.mark.parametrize(
    ("dose", "product", "problem"),
    [
        (qty(1.4, unit=None, code=None), TAB_125, "has no unit"),
        (qty(125, unit="mL", code="mL"), TAB_125, "neither a mass nor a tablet"),
        (qty(125, unit="tablet", code="mg"), TAB_125, "disagree"),
        (qty(1, unit="tablet", code="{tablet}"), None, "strength is unknown"),
        (qty(1, unit="tablet", code="{tablet}"), NO_STRENGTH, "strength is unknown"),
        ({"unit": "mg", "code": "mg", "system": UCUM}, TAB_125, "no usable value"),
        (qty(-125), TAB_125, "no usable value"),
        (qty(True), TAB_125, "no usable value"),
    ],
    ids=[
        "no-unit",
        "unknown-unit",
        "code-and-unit-disagree",
        "count-no-product",
        "count-no-strength",
        "no-value",
        "negative",
        "boolean",
    ],
)
def test_uninterpretable_dose_is_a_problem_never_a_guess(
    dose: dict[str, Any], product: Product | None, problem: str
) -> None:
    schedule = schedule_of(labelled(dose), product)
    assert schedule.dose_mg is None
    assert schedule.daily_dose_mg is None
    assert any(problem in p for p in dose_problems(schedule)), schedule.problems


@pytest.mark.parametrize(
    ("dose", "product", "problem"),
    [
        (qty(125), TAB_100, "125 mg is not a whole number of 100 mg tablets"),
        (qty(75), TAB_125, "75 mg is not a whole number of 125 mg tablets"),
        (qty(150), TAB_125, "150 mg is not a whole number of 125 mg tablets"),
        (qty(0.5, unit="tablet", code="{tablet}"), TAB_125, "must not be split"),
    ],
    ids=["125-on-100-tablet", "75-on-125-tablet", "150-on-125-tablet", "half-tablet"],
)
def test_unit_or_strength_mismatch_is_flagged_and_the_mg_dose_kept(
    dose: dict[str, Any], product: Product, problem: str
) -> None:
    schedule = schedule_of(labelled(dose), product)
    assert schedule.dose_mg is not None
    assert any(problem in p for p in dose_problems(schedule)), schedule.problems


def test_whole_tablets_of_the_product_are_not_a_mismatch() -> None:
    assert dose_problems(schedule_of(labelled(qty(250)), TAB_125)) == []


def test_dose_range_is_a_problem() -> None:
    resource = labelled()
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {"low": qty(100), "high": qty(125)}}]
    schedule = schedule_of(resource)
    assert schedule.dose_mg is None
    assert any("range" in p for p in schedule.problems)


@pytest.mark.parametrize(
    ("text", "product", "expected"),
    [
        ("125 mg by mouth once daily on days 1-21", TAB_125, 125.0),
        ("take 1 tablet daily days 1-21 q28d", TAB_100, 100.0),
        ("one capsule once daily for 21 days", CAP_125, 125.0),
    ],
)
def test_dose_from_text_when_no_quantity_is_coded(text: str, product: Product, expected: float) -> None:
    schedule = schedule_of(order(text=text), product)
    assert schedule.dose_mg == expected
    assert schedule.administrations_per_day == 1.0


def test_no_dose_anywhere_is_a_problem() -> None:
    schedule = schedule_of(order(repeat={**DAILY, "boundsDuration": days(21)}))
    assert schedule.dose_mg is None
    assert any("no dose is stated" in p for p in schedule.problems)


# --------------------------------------------------------------------------------------------- frequency


@pytest.mark.parametrize(
    ("repeat", "expected"),
    [
        ({"frequency": 1, "period": 1, "periodUnit": "d"}, 1.0),
        ({"frequency": 2, "period": 1, "periodUnit": "d"}, 2.0),
        ({"frequency": 1, "period": 12, "periodUnit": "h"}, 2.0),
        ({"frequency": 1, "period": 24, "periodUnit": "h"}, 1.0),
        ({"frequency": 1, "period": 8, "periodUnit": "h"}, 3.0),
        ({"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}, 1.0),
        ({"period": 1, "periodUnit": "d"}, 1.0),
        ({"frequency": 7, "period": 1, "periodUnit": "wk"}, 1.0),
        ({"frequency": 1, "period": 2, "periodUnit": "d"}, 0.5),
        ({"when": ["MORN"]}, 1.0),
    ],
    ids=["qd", "2-per-day", "q12h", "q24h", "q8h", "frequencyMax-ignored", "period-only", "7-per-week", "q48h", "when"],
)
def test_administrations_per_day_from_timing_repeat(repeat: dict[str, Any], expected: float) -> None:
    schedule = schedule_of(order(qty(125), repeat={**repeat, "boundsDuration": days(21)}))
    assert schedule.administrations_per_day == pytest.approx(expected)
    assert schedule.daily_dose_mg == pytest.approx(125.0 * expected)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("QD", 1.0), ("BID", 2.0), ("TID", 3.0), ("QID", 4.0), ("Q12H", 2.0), ("Q8H", 3.0), ("AM", 1.0), ("QOD", 0.5)],
)
def test_administrations_per_day_from_gts_code(code: str, expected: float) -> None:
    schedule = schedule_of(order(qty(125), repeat={"boundsDuration": days(21)}, code=code))
    assert schedule.administrations_per_day == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("125 mg once daily", 1.0),
        ("125 mg daily", 1.0),
        ("125 mg once a day", 1.0),
        ("125 mg qd", 1.0),
        ("125 mg PO every day", 1.0),
        ("125 mg twice daily", 2.0),
        ("125 mg twice a day", 2.0),
        ("125 mg BID", 2.0),
        ("125 mg b.i.d.", 2.0),
        ("125 mg q12h", 2.0),
        ("125 mg every 12 hours", 2.0),
        ("125 mg three times a day", 3.0),
        ("125 mg every other day", 0.5),
        ("125 mg days 1-21", None),
        ("every 28 days", None),
        ("If a dose is vomited, do not take it twice", None),
        ("Check blood counts twice in cycle 1", None),
    ],
)
def test_administrations_per_day_from_text(text: str, expected: float | None) -> None:
    assert text_per_day(text) == expected


def test_text_frequency_used_when_nothing_is_coded() -> None:
    schedule = schedule_of(order(qty(125), text="125 mg by mouth twice daily, days 1-21 of a 28-day cycle"))
    assert schedule.administrations_per_day == 2.0
    assert schedule.daily_dose_mg == 250.0


def test_a_patient_instruction_saying_twice_is_not_a_frequency_conflict() -> None:
    resource = labelled(text="125 mg by mouth once daily on days 1-21 of each 28-day cycle")
    resource["dosageInstruction"][0]["patientInstruction"] = "If you miss a dose, do not take it twice."
    assert schedule_of(resource).problems == ()


def test_text_and_coded_frequency_disagreeing_is_a_schedule_problem() -> None:
    resource = order(qty(125), repeat={**DAILY, "boundsDuration": days(21)}, text="125 mg twice daily")
    schedule = schedule_of(resource)
    assert schedule.administrations_per_day == 1.0  # coded timing wins
    assert any(p.startswith(SCHEDULE_PROBLEM) and "twice daily" in p for p in schedule.problems)


# --------------------------------------------------------------------------------------------- schedule


def supply(quantity: float | None = 21, duration: float | None = 28, unit: str = "{tablet}") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if quantity is not None:
        out["quantity"] = qty(quantity, unit="tablet", code=unit)
    if duration is not None:
        out["expectedSupplyDuration"] = days(duration)
    return out


@pytest.mark.parametrize(
    ("resource", "days_on", "cycle", "continuous", "encoding"),
    [
        (
            order(qty(125), repeat={**DAILY, "boundsDuration": days(21)}, dispense=supply()),
            21,
            28,
            False,
            "bounds-duration",
        ),
        (order(qty(125), repeat={**DAILY, "boundsDuration": days(21)}), 21, None, False, "bounds-duration"),
        (
            order(qty(125), repeat={**DAILY, "boundsDuration": {"value": 3, "code": "wk"}}, dispense=supply()),
            21,
            28,
            False,
            "bounds-duration",
        ),
        (order(qty(125), repeat={**DAILY, "count": 21}, dispense=supply()), 21, 28, False, "count"),
        (
            order(qty(125), repeat={"frequency": 2, "period": 1, "periodUnit": "d", "count": 42}),
            21,
            None,
            False,
            "count",
        ),
        (
            order(qty(125), repeat={**DAILY, "boundsPeriod": {"start": "2026-12-01", "end": "2026-12-21"}}),
            21,
            None,
            False,
            "bounds-period",
        ),
        (
            order(
                qty(125),
                repeat={**DAILY, "boundsPeriod": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-22T00:00:00Z"}},
            ),
            21,
            None,
            False,
            "bounds-period",
        ),
        (order(qty(125), text="125 mg daily on days 1-21 of each 28-day cycle"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily on days 1\u201321, q28d"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily, 21 days on, 7 days off"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily: 3 weeks on, 1 week off"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily for 21 days every 28 days"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily x21d then 7 days off"), 21, 28, False, "text"),
        (order(qty(125), text="125 mg daily, then 7 days off"), 21, 28, False, "text"),
        (order(qty(125), repeat=DAILY, dispense=supply(21, 28)), 21, 28, False, "dispense-quantity"),
        (order(qty(125), repeat=DAILY, dispense=supply(63, 84)), 21, 28, False, "dispense-quantity"),
        # continuous dosing
        (
            order(qty(125), repeat={**DAILY, "boundsDuration": days(28)}, dispense=supply(28, 28)),
            28,
            28,
            True,
            "bounds-duration",
        ),
        (order(qty(125), repeat={**DAILY, "boundsDuration": days(28)}), 28, None, True, "bounds-duration"),
        (order(qty(125), repeat=DAILY, dispense=supply(28, 28)), 28, 28, True, "dispense-quantity"),
        (order(qty(125), text="125 mg daily continuous"), None, None, True, "text"),
        # a 21-day cycle without the 7-day rest
        (order(qty(125), repeat=DAILY, dispense=supply(21, 21)), 21, 21, True, "dispense-quantity"),
        (order(qty(125), text="125 mg daily q21d"), None, 21, False, "text"),
        (order(qty(125), text="125 mg daily, every 21 days"), None, 21, False, "text"),
        # other schedules
        (
            order(qty(125), repeat={**DAILY, "boundsDuration": days(14)}, dispense=supply(14, 21)),
            14,
            21,
            False,
            "bounds-duration",
        ),
        (order(qty(125), text="125 mg daily, 28-day cycle"), None, 28, False, "text"),
        (order(qty(125), repeat=DAILY, dispense=supply(None, 28)), None, 28, False, "expected-supply-duration"),
        (order(qty(125), repeat=DAILY), None, None, False, "none"),
    ],
    ids=[
        "bounds-21-supply-28",
        "bounds-21-alone",
        "bounds-3-weeks",
        "count-21-once-daily",
        "count-42-twice-daily",
        "bounds-period-dates",
        "bounds-period-datetimes",
        "text-days-1-21-28-day-cycle",
        "text-en-dash-q28d",
        "text-21-on-7-off",
        "text-3-weeks-on-1-week-off",
        "text-for-21-days-every-28-days",
        "text-x21d-7-days-off",
        "text-7-days-off-alone",
        "quantity-21-per-28",
        "quantity-63-per-84",
        "continuous-bounds-28-qty-28",
        "continuous-bounds-28-alone",
        "continuous-no-bounds-qty-28-per-28",
        "continuous-text",
        "no-rest-qty-21-per-21",
        "no-rest-text-q21d",
        "no-rest-text-every-21-days",
        "14-of-21",
        "cycle-only-text",
        "cycle-only-supply",
        "nothing-stated",
    ],
)
def test_schedule_encodings(
    resource: dict[str, Any], days_on: int | None, cycle: int | None, continuous: bool, encoding: str
) -> None:
    schedule = schedule_of(resource)
    assert (schedule.days_on, schedule.cycle_days, schedule.continuous) == (days_on, cycle, continuous)
    assert schedule.encoding == encoding
    assert [p for p in schedule.problems if p.startswith(SCHEDULE_PROBLEM)] == []


def test_text_continuous_against_coded_21_days_is_a_problem() -> None:
    resource = order(qty(125), repeat={**DAILY, "boundsDuration": days(21)}, text="125 mg daily, continuous")
    schedule = schedule_of(resource)
    assert schedule.days_on == 21
    assert any("continuous" in p for p in schedule.problems if p.startswith(SCHEDULE_PROBLEM))


def test_text_days_against_coded_days_is_a_problem() -> None:
    resource = order(qty(125), repeat={**DAILY, "boundsDuration": days(28)}, text="125 mg daily days 1-21")
    schedule = schedule_of(resource)
    assert schedule.days_on == 28
    assert any("21 dosing days" in p for p in schedule.problems)


def test_implausible_numbers_are_not_read() -> None:
    tiny = order(qty(125), repeat={"frequency": 1e-320, "period": 1, "periodUnit": "d", "count": 1e308})
    schedule = schedule_of(tiny)
    assert (schedule.administrations_per_day, schedule.daily_dose_mg, schedule.days_on) == (None, None, None)


def test_more_tablets_than_the_supply_covers_is_not_read_as_a_schedule() -> None:
    schedule = schedule_of(order(qty(125), repeat=DAILY, dispense=supply(63, 28)))
    assert schedule.days_on is None


@pytest.mark.parametrize(
    ("text", "days_on", "days_off", "cycle", "continuous"),
    [
        ("days 1-21 of a 28-day cycle", 21, None, 28, False),
        ("days 1 to 21", 21, None, None, False),
        ("21 days on / 7 days off", 21, 7, 28, False),
        ("three weeks on, one week off", 21, 7, 28, False),
        ("every 4 weeks", None, None, 28, False),
        ("4-week cycle", None, None, 28, False),
        ("daily, continuously, no break", None, None, None, True),
        ("for 14 days every 21 days", 14, None, 21, False),
        ("125 mg once daily", None, None, None, False),
    ],
)
def test_text_schedule(
    text: str, days_on: int | None, days_off: int | None, cycle: int | None, continuous: bool
) -> None:
    found = text_schedule(text)
    assert (found.days_on, found.days_off, found.cycle, found.continuous) == (days_on, days_off, cycle, continuous)


def test_original_shows_the_dosage_as_received() -> None:
    schedule = schedule_of(
        order(
            qty(1, unit="tablet", code="{tablet}"),
            repeat={**DAILY, "boundsDuration": days(21)},
            text="1 tab daily d1-21",
            dispense=supply(),
        )
    )
    for part in (
        '"1 tab daily d1-21"',
        "dose 1 tablet",
        "frequency 1 per 1 d",
        "boundsDuration 21 d",
        "expectedSupplyDuration 28 d",
        "dispense 21 tablet",
    ):
        assert part in schedule.original


def test_more_than_one_dosage_is_read_from_the_first_and_flagged() -> None:
    resource = labelled()
    second = copy.deepcopy(resource["dosageInstruction"][0])
    second["sequence"] = 2
    second["doseAndRate"] = [{"doseQuantity": qty(100)}]
    resource["dosageInstruction"][0]["sequence"] = 1
    resource["dosageInstruction"].insert(0, second)
    schedule = schedule_of(resource)
    assert schedule.dose_mg == 125.0
    assert any("2 dosage instructions" in p for p in schedule.problems)


def test_no_dosage_instruction_gives_no_schedule() -> None:
    details = describe_order({"resourceType": "MedicationRequest", "status": "draft"}, TAB_125)
    assert details.schedule is None


# --------------------------------------------------------------------------------------------- start, reasons, food


@pytest.mark.parametrize(
    ("extra", "repeat", "expected"),
    [
        (
            {"authoredOn": "2026-11-20T14:55:00Z", "dispenseRequest": {"validityPeriod": {"start": "2026-11-22"}}},
            {**DAILY, "boundsPeriod": {"start": "2026-11-25", "end": "2026-12-15"}},
            date(2026, 11, 25),
        ),
        (
            {"authoredOn": "2026-11-20T14:55:00Z", "dispenseRequest": {"validityPeriod": {"start": "2026-11-22"}}},
            DAILY,
            date(2026, 11, 22),
        ),
        ({"authoredOn": "2026-11-20T14:55:00Z"}, DAILY, date(2026, 11, 20)),
        ({}, DAILY, None),
    ],
    ids=["bounds-period-start", "validity-period-start", "authored-on", "none"],
)
def test_start(extra: dict[str, Any], repeat: dict[str, Any], expected: date | None) -> None:
    assert describe_order(order(qty(125), repeat=repeat, **extra), TAB_125).start == expected


def test_reasons_from_reason_code_reference_and_notes() -> None:
    resource = labelled(
        reasonCode=[
            {"text": "Child-Pugh C cirrhosis"},
            {"coding": [{"system": "http://snomed.info/sct", "code": "x", "display": "Neutropenia"}]},
        ],
        reasonReference=[
            {"reference": "Condition/c1", "display": "Grade 4 neutropenia"},
            {"reference": "Condition/c2"},
        ],
        note=[{"text": "Reduced start: frail"}, {"text": "  "}, {"text": "Reduced start: frail"}],
    )
    assert describe_order(resource, TAB_125).reasons == (
        "Child-Pugh C cirrhosis",
        "Neutropenia",
        "Grade 4 neutropenia",
        "Reduced start: frail",
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("additionalInstruction", [{"text": "Take with food"}], True),
        (
            "additionalInstruction",
            [{"coding": [{"system": "http://snomed.info/sct", "code": "311504000", "display": "With or after food"}]}],
            True,
        ),
        ("patientInstruction", "Swallow whole with a meal", True),
        ("text", "125 mg by mouth once daily with food on days 1-21", True),
        ("text", "125 mg by mouth once daily with or without food", False),
        ("text", "125 mg by mouth once daily", False),
    ],
)
def test_food_instruction(field: str, value: Any, expected: bool) -> None:
    resource = labelled()
    resource["dosageInstruction"][0][field] = value
    assert describe_order(resource, CAP_125).food_instruction is expected


# --------------------------------------------------------------------------------------------- fixtures and robustness


def test_the_bundled_medication_fixture_reads_as_125_mg_a_day(vs: ValueSets) -> None:
    bundle = json.loads((FIXTURES / "palbociclib-bundled-medication.json").read_text())
    resources = [entry["resource"] for entry in bundle["entry"]]
    draft = next(r for r in resources if r["resourceType"] == "MedicationRequest" and r["status"] == "draft")
    medication = next(r for r in resources if r["resourceType"] == "Medication")
    product = vs.product(medication["code"]["coding"][0]["system"], medication["code"]["coding"][0]["code"])
    schedule = schedule_of(draft, product)
    assert (schedule.dose_mg, schedule.daily_dose_mg, schedule.days_on, schedule.cycle_days) == (125.0, 125.0, 21, 28)
    assert schedule.problems == ()


@pytest.mark.parametrize(
    "resource",
    [
        None,
        [],
        "MedicationRequest",
        {},
        {"dosageInstruction": "twice"},
        {"dosageInstruction": [None, 3, "x"]},
        {"dosageInstruction": [{"timing": "daily", "doseAndRate": "125 mg"}]},
        {"dosageInstruction": [{"timing": {"repeat": {"frequency": "x", "period": 0, "periodUnit": "fortnight"}}}]},
        {"dosageInstruction": [{"timing": {"repeat": {"frequency": -1, "period": 1, "periodUnit": "d"}}}]},
        {"dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-12-21", "end": "2026-12-01"}}}}]},
        {"dosageInstruction": [{"timing": {"repeat": {"boundsDuration": {"value": "21", "code": None}}}}]},
        {"dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": float("inf"), "code": "mg"}}]}]},
        {"dosageInstruction": [{"sequence": "first", "text": 125}], "dispenseRequest": {"quantity": "21"}},
        {"reasonCode": "neutropenia", "note": [3], "reasonReference": [{"display": 5}], "authoredOn": 20261120},
        {
            "medicationReference": {"reference": "#m"},
            "contained": [{"resourceType": "Medication", "id": "m", "ingredient": [{"strength": "125 mg"}]}],
        },
        {"dosageInstruction": [{"timing": {"repeat": {"boundsDuration": {"value": 1e308, "code": "mo"}}}}]},
        {
            "dosageInstruction": [
                {
                    "doseAndRate": [{"doseQuantity": {"value": 1e308, "code": "{tablet}"}}],
                    "timing": {"repeat": {"count": 1e308, "frequency": 1e-320, "period": 1, "periodUnit": "d"}},
                }
            ],
            "dispenseRequest": {"quantity": {"value": 21, "code": "{tablet}"}, "expectedSupplyDuration": {"value": 28}},
        },
    ],
)
def test_malformed_orders_never_raise(resource: Any) -> None:
    assert isinstance(describe_order(resource, TAB_125), OrderDetails)


_JUNK: list[Any] = [
    None,
    "",
    "x",
    "mg",
    0,
    -1,
    1.5,
    1e308,
    1e-320,
    float("inf"),
    True,
    [],
    {},
    [None],
    {"value": None},
    "2026-13-45",
]


def _mutate(node: Any, rng: random.Random) -> Any:
    if rng.random() < 0.12:
        return copy.deepcopy(rng.choice(_JUNK))
    if isinstance(node, dict):
        return {k: _mutate(v, rng) for k, v in node.items() if rng.random() > 0.05}
    if isinstance(node, list):
        return [_mutate(v, rng) for v in node]
    return node


def test_randomly_damaged_orders_never_raise() -> None:
    base = order(
        qty(1, unit="tablet", code="{tablet}"),
        repeat={
            **DAILY,
            "boundsDuration": days(21),
            "count": 21,
            "boundsPeriod": {"start": "2026-11-21", "end": "2026-12-11"},
        },
        code="QD",
        text="125 mg once daily on days 1-21 of each 28-day cycle, with food",
        dispense={**supply(), "validityPeriod": {"start": "2026-11-20"}},
        reasonCode=[{"text": "neutropenia"}],
        note=[{"text": "reduced start"}],
        authoredOn="2026-11-20",
    )
    rng = random.Random(20261120)
    for product in (TAB_125, CAP_125, NO_STRENGTH, None):
        for _ in range(500):
            assert isinstance(describe_order(_mutate(base, rng), product), OrderDetails)
