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


# Observation prefetch keys: the observation concepts each reads and how many results it keeps.
OBSERVATION_KEYS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cbc", ("anc", "wbc", "neutrophils-percent", "bands-percent", "platelets", "hemoglobin"), 100),
    ("receptors", ("er-status", "pr-status", "her2-ihc", "her2-interpretation", "her2-ish"), 30),
    ("hormones", ("fsh", "estradiol", "lh", "last-menstrual-period"), 20),
    ("chemistry", ("ast", "alt", "bilirubin-total", "albumin", "creatinine", "inr"), 40),
    ("pregnancyTests", ("hcg-urine-qualitative", "hcg-serum-quantitative", "hcg-serum-qualitative"), 10),
    ("esr1", ("esr1-variant",), 10),
    ("temperature", ("body-temperature",), 10),
)
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
            f"MedicationStatement?patient={PATIENT}&status=active,intended,on-hold&_count=100",
            300,
        ),
        PrefetchKey("conditions", "Condition", f"Condition?patient={PATIENT}&_count=200", 400),
    ]
    for key, concepts, count in OBSERVATION_KEYS:
        codes = [(s, c) for s, c in vs.codes_of(concepts, "observations") if s == SYSTEMS["loinc"]]
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
