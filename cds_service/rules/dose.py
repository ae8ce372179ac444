"""Dose and schedule of the palbociclib order.

Source: IBRANCE US prescribing information §2.1 (125 mg once daily for 21 consecutive days, then 7 days off:
a 28-day cycle), §2.2 Table 1 (dose levels 125, 100, 75 mg/day; "if further dose reduction below 75 mg/day
is required, discontinue"), §2.2 and §8.6 (75 mg with an unavoidable strong CYP3A inhibitor or severe
hepatic impairment), §3 (strengths 125, 100, 75 mg); clinical brief §1.1-1.3, behaviours 2-6.

The order is read once into ``order.details.schedule`` (``snapshot/order_details.py``); these rules only
judge it. Policy decisions, documented here because the label does not make them:

- A single administration above 125 mg is above the maximum even when the frequency is not stated.
- Twice daily (or any frequency other than once daily) is reported by ``dose-above-maximum`` when it takes
  the daily dose above 125 mg, and otherwise by ``schedule-not-21-7`` (62.5 mg twice daily is 125 mg/day,
  but not the labelled once-daily regimen).
- A dose that cannot be read or reconciled with the product (no unit, unknown unit, a mg dose that is not a
  whole number of the product's tablets) raises ``dose-nonstandard``: it cannot be confirmed as a labelled
  dose. When a critical dose card fires, these problems are listed on it instead of on a second card.
- An order that states no schedule at all warns (brief §1.2: the 21/7 schedule has no native FHIR element,
  so it must be stated in coded bounds or text); a site may turn this off with the
  ``warn_when_schedule_unstated`` threshold of the ``dose-schedule`` rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cds_service.rules.base import Finding, Rule, Threshold
from cds_service.rules.safety_organs import child_pugh_records
from cds_service.snapshot.model import DoseSchedule, Evidence, PalbociclibOrder, PatientSnapshot
from cds_service.snapshot.order_details import DOSE_PROBLEM, SCHEDULE_PROBLEM, frequency_words

LABELLED_DOSES_MG = (125.0, 100.0, 75.0)
MAXIMUM_DAILY_MG = 125.0
MINIMUM_DAILY_MG = 75.0
REDUCED_START_DOSES_MG = (100.0, 75.0)
DAYS_ON = 21
CYCLE_DAYS = 28
_TOLERANCE = 0.01
_NOT_TAKEN = frozenset({"not-taken"})

# A reason on the order that only names the indication (breast cancer, its metastases) does not explain a
# reduced dose; one that speaks of toxicity, an interaction, the liver or tolerance does.
_INDICATION = re.compile(
    r"\b(breast|carcinoma|neoplasm|cancer|malignan\w*|metasta\w*|tumou?r|c50[.\w]*|c7[7-9][.\w]*|hr\+|her2\W?)",
    re.IGNORECASE,
)
_DOSE_REASON = re.compile(
    r"\b(dose|dosing|reduc\w*|toxicit\w*|neutropeni\w*|thrombocytopeni\w*|an(a)?emi\w*|cytopeni\w*|"
    r"hepatic\s+(impairment|dysfunction|insufficiency)|liver\s+(impairment|dysfunction|disease|failure)|"
    r"cirrho\w*|child[-\s]?pugh|cyp3a|inhibitor|interaction\w*|tolera\w*|adverse|side[-\s]effects?|frail\w*|"
    r"elderly|performance\s+status|ecog|renal|kidney|dialysis|fatigue|infection\w*)\b",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------- shared


def _mg(value: float) -> str:
    return f"{round(value, 2):g} mg"


def _is(value: float, *levels: float) -> bool:
    return any(abs(value - level) < _TOLERANCE for level in levels)


def _product(order: PalbociclibOrder) -> str:
    product = order.product
    if product is None:
        return f"{order.text or 'palbociclib'} (no coded product strength)"
    if product.strength_mg:
        return f"{product.display} ({_mg(product.strength_mg)} per {product.form or 'unit'})"
    return f"{product.display} (strength not coded)"


def _params(order: PalbociclibOrder, schedule: DoseSchedule | None) -> dict[str, str]:
    if schedule is None:
        return {
            "ordered": "no dosage instructions",
            "product": _product(order),
            "dose": "not stated",
            "frequency": "not stated",
            "daily_dose": "not computable",
            "problems": "none",
        }
    per_day = schedule.administrations_per_day
    return {
        "ordered": schedule.original,
        "product": _product(order),
        "dose": _mg(schedule.dose_mg) if schedule.dose_mg is not None else "not known",
        "frequency": frequency_words(per_day) if per_day else "frequency not stated",
        "daily_dose": f"{_mg(schedule.daily_dose_mg)}/day" if schedule.daily_dose_mg is not None else "not computable",
        "problems": "; ".join(_problems(schedule, DOSE_PROBLEM)) or "none",
    }


def _evidence(order: PalbociclibOrder, params: Mapping[str, str]) -> tuple[Evidence, ...]:
    return (
        Evidence(
            order.evidence.resource_type,
            order.evidence.resource_id,
            order.evidence.date,
            f"Draft order: {params['product']}; {params['ordered']}",
        ),
    )


def _problems(schedule: DoseSchedule, prefix: str) -> list[str]:
    return [p.removeprefix(prefix) for p in schedule.problems if p.startswith(prefix)]


# --------------------------------------------------------------------------------------------- dose


def _nearest_below(daily: float | None) -> str:
    """The labelled dose at or below a daily dose within the labelled range; empty when there is none."""
    if daily is None or daily < MINIMUM_DAILY_MG - _TOLERANCE or daily > MAXIMUM_DAILY_MG + _TOLERANCE:
        return ""
    return f"{max(level for level in LABELLED_DOSES_MG if level <= daily + _TOLERANCE):g}"


def evaluate_dose(snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]) -> list[Finding]:
    schedule = order.details.schedule
    if schedule is None:
        return []  # no dosage at all: the schedule rule says so
    params = _params(order, schedule)
    evidence = _evidence(order, params)
    daily, per_dose = schedule.daily_dose_mg, schedule.dose_mg
    dose_problems = _problems(schedule, DOSE_PROBLEM)

    highest = daily if daily is not None else per_dose
    if highest is not None and highest > MAXIMUM_DAILY_MG + _TOLERANCE:
        amount = f"{_mg(daily)}/day" if daily is not None else f"{_mg(highest)} per dose (frequency not stated)"
        if daily is not None and per_dose is not None and schedule.administrations_per_day not in (None, 1.0):
            amount += f" ({_mg(per_dose)} {params['frequency']})"
        return [Finding("dose-above-maximum", {**params, "amount": amount}, evidence)]
    if daily is not None and daily < MINIMUM_DAILY_MG - _TOLERANCE:
        return [Finding("dose-below-minimum", params, evidence)]

    issues = []
    if daily is not None and not _is(daily, *LABELLED_DOSES_MG):
        issues.append(f"{_mg(daily)}/day is not a labelled dose level (125, 100 or 75 mg/day)")
    elif daily is None and per_dose is not None and not _is(per_dose, *LABELLED_DOSES_MG):
        # Frequency unknown: any labelled regimen is one 125, 100 or 75 mg dose a day.
        issues.append(f"{_mg(per_dose)} per dose is not a labelled dose (125, 100 or 75 mg once daily)")
    issues += dose_problems
    if not issues:
        return []
    suggested = _nearest_below(daily if daily is not None else per_dose)
    finding_params = {**params, "dose_issue": "; ".join(issues), "suggested_dose_mg": suggested}
    return [Finding("dose-nonstandard", finding_params, evidence)]


# --------------------------------------------------------------------------------------------- schedule


def _frequency_issue(schedule: DoseSchedule) -> str | None:
    per_day, daily = schedule.administrations_per_day, schedule.daily_dose_mg
    if per_day is None:
        return "how often per day is not stated (the label is once daily)"
    if _is(per_day, 1.0):
        return None
    if daily is not None and not (MINIMUM_DAILY_MG - _TOLERANCE <= daily <= MAXIMUM_DAILY_MG + _TOLERANCE):
        return None  # the daily dose is out of range: the dose card reports the frequency
    return f"taken {frequency_words(per_day)}; the label is once daily"


def _cycle_issue(schedule: DoseSchedule, warn_unstated: bool) -> str | None:
    days_on, cycle = schedule.days_on, schedule.cycle_days
    if schedule.continuous:
        if days_on is not None and cycle is not None:
            return f"dosing on {days_on} of {cycle} days: continuous, with no 7-day break"
        return "continuous daily dosing with no 7-day break"
    if days_on is not None and cycle is not None:
        return None if (days_on, cycle) == (DAYS_ON, CYCLE_DAYS) else f"{days_on} days on in a {cycle}-day cycle"
    if days_on is not None:
        return None if days_on == DAYS_ON else f"{days_on} dosing days instead of 21"
    if cycle is not None:
        if cycle != CYCLE_DAYS:
            return f"a {cycle}-day cycle instead of 28 days (21 days on, 7 days off)"
        if schedule.encoding == "text":
            return None  # "q28d", "every 28 days", "28-day cycle" in the text: brief §1.2 encoding 4 (21/7)
        return "a 28-day cycle, but the dosing days (days 1-21) are not stated"
    return "no days-on / days-off schedule is stated" if warn_unstated else None


def _schedule_read(schedule: DoseSchedule) -> str:
    days_on = f"{schedule.days_on} dosing days" if schedule.days_on is not None else "dosing days not stated"
    cycle = f"{schedule.cycle_days}-day cycle" if schedule.cycle_days is not None else "cycle length not stated"
    continuous = ", continuous" if schedule.continuous else ""
    return f"{days_on}, {cycle}{continuous} (read from: {schedule.encoding})"


def evaluate_schedule(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    schedule = order.details.schedule
    params = _params(order, schedule)
    warn_unstated = bool(thresholds.get("warn_when_schedule_unstated", True))
    if schedule is None:
        if not warn_unstated:
            return []
        issues = ["the order has no dosage instructions (no dose, frequency or schedule)"]
        read, labelled = "nothing stated", ""
    else:
        found = [_frequency_issue(schedule), _cycle_issue(schedule, warn_unstated)]
        issues = [issue for issue in found if issue] + _problems(schedule, SCHEDULE_PROBLEM)
        read = _schedule_read(schedule)
        daily = schedule.daily_dose_mg
        labelled = f"{daily:g}" if daily is not None and _is(daily, *LABELLED_DOSES_MG) else ""
    if not issues:
        return []
    finding_params = {
        **params,
        "schedule_issue": issues[0],
        "schedule_issues": "; ".join(issues),
        "schedule_read": read,
        "labelled_dose_mg": labelled,
    }
    return [Finding("schedule-not-21-7", finding_params, _evidence(order, params))]


# --------------------------------------------------------------------------------------------- reduced start


def documented_reasons(reasons: tuple[str, ...]) -> list[str]:
    """Reasons and notes on the order that could explain a reduced dose (not the bare indication)."""
    return [r for r in reasons if _DOSE_REASON.search(r) or not _INDICATION.search(r)]


def _severe_hepatic_impairment(snapshot: PatientSnapshot) -> bool:
    """Child-Pugh class C as the hepatic-impairment rule reads it: the newest of a Child-Pugh observation
    and an active severe-hepatic-impairment condition (valuesets/conditions.safety.yaml)."""
    records = child_pugh_records(snapshot)
    return bool(records) and records[0][1] == "C"


def evaluate_reduced_start(
    snapshot: PatientSnapshot, order: PalbociclibOrder, _: Mapping[str, Threshold]
) -> list[Finding]:
    schedule = order.details.schedule
    if schedule is None or schedule.daily_dose_mg is None or not _is(schedule.daily_dose_mg, *REDUCED_START_DOSES_MG):
        return []
    earlier = [m for m in snapshot.medications_in("palbociclib") if m.source != "draft" and m.status not in _NOT_TAKEN]
    if earlier or documented_reasons(order.details.reasons):
        return []
    if any(m.is_current for m in snapshot.medications_in("strong-cyp3a-inhibitor")):
        return []
    if _severe_hepatic_impairment(snapshot):
        return []
    params = _params(order, schedule)
    reasons = order.details.reasons
    on_order = (
        f"the order's only reason names the indication ({'; '.join(reasons)})"
        if reasons
        else "no reason or note on the order"
    )
    checked = (
        "no earlier palbociclib in the medication orders, past orders or medication list; no current strong "
        f"CYP3A inhibitor; no Child-Pugh class C or severe hepatic impairment on record; {on_order}"
    )
    return [Finding("reduced-start-dose", {**params, "checked": checked}, _evidence(order, params))]


RULES: tuple[Rule, ...] = (
    Rule(
        name="dose-level",
        fires=("dose-above-maximum", "dose-below-minimum", "dose-nonstandard"),
        needs=frozenset(),
        evaluate=evaluate_dose,
    ),
    Rule(
        name="dose-schedule",
        fires=("schedule-not-21-7",),
        needs=frozenset(),
        evaluate=evaluate_schedule,
        thresholds={"warn_when_schedule_unstated": True},
    ),
    Rule(
        name="reduced-start-dose",
        fires=("reduced-start-dose",),
        needs=frozenset({"medicationRequests", "medicationStatements", "medicationHistory", "conditions", "childPugh"}),
        evaluate=evaluate_reduced_start,
    ),
)
