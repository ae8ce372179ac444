"""Dose, schedule, start date, documented reasons and food instructions of a palbociclib order.

FHIR ``Timing`` has no "N days on / M days off" construct, so sites encode the labelled 21-days-on /
7-days-off schedule in several ways (clinical brief §1.2); every one of them is read into one
``DoseSchedule``:

- ``timing.repeat.boundsDuration`` 21 d, ``count`` 21 with once daily, or a ``boundsPeriod`` spanning 21
  days (both dates inclusive, as FHIR Periods are);
- free text (``dosageInstruction.text``, ``patientInstruction``, ``timing.code.text``): "days 1-21",
  "21 days on", "3 weeks on, 1 week off", "7 days off", "q28d", "every 28 days", "28-day cycle",
  "continuous";
- the cycle length from the text, else from ``dispenseRequest.expectedSupplyDuration``; with no bounds at
  all, the dosing days from the dispensed quantity (21 tablets per 28 days; 28 per 28 days is continuous).

Structured timing wins over text; when the two disagree the disagreement is a problem ("Schedule: ...").

The dose per administration comes from ``doseAndRate[].doseQuantity`` (also tolerated: ``doseQuantity``
directly on the dosage and ``doseAndRate`` given as an object, both seen in CDS Hooks examples), in mg or g,
or as a count of tablets or capsules times the product's strength. Nothing is guessed: a dose with no
unit or an unknown unit has no mg value and is a problem ("Dose: ..."), and so is a mg dose that is not a
whole number of the product's tablets or capsules (tablets must not be split, capsules not opened).

Every reader tolerates malformed input: wrong types, missing elements and odd values give ``None``, an
empty result or a problem, never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from cds_service.snapshot.fhirjson import (
    as_dict,
    as_list,
    as_str,
    codings,
    concept_text,
    parse_date,
    parse_datetime,
    reference_id,
)
from cds_service.snapshot.model import DoseSchedule, OrderDetails, Product

DOSE_PROBLEM = "Dose: "
"""Prefix of problems with the dose itself (unit, strength, value)."""
SCHEDULE_PROBLEM = "Schedule: "
"""Prefix of problems with the schedule (coded timing and text disagree)."""

_DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
_DURATION_UNITS = {
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "wk": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "mo": 30.0,
    "month": 30.0,
    "months": 30.0,
}
_MASS_UNITS = {
    "mg": 1.0,
    "mgs": 1.0,
    "milligram": 1.0,
    "milligrams": 1.0,
    "gram": 1000.0,
    "grams": 1000.0,
    "ug": 0.001,
    "mcg": 0.001,
    "µg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}
_COUNT_UNITS = {
    "tablet": "tablet",
    "tablets": "tablet",
    "tab": "tablet",
    "tabs": "tablet",
    "{tablet}": "tablet",
    "{tablets}": "tablet",
    "{tab}": "tablet",
    "capsule": "capsule",
    "capsules": "capsule",
    "cap": "capsule",
    "caps": "capsule",
    "{capsule}": "capsule",
    "{capsules}": "capsule",
    "{cap}": "capsule",
}
# v3-GTSAbbreviation (the R4 timing-abbreviation value set): administrations per day.
_GTS_PER_DAY = {"QD": 1.0, "AM": 1.0, "PM": 1.0, "BED": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0, "QOD": 0.5}
_GTS_HOURLY = re.compile(r"^Q(\d{1,2})H$")
_WEEKLY = {"WK": 1 / 7, "MO": 1 / 30}

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_N = r"(\d{1,2}|one|two|three|four|five|six)"
_TEXT_FREQUENCY: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\b(four\s+times|4\s*(x|times))\s+(a\s+|per\s+)?(daily|day)\b|\bq\.?i\.?d\b|\bq\s*6\s*h"), 4.0),
    (re.compile(r"\b(three\s+times|3\s*(x|times))\s+(a\s+|per\s+)?(daily|day)\b|\bt\.?i\.?d\b|\bq\s*8\s*h"), 3.0),
    (
        re.compile(
            r"\b(twice|two\s+times|2\s*(x|times))\s+(a\s+|per\s+|each\s+)?(daily|day)\b|\bb\.?i\.?d\b"
            r"|\bq\s*12\s*h|\bevery\s+12\s+hours?\b"
        ),
        2.0,
    ),
    (re.compile(r"\bevery\s+other\s+day\b|\bq\.?o\.?d\b|\bevery\s+48\s+hours?\b"), 0.5),
    (
        re.compile(
            r"\b(once|1\s*(x|time)|one\s+time)\s+(a\s+|per\s+|each\s+)?(daily|day)\b|\bdaily\b|\bevery\s+day\b"
            r"|\beach\s+day\b|\bq\.?d\b|\bqday\b|\bq\s*24\s*h|\bevery\s+24\s+hours?\b|\bnightly\b|\bat\s+bedtime\b"
            r"|\bevery\s+(morning|evening)\b"
        ),
        1.0,
    ),
)
_DAYS_RANGE = re.compile(r"\bdays?\s*1\s*(?:-|to|through|thru)\s*(\d{1,2})\b")
_DAYS_ON = re.compile(rf"\b{_N}\s*(days?|weeks?)\s*on\b")
_DAYS_FOR = re.compile(rf"(?:\bfor|\bx|\u00d7)\s*{_N}\s*(?:consecutive\s+)?(d|days?|weeks?|wks?)\b")
_DAYS_OFF = re.compile(rf"\b{_N}\s*(days?|weeks?)\s*(?:off|of\s+rest|rest|break|without)\b")
_CYCLE = (
    re.compile(rf"\bq\s*{_N}\s*(d|days?|wks?|weeks?)\b"),
    re.compile(rf"\bevery\s+{_N}\s+(days|weeks)\b"),
    re.compile(rf"\b{_N}[-\s]?(day|week)\s+cycles?\b"),
    re.compile(rf"\bcycles?\s+(?:of|every|length\s+of)\s+{_N}\s+(days|weeks)\b"),
)
_CONTINUOUS = re.compile(
    r"\bcontinuous(ly)?\b|\bwithout\s+(a\s+)?(break|interruption|rest)\b|\bno\s+(break|rest|off\s+days?)\b"
)
_WITH_FOOD = re.compile(r"\b(with|after)\s+(food|a\s+meal|meals|a\s+snack)\b")
_TEXT_MG = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(mg|milligrams?)\b")
_TEXT_UNITS = re.compile(rf"\b{_N}\s*(tablets?|tabs?|capsules?|caps?)\b")


# --------------------------------------------------------------------------------------------- helpers


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number; an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


def _fmt(value: float) -> str:
    return f"{round(value, 4):g}"


_MAX_COUNT = 10_000
"""Beyond this, a number of days, doses or tablets is not a plausible order and is not read."""


def _whole(value: float) -> int | None:
    """A positive whole number (days, tablets) within a plausible range; ``None`` otherwise."""
    if not math.isfinite(value) or not 0 < value <= _MAX_COUNT:
        return None
    rounded = round(value)
    return rounded if rounded > 0 and abs(value - rounded) < 1e-6 else None


def _normalised(text: str) -> str:
    return re.sub("[\u2010-\u2015\u2212]", "-", text.casefold())


def _duration_days(duration: Any) -> int | None:
    """Whole days of a Duration (d, wk, mo by UCUM code or unit word)."""
    duration = as_dict(duration)
    value = _number(duration.get("value"))
    unit = (as_str(duration.get("code")) or as_str(duration.get("unit")) or "").strip().casefold()
    factor = _DURATION_UNITS.get(unit)
    if value is None or factor is None or value <= 0:
        return None
    return _whole(value * factor)


def _period_days(period: Any) -> int | None:
    """Calendar days a Period covers, both ends inclusive (an end at exactly midnight closes the day before)."""
    period = as_dict(period)
    start, end = parse_datetime(period.get("start")), parse_datetime(period.get("end"))
    if start is None or end is None or end < start:
        return None
    end_text = as_str(period.get("end")) or ""
    ends_at_midnight = "T" in end_text and end.time() == time(0, 0)
    days = (end.date() - start.date()).days + (0 if ends_at_midnight else 1)
    return days if days > 0 else None


# --------------------------------------------------------------------------------------------- dose


@dataclass
class _Dose:
    mg: float | None = None
    units: float | None = None
    """Tablets or capsules per administration, when known."""
    shown: str = "no dose stated"
    problems: list[str] = field(default_factory=list)


def _unit_meaning(unit: str) -> tuple[str, float | str] | None:
    """("mass", mg factor) or ("count", form) for a dose unit; ``None`` when it is not one of them."""
    unit = unit.strip()
    if unit == "g":
        return "mass", 1000.0
    folded = unit.casefold().rstrip(".")
    if folded in _MASS_UNITS:
        return "mass", _MASS_UNITS[folded]
    if folded in _COUNT_UNITS:
        return "count", _COUNT_UNITS[folded]
    return None


def _quantity_unit(quantity: dict[str, Any]) -> tuple[tuple[str, float | str] | None, str]:
    """The meaning of a Quantity's unit and, when there is none, why. The code and the unit text must not
    disagree; one of them being an unknown spelling (e.g. the UCUM unity "1" beside "tablet") is tolerated."""
    spelled = [s for s in (as_str(quantity.get("code")), as_str(quantity.get("unit"))) if s]
    if not spelled:
        return None, "has no unit"
    known = {m for m in (_unit_meaning(s) for s in spelled) if m is not None}
    if not known:
        return None, f"has a unit ('{spelled[0]}') that is neither a mass nor a tablet or capsule count"
    if len(known) > 1:
        return None, f"has a unit code and a unit text that disagree ('{spelled[0]}', '{spelled[-1]}')"
    return known.pop(), ""


def _dose_element(dosage: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(doseQuantity, doseRange): the ordered dose before a calculated one; a doseQuantity placed directly
    on the dosage is read too."""
    ordered: dict[str, Any] | None = None
    calculated: dict[str, Any] | None = None
    dose_range: dict[str, Any] | None = None
    for rate in as_list(dosage.get("doseAndRate")):
        rate = as_dict(rate)
        quantity = rate.get("doseQuantity")
        if isinstance(quantity, dict):
            if "calculated" in {c.code for c in codings(rate.get("type"))}:
                calculated = calculated or quantity
            else:
                ordered = ordered or quantity
        elif isinstance(rate.get("doseRange"), dict):
            dose_range = dose_range or rate["doseRange"]
    direct = dosage.get("doseQuantity")
    return ordered or (direct if isinstance(direct, dict) else None) or calculated, dose_range


def _shown_quantity(quantity: dict[str, Any]) -> str:
    value = quantity.get("value")
    unit = as_str(quantity.get("unit")) or as_str(quantity.get("code")) or "(no unit)"
    number = _number(value) if not isinstance(value, str) else None
    shown_value = _fmt(number) if number is not None else repr(value)[:20]
    return f"{shown_value} {unit}"


def _from_units(count: float, form: str, strength: float | None, dose: _Dose) -> None:
    dose.units = count
    if _whole(count) is None:
        dose.problems.append(f"{DOSE_PROBLEM}{_fmt(count)} {form}s per dose: {form}s must not be split or opened")
    if strength is None:
        dose.problems.append(f"{DOSE_PROBLEM}{_fmt(count)} {form}(s) ordered but the product's strength is unknown")
        return
    dose.mg = count * strength


def _read_dose(dosage: dict[str, Any], strength: float | None) -> _Dose:
    quantity, dose_range = _dose_element(dosage)
    if quantity is None:
        if dose_range is not None:
            low = _shown_quantity(as_dict(dose_range.get("low")))
            high = _shown_quantity(as_dict(dose_range.get("high")))
            dose = _Dose(shown=f"range {low} to {high}")
            dose.problems.append(f"{DOSE_PROBLEM}given as a range ({low} to {high}), not one dose")
            return dose
        return _dose_from_text(as_str(dosage.get("text")) or "", strength)
    dose = _Dose(shown=_shown_quantity(quantity))
    value = _number(quantity.get("value"))
    if value is None or value <= 0:
        dose.problems.append(f"{DOSE_PROBLEM}the dose {dose.shown} has no usable value")
        return dose
    meaning, problem = _quantity_unit(quantity)
    if meaning is None:
        dose.problems.append(f"{DOSE_PROBLEM}the dose {dose.shown} {problem}")
    elif meaning[0] == "mass":
        dose.mg = value * float(meaning[1])
    else:
        _from_units(value, str(meaning[1]), strength, dose)
    return dose


def _dose_from_text(text: str, strength: float | None) -> _Dose:
    """A dose in the dosage text when no quantity is coded: "125 mg", or "1 tablet" times the strength."""
    folded = _normalised(text)
    mg = _TEXT_MG.search(folded)
    if mg:
        dose = _Dose(mg=float(mg.group(1)), shown=f"{mg.group(0)} (from the text)")
        return dose
    units = _TEXT_UNITS.search(folded)
    if units:
        count = _count(units.group(1))
        dose = _Dose(shown=f"{units.group(0)} (from the text)")
        if count is not None:
            form = "capsule" if units.group(2).startswith("cap") else "tablet"
            _from_units(float(count), form, strength, dose)
        return dose
    return _Dose(problems=[f"{DOSE_PROBLEM}no dose is stated"])


def _check_strength(dose: _Dose, product: Product | None, strength: float | None) -> None:
    """A mg dose must be a whole number of the product's tablets or capsules."""
    if dose.mg is None or strength is None or dose.units is not None:
        return
    count = dose.mg / strength
    form = (product.form if product else None) or "unit"
    if _whole(count) is None:
        dose.problems.append(f"{DOSE_PROBLEM}{_fmt(dose.mg)} mg is not a whole number of {_fmt(strength)} mg {form}s")
    else:
        dose.units = count


# --------------------------------------------------------------------------------------------- frequency


def _repeat_per_day(repeat: dict[str, Any]) -> tuple[float | None, str]:
    frequency = _number(repeat.get("frequency"))
    period = _number(repeat.get("period"))
    unit = as_str(repeat.get("periodUnit"))
    if period is not None:
        days = _DAYS_PER_UNIT.get(unit or "")
        if days is None or period <= 0 or (frequency is not None and frequency <= 0):
            return None, f"frequency {frequency} per {period} {unit}"
        frequency = frequency or 1.0
        shown = f"frequency {_fmt(frequency)} per {_fmt(period)} {unit}"
        per_day = round(frequency / (period * days), 6)
        return (per_day if math.isfinite(per_day) and 0 < per_day <= 24 * 60 else None), shown
    events = max(len(_strings(repeat.get("when"))), len(_strings(repeat.get("timeOfDay"))))
    if frequency is None and events:
        return float(events), f"{events} time(s) of day"
    return None, ""


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _code_per_day(code: Any) -> tuple[float | None, str]:
    for coding in codings(code):
        upper = coding.code.upper()
        if upper in _GTS_PER_DAY:
            return _GTS_PER_DAY[upper], f"code {coding.code}"
        if upper in _WEEKLY:
            return _WEEKLY[upper], f"code {coding.code}"
        hourly = _GTS_HOURLY.match(upper)
        if hourly and int(hourly.group(1)) > 0:
            return round(24 / int(hourly.group(1)), 6), f"code {coding.code}"
    return None, ""


def text_per_day(text: str) -> float | None:
    """Administrations per day stated in free text ("once daily", "bid", "q12h" ...)."""
    folded = _normalised(text)
    for pattern, per_day in _TEXT_FREQUENCY:
        if pattern.search(folded):
            return per_day
    return None


def frequency_words(per_day: float) -> str:
    if abs(per_day - 1) < 1e-6:
        return "once daily"
    if abs(per_day - 2) < 1e-6:
        return "twice daily"
    if per_day > 1:
        return f"{_fmt(per_day)} times daily"
    return f"once every {_fmt(1 / per_day)} days"


@dataclass
class _Frequency:
    per_day: float | None
    shown: list[str]
    problems: list[str]


def _read_frequency(timing: dict[str, Any], text: str) -> _Frequency:
    repeat = as_dict(timing.get("repeat"))
    structured, shown = _repeat_per_day(repeat)
    coded, coded_shown = _code_per_day(timing.get("code"))
    written = text_per_day(text)
    parts = [p for p in (shown, coded_shown) if p]
    problems: list[str] = []
    per_day = structured if structured is not None else coded
    if structured is not None and coded is not None and abs(structured - coded) > 1e-6:
        problems.append(
            f"{SCHEDULE_PROBLEM}the timing code says {frequency_words(coded)} but the repeat says "
            f"{frequency_words(structured)}"
        )
    if per_day is not None and written is not None and abs(per_day - written) > 1e-6:
        problems.append(
            f"{SCHEDULE_PROBLEM}the text says {frequency_words(written)} but the coded timing says "
            f"{frequency_words(per_day)}"
        )
    if per_day is None:
        per_day = written
    return _Frequency(per_day, parts, problems)


# --------------------------------------------------------------------------------------------- schedule


@dataclass
class _TextSchedule:
    days_on: int | None = None
    days_off: int | None = None
    cycle: int | None = None
    continuous: bool = False


def _days(number: str, unit: str) -> int | None:
    count = _count(number)
    if count is None:
        return None
    return count * 7 if unit.startswith("w") else count


def _first(patterns: Iterable[re.Pattern[str]], text: str) -> int | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return _days(found.group(1), found.group(2))
    return None


def text_schedule(text: str) -> _TextSchedule:
    """Days on, days off, cycle length and "continuous" as free text states them."""
    folded = _normalised(text)
    found = _TextSchedule()
    days_range = _DAYS_RANGE.search(folded)
    if days_range:
        found.days_on = int(days_range.group(1))
    else:
        found.days_on = _first((_DAYS_ON, _DAYS_FOR), folded)
    found.days_off = _first((_DAYS_OFF,), folded)
    found.cycle = _first(_CYCLE, folded)
    found.continuous = bool(_CONTINUOUS.search(folded)) and not found.days_off
    if found.cycle is None and found.days_on and found.days_off:
        found.cycle = found.days_on + found.days_off
    if found.days_on is None and found.cycle and found.days_off and found.cycle > found.days_off:
        found.days_on = found.cycle - found.days_off
    if found.days_on is None and found.cycle is None and found.days_off == 7:
        # "7 days off" alone: brief §1.2 encoding 4 lists it as a spelling of the labelled schedule.
        found.days_on, found.cycle = 21, 28
    return found


def _structured_days(repeat: dict[str, Any], per_day: float | None) -> list[tuple[str, int, str]]:
    """(encoding, dosing days, as received) from the coded bounds of the timing."""
    found: list[tuple[str, int, str]] = []
    duration = _duration_days(repeat.get("boundsDuration"))
    if duration:
        found.append(("bounds-duration", duration, f"boundsDuration {duration} d"))
    count = _number(repeat.get("count"))
    if count and count > 0 and per_day:
        days = _whole(count / per_day)
        if days:
            found.append(("count", days, f"count {_fmt(count)}"))
    period_days = _period_days(repeat.get("boundsPeriod"))
    if period_days:
        period = as_dict(repeat.get("boundsPeriod"))
        found.append(("bounds-period", period_days, f"boundsPeriod {period.get('start')} to {period.get('end')}"))
    return found


def _cycle_from_supply(supply: int) -> int | None:
    """A days supply as a cycle length: one cycle of 21 to 35 days, or whole 28-day cycles."""
    if 21 <= supply <= 35:
        return supply
    if supply % 28 == 0:
        return 28
    return None


def _quantity_units(quantity: Any) -> float | None:
    quantity = as_dict(quantity)
    value = _number(quantity.get("value"))
    meaning, _ = _quantity_unit(quantity)
    if value is None or value <= 0 or meaning is None or meaning[0] != "count":
        return None
    return value


@dataclass
class _Schedule:
    days_on: int | None = None
    cycle: int | None = None
    continuous: bool = False
    encoding: str = "none"
    shown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _read_schedule(
    repeat: dict[str, Any], dispense: dict[str, Any], text: str, per_day: float | None, dose: _Dose
) -> _Schedule:
    schedule = _Schedule()
    structured = _structured_days(repeat, per_day)
    written = text_schedule(text)
    schedule.shown = [shown for _, _, shown in structured]
    if structured:
        schedule.encoding, schedule.days_on, _ = structured[0]
        for encoding, days, _ in structured[1:]:
            if days != schedule.days_on:
                schedule.problems.append(
                    f"{SCHEDULE_PROBLEM}{schedule.encoding} gives {schedule.days_on} days but {encoding} {days}"
                )
        _compare_with_text(schedule, written)
    elif written.days_on:
        schedule.encoding, schedule.days_on = "text", written.days_on
    schedule.cycle = written.cycle
    supply = _duration_days(dispense.get("expectedSupplyDuration"))
    if supply:
        schedule.shown.append(f"expectedSupplyDuration {supply} d")
        if schedule.cycle is None:
            schedule.cycle = _cycle_from_supply(supply)
    if schedule.days_on is None:
        _days_from_quantity(schedule, dispense, supply, per_day, dose)
    schedule.continuous = _is_continuous(schedule.days_on, schedule.cycle, written.continuous)
    if schedule.encoding == "none" and (schedule.cycle or written.continuous):
        schedule.encoding = "text" if (written.cycle or written.continuous) else "expected-supply-duration"
    return schedule


def _compare_with_text(schedule: _Schedule, written: _TextSchedule) -> None:
    if written.days_on and written.days_on != schedule.days_on:
        schedule.problems.append(
            f"{SCHEDULE_PROBLEM}the text says {written.days_on} dosing days but the coded timing "
            f"{schedule.days_on} days"
        )
    elif written.continuous and schedule.days_on is not None and schedule.days_on < (written.cycle or 28):
        schedule.problems.append(
            f"{SCHEDULE_PROBLEM}the text says continuous dosing but the coded timing stops after "
            f"{schedule.days_on} days"
        )


def _days_from_quantity(
    schedule: _Schedule, dispense: dict[str, Any], supply: int | None, per_day: float | None, dose: _Dose
) -> None:
    """No bounds and no text: dosing days = units dispensed / units per day, per cycle of the supply."""
    units = _quantity_units(dispense.get("quantity"))
    if units is None or supply is None or per_day is None or not dose.units:
        return
    dosing_days = units / (dose.units * per_day)
    if dosing_days > supply + 1e-6:
        return  # more than the supply covers: inconsistent, not a schedule
    cycles = supply / schedule.cycle if schedule.cycle else 1.0
    days_on = _whole(dosing_days / cycles)
    if days_on:
        schedule.days_on, schedule.encoding = days_on, "dispense-quantity"
        schedule.cycle = schedule.cycle or supply


def _is_continuous(days_on: int | None, cycle: int | None, stated: bool) -> bool:
    if days_on is not None and cycle is not None:
        return days_on >= cycle
    if days_on is not None:
        return days_on >= 28
    return stated


# --------------------------------------------------------------------------------------------- the order


def _contained_strength(resource: dict[str, Any]) -> float | None:
    """mg per tablet or capsule of a contained Medication with one ingredient, when the product code
    gives none."""
    _, ref = reference_id(resource.get("medicationReference"))
    if not ref or not ref.startswith("#"):
        return None
    for contained in as_list(resource.get("contained")):
        contained = as_dict(contained)
        if contained.get("resourceType") != "Medication" or contained.get("id") != ref[1:]:
            continue
        ingredients = as_list(contained.get("ingredient"))
        if len(ingredients) != 1:
            return None
        strength = as_dict(as_dict(ingredients[0]).get("strength"))
        numerator, denominator = as_dict(strength.get("numerator")), as_dict(strength.get("denominator"))
        per = _number(denominator.get("value")) if denominator else 1.0
        meaning, _ = _quantity_unit(numerator)
        value = _number(numerator.get("value"))
        if meaning and meaning[0] == "mass" and value and per == 1.0:
            return value * float(meaning[1])
    return None


# An amount in mg that is not a concentration or a rate (mg/mL, mg/kg, mg/day).
_TEXT_STRENGTH = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*mg\b(?!\s*/\s*[a-zµ])", re.IGNORECASE)


def text_strength(text: str) -> float | None:
    """mg per tablet or capsule named in a medicine's text ("palbociclib 100 MG Oral Tablet"), for an order
    with no product code: the one mg amount the text names, or ``None`` when it names none or several."""
    amounts = {float(found) for found in _TEXT_STRENGTH.findall(text)}
    return amounts.pop() if len(amounts) == 1 else None


def _ordered_dosages(resource: dict[str, Any]) -> list[dict[str, Any]]:
    dosages = [d for d in as_list(resource.get("dosageInstruction")) if isinstance(d, dict)]
    return sorted(dosages, key=lambda d: _number(d.get("sequence")) or 0.0)


def _dosage_texts(dosage: dict[str, Any]) -> str:
    timing = as_dict(dosage.get("timing"))
    parts = [
        as_str(dosage.get("text")),
        as_str(dosage.get("patientInstruction")),
        concept_text(timing.get("code")) or None,
    ]
    parts += [concept_text(i) or None for i in as_list(dosage.get("additionalInstruction"))]
    return " | ".join(p for p in parts if p)


def describe_schedule(
    resource: dict[str, Any], product: Product | None, medicine_text: str = ""
) -> DoseSchedule | None:
    """The dose and schedule of a MedicationRequest; ``None`` when it has no dosage instruction.
    ``medicine_text`` is the medicine's text, read for the strength when neither a product code nor a contained
    Medication gives it."""
    dosages = _ordered_dosages(resource)
    if not dosages:
        return None
    dosage = dosages[0]
    strength = (product.strength_mg if product else None) or _contained_strength(resource)
    if strength is None and product is None:
        strength = text_strength(medicine_text)
    timing = as_dict(dosage.get("timing"))
    text = _dosage_texts(dosage)

    dose = _read_dose(dosage, strength)
    if dose.mg is not None and not 0.01 <= dose.mg <= _MAX_COUNT:
        dose.problems.append(f"{DOSE_PROBLEM}the dose {dose.shown} is not a plausible amount")
        dose.mg = None
    _check_strength(dose, product, strength)
    frequency = _read_frequency(timing, text)
    dispense = as_dict(resource.get("dispenseRequest"))
    schedule = _read_schedule(as_dict(timing.get("repeat")), dispense, text, frequency.per_day, dose)

    problems = dose.problems + frequency.problems + schedule.problems
    if len(dosages) > 1:
        problems.append(f"{DOSE_PROBLEM}{len(dosages)} dosage instructions; only the first was read")
    daily = dose.mg * frequency.per_day if dose.mg is not None and frequency.per_day is not None else None
    original = _original(dosage, dose, frequency, schedule, dispense)
    return DoseSchedule(
        dose_mg=dose.mg,
        administrations_per_day=frequency.per_day,
        daily_dose_mg=round(daily, 4) if daily is not None else None,
        days_on=schedule.days_on,
        cycle_days=schedule.cycle,
        continuous=schedule.continuous,
        encoding=schedule.encoding,
        original=original,
        problems=tuple(dict.fromkeys(problems)),
    )


def _original(
    dosage: dict[str, Any], dose: _Dose, frequency: _Frequency, schedule: _Schedule, dispense: dict[str, Any]
) -> str:
    parts: list[str] = []
    text = as_str(dosage.get("text"))
    if text:
        parts.append(f'"{text.strip()}"')
    parts.append(f"dose {dose.shown}")
    parts += frequency.shown
    parts += schedule.shown
    quantity = as_dict(dispense.get("quantity"))
    if quantity:
        parts.append(f"dispense {_shown_quantity(quantity)}")
    return "; ".join(parts)


def _start(resource: dict[str, Any]) -> date | None:
    for dosage in _ordered_dosages(resource):
        start = parse_date(
            as_dict(as_dict(as_dict(dosage.get("timing")).get("repeat")).get("boundsPeriod")).get("start")
        )
        if start:
            return start
    validity = as_dict(as_dict(resource.get("dispenseRequest")).get("validityPeriod"))
    return parse_date(validity.get("start")) or parse_date(resource.get("authoredOn"))


def _reasons(resource: dict[str, Any]) -> tuple[str, ...]:
    found = [concept_text(reason) for reason in as_list(resource.get("reasonCode"))]
    found += [as_str(as_dict(reference).get("display")) or "" for reference in as_list(resource.get("reasonReference"))]
    found += [as_str(as_dict(note).get("text")) or "" for note in as_list(resource.get("note"))]
    return tuple(dict.fromkeys(text.strip() for text in found if text and text.strip()))


def _food_instruction(resource: dict[str, Any]) -> bool:
    return any(_WITH_FOOD.search(_normalised(_dosage_texts(dosage))) for dosage in _ordered_dosages(resource))


def describe_order(resource: Any, product: Product | None, medicine_text: str = "") -> OrderDetails:
    """What a MedicationRequest says about how palbociclib is to be taken (``medicine_text``: the medicine's
    text)."""
    if not isinstance(resource, dict):
        return OrderDetails()
    return OrderDetails(
        schedule=describe_schedule(resource, product, medicine_text),
        start=_start(resource),
        reasons=_reasons(resource),
        food_instruction=_food_instruction(resource),
    )
