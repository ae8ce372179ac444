"""Resolve a MedicationRequest or MedicationStatement to its ingredients.

Codes are tried first: a product code (RxNorm SCD/SBD, NDC) maps to all of its ingredients, so a
combination product matches each one; an ingredient code maps to itself. ``medicationReference`` is
followed to a contained Medication or to one found elsewhere in the request (draftOrders, prefetch).
Only when no code is known are the drug's names looked for in the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.snapshot.fhirjson import as_dict, as_list, as_str, codings, concept_text, reference_id
from cds_service.snapshot.model import Code, MatchedBy, Product
from cds_service.terminology import ValueSets

MedicationIndex = Mapping[str, dict[str, Any]]
"""Medication resources by ``Medication/<id>``."""


@dataclass(frozen=True, slots=True)
class ResolvedMedication:
    ingredients: frozenset[str]
    product: Product | None
    matched_by: MatchedBy
    text: str
    form: str | None = None


def index_medications(resources: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if resource.get("resourceType") == "Medication" and as_str(resource.get("id")):
            index[f"Medication/{resource['id']}"] = resource
    return index


def _medication_element(resource: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(CodeableConcept, Reference) of the medication; tolerates R5's CodeableReference shape."""
    concept = resource.get("medicationCodeableConcept")
    reference = resource.get("medicationReference")
    r5 = as_dict(resource.get("medication"))
    if concept is None and reference is None and r5:
        concept, reference = r5.get("concept"), r5.get("reference")
    return (as_dict(concept) or None), (as_dict(reference) or None)


def _dereference(
    reference: dict[str, Any], owners: tuple[dict[str, Any], ...], index: MedicationIndex
) -> dict[str, Any]:
    """The Medication a reference names: ``#id`` in the contained resources of the owners (innermost
    first; in FHIR a contained resource's ``#id`` names a sibling in the container), else by id."""
    kind, rid = reference_id(reference)
    if rid is None:
        return {}
    if rid.startswith("#"):
        for owner in owners:
            for contained in as_list(owner.get("contained")):
                contained = as_dict(contained)
                if contained.get("resourceType") == "Medication" and contained.get("id") == rid[1:]:
                    return contained
        return {}
    return dict(index.get(f"{kind or 'Medication'}/{rid}", {}))


def resolve(resource: dict[str, Any], vs: ValueSets, index: MedicationIndex) -> ResolvedMedication | None:
    """Ingredients of the medicine a request or statement names; ``None`` if none is known."""
    concept, reference = _medication_element(resource)
    code_sets: list[list[Code]] = []
    texts: list[str] = []
    form: str | None = None
    if concept:
        code_sets.append(codings(concept))
        texts.append(concept_text(concept))
    if reference:
        medication = _dereference(reference, (resource,), index)
        texts.append(as_str(reference.get("display")) or "")
        if medication:
            form = concept_text(medication.get("form")) or None
            code_sets.append(codings(medication.get("code")))
            texts.append(concept_text(medication.get("code")))
            for ingredient in as_list(medication.get("ingredient")):
                ingredient = as_dict(ingredient)
                # R4 itemCodeableConcept / itemReference; R5 item: CodeableReference.
                r5_item = as_dict(ingredient.get("item"))
                item = ingredient.get("itemCodeableConcept") or r5_item.get("concept")
                item_reference = ingredient.get("itemReference") or r5_item.get("reference")
                if item is None and item_reference:
                    item = as_dict(_dereference(as_dict(item_reference), (medication, resource), index).get("code"))
                code_sets.append(codings(item))
                texts.append(concept_text(item))

    ingredients: set[str] = set()
    product: Product | None = None
    for code in (c for codes in code_sets for c in codes):
        found = vs.product(code.system, code.code)
        if found is not None:
            product = product or found
            ingredients |= found.ingredients
            continue
        ingredients |= vs.lookup("medications", code.system, code.code)
    text = "; ".join(t for t in texts if t)
    if ingredients:
        return ResolvedMedication(frozenset(ingredients), product, "product" if product else "ingredient", text, form)
    named = vs.medication_names_in(text) if text else frozenset()
    if named:
        return ResolvedMedication(named, None, "text", text, form)
    return None
