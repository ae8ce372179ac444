"""Blood counts: neutropenia, febrile neutropenia, thrombocytopenia, anemia, and CBC monitoring.

Sources: IBRANCE US prescribing information §2.2 (Table 1 dose levels 125 -> 100 -> 75 mg/day, discontinue
below 75; Table 2 hematologic toxicities graded by CTCAE v4.0, with the ANC grades of its footnote) and
§5.1 (CBC before starting, at the start of each cycle, on Day 15 of the first 2 cycles; every 3 months
after 6 cycles whose worst neutropenia was grade 1-2); clinical brief §2.1-2.4, §6.3, §6.5 and §7 #7-18.

Grades (values in canonical units: counts in 10*9/L, hemoglobin in g/dL; boundaries belong to the milder
grade, as CTCAE writes "<1000-500" for grade 3):

- ANC: G4 < 0.5, G3 0.5-<1.0, G2 1.0-<1.5, G1 1.5-<LLN.
- Platelets: G4 < 25, G3 25-<50, G2 50-<75, G1 75-<LLN.
- Hemoglobin: G3 < 8.0 g/dL, G2 8.0-<10.0, G1 10.0-<LLN. CTCAE v4 defines grade 4 anemia clinically
  (life-threatening, urgent intervention), not by a number; ``hemoglobin_grade4_below`` (default 6.5 g/dL,
  the CTCAE v3 number) stands in for it and a site may set it to 0 to switch it off.

LLN is the result's own reference range (``reference_low``) when the laboratory sent one, else the
configured default; it only separates grade 0 from grade 1, which no card depends on.

The ANC is the reported one (LOINC 751-8, 26499-4, 753-4, 768-2). When no ANC was reported for a
specimen, it is derived as WBC x (neutrophils % + bands %) / 100 from results with the same effective
time, and the card says so. The newest ANC leads; a value whose unit cannot be interpreted is never graded
(``anc-unit-unknown``), and an older result is not used in its place.

Cycles. Day 1 of the current cycle and the cycle number come from the palbociclib orders and medication-
list entries other than the draft (current and past; ``medicationRequests``, ``medicationStatements``,
``medicationHistory``). Assumption, usual oncology practice: one MedicationRequest per cycle, starting on
its period start (``boundsPeriod``, else ``validityPeriod``, else ``authoredOn``). A medication-list entry
covers one 28-day cycle per 28 days of its period (when still active, up to 21 days ago: a draft signed now
is taken as the cycle that follows). Starts less than 21 days apart are one cycle (a mid-cycle re-issue or
dose change). The draft starts a new cycle when its start (``OrderDetails.start``: its ``boundsPeriod``,
``validityPeriod`` or ``authoredOn``) is 21 days or more after the latest cycle's Day 1, or when there is
no earlier cycle. A draft signed mid-cycle (its start within 21 days of the latest Day 1, or, with no start,
replacing a current order of a cycle begun less than 28 days ago) continues that cycle: it is not a
new-cycle order, so CBC freshness is not checked for it, and the Day-15 check looks at that cycle.

Day 15 of cycles 1-2: ``day15-cbc-due`` (info) when the cycle under way has reached Day 15 (through Day 28)
with no CBC since Day ``day15_window_start`` (13, brief §2.4). A reminder of the Day-15 date on every cycle
1-2 order (brief §7 #1 "optional info") is off by default: ``day15_reminder: true`` turns it on.

Hematology rules (neutropenia, platelets, hemoglobin) need only the counts (and, for febrile neutropenia,
temperature and conditions); they read the medication history, when it could be obtained, only to word the
advice (which cycle day, and the dose before the toxicity for the next lower dose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from cds_service.rules.base import Finding, Indicator, Rule, Threshold
from cds_service.snapshot.model import (
    CodedFact,
    Evidence,
    LabResult,
    MedicationUse,
    PalbociclibOrder,
    PatientSnapshot,
)

CYCLE_DAYS = 28
SAME_CYCLE_DAYS = 21
DOSE_LEVELS = (125.0, 100.0, 75.0)
"""Label Table 1: starting dose, first and second reduction (mg/day); below 75 mg/day, discontinue."""
CBC_CONCEPTS = frozenset({"anc", "wbc", "platelets", "hemoglobin", "neutrophils-percent", "bands-percent", "cbc-panel"})
MEDICATION_KEYS = frozenset({"medicationRequests", "medicationStatements", "medicationHistory"})
_ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})
_UNDATED = datetime(1, 1, 1, tzinfo=UTC)
_X = "\N{MULTIPLICATION SIGN}"


# ----------------------------------------------------------------------------------------------- grading
def _exact(value: float) -> float:
    """Unit conversion may leave 0.9999999; grade boundaries are compared at six decimals."""
    return round(value, 6)


def anc_grade(value: float, lln: float) -> int:
    """CTCAE grade of an ANC in 10*9/L (label Table 2 footnote)."""
    v = _exact(value)
    for limit, grade in ((0.5, 4), (1.0, 3), (1.5, 2), (lln, 1)):
        if v < limit:
            return grade
    return 0


def platelet_grade(value: float, lln: float) -> int:
    """CTCAE v4 grade of a platelet count in 10*9/L."""
    v = _exact(value)
    for limit, grade in ((25.0, 4), (50.0, 3), (75.0, 2), (lln, 1)):
        if v < limit:
            return grade
    return 0


def hemoglobin_grade(value: float, lln: float, grade4_below: float) -> int:
    """CTCAE v4 grade of a hemoglobin in g/dL (grade 4 only below ``grade4_below``; see the module text)."""
    v = _exact(value)
    for limit, grade in ((grade4_below, 4), (8.0, 3), (10.0, 2), (lln, 1)):
        if v < limit:
            return grade
    return 0


def next_lower_dose(daily_mg: float) -> float | None:
    """The next labelled dose level below ``daily_mg``; ``None`` when none is left (discontinue)."""
    return next((level for level in DOSE_LEVELS if level < daily_mg - 1e-6), None)


# -------------------------------------------------------------------------------------------- formatting
def _count(value: float, decimals: int = 2) -> str:
    return f"{value:.{decimals}f} {_X} 10⁹/L ({value * 1000:,.0f}/mm³)"


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"


def _number(thresholds: Mapping[str, Threshold], key: str, default: float) -> float:
    value = thresholds.get(key, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _newest(labs: Iterable[LabResult]) -> LabResult | None:
    """The newest dated result; at the same time an interpretable one leads."""
    dated = [lab for lab in labs if lab.effective is not None]
    # max keeps the first of equals, as min over the negated key did; datetimes compare without timestamp().
    return max(dated, key=lambda lab: (lab.effective or _UNDATED, lab.interpretable), default=None)


# --------------------------------------------------------------------------------------------------- ANC
@dataclass(frozen=True, slots=True)
class Anc:
    """One ANC: reported by the laboratory or derived from WBC and the differential of one specimen."""

    effective: datetime | None
    value: float | None
    """In 10*9/L; ``None`` when a value's unit could not be interpreted."""
    derived: bool
    original: str
    evidence: tuple[Evidence, ...]
    reference_low: float | None = None

    @property
    def source(self) -> str:
        if self.derived:
            return f"derived from the WBC and differential of one specimen (no ANC reported): {self.original}"
        return f"reported by the laboratory as {self.original or 'no value'}"


def _derived(when: datetime, parts: Mapping[str, LabResult]) -> Anc:
    wbc, neutrophils, bands = parts["wbc"], parts["neutrophils-percent"], parts.get("bands-percent")
    used = [lab for lab in (wbc, neutrophils, bands) if lab is not None]
    shown = f"WBC {wbc.original} {_X} (neutrophils {neutrophils.original}"
    shown += f" + bands {bands.original})" if bands is not None else ")"
    shown += " ÷ 100"
    value: float | None = None
    if wbc.value is not None and neutrophils.value is not None:
        band_share = bands.value if bands is not None and bands.value is not None else 0.0
        value = wbc.value * (neutrophils.value + band_share) / 100.0
        shown += f" = {value:.2f} {_X} 10⁹/L"
        if bands is not None and bands.value is None:
            shown += " (bands left out: their unit could not be interpreted)"
    return Anc(when, value, True, shown, tuple(lab.evidence for lab in used))


def anc_results(snapshot: PatientSnapshot) -> list[Anc]:
    """Every ANC on record, newest first: the reported ones, and one derived for each specimen time with a
    WBC and a neutrophil percentage but no reported ANC."""
    reported = snapshot.labs_for("anc")
    found = [
        Anc(
            lab.effective,
            lab.value if lab.interpretable else None,
            False,
            lab.original,
            (lab.evidence,),
            lab.reference_low,
        )
        for lab in reported
    ]
    reported_times = {lab.effective for lab in reported}
    by_time: dict[datetime, dict[str, LabResult]] = {}
    for concept in ("wbc", "neutrophils-percent", "bands-percent"):
        for lab in snapshot.labs_for(concept):
            if lab.effective is not None and lab.effective not in reported_times:
                by_time.setdefault(lab.effective, {}).setdefault(concept, lab)
    found += [_derived(when, parts) for when, parts in by_time.items() if {"wbc", "neutrophils-percent"} <= set(parts)]
    found.sort(key=lambda a: (a.effective is None, -(a.effective or _UNDATED).timestamp(), a.value is None))
    return found


def latest_anc(snapshot: PatientSnapshot) -> Anc | None:
    return next(iter(anc_results(snapshot)), None)


# ------------------------------------------------------------------------------------------------ cycles
@dataclass(frozen=True, slots=True)
class CycleContext:
    """Where the draft order falls in the patient's palbociclib cycles (see the module text)."""

    uses: tuple[MedicationUse, ...]
    """Palbociclib orders and medication-list entries other than the draft."""
    starts: tuple[date, ...]
    """Day 1 of each earlier cycle, oldest first."""
    new_cycle: bool
    number: int
    """The draft's cycle: a new one, or the one it continues."""
    start: date
    """Day 1 of the draft's cycle."""
    today: date

    @property
    def first_order(self) -> bool:
        return not self.uses

    def day_of(self, on: date, start: date | None = None) -> int:
        return (on - (start or self.start)).days + 1

    @property
    def in_progress(self) -> tuple[int, date] | None:
        """The cycle under way today (number, Day 1): the one the draft continues, else the latest earlier
        cycle if it began less than 28 days ago."""
        if not self.new_cycle:
            return self.number, self.start
        if self.starts and (self.today - self.starts[-1]).days < CYCLE_DAYS:
            return len(self.starts), self.starts[-1]
        return None

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(m.evidence for m in self.uses)

    def describe(self) -> str:
        if self.first_order:
            return "the first palbociclib order (no earlier palbociclib order or medication-list entry)"
        earlier = len(self.starts) - (0 if self.new_cycle else 1)
        shown = f"cycle {self.number} (Day 1 {self.start.isoformat()}; {earlier} earlier cycle(s) on record)"
        return shown if self.new_cycle else f"{shown}, continuing the cycle under way"


def _use_start(use: MedicationUse) -> datetime | None:
    return use.started or use.evidence.date


def _cycle_starts(uses: Iterable[MedicationUse], today: date) -> tuple[date, ...]:
    raw: list[date] = []
    for use in uses:
        began = _use_start(use)
        if began is None or began.date() > today:
            continue
        raw.append(began.date())
        if use.source == "statement":  # a medication-list entry may span several cycles
            # an entry still active is taken to have started no cycle in the last 21 days (the draft is that one)
            ongoing = today - timedelta(days=SAME_CYCLE_DAYS) if use.is_current else began.date()
            last = min(use.ended.date(), today) if use.ended else ongoing
            following = began.date() + timedelta(days=CYCLE_DAYS)
            while following <= last:
                raw.append(following)
                following += timedelta(days=CYCLE_DAYS)
    kept: list[date] = []
    for day in sorted(set(raw)):
        if not kept or (day - kept[-1]).days >= SAME_CYCLE_DAYS:
            kept.append(day)
    return tuple(kept)


def cycle_context(snapshot: PatientSnapshot, order: PalbociclibOrder) -> CycleContext:
    today = snapshot.as_of.date()
    uses = tuple(m for m in snapshot.medications_in("palbociclib") if m.source != "draft")
    starts = _cycle_starts(uses, today)
    draft_start = order.details.start
    if not starts:
        return CycleContext(uses, starts, True, 1, draft_start or today, today)
    latest = starts[-1]
    if draft_start is not None:
        new_cycle = (draft_start - latest).days >= SAME_CYCLE_DAYS
    else:
        replaced = set(order.replaces)
        continues = any(m.is_current and m.evidence.reference in replaced for m in uses)
        new_cycle = not (continues and (today - latest).days < CYCLE_DAYS)
    if not new_cycle:
        return CycleContext(uses, starts, False, len(starts), latest, today)
    start = draft_start or max(today, latest + timedelta(days=CYCLE_DAYS))
    return CycleContext(uses, starts, True, len(starts) + 1, start, today)


# -------------------------------------------------------------------------------------- dose reduction
def _draft_dose(order: PalbociclibOrder) -> float | None:
    schedule = order.details.schedule
    if schedule is not None and schedule.daily_dose_mg:
        return schedule.daily_dose_mg
    return order.product.strength_mg if order.product else None


def _prior_dose(context: CycleContext | None) -> float | None:
    """The daily dose of the latest earlier palbociclib order with a known strength (one tablet or capsule
    once daily assumed: the orders of the history carry no parsed dosage)."""
    if context is None:
        return None
    dosed = [m for m in context.uses if m.product is not None and m.product.strength_mg]
    dosed.sort(key=lambda m: (m.is_current, (_use_start(m) or _UNDATED).timestamp()), reverse=True)
    return dosed[0].product.strength_mg if dosed and dosed[0].product else None


def reduction_params(order: PalbociclibOrder, context: CycleContext | None) -> dict[str, str]:
    """``next_dose_mg`` (empty when no update is to be suggested), ``dose_advice`` and ``dose_short``."""
    draft, prior = _draft_dose(order), _prior_dose(context)
    reference = prior if prior is not None else draft
    if reference is None:
        return {
            "next_dose_mg": "",
            "dose_short": "resume one dose level lower after recovery",
            "dose_advice": "Resume at the next lower dose level (125 → 100 → 75 mg/day; if a dose below "
            "75 mg/day would be needed, discontinue). The dose of this order could not be read.",
        }
    basis = "the latest palbociclib order" if prior is not None else "this draft"
    lower = next_lower_dose(reference)
    if lower is None:
        return {
            "next_dose_mg": "",
            "dose_short": "discontinue (already at the lowest dose, 75 mg)",
            "dose_advice": f"The dose is already {reference:g} mg/day ({basis}), the lowest labelled dose: a "
            "further reduction is not possible, and the label says to discontinue palbociclib.",
        }
    if draft is not None and draft <= lower + 1e-6:
        return {
            "next_dose_mg": "",
            "dose_short": f"resume at {lower:g} mg (this draft) after recovery",
            "dose_advice": f"The next lower dose after {reference:g} mg/day ({basis}) is {lower:g} mg/day; this "
            f"draft is already at {draft:g} mg/day. Start it only after recovery to grade 2 or better.",
        }
    return {
        "next_dose_mg": f"{lower:g}",
        "dose_short": f"resume at {lower:g} mg after recovery",
        "dose_advice": f"Resume at the next lower dose, **{lower:g} mg/day** (from {reference:g} mg/day, "
        f"{basis}), once recovered to grade 2 or better.",
    }


# ------------------------------------------------------------------------------- grade 3 and 4 wording
def _context_or_none(snapshot: PatientSnapshot, order: PalbociclibOrder) -> CycleContext | None:
    """The cycle context when the whole medication history could be read; the hematology rules only use it
    for their wording, so they still run without it."""
    return cycle_context(snapshot, order) if snapshot.available >= MEDICATION_KEYS else None


def grade3_advice(context: CycleContext | None, measured: datetime | None, window: tuple[int, int]) -> dict[str, str]:
    """Label Table 2, grade 3: what to do given when in the cycle the count was measured."""
    withhold = "withhold and repeat the CBC within 1 week"
    if context is None:
        return {"context": "", "summary_action": withhold, "action": _DAY1_ACTION}
    if context.first_order:
        return {
            "context": " before the first cycle",
            "summary_action": "do not start yet; repeat the CBC within 1 week",
            "action": "Do not start palbociclib until the count has recovered to grade 2 or better; repeat the "
            "CBC within 1 week. (Table 2 gives this for grade 3 on Day 1 of a cycle; the EU label recommends "
            "ANC ≥ 1000/mm³ and platelets ≥ 50,000/mm³ to receive palbociclib.)",
        }
    current = context.in_progress
    if measured is not None and current is not None and not context.new_cycle:
        number, start = current
        day = context.day_of(measured.date(), start)
        if number <= 2 and window[0] <= day <= window[1]:
            day22 = (start + timedelta(days=21)).isoformat()
            return {
                "context": f" on Day {day} of cycle {number}",
                "summary_action": "continue this cycle; repeat the CBC on Day 22",
                "action": f"Grade 3 on Day 15 of cycles 1 and 2: continue palbociclib at the current dose to complete "
                f"the cycle and repeat the CBC on Day 22 ({day22}). If it is grade 4 on Day 22, withhold "
                "until grade 2 or better and resume at the next lower dose.",
            }
        return {"context": f" on Day {day} of cycle {number}", "summary_action": withhold, "action": _DAY1_ACTION}
    return {"context": f" before cycle {context.number}", "summary_action": withhold, "action": _DAY1_ACTION}


_DAY1_ACTION = (
    "Grade 3 on Day 1 of a cycle: withhold palbociclib, repeat the CBC within 1 week, and when the count has "
    "recovered to grade 2 or better start the next cycle at the same dose."
)


def _active(condition: CodedFact) -> bool:
    return condition.status is None or condition.status in _ACTIVE_CONDITION


# ---------------------------------------------------------------------------------------- neutropenia
def _fever(snapshot: PatientSnapshot, anc: Anc, cutoff: float, window: timedelta) -> LabResult | None:
    """The highest temperature at or above ``cutoff`` within ``window`` of the ANC's specimen."""
    if anc.effective is None:
        return None
    febrile = [
        t
        for t in snapshot.labs_for("body-temperature")
        if t.value is not None
        and t.effective is not None
        and abs(t.effective - anc.effective) <= window
        and _exact(t.value) >= cutoff
    ]
    return max(febrile, key=lambda t: t.value or 0.0, default=None)


def _febrile_conditions(snapshot: PatientSnapshot) -> list[CodedFact]:
    """An active febrile-neutropenia diagnosis, or (ICD-10-CM) active neutropenia D70.x with fever R50.81."""
    coded = [c for c in snapshot.conditions_with("febrile-neutropenia") if _active(c)]
    if coded:
        return coded
    neutropenia = [c for c in snapshot.conditions_with("neutropenia") if _active(c)]
    fever = [c for c in snapshot.conditions_with("fever-with-condition-elsewhere") if _active(c)]
    return neutropenia + fever if neutropenia and fever else []


def _anc_params(anc: Anc, grade: int | None) -> dict[str, str]:
    return {
        "anc": _count(anc.value) if anc.value is not None else anc.original or "no value",
        "anc_short": f"{anc.value * 1000:,.0f}/mm³" if anc.value is not None else anc.original or "no value",
        "anc_date": _day(anc.effective),
        "anc_source": anc.source,
        "grade": str(grade) if grade is not None else "",
    }


def evaluate_neutropenia(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    anc = latest_anc(snapshot)
    lln_default = _number(thresholds, "anc_lln_default", 1.8)
    grade = anc_grade(anc.value, anc.reference_low or lln_default) if anc and anc.value is not None else None
    findings: list[Finding] = []
    fn = _febrile_neutropenia(snapshot, order, thresholds, anc, grade)
    if fn is not None:
        findings.append(fn)
    if anc is None:
        return findings
    if anc.value is None:
        findings.append(Finding("anc-unit-unknown", _anc_params(anc, None), anc.evidence))
        return findings
    if fn is not None or grade is None or grade < 3:
        return findings  # a febrile-neutropenia card says everything a grade 3 or 4 card would
    context = _context_or_none(snapshot, order)
    params = _anc_params(anc, grade) | grade3_advice(context, anc.effective, _day15_window(thresholds))
    evidence = anc.evidence + (context.evidence if context else ())
    if grade == 3:
        return [*findings, Finding("neutropenia-grade3", params, evidence)]
    return [*findings, Finding("neutropenia-grade4", params | reduction_params(order, context), evidence)]


def _febrile_neutropenia(
    snapshot: PatientSnapshot,
    order: PalbociclibOrder,
    thresholds: Mapping[str, Threshold],
    anc: Anc | None,
    grade: int | None,
) -> Finding | None:
    cutoff = _number(thresholds, "fever_celsius", 38.5)
    window = timedelta(hours=_number(thresholds, "fever_window_hours", 24.0))
    fever = _fever(snapshot, anc, cutoff, window) if anc is not None and grade is not None and grade >= 3 else None
    conditions = _febrile_conditions(snapshot)
    if fever is None and not conditions:
        return None
    bases = []
    evidence: list[Evidence] = []
    if fever is not None and anc is not None and fever.value is not None:
        bases.append(f"grade {grade} ANC with a temperature of {fever.value:.1f} °C on {_day(fever.effective)}")
        evidence += [*anc.evidence, fever.evidence]
    if conditions:
        shown = "; ".join(f"{c.text or 'febrile neutropenia'} (since {_day(c.date)})" for c in conditions)
        bases.append(f"active diagnosis on the problem list: {shown}")
        evidence += [c.evidence for c in conditions]
    if anc is not None and fever is None:
        evidence += anc.evidence
    context = _context_or_none(snapshot, order)
    params = {
        "basis": " and ".join(bases),
        "basis_short": f"ANC {_anc_params(anc, grade)['anc_short']}, {fever.value:.1f} °C"
        if fever is not None and anc is not None and fever.value is not None
        else "active diagnosis",
        "latest_anc": f"{_count(anc.value)} on {_day(anc.effective)}, {anc.source}"
        if anc is not None and anc.value is not None
        else "no interpretable ANC on record",
        "fever_celsius": f"{cutoff:g}",
        **reduction_params(order, context),
    }
    return Finding("febrile-neutropenia", params, tuple(dict.fromkeys(evidence)))


def _day15_window(thresholds: Mapping[str, Threshold]) -> tuple[int, int]:
    return int(_number(thresholds, "day15_window_start", 13)), int(_number(thresholds, "day15_window_end", 17))


# ------------------------------------------------------------------------------ platelets, hemoglobin
def _other_count(
    snapshot: PatientSnapshot,
    order: PalbociclibOrder,
    thresholds: Mapping[str, Threshold],
    lab: LabResult | None,
    grade: int,
    shown: tuple[str, str],
    rule_id: str,
) -> list[Finding]:
    if lab is None or grade < 3:
        return []
    context = _context_or_none(snapshot, order)
    params = {
        "value": shown[0],
        "value_short": shown[1],
        "value_date": _day(lab.effective),
        "reported": lab.original,
        "grade": str(grade),
    }
    params |= grade3_advice(context, lab.effective, _day15_window(thresholds))
    indicator: Indicator = "critical" if grade >= 4 else "warning"
    if grade >= 4:
        params |= reduction_params(order, context)
        params["summary_action"] = "withhold; " + params["dose_short"]
        params["action"] = "Grade 4 (any time): withhold palbociclib until recovery to grade 2 or better."
    else:
        params |= {"next_dose_mg": "", "dose_short": "", "dose_advice": ""}
    evidence = (lab.evidence, *(context.evidence if context else ()))
    return [Finding(rule_id, params, evidence, indicator)]


def evaluate_platelets(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    lab = _newest(snapshot.labs_for("platelets"))
    if lab is None or lab.value is None:
        return []
    lln = lab.reference_low or _number(thresholds, "platelet_lln_default", 150.0)
    grade = platelet_grade(lab.value, lln)
    shown = (_count(lab.value, 0), f"{lab.value * 1000:,.0f}/mm³")
    return _other_count(snapshot, order, thresholds, lab, grade, shown, "thrombocytopenia")


def evaluate_hemoglobin(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    lab = _newest(snapshot.labs_for("hemoglobin"))
    if lab is None or lab.value is None:
        return []
    lln = lab.reference_low or _number(thresholds, "hemoglobin_lln_default", 12.0)
    grade4_below = _number(thresholds, "hemoglobin_grade4_below", 6.5)
    grade = hemoglobin_grade(lab.value, lln, grade4_below)
    findings = _other_count(snapshot, order, thresholds, lab, grade, (f"{lab.value:.1f} g/dL",) * 2, "anemia")
    return [replace(f, params={**f.params, "grade4_below": f"{grade4_below:g}"}) for f in findings]


# ------------------------------------------------------------------------------------- CBC monitoring
def _cbc_labs(snapshot: PatientSnapshot) -> list[LabResult]:
    return [lab for lab in snapshot.labs if lab.concept in CBC_CONCEPTS and lab.effective is not None]


def quarterly_monitoring(snapshot: PatientSnapshot, context: CycleContext, after_cycles: int) -> bool:
    """After ``after_cycles`` cycles whose worst neutropenia was grade 1-2 (at least one ANC in them), CBCs
    every 3 months suffice (label §2.2). Conservatively, any grade 3-4 ANC since the first cycle cancels it."""
    if len(context.starts) < after_cycles or after_cycles < 1:
        return False
    first = context.starts[0]
    window_end = context.starts[after_cycles] if len(context.starts) > after_cycles else context.today
    on_treatment = [
        a for a in anc_results(snapshot) if a.value is not None and a.effective and a.effective.date() >= first
    ]
    in_window = [a for a in on_treatment if a.effective and a.effective.date() <= window_end]
    return bool(in_window) and all(a.value is not None and anc_grade(a.value, 0.0) <= 2 for a in on_treatment)


def _missing(context: CycleContext) -> Finding:
    return Finding("cbc-missing", {"order_kind": context.describe()}, context.evidence)


def _stale(
    snapshot: PatientSnapshot, context: CycleContext, latest: LabResult | None, thresholds: Mapping[str, Threshold]
) -> Finding | None:
    fresh = int(_number(thresholds, "fresh_days", 7))
    stale = int(_number(thresholds, "stale_after_days", 14))
    quarterly = quarterly_monitoring(snapshot, context, int(_number(thresholds, "quarterly_after_cycles", 6)))
    age = (context.today - latest.effective.date()).days if latest and latest.effective else None
    limit = int(_number(thresholds, "quarterly_max_days", 91)) if quarterly else stale
    indicator: Indicator = "warning"
    if age is not None and age <= limit:
        if quarterly or age <= fresh:
            return None
        indicator = "info"
    kind = "first palbociclib order" if context.first_order else f"cycle-{context.number} order"
    params = {
        "latest": f"The latest CBC is {age} days old ({_day(latest.effective)})"
        if latest is not None and age is not None
        else "No CBC is on record",
        "order_kind": kind,
        "cycle": context.describe(),
        "schedule": "every 3 months (6 cycles with worst neutropenia grade 1 or 2)"
        if quarterly
        else f"before each cycle; this service asks for one within {fresh} days and warns after {stale}",
    }
    evidence = ((latest.evidence,) if latest else ()) + context.evidence
    return Finding("cbc-stale", params, evidence, indicator)


def _day15(context: CycleContext, cbcs: list[LabResult], thresholds: Mapping[str, Threshold]) -> Finding | None:
    window_start, _ = _day15_window(thresholds)
    current = context.in_progress
    candidates: list[tuple[int, date, bool]] = []
    if current is not None:
        candidates.append((*current, True))
    if context.new_cycle:
        candidates.append((context.number, context.start, False))
    for number, start, under_way in candidates:
        if number > 2:
            continue
        day15 = start + timedelta(days=14)
        done = [
            lab for lab in cbcs if lab.effective and lab.effective.date() >= start + timedelta(days=window_start - 1)
        ]
        today_day = context.day_of(context.today, start)
        if done or today_day > CYCLE_DAYS:
            continue
        if under_way and today_day >= 15:
            state = f"is not on record (today is Day {today_day})"
        elif thresholds.get("day15_reminder", False) is True:
            state = "is due"
        else:
            continue
        params = {"cycle": str(number), "day15_date": day15.isoformat(), "state": state, "start": start.isoformat()}
        return Finding("day15-cbc-due", params, context.evidence)
    return None


def evaluate_monitoring(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    context = cycle_context(snapshot, order)
    cbcs = _cbc_labs(snapshot)
    latest = max(cbcs, key=lambda lab: lab.effective or _UNDATED, default=None)
    findings: list[Finding] = []
    if context.first_order and latest is None:
        findings.append(_missing(context))
    elif context.new_cycle:
        stale = _stale(snapshot, context, latest, thresholds)
        if stale is not None:
            findings.append(stale)
    day15 = _day15(context, cbcs, thresholds)
    if day15 is not None:
        findings.append(day15)
    return findings


RULES: tuple[Rule, ...] = (
    Rule(
        name="neutropenia",
        fires=("neutropenia-grade3", "neutropenia-grade4", "febrile-neutropenia", "anc-unit-unknown"),
        needs=frozenset({"cbc", "temperature", "conditions"}),
        evaluate=evaluate_neutropenia,
        thresholds={
            "anc_lln_default": 1.8,
            "fever_celsius": 38.5,
            "fever_window_hours": 24.0,
            "day15_window_start": 13,
            "day15_window_end": 17,
        },
    ),
    Rule(
        name="platelet-count",
        fires=("thrombocytopenia",),
        needs=frozenset({"cbc"}),
        evaluate=evaluate_platelets,
        thresholds={"platelet_lln_default": 150.0, "day15_window_start": 13, "day15_window_end": 17},
    ),
    Rule(
        name="hemoglobin",
        fires=("anemia",),
        needs=frozenset({"cbc"}),
        evaluate=evaluate_hemoglobin,
        thresholds={
            "hemoglobin_lln_default": 12.0,
            "hemoglobin_grade4_below": 6.5,
            "day15_window_start": 13,
            "day15_window_end": 17,
        },
    ),
    Rule(
        name="cbc-recency",
        fires=("cbc-missing", "cbc-stale", "day15-cbc-due"),
        needs=frozenset({"cbc"}) | MEDICATION_KEYS,
        evaluate=evaluate_monitoring,
        thresholds={
            "fresh_days": 7,
            "stale_after_days": 14,
            "quarterly_after_cycles": 6,
            "quarterly_max_days": 91,
            "day15_window_start": 13,
            "day15_reminder": False,
        },
    ),
)
