"""Value sets: codes (RxNorm, LOINC, SNOMED CT, ICD-10-CM, ...) mapped to the concepts rules speak of.

The data lives in ``cds_service/valuesets/*.yaml``, each code with its source and verification status
(``valuesets/SOURCES.md``). It is loaded once per process and checked on load: an unknown system alias
or a product naming an unknown ingredient stops the service. A code may map to several concepts of a
domain on purpose (SNOMED "HER2-positive carcinoma of breast" is breast cancer and HER2-positive).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cds_service import yamlload
from cds_service.native import PACKAGE
from cds_service.snapshot.model import Code, Product

VALUESETS_DIR = PACKAGE / "valuesets"

SYSTEMS: dict[str, str] = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "icd10pcs": "http://www.cms.gov/Medicare/Coding/ICD10",
    "cpt": "http://www.ama-assn.org/go/cpt",
    "ndc": "http://hl7.org/fhir/sid/ndc",
    "v3-interpretation": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
    "hgnc": "http://www.genenames.org",
}
# Other spellings of the same code systems seen in real data (OIDs, http/https variants).
_SYSTEM_ALIASES: dict[str, str] = {
    "urn:oid:2.16.840.1.113883.6.88": SYSTEMS["rxnorm"],
    "http://www.nlm.nih.gov/research/umls/rxnorm/": SYSTEMS["rxnorm"],
    "urn:oid:2.16.840.1.113883.6.96": SYSTEMS["snomed"],
    "http://snomed.info/sct/": SYSTEMS["snomed"],
    "https://snomed.info/sct": SYSTEMS["snomed"],
    "urn:oid:2.16.840.1.113883.6.1": SYSTEMS["loinc"],
    "https://loinc.org": SYSTEMS["loinc"],
    "urn:oid:2.16.840.1.113883.6.90": SYSTEMS["icd10cm"],
    "http://hl7.org/fhir/sid/icd-10-cm/": SYSTEMS["icd10cm"],
    "urn:oid:2.16.840.1.113883.6.3": SYSTEMS["icd10"],
    "urn:oid:2.16.840.1.113883.6.4": SYSTEMS["icd10pcs"],
    "http://hl7.org/fhir/sid/icd-10-pcs": SYSTEMS["icd10pcs"],
    "urn:oid:2.16.840.1.113883.6.12": SYSTEMS["cpt"],
    "urn:oid:2.16.840.1.113883.6.69": SYSTEMS["ndc"],
    "http://hl7.org/fhir/v3/ObservationInterpretation": SYSTEMS["v3-interpretation"],
    "urn:oid:2.16.840.1.113883.5.83": SYSTEMS["v3-interpretation"],
    "http://www.genenames.org/geneId": SYSTEMS["hgnc"],
}
_ICD_SYSTEMS = {SYSTEMS["icd10cm"], SYSTEMS["icd10"], SYSTEMS["icd10pcs"]}
DOMAINS = ("medications", "conditions", "observations", "result_values", "procedures")


class ValueSetError(ValueError):
    """A value-set file is malformed; the service must not start with it."""


def canonical_system(system: str | None) -> str:
    if not system:
        return ""
    system = system.strip()
    return _SYSTEM_ALIASES.get(system, system)


def normalise_code(system: str, code: str) -> str:
    code = code.strip()
    if system in _ICD_SYSTEMS:
        return code.replace(".", "").upper()
    if system == SYSTEMS["ndc"]:
        return normalise_ndc(code)
    return code


def normalise_ndc(code: str) -> str:
    """Hyphenated NDCs become the zero-padded 5-4-2 package form (11 digits) or 5-4 product form (9)."""
    parts = code.strip().split("-")
    if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
        widths = (5, 4, 2)
        return "".join(p.zfill(w) for p, w in zip(parts, widths, strict=False))
    return code.replace("-", "").strip()


@dataclass(frozen=True, slots=True)
class Concept:
    id: str
    domain: str
    display: str
    groups: frozenset[str]
    names: tuple[str, ...]
    unit_kind: str | None
    prefetch_key: str | None
    """For observation concepts: the prefetch key whose query asks for them."""
    prefetch_codes: tuple[tuple[str, str], ...]
    """Exact (system, code) pairs, for search parameters."""


@dataclass(frozen=True, slots=True)
class _Prefix:
    system: str
    prefix: str
    concept: str


class ValueSets:
    """All value sets, indexed for lookups on the hot path."""

    def __init__(self, documents: Mapping[str, Mapping[str, Any]], digest: str) -> None:
        self.digest = digest
        self.concepts: dict[str, Concept] = {}
        self._exact: dict[tuple[str, str, str], set[str]] = {}
        self._prefixes: dict[str, list[_Prefix]] = {}
        self.texts: dict[str, dict[str, str]] = {}
        self._names: dict[str, str] = {}
        for domain in DOMAINS:
            self._load_domain(domain, documents.get(domain, {}))
        # One alternation, longer names first, so "ethinyl estradiol" claims its words before "estradiol".
        alternatives = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
        self._names_pattern = re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])") if self._names else None
        # The same codes and drug names arrive call after call; the caches are cleared when full, never stale
        # (value sets do not change while the service runs).
        self._lookups: dict[tuple[str, str | None, str], frozenset[str]] = {}
        self._named: dict[str, frozenset[str]] = {}
        self.products: dict[tuple[str, str], Product] = {}
        self._load_products(documents.get("medication_products", {}))

    # -- loading -------------------------------------------------------------------------------
    def _load_domain(self, domain: str, document: Any) -> None:
        if not isinstance(document, dict):
            raise ValueSetError(f"{domain}: the file must hold a mapping")
        concepts = document.get("concepts") or {}
        if not isinstance(concepts, dict):
            raise ValueSetError(f"{domain}: 'concepts' must be a mapping")
        self._prefixes.setdefault(domain, [])
        self.texts.setdefault(domain, {})
        for concept_id, body in concepts.items():
            if not isinstance(body, dict):
                raise ValueSetError(f"{domain}/{concept_id}: entry must be a mapping")
            exact: list[tuple[str, str]] = []
            for entry in body.get("codes") or []:
                system, code = self._system_code(domain, concept_id, entry)
                if entry.get("match") == "prefix":
                    self._prefixes[domain].append(_Prefix(system, code, concept_id))
                    continue
                exact.append((system, str(entry["code"]).strip()))
                self._exact.setdefault((domain, system, code), set()).add(concept_id)
            names = tuple(str(n).casefold() for n in _string_list(body, "names", domain, concept_id))
            for text in _string_list(body, "texts", domain, concept_id):
                self.texts[domain][str(text).casefold().strip()] = concept_id
            if domain == "medications":
                self._names.update(dict.fromkeys(names, str(concept_id)))
            key = concept_id
            if key in self.concepts and self.concepts[key].domain != domain:
                key = f"{domain}:{concept_id}"
            self.concepts[key] = Concept(
                id=concept_id,
                domain=domain,
                display=str(body.get("display") or concept_id),
                groups=frozenset(body.get("groups") or ()),
                names=names,
                unit_kind=body.get("unit_kind"),
                prefetch_key=body.get("prefetch_key"),
                prefetch_codes=tuple(exact),
            )
        # Longest prefixes first so C50.91 wins over C50 if both are listed.
        self._prefixes[domain].sort(key=lambda p: -len(p.prefix))

    @staticmethod
    def _system_code(domain: str, concept_id: str, entry: Any) -> tuple[str, str]:
        if not isinstance(entry, dict) or "system" not in entry or "code" not in entry:
            raise ValueSetError(f"{domain}/{concept_id}: each code needs a system and a code")
        alias = entry["system"]
        if alias not in SYSTEMS:
            raise ValueSetError(f"{domain}/{concept_id}: unknown system alias {alias!r}")
        system = SYSTEMS[alias]
        return system, normalise_code(system, str(entry["code"]))

    def _load_products(self, document: Any) -> None:
        if not isinstance(document, dict) or not isinstance(document.get("products") or [], list):
            raise ValueSetError("medication_products: the file must hold a 'products' list")
        for entry in document.get("products") or []:
            if not isinstance(entry, dict):
                raise ValueSetError(f"medication_products: entry {entry!r} must be a mapping")
            system, code = self._system_code("medication_products", str(entry.get("display")), entry)
            ingredients = frozenset(_string_list(entry, "ingredients", "medication_products", code))
            unknown = [i for i in ingredients if self.concept(i, "medications") is None]
            if not ingredients or unknown:
                raise ValueSetError(f"product {code}: unknown or missing ingredients {unknown}")
            strength = entry.get("strength_mg")
            if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)):
                raise ValueSetError(f"product {code}: strength_mg must be a number of milligrams")
            self.products[(system, code)] = Product(
                system=system,
                code=str(entry["code"]),
                display=str(entry.get("display") or code),
                ingredients=ingredients,
                form=entry.get("form"),
                strength_mg=float(strength) if strength is not None else None,
                tty=entry.get("tty"),
            )

    # -- lookups -------------------------------------------------------------------------------
    def concept(self, concept_id: str, domain: str) -> Concept | None:
        found = self.concepts.get(concept_id)
        if found is not None and found.domain == domain:
            return found
        return self.concepts.get(f"{domain}:{concept_id}")

    def lookup(self, domain: str, system: str | None, code: str | None) -> frozenset[str]:
        """Concepts a single coding maps to in a domain (exact codes, then ICD code families)."""
        if not code:
            return frozenset()
        key = (domain, system, str(code))
        known = self._lookups.get(key)
        if known is None:
            known = self._lookup(domain, system, str(code))
            _remember(self._lookups, key, known)
        return known

    def _lookup(self, domain: str, system: str | None, code: str) -> frozenset[str]:
        system = canonical_system(system)
        code = normalise_code(system, code)
        found = self._exact.get((domain, system, code))
        if found:
            return frozenset(found)
        for prefix in self._prefixes.get(domain, ()):
            if prefix.system == system and code.startswith(prefix.prefix):
                return frozenset({prefix.concept})
        return frozenset()

    def lookup_codings(self, domain: str, codes: Iterable[Code]) -> frozenset[str]:
        """The concepts of a domain that any of ``codes`` maps to."""
        found: frozenset[str] = frozenset()
        for coding in codes:
            concepts = self.lookup(domain, coding.system, coding.code)
            if concepts:
                found = found | concepts if found else concepts
        return found

    def product(self, system: str | None, code: str | None) -> Product | None:
        if not code:
            return None
        system = canonical_system(system)
        code = normalise_code(system, str(code))
        found = self.products.get((system, code))
        if found is None and system == SYSTEMS["ndc"] and len(code) == 11:
            found = self.products.get((system, code[:9]))  # a package of a listed product
        return found

    def medication_names_in(self, text: str) -> frozenset[str]:
        """Ingredients named in free text (generic or brand names, whole words; a longer name claims its
        words, so "ethinyl estradiol" is not also "estradiol")."""
        if self._names_pattern is None:
            return frozenset()
        known = self._named.get(text)
        if known is None:
            known = frozenset(self._names[m.group(0)] for m in self._names_pattern.finditer(text.casefold()))
            _remember(self._named, text, known)
        return known

    def text_concept(self, domain: str, text: str) -> str | None:
        return self.texts.get(domain, {}).get(text.casefold().strip())

    def groups_of(self, ingredients: Iterable[str]) -> frozenset[str]:
        groups: set[str] = set()
        for ingredient in ingredients:
            concept = self.concept(ingredient, "medications")
            if concept is not None:
                groups |= concept.groups
        return frozenset(groups)

    def product_with_strength(self, ingredient: str, strength_mg: float, form: str | None) -> Product | None:
        """The generic (SCD) product of one ingredient at a strength and form, e.g. palbociclib 75 mg tablet."""
        for product in self.products.values():
            if (
                product.ingredients == {ingredient}
                and product.strength_mg == strength_mg
                and product.form == form
                and product.tty == "SCD"
            ):
                return product
        return None

    def codes_of(self, concept_ids: Iterable[str], domain: str) -> list[tuple[str, str]]:
        codes: list[tuple[str, str]] = []
        for concept_id in concept_ids:
            concept = self.concept(concept_id, domain)
            if concept is None:
                raise ValueSetError(f"{domain}: no concept {concept_id!r}")
            codes.extend(concept.prefetch_codes)
        return codes


def _string_list(body: Mapping[str, Any], field: str, domain: str, owner: str) -> list[str]:
    value = body.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise ValueSetError(f"{domain}/{owner}: {field!r} must be a list of strings")
    return [str(v) for v in value]


def load_valuesets(directory: Path = VALUESETS_DIR) -> ValueSets:
    return _load_cached(directory.resolve())


@lru_cache(maxsize=4)
def _load_cached(directory: Path) -> ValueSets:
    """Files are ``<domain>.yaml`` or ``<domain>.<topic>.yaml``; a domain's files are merged (a concept
    defined in two files is an error)."""
    documents: dict[str, Any] = {}
    digest = hashlib.sha256()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        # Without value sets no code matches anything: every check would pass in silence.
        raise ValueSetError(f"{directory}: no value-set files (*.yaml)")
    for path in files:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw)
        try:
            document = yamlload.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ValueSetError(f"{path.name}: not valid YAML: {exc}") from exc
        if not isinstance(document, dict):
            raise ValueSetError(f"{path.name}: the file must hold a mapping")
        _merge(documents, path.name.split(".")[0], document, path.name)
    return ValueSets(documents, digest.hexdigest())


def _merge(documents: dict[str, Any], domain: str, document: dict[str, Any], name: str) -> None:
    target = documents.setdefault(domain, {})
    for field in ("concepts",):
        incoming = document.get(field) or {}
        if not isinstance(incoming, dict):
            raise ValueSetError(f"{name}: {field!r} must be a mapping")
        existing = target.setdefault(field, {})
        clash = sorted(set(existing) & set(incoming))
        if clash:
            raise ValueSetError(f"{name}: concepts already defined in another {domain} file: {clash}")
        existing.update(incoming)
    products = document.get("products")
    if products is not None:
        if not isinstance(products, list):
            raise ValueSetError(f"{name}: 'products' must be a list")
        target.setdefault("products", []).extend(products)


_CACHE_LIMIT = 20_000


def _remember(cache: dict[Any, frozenset[str]], key: Any, value: frozenset[str]) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
