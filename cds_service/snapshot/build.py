"""Build the ``PatientSnapshot`` from the FHIR JSON a call obtained.

Codes become concepts through the value sets, lab values become canonical units (``units``), dates become
aware datetimes and the patient's age at ``as_of``. Entered-in-error and refuted records are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from cds_service.prefetch.model import PatientData
from cds_service.snapshot import labs
from cds_service.snapshot.fhirjson import (
    as_dict,
    as_list,
    as_str,
    codings,
    concept_text,
    evidence,
    first_datetime,
    parse_date,
    parse_datetime,
    subject_patient_id,
)
from cds_service.snapshot.medications import MedicationIndex, index_medications, resolve
from cds_service.snapshot.model import CodedFact, MedicationSource, MedicationUse, PatientSnapshot, Sex
from cds_service.terminology import ValueSets

_DROPPED_STATUSES = frozenset({"entered-in-error", "cancelled", "refuted"})
_MEDICATION_TYPES = {"MedicationRequest": "request", "MedicationStatement": "statement"}


def age_at(birth: date | None, moment: datetime) -> int | None:
    if birth is None:
        return None
    on = moment.date()
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _sex(patient: dict[str, Any]) -> Sex:
    gender = patient.get("gender")
    return gender if gender in ("female", "male", "other") else "unknown"


def _dropped(resource: dict[str, Any]) -> bool:
    if as_str(resource.get("status")) in _DROPPED_STATUSES:
        return True
    if resource.get("doNotPerform") is True:  # an order NOT to give a medicine is no use of it
        return True
    verification = resource.get("verificationStatus")
    return verification is not None and any(c.code in _DROPPED_STATUSES for c in codings(verification))


def coded_fact(resource: dict[str, Any], domain: str, vs: ValueSets, date_fields: tuple[str, ...]) -> CodedFact:
    codes = tuple(codings(resource.get("code")))
    concepts = vs.lookup_codings(domain, codes)
    clinical = codings(resource.get("clinicalStatus"))
    status = clinical[0].code if clinical else as_str(resource.get("status"))
    when = first_datetime(resource, *date_fields)
    text = concept_text(resource.get("code")) or None
    shown = ", ".join(f"{c.code}" for c in codes) or "uncoded"
    verification = codings(resource.get("verificationStatus"))
    return CodedFact(
        concepts=concepts,
        codes=codes,
        text=text,
        status=status,
        date=when,
        evidence=evidence(resource, when, f"{text or str(resource.get('resourceType'))} ({shown})"),
        verification=verification[0].code if verification else None,
        severity=tuple(codings(resource.get("severity"))),
        severity_text=concept_text(resource.get("severity")) or None,
    )


_NUTRITION_CONCEPTS = ("excludeFoodModifier", "foodPreferenceModifier")


def substance_fact(resource: dict[str, Any], vs: ValueSets) -> CodedFact | None:
    """The foods or substances an AllergyIntolerance or a NutritionOrder names, as medication concepts."""
    concepts_in: list[Any] = [resource.get("code")]
    concepts_in += [as_dict(r).get("substance") for r in as_list(resource.get("reaction"))]
    for name in _NUTRITION_CONCEPTS:
        concepts_in += as_list(resource.get(name))
    oral_diet = as_dict(resource.get("oralDiet"))
    concepts_in += as_list(oral_diet.get("type"))
    texts = [as_str(oral_diet.get("instruction")) or ""]
    for supplement in as_list(resource.get("supplement")):
        supplement = as_dict(supplement)
        concepts_in.append(supplement.get("type"))
        texts += [as_str(supplement.get("productName")) or "", as_str(supplement.get("instruction")) or ""]
    codes = tuple(code for concept in concepts_in for code in codings(concept))
    texts += [concept_text(concept) for concept in concepts_in]
    text = "; ".join(t for t in texts if t)
    found = vs.lookup_codings("medications", codes) | vs.medication_names_in(text)
    if not found:
        return None
    clinical = codings(resource.get("clinicalStatus"))
    status = clinical[0].code if clinical else as_str(resource.get("status"))
    if status in ("inactive", "resolved", "completed", "revoked"):
        return None
    when = first_datetime(resource, "recordedDate", "onsetDateTime", "dateTime")
    return CodedFact(
        concepts=found,
        codes=codes,
        text=text or None,
        status=status,
        date=when,
        evidence=evidence(resource, when, f"{text or ', '.join(sorted(found))} ({resource.get('resourceType')})"),
    )


def medication_period(resource: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """Start and end of a request's or statement's period: effectivePeriod (statements), else the first
    dosage's boundsPeriod, else dispenseRequest.validityPeriod."""
    candidates: list[Any] = [resource.get("effectivePeriod")]
    for dosage in as_list(resource.get("dosageInstruction")) + as_list(resource.get("dosage")):
        candidates.append(as_dict(as_dict(as_dict(dosage).get("timing")).get("repeat")).get("boundsPeriod"))
    candidates.append(as_dict(resource.get("dispenseRequest")).get("validityPeriod"))
    for period in candidates:
        period = as_dict(period)
        start, end = parse_datetime(period.get("start")), parse_datetime(period.get("end"))
        if start or end:
            return start, end
    return parse_datetime(resource.get("effectiveDateTime")) or parse_datetime(resource.get("authoredOn")), None


def _route(resource: dict[str, Any]) -> str | None:
    for dosage in as_list(resource.get("dosageInstruction")) + as_list(resource.get("dosage")):
        route = concept_text(as_dict(dosage).get("route"))
        if route:
            return route
    return None


def medication_use(
    resource: dict[str, Any], source: MedicationSource, vs: ValueSets, index: MedicationIndex
) -> MedicationUse | None:
    resolved = resolve(resource, vs, index)
    if resolved is None:
        return None
    when = first_datetime(resource, "authoredOn", "effectiveDateTime", "effectivePeriod", "dateAsserted")
    status = as_str(resource.get("status"))
    started, ended = medication_period(resource)
    return MedicationUse(
        ingredients=resolved.ingredients,
        groups=vs.groups_of(resolved.ingredients),
        source=source,
        status=status,
        product=resolved.product,
        matched_by=resolved.matched_by,
        text=resolved.text,
        evidence=evidence(
            resource,
            when,
            f"{resolved.text or ', '.join(sorted(resolved.ingredients))} ({source}, {status or 'no status'})",
        ),
        started=started,
        ended=ended,
        route=_route(resource),
        form=resolved.form,
    )


def _unique(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resources once each: the same resource may arrive under several prefetch keys."""
    seen: set[tuple[str, str]] = set()
    out = []
    for resource in resources:
        rid = as_str(resource.get("id"))
        if rid is not None:
            key = (str(resource.get("resourceType")), rid)
            if key in seen:
                continue
            seen.add(key)
        out.append(resource)
    return out


def build_snapshot(
    data: PatientData,
    *,
    patient_id: str,
    draft_orders: Iterable[dict[str, Any]],
    evaluated_orders: Iterable[dict[str, Any]],
    as_of: datetime,
    vs: ValueSets,
    extra_medications: Mapping[str, dict[str, Any]] | None = None,
) -> PatientSnapshot:
    """The snapshot for ``patient_id``. ``evaluated_orders`` are the palbociclib drafts under review: they
    are left out of the medication list, also when a re-signed order comes back in the prefetch; the other
    draft orders are in it, as the same order set."""
    drafts = list(draft_orders)
    # Drafts first: when the EHR also returns a draft in a search, the draft is the newer copy.
    everything = _unique([*drafts, *data.all_resources()])
    index = {**index_medications(everything), **(extra_medications or {})}
    # Only the context's patient: another Patient's sex or age must never be used.
    patient = next((r for r in everything if r.get("resourceType") == "Patient" and r.get("id") == patient_id), {})
    birth = parse_date(patient.get("birthDate"))

    conditions, procedures, medications, observations, substances = [], [], [], [], []
    under_review = list(evaluated_orders)
    evaluated_keys = {(r.get("resourceType"), r.get("id")) for r in under_review if as_str(r.get("id"))}
    evaluated_objects = {id(r) for r in under_review}
    draft_ids = {id(d) for d in drafts}
    for resource in everything:
        kind = resource.get("resourceType")
        if _dropped(resource):
            continue
        about = subject_patient_id(resource)
        if about is not None and about != patient_id and id(resource) not in draft_ids:
            continue  # a server that ignored a search parameter sent another patient's record
        if kind == "Condition":
            conditions.append(coded_fact(resource, "conditions", vs, ("onsetDateTime", "onsetPeriod", "recordedDate")))
        elif kind == "Procedure":
            procedures.append(coded_fact(resource, "procedures", vs, ("performedDateTime", "performedPeriod")))
        elif kind in ("AllergyIntolerance", "NutritionOrder"):
            fact = substance_fact(resource, vs)
            if fact is not None:
                substances.append(fact)
        elif kind == "Observation":
            observations.extend(labs.lab_results(resource, vs))
        elif kind in _MEDICATION_TYPES:
            if id(resource) in evaluated_objects or (kind, as_str(resource.get("id"))) in evaluated_keys:
                continue
            is_draft = id(resource) in draft_ids
            source: MedicationSource = "draft" if is_draft else _MEDICATION_TYPES[kind]  # type: ignore[assignment]
            use = medication_use(resource, source, vs, index)
            if use is not None:
                medications.append(use)

    return PatientSnapshot(
        as_of=as_of,
        patient_id=patient_id,
        sex=_sex(patient),
        birth_date=birth,
        age_years=age_at(birth, as_of),
        conditions=tuple(conditions),
        procedures=tuple(procedures),
        substances=tuple(substances),
        medications=tuple(medications),
        labs=tuple(labs.newest_first(observations)),
        available=data.available,
    )
