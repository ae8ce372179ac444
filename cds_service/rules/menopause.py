"""Menopausal status, derived once per patient with its evidence (clinical brief §4.4: NCCN criteria as
used by PALOMA-2 eligibility).

A woman is postmenopausal if any of:

1. prior bilateral oophorectomy (procedure, or ICD-10-CM Z90.722);
2. age 60 or more;
3. age under 60, amenorrhoea for 12 months or more without chemotherapy, tamoxifen, toremifene or ovarian
   suppression, and FSH and estradiol in the postmenopausal range;
4. age under 60 on tamoxifen or toremifene, with FSH and estradiol in the postmenopausal range.

Caveats (brief §4.4): status cannot be assigned while on an LHRH agonist, which is ``ovarian-suppressed``
and satisfies the aromatase-inhibitor rule; amenorrhoea after chemotherapy (or after ovarian suppression)
is unreliable, so it needs *serial* FSH/estradiol results in the postmenopausal range. A recorded
postmenopausal state establishes menopause in a woman under 60 only when no caveat applies and no newer
FSH/estradiol result contradicts it. Recorded pre- or perimenopausal states give those states unless newer
results establish menopause by criterion 3 or 4. Anything else is ``unknown``, with the reasons.

The FSH and estradiol cutoffs are assay-dependent and site-tunable (brief §4.4 [U]: FSH > 30-40 IU/L,
estradiol < 20-30 pg/mL). The lab's own reference range is not used: FSH reports carry several
phase-specific ranges and the snapshot keeps only the first, without its ``appliesTo`` context.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from cds_service.rules.base import Threshold
from cds_service.snapshot.model import CodedFact, Evidence, LabResult, MedicationUse, PatientSnapshot

State = Literal["postmenopausal", "premenopausal", "perimenopausal", "ovarian-suppressed", "male", "unknown"]

POSTMENOPAUSAL_AGE = 60
"""NCCN: every woman of 60 or more is postmenopausal (not tunable: it is part of the definition)."""

LHRH_AGONISTS = "lhrh-agonist"
SERMS = ("tamoxifen", "toremifene")
# Condition concepts (conditions*.yaml) and procedure concepts (procedures*.yaml) this module reads.
_OOPHORECTOMY_CONDITIONS = frozenset({"bilateral-oophorectomy-status", "surgical-menopause"})
_OOPHORECTOMY_PROCEDURES = frozenset({"bilateral-oophorectomy"})
_CODED_STATES: dict[str, State] = {
    "postmenopausal": "postmenopausal",
    "premature-menopause": "postmenopausal",
    "artificial-menopause": "postmenopausal",
    "premenopausal": "premenopausal",
    "perimenopausal": "perimenopausal",
}
_AMENORRHOEA = "amenorrhoea"
_CHEMOTHERAPY_CONDITIONS = frozenset({"antineoplastic-chemotherapy-history", "antineoplastic-adverse-effect"})
_CHEMOTHERAPY_PROCEDURES = frozenset({"chemotherapy-procedure"})
_NOT_CURRENT_CONDITION = frozenset({"inactive", "resolved", "remission"})
_DONE_PROCEDURE = frozenset({"completed"})


@dataclass(frozen=True, slots=True)
class MenopauseCriteria:
    """The site-tunable parts of the definition; defaults from brief §4.4."""

    fsh_min_iu_l: float = 30.0
    """FSH at or above this is in the postmenopausal range."""
    estradiol_max_pg_ml: float = 30.0
    """Estradiol below this is in the postmenopausal range."""
    amenorrhoea_months: int = 12
    hormone_lookback_months: int = 12
    """FSH and estradiol results older than this are not used."""
    serial_results: int = 2
    """After chemotherapy or ovarian suppression: results on this many different days, all postmenopausal."""

    @classmethod
    def from_thresholds(cls, thresholds: Mapping[str, Threshold]) -> MenopauseCriteria:
        default = cls()
        return cls(
            fsh_min_iu_l=float(thresholds.get("fsh_postmenopausal_min_iu_l", default.fsh_min_iu_l)),
            estradiol_max_pg_ml=float(
                thresholds.get("estradiol_postmenopausal_max_pg_ml", default.estradiol_max_pg_ml)
            ),
            amenorrhoea_months=int(thresholds.get("amenorrhoea_months", default.amenorrhoea_months)),
            hormone_lookback_months=int(thresholds.get("hormone_lookback_months", default.hormone_lookback_months)),
            serial_results=int(thresholds.get("serial_results_after_chemotherapy", default.serial_results)),
        )


DEFAULT_CRITERIA = MenopauseCriteria()
THRESHOLDS: dict[str, Threshold] = {
    "fsh_postmenopausal_min_iu_l": DEFAULT_CRITERIA.fsh_min_iu_l,
    "estradiol_postmenopausal_max_pg_ml": DEFAULT_CRITERIA.estradiol_max_pg_ml,
    "amenorrhoea_months": DEFAULT_CRITERIA.amenorrhoea_months,
    "hormone_lookback_months": DEFAULT_CRITERIA.hormone_lookback_months,
    "serial_results_after_chemotherapy": DEFAULT_CRITERIA.serial_results,
}
"""The criteria as rule thresholds (names a site configuration uses)."""


@dataclass(frozen=True, slots=True)
class MenopausalStatus:
    state: State
    basis: str
    """What established the state, in words for the card ("bilateral oophorectomy", "age 64")."""
    evidence: tuple[Evidence, ...] = ()
    reasons: tuple[str, ...] = ()
    """For ``unknown``: why menopause is not established, one phrase each."""


# ---------------------------------------------------------------------------------------------- dates


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (or earlier), clamped to the end of a shorter month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def whole_months(start: datetime, end: datetime) -> int:
    """Completed calendar months from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if months > 0 and add_months(start, months) > end:
        months -= 1
    elif months < 0 and add_months(start, months) < end:
        months += 1
    return months


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "undated"


def last_menstrual_period(lab: LabResult) -> datetime | None:
    """The date a last-menstrual-period Observation gives (its ``valueDateTime``), when the snapshot
    carries it as ``LabResult.value_date``."""
    value = getattr(lab, "value_date", None)
    return value if isinstance(value, datetime) else None


# ---------------------------------------------------------------------------------------------- facts


def _current_condition(condition: CodedFact) -> bool:
    return condition.status not in _NOT_CURRENT_CONDITION


def _medication_end(medication: MedicationUse) -> datetime | None:
    """When a medicine stopped: its period end, else its last recorded date."""
    return medication.ended or medication.evidence.date or medication.started


def _name(medication: MedicationUse) -> str:
    return ", ".join(sorted(medication.ingredients)) or medication.text


@dataclass(frozen=True, slots=True)
class _Coded:
    state: State
    condition: CodedFact

    @property
    def date(self) -> datetime | None:
        return self.condition.evidence.date


@dataclass(slots=True)
class _Record:
    """What the record says about menopause in a woman under 60 (or of unknown age)."""

    coded: _Coded | None = None
    amenorrhoea_since: datetime | None = None
    amenorrhoea_evidence: list[Evidence] = field(default_factory=list)
    undated_period: Evidence | None = None
    """A last-menstrual-period entry whose date could not be read."""
    fsh: list[LabResult] = field(default_factory=list)
    estradiol: list[LabResult] = field(default_factory=list)
    chemotherapy: list[Evidence] = field(default_factory=list)
    serms: list[MedicationUse] = field(default_factory=list)
    past_suppression: list[MedicationUse] = field(default_factory=list)


def _coded_state(snapshot: PatientSnapshot) -> _Coded | None:
    coded = [
        _Coded(_CODED_STATES[concept], condition)
        for condition in snapshot.conditions
        if _current_condition(condition)
        for concept in sorted(condition.concepts)
        if concept in _CODED_STATES
    ]
    if not coded:
        return None
    return max(coded, key=lambda item: item.date.timestamp() if item.date else float("-inf"))


def _record(snapshot: PatientSnapshot, criteria: MenopauseCriteria) -> _Record:
    record = _Record(coded=_coded_state(snapshot))
    window_start = add_months(snapshot.as_of, -criteria.amenorrhoea_months)

    periods = snapshot.labs_for("last-menstrual-period")
    dated = [(lab, when) for lab in periods if (when := last_menstrual_period(lab)) is not None]
    if dated:
        lab, record.amenorrhoea_since = dated[0]
        record.amenorrhoea_evidence.append(lab.evidence)
    else:
        record.undated_period = periods[0].evidence if periods else None
        episodes = [c for c in snapshot.conditions if _AMENORRHOEA in c.concepts and _current_condition(c) and c.date]
        if episodes:
            latest = max(episodes, key=lambda c: c.date.timestamp() if c.date else 0.0)
            record.amenorrhoea_since = latest.date
            record.amenorrhoea_evidence.append(latest.evidence)
        if record.undated_period is not None:
            record.amenorrhoea_evidence.append(record.undated_period)

    lookback = add_months(snapshot.as_of, -criteria.hormone_lookback_months)
    for concept, target in (("fsh", record.fsh), ("estradiol", record.estradiol)):
        target.extend(
            lab
            for lab in snapshot.labs_for(concept)
            if lab.value is not None and lab.effective is not None and lookback <= lab.effective <= snapshot.as_of
        )

    record.chemotherapy = [c.evidence for c in snapshot.conditions if c.concepts & _CHEMOTHERAPY_CONDITIONS]
    record.chemotherapy += [p.evidence for p in snapshot.procedures if p.concepts & _CHEMOTHERAPY_PROCEDURES]
    for medication in snapshot.medications_in(*SERMS):
        end = _medication_end(medication)
        if medication.is_current or (end is not None and end >= window_start):
            record.serms.append(medication)
    for medication in snapshot.medications_in(LHRH_AGONISTS):
        end = _medication_end(medication)
        if not medication.is_current and end is not None and end >= window_start:
            record.past_suppression.append(medication)
    return record


# ---------------------------------------------------------------------------------------------- decision


@dataclass(frozen=True, slots=True)
class _Hormones:
    fsh: LabResult | None
    estradiol: LabResult | None
    fsh_ok: bool
    estradiol_ok: bool
    postmenopausal_days: int
    """Different days with a postmenopausal-range FSH or estradiol result."""
    latest: datetime | None

    @property
    def postmenopausal(self) -> bool:
        return self.fsh_ok and self.estradiol_ok


def _hormones(record: _Record, criteria: MenopauseCriteria) -> _Hormones:
    def fsh_post(lab: LabResult) -> bool:
        return lab.value is not None and lab.value >= criteria.fsh_min_iu_l

    def e2_post(lab: LabResult) -> bool:
        return lab.value is not None and lab.value < criteria.estradiol_max_pg_ml

    fsh = record.fsh[0] if record.fsh else None
    e2 = record.estradiol[0] if record.estradiol else None
    days = {lab.effective.date() for lab in record.fsh if lab.effective and fsh_post(lab)}
    days |= {lab.effective.date() for lab in record.estradiol if lab.effective and e2_post(lab)}
    dates = [lab.effective for lab in (fsh, e2) if lab is not None and lab.effective is not None]
    return _Hormones(
        fsh=fsh,
        estradiol=e2,
        fsh_ok=fsh is not None and fsh_post(fsh),
        estradiol_ok=e2 is not None and e2_post(e2),
        postmenopausal_days=len(days),
        latest=max(dates) if dates else None,
    )


def _lab_shown(lab: LabResult) -> str:
    return f"{lab.original or lab.value} on {_day(lab.effective)}"


def _under_sixty(snapshot: PatientSnapshot, criteria: MenopauseCriteria) -> MenopausalStatus:
    record = _record(snapshot, criteria)
    hormones = _hormones(record, criteria)
    months = whole_months(record.amenorrhoea_since, snapshot.as_of) if record.amenorrhoea_since else None
    amenorrhoea_ok = months is not None and months >= criteria.amenorrhoea_months
    needs_amenorrhoea = not record.serms  # criterion 4: on tamoxifen/toremifene the labs alone decide
    needs_serial = bool(record.chemotherapy or record.past_suppression)
    serial_ok = hormones.postmenopausal_days >= criteria.serial_results
    lab_postmenopausal = (
        hormones.postmenopausal and (amenorrhoea_ok or not needs_amenorrhoea) and (serial_ok or not needs_serial)
    )
    lab_evidence = tuple(lab.evidence for lab in (*record.fsh, *record.estradiol))
    caveat_evidence = (*record.chemotherapy, *(m.evidence for m in (*record.serms, *record.past_suppression)))
    coded = record.coded

    if lab_postmenopausal and not (
        coded and coded.state != "postmenopausal" and coded.date and hormones.latest and coded.date > hormones.latest
    ):
        parts = []
        if months is not None and needs_amenorrhoea:
            parts.append(f"amenorrhoea for {months} months")
        if record.serms:
            parts.append(f"on {', '.join(sorted({_name(m) for m in record.serms}))}")
        shown = [
            f"{name} {lab.original}" for name, lab in (("FSH", hormones.fsh), ("estradiol", hormones.estradiol)) if lab
        ]
        parts.append(f"{' and '.join(shown)} in the postmenopausal range")
        if needs_serial:
            parts.append(f"on {hormones.postmenopausal_days} different days")
        evidence = (*record.amenorrhoea_evidence, *lab_evidence, *caveat_evidence)
        return MenopausalStatus("postmenopausal", ", ".join(parts), tuple(dict.fromkeys(evidence)))

    if coded and coded.state in ("premenopausal", "perimenopausal"):
        basis = f"recorded on {_day(coded.date)} as {coded.condition.evidence.description}"
        return MenopausalStatus(coded.state, basis, (coded.condition.evidence,))

    contradicted = (
        coded is not None
        and hormones.latest is not None
        and (coded.date is None or hormones.latest > coded.date)
        and not hormones.postmenopausal
        and (hormones.fsh is not None or hormones.estradiol is not None)
    )
    has_caveat = bool(record.chemotherapy or record.serms or record.past_suppression)
    if coded and coded.state == "postmenopausal" and not has_caveat and not contradicted:
        basis = f"recorded on {_day(coded.date)} as {coded.condition.evidence.description}"
        return MenopausalStatus("postmenopausal", basis, (coded.condition.evidence,))

    reasons = _reasons(snapshot, record, hormones, months, criteria, contradicted, needs_amenorrhoea)
    evidence = (
        *((coded.condition.evidence,) if coded else ()),
        *record.amenorrhoea_evidence,
        *lab_evidence,
        *caveat_evidence,
    )
    return MenopausalStatus("unknown", "menopause not established", tuple(dict.fromkeys(evidence)), reasons)


def _reasons(
    snapshot: PatientSnapshot,
    record: _Record,
    hormones: _Hormones,
    months: int | None,
    criteria: MenopauseCriteria,
    contradicted: bool,
    needs_amenorrhoea: bool,
) -> tuple[str, ...]:
    reasons: list[str] = []
    if snapshot.age_years is None:
        reasons.append("age not recorded (every woman of 60 or more is postmenopausal)")
    facts = (record.coded, record.amenorrhoea_evidence, record.fsh, record.estradiol, record.chemotherapy)
    if not any(facts) and not record.serms:
        reasons.append(
            "nothing on record establishes menopause: no bilateral oophorectomy, no recorded menopausal "
            "status, no last menstrual period, no FSH or estradiol result"
        )
        return tuple(reasons)
    reasons += _caveat_reasons(record, hormones, criteria, contradicted)
    if needs_amenorrhoea:
        reasons += _amenorrhoea_reasons(record, months, criteria)
    reasons += _hormone_reasons(hormones, criteria)
    return tuple(reasons)


def _caveat_reasons(record: _Record, hormones: _Hormones, criteria: MenopauseCriteria, contradicted: bool) -> list[str]:
    reasons: list[str] = []
    coded = record.coded
    if coded and coded.state == "postmenopausal":
        shown = f"the postmenopausal status recorded on {_day(coded.date)} as {coded.condition.evidence.description}"
        if contradicted:
            reasons.append(f"{shown} is older than FSH/estradiol results outside the postmenopausal range")
        else:
            reasons.append(
                f"{shown} does not establish menopause under 60 after chemotherapy, tamoxifen, toremifene or "
                "ovarian suppression"
            )
    serial = (
        f"serial FSH and estradiol in the postmenopausal range are needed (postmenopausal results on "
        f"{hormones.postmenopausal_days} day(s) in the last {criteria.hormone_lookback_months} months, "
        f"{criteria.serial_results} needed)"
    )
    if record.chemotherapy:
        shown = "; ".join(e.description for e in record.chemotherapy[:2])
        reasons.append(
            f"chemotherapy on record ({shown}): amenorrhoea after chemotherapy does not establish menopause; " + serial
        )
    if record.past_suppression:
        latest = max(end for m in record.past_suppression if (end := _medication_end(m)) is not None)
        names = ", ".join(sorted({_name(m) for m in record.past_suppression}))
        reasons.append(
            f"ovarian suppression ({names}) until {_day(latest)}: amenorrhoea does not establish menopause; " + serial
        )
    if record.serms:
        names = ", ".join(sorted({_name(m) for m in record.serms}))
        reasons.append(f"on {names}: FSH and estradiol must both be in the postmenopausal range")
    return reasons


def _amenorrhoea_reasons(record: _Record, months: int | None, criteria: MenopauseCriteria) -> list[str]:
    if record.amenorrhoea_since is None and record.undated_period is not None:
        return ["the last menstrual period is recorded without a date that could be read"]
    if record.amenorrhoea_since is None:
        return ["no date of the last menstrual period or of the start of amenorrhoea on record"]
    if months is not None and months < criteria.amenorrhoea_months:
        return [
            f"last menstrual period {_day(record.amenorrhoea_since)}, {months} months ago "
            f"({criteria.amenorrhoea_months} months of amenorrhoea are needed)"
        ]
    return []


def _hormone_reasons(hormones: _Hormones, criteria: MenopauseCriteria) -> list[str]:
    reasons: list[str] = []
    window = f"in the last {criteria.hormone_lookback_months} months"
    if hormones.fsh is None:
        reasons.append(f"no FSH result {window}")
    elif not hormones.fsh_ok:
        reasons.append(
            f"FSH {_lab_shown(hormones.fsh)} is not in the postmenopausal range "
            f"(FSH ≥ {criteria.fsh_min_iu_l:g} IU/L = mIU/mL)"
        )
    if hormones.estradiol is None:
        reasons.append(f"no estradiol result {window}")
    elif not hormones.estradiol_ok:
        reasons.append(
            f"estradiol {_lab_shown(hormones.estradiol)} is not in the postmenopausal range "
            f"(estradiol < {criteria.estradiol_max_pg_ml:g} pg/mL)"
        )
    return reasons


def menopausal_status(snapshot: PatientSnapshot, criteria: MenopauseCriteria = DEFAULT_CRITERIA) -> MenopausalStatus:
    if snapshot.sex == "male":
        return MenopausalStatus("male", "male patient")
    if snapshot.sex != "female":
        return MenopausalStatus(
            "unknown", "sex not recorded as female or male", reasons=("sex not recorded as female or male",)
        )

    surgery = [
        p.evidence
        for p in snapshot.procedures
        if p.concepts & _OOPHORECTOMY_PROCEDURES and (p.status is None or p.status in _DONE_PROCEDURE)
    ]
    surgery += [c.evidence for c in snapshot.conditions if c.concepts & _OOPHORECTOMY_CONDITIONS]
    if surgery:
        return MenopausalStatus("postmenopausal", "bilateral oophorectomy", tuple(surgery))

    if snapshot.age_years is not None and snapshot.age_years >= POSTMENOPAUSAL_AGE:
        return MenopausalStatus("postmenopausal", f"age {snapshot.age_years}")

    suppression = [m for m in snapshot.medications_in(LHRH_AGONISTS) if m.is_current]
    if suppression:
        names = ", ".join(sorted({_name(m) for m in suppression}))
        return MenopausalStatus("ovarian-suppressed", f"LHRH agonist ({names})", tuple(m.evidence for m in suppression))

    return _under_sixty(snapshot, criteria)
