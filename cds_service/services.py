"""The service registry: one definition per CDS Service, feeding discovery, dispatch and prefetch.

Prefetch templates use only the spec's tokens (``{{context.patientId}}`` ...) and its restricted query
syntax (CDS Hooks 2.0 §Prefetch query restrictions): type-level searches with ``patient``, token
equality (comma-separated OR), ``_sort`` and ``_count``. Observation searches name their LOINC codes,
taken from the value sets, and are bounded: there is no "all observations" query.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cds_service.terminology import SYSTEMS, ValueSets


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    key: str
    resource_type: str
    template: str
    limit: int
    """Entries to read at most when the service runs the query itself (pages are followed up to it)."""


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchKey, ...]
    usage_requirements: str | None = None

    def discovery_entry(self, extension: dict[str, Any] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": {p.key: p.template for p in self.prefetch},
        }
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        if extension:
            entry["extension"] = extension
        return entry


# How many results each Observation prefetch key keeps (newest first); the LOINC codes each asks for come
# from the value sets (``prefetch_key`` of each observation concept).
OBSERVATION_KEY_LIMITS: dict[str, int] = {
    "cbc": 100,
    "receptors": 30,
    "hormones": 20,
    "chemistry": 40,
    "pregnancyTests": 10,
    "esr1": 10,
    "temperature": 10,
    "reproductiveStatus": 20,
    "childPugh": 10,
    "staging": 10,
    "diseaseStatus": 20,
}
DEFAULT_OBSERVATION_LIMIT = 20


PATIENT = "{{context.patientId}}"


def _token_list(codes: list[tuple[str, str]]) -> str:
    unique = list(dict.fromkeys(codes))
    return ",".join(f"{system}|{code}" for system, code in unique)


def prefetch_keys(vs: ValueSets) -> tuple[PrefetchKey, ...]:
    keys = [
        PrefetchKey("patient", "Patient", f"Patient/{PATIENT}", 1),
        PrefetchKey(
            "medicationRequests",
            "MedicationRequest",
            f"MedicationRequest?patient={PATIENT}&status=active,on-hold&_count=100",
            300,
        ),
        PrefetchKey(
            "medicationStatements",
            "MedicationStatement",
            f"MedicationStatement?patient={PATIENT}&status=active,intended,on-hold,completed,stopped&_count=100",
            300,
        ),
        # Past orders: prior CDK4/6 inhibitor or adjuvant aromatase inhibitor, and whether this is a first order.
        PrefetchKey(
            "medicationHistory",
            "MedicationRequest",
            f"MedicationRequest?patient={PATIENT}&status=completed,stopped&_sort=-authoredon&_count=100",
            200,
        ),
        PrefetchKey("conditions", "Condition", f"Condition?patient={PATIENT}&_count=200", 400),
        # Foods and substances to avoid (grapefruit) where the record codes them.
        PrefetchKey("allergies", "AllergyIntolerance", f"AllergyIntolerance?patient={PATIENT}&_count=100", 200),
        PrefetchKey(
            "nutritionOrders", "NutritionOrder", f"NutritionOrder?patient={PATIENT}&status=active&_count=20", 20
        ),
    ]
    by_key: dict[str, list[tuple[str, str]]] = {}
    for concept in vs.concepts.values():
        if concept.domain == "observations" and concept.prefetch_key:
            loinc = [(s, c) for s, c in concept.prefetch_codes if s == SYSTEMS["loinc"]]
            by_key.setdefault(concept.prefetch_key, []).extend(loinc)
    ordered = [k for k in OBSERVATION_KEY_LIMITS if k in by_key] + sorted(set(by_key) - set(OBSERVATION_KEY_LIMITS))
    for key in ordered:
        codes, count = by_key[key], OBSERVATION_KEY_LIMITS.get(key, DEFAULT_OBSERVATION_LIMIT)
        keys.append(
            PrefetchKey(
                key,
                "Observation",
                f"Observation?patient={PATIENT}&code={_token_list(codes)}&_sort=-date&_count={count}",
                count,
            )
        )
    procedure_codes = [
        code for concept in vs.concepts.values() if concept.domain == "procedures" for code in concept.prefetch_codes
    ]
    procedure_filter = f"&code={_token_list(procedure_codes)}" if procedure_codes else ""
    keys.append(
        PrefetchKey("procedures", "Procedure", f"Procedure?patient={PATIENT}{procedure_filter}&_count=100", 100)
    )
    return tuple(keys)


def build_registry(vs: ValueSets) -> MappingProxyType[str, ServiceDefinition]:
    prefetch = prefetch_keys(vs)
    common = (
        "Checks a palbociclib (Ibrance) order against the prescribing information and the trials behind it: "
        "tumour receptor status and indication, endocrine partner and menopausal status, interacting "
        "medicines, blood counts, dose and the 21-days-on / 7-days-off schedule, pregnancy and hepatic "
        "impairment."
    )
    usage = (
        "Send the prefetch, or fhirServer with fhirAuthorization so the service can read what is missing. "
        "MedicationRequest orders for palbociclib are recognised by RxNorm ingredient, product (SCD/SBD) "
        "or NDC code, by a contained or bundled Medication, or by name."
    )
    services = (
        ServiceDefinition(
            "palbociclib-order-sign", "order-sign", "Palbociclib order check (sign)", common, prefetch, usage
        ),
        ServiceDefinition(
            "palbociclib-order-select",
            "order-select",
            "Palbociclib order check (select)",
            common + " Only the selected orders are checked.",
            prefetch,
            usage,
        ),
    )
    return MappingProxyType({s.id: s for s in services})
