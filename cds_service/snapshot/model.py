"""Patient snapshot: FHIR data reduced to concepts, canonical units and dates.

Rules read only these types. Every fact keeps an ``Evidence`` naming the resource it came from, so a card
can show what it used.

The classes are frozen, slotted dataclasses. The three built by the hundred per call (``Evidence``, ``Code``,
``LabResult``) also write their own ``__init__``: compiled by mypyc (``cds_service.native``) it is native code,
about a tenth of a call's instructions less. Run from source, ``record.fast_init`` at the end of this module
gives every class a descriptor-writing ``__init__`` instead (a frozen dataclass refuses ``self.x = x``); the
written ``__init__``s must take exactly the fields, in order, with their defaults (a unit test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from cds_service.snapshot.record import fast_init

Sex = Literal["female", "male", "other", "unknown"]
MedicationSource = Literal["request", "statement", "draft"]
MatchedBy = Literal["ingredient", "product", "text"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a fact came from: the resource, its date and the value as it was received."""

    resource_type: str
    resource_id: str | None
    date: datetime | None
    description: str

    def __init__(self, resource_type: str, resource_id: str | None, date: datetime | None, description: str) -> None:
        self.resource_type = resource_type  # type: ignore[misc]
        self.resource_id = resource_id  # type: ignore[misc]
        self.date = date  # type: ignore[misc]
        self.description = description  # type: ignore[misc]

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}" if self.resource_id else self.resource_type


fast_init(Evidence)  # here: NO_EVIDENCE is built next
NO_EVIDENCE = Evidence("Observation", None, None, "")
"""An Observation's evidence when none is given (built once: evidence is immutable)."""


@dataclass(frozen=True, slots=True)
class Code:
    system: str
    code: str
    display: str | None = None

    def __init__(self, system: str, code: str, display: str | None = None) -> None:
        self.system = system  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        self.display = display  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class CodedFact:
    """A Condition or Procedure mapped to concepts."""

    concepts: frozenset[str]
    codes: tuple[Code, ...]
    text: str | None
    status: str | None
    date: datetime | None
    evidence: Evidence
    verification: str | None = None
    """Condition.verificationStatus code (confirmed, provisional, differential, unconfirmed ...)."""
    severity: tuple[Code, ...] = ()
    """Condition.severity codings (e.g. SNOMED 24484000 severe)."""
    severity_text: str | None = None


@dataclass(frozen=True, slots=True)
class LabResult:
    """An Observation mapped to a concept, its value in canonical units when it has a quantity."""

    concept: str
    effective: datetime | None
    value: float | None
    unit: str | None
    interpretable: bool
    original: str
    """The value and unit exactly as received, e.g. ``"1.3 K/uL"``."""
    result_concepts: frozenset[str] = frozenset()
    """Coded or text results mapped to concepts (positive, negative, her2-ihc-3plus, ...)."""
    reference_low: float | None = None
    reference_high: float | None = None
    evidence: Evidence = NO_EVIDENCE
    site: str | None = None
    """Where the specimen came from (``bodySite`` or the specimen's text), e.g. "Liver" for a metastasis."""
    value_date: datetime | None = None
    """A date-valued result (``valueDateTime`` or ``valuePeriod.start``), e.g. the last menstrual period."""

    def __init__(
        self,
        concept: str,
        effective: datetime | None,
        value: float | None,
        unit: str | None,
        interpretable: bool,
        original: str,
        result_concepts: frozenset[str] = frozenset(),
        reference_low: float | None = None,
        reference_high: float | None = None,
        evidence: Evidence = NO_EVIDENCE,
        site: str | None = None,
        value_date: datetime | None = None,
    ) -> None:
        self.concept = concept  # type: ignore[misc]
        self.effective = effective  # type: ignore[misc]
        self.value = value  # type: ignore[misc]
        self.unit = unit  # type: ignore[misc]
        self.interpretable = interpretable  # type: ignore[misc]
        self.original = original  # type: ignore[misc]
        self.result_concepts = result_concepts  # type: ignore[misc]
        self.reference_low = reference_low  # type: ignore[misc]
        self.reference_high = reference_high  # type: ignore[misc]
        self.evidence = evidence  # type: ignore[misc]
        self.site = site  # type: ignore[misc]
        self.value_date = value_date  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Product:
    system: str
    code: str
    display: str
    ingredients: frozenset[str]
    form: str | None
    strength_mg: float | None
    tty: str | None = None
    """RxNorm term type (SCD, SBD, ...) when known."""


@dataclass(frozen=True, slots=True)
class MedicationUse:
    """A medicine the patient takes or is being ordered, resolved to its ingredients."""

    ingredients: frozenset[str]
    groups: frozenset[str]
    source: MedicationSource
    status: str | None
    product: Product | None
    matched_by: MatchedBy
    text: str
    evidence: Evidence
    started: datetime | None = None
    ended: datetime | None = None
    """End of the period the medicine was taken or ordered for, when the record gives one."""
    route: str | None = None
    """The route of the first dosage (text or display), e.g. "Topical"."""
    form: str | None = None
    """The dose form of a referenced Medication (text or display), e.g. "Cream"."""

    @property
    def is_current(self) -> bool:
        """Taken now or ordered with this order set (not completed, stopped or cancelled)."""
        if self.source == "draft":
            return True
        allowed = _CURRENT_REQUEST if self.source == "request" else _CURRENT_STATEMENT
        return self.status in allowed


_CURRENT_REQUEST = frozenset({"active", "on-hold"})
_CURRENT_STATEMENT = frozenset({"active", "intended", "on-hold"})


@dataclass(frozen=True, slots=True)
class DoseSchedule:
    """The dose and schedule of a palbociclib order, normalised from whichever FHIR encoding it used."""

    dose_mg: float | None
    """Per administration, in mg (from a mg dose, or a count of units times the product strength)."""
    administrations_per_day: float | None
    daily_dose_mg: float | None
    days_on: int | None
    """Consecutive dosing days per cycle (21 for the labelled schedule); ``None`` when not stated."""
    cycle_days: int | None
    """Cycle length in days (28 for the labelled schedule); ``None`` when not stated."""
    continuous: bool
    """Dosing every day without a break (stated, or dosing days equal to the cycle)."""
    encoding: str
    """How the schedule was read: bounds-duration, count, bounds-period, text, none."""
    original: str
    """The dosage as received (text and structured values), for the card's evidence."""
    problems: tuple[str, ...] = ()
    """What could not be reconciled, e.g. a mg dose that does not match the product's strength."""


@dataclass(frozen=True, slots=True)
class OrderDetails:
    schedule: DoseSchedule | None = None
    start: date | None = None
    reasons: tuple[str, ...] = ()
    """Documented reasons and notes: reasonCode texts and displays, reasonReference displays, note texts."""
    food_instruction: bool = False
    """The order tells the patient to take it with food."""


@dataclass(frozen=True, slots=True)
class PalbociclibOrder:
    """The draft palbociclib order the hook fired for."""

    resource_id: str | None
    status: str | None
    product: Product | None
    matched_by: MatchedBy
    text: str
    evidence: Evidence
    details: OrderDetails = field(default_factory=OrderDetails)
    replaces: tuple[str, ...] = ()
    """Orders this one replaces (``priorPrescription``), as ``MedicationRequest/<id>``."""

    @property
    def reference(self) -> str | None:
        return f"MedicationRequest/{self.resource_id}" if self.resource_id else None


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    as_of: datetime
    patient_id: str
    sex: Sex
    birth_date: date | None
    age_years: int | None
    conditions: tuple[CodedFact, ...] = ()
    procedures: tuple[CodedFact, ...] = ()
    medications: tuple[MedicationUse, ...] = ()
    substances: tuple[CodedFact, ...] = ()
    """Foods and substances named by AllergyIntolerance entries and NutritionOrders (current or in this
    order set), mapped through the medication value sets (e.g. grapefruit)."""
    labs: tuple[LabResult, ...] = ()
    """Newest first."""
    available: frozenset[str] = frozenset()
    """Prefetch keys whose data was obtained (possibly empty)."""

    def conditions_with(self, concept: str) -> tuple[CodedFact, ...]:
        return tuple(c for c in self.conditions if concept in c.concepts)

    def labs_for(self, concept: str) -> tuple[LabResult, ...]:
        return tuple(lab for lab in self.labs if lab.concept == concept)

    def medications_in(self, *groups_or_ingredients: str) -> tuple[MedicationUse, ...]:
        wanted = set(groups_or_ingredients)
        return tuple(m for m in self.medications if wanted & m.ingredients or wanted & m.groups)


fast_init(
    Code, CodedFact, LabResult, Product, MedicationUse, DoseSchedule, OrderDetails, PalbociclibOrder, PatientSnapshot
)
