"""Value sets: system aliases, ICD families, NDC normalisation, products, names, and load-time checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.snapshot.model import Code
from cds_service.terminology import (
    SYSTEMS,
    VALUESETS_DIR,
    ValueSetError,
    ValueSets,
    canonical_system,
    load_valuesets,
    normalise_code,
    normalise_ndc,
)
from tests.unit.fhir import ICD10CM, LOINC, NDC, RXNORM, SNOMED


# ---------------------------------------------------------------------------------------------- systems
@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("urn:oid:2.16.840.1.113883.6.88", SYSTEMS["rxnorm"]),
        ("http://www.nlm.nih.gov/research/umls/rxnorm/", SYSTEMS["rxnorm"]),
        ("  http://www.nlm.nih.gov/research/umls/rxnorm  ", SYSTEMS["rxnorm"]),
        ("urn:oid:2.16.840.1.113883.6.96", SYSTEMS["snomed"]),
        ("http://snomed.info/sct/", SYSTEMS["snomed"]),
        ("https://snomed.info/sct", SYSTEMS["snomed"]),
        ("urn:oid:2.16.840.1.113883.6.1", SYSTEMS["loinc"]),
        ("https://loinc.org", SYSTEMS["loinc"]),
        ("urn:oid:2.16.840.1.113883.6.90", SYSTEMS["icd10cm"]),
        ("http://hl7.org/fhir/sid/icd-10-cm/", SYSTEMS["icd10cm"]),
        ("urn:oid:2.16.840.1.113883.6.3", SYSTEMS["icd10"]),
        ("urn:oid:2.16.840.1.113883.6.4", SYSTEMS["icd10pcs"]),
        ("http://hl7.org/fhir/sid/icd-10-pcs", SYSTEMS["icd10pcs"]),
        ("urn:oid:2.16.840.1.113883.6.12", SYSTEMS["cpt"]),
        ("urn:oid:2.16.840.1.113883.6.69", SYSTEMS["ndc"]),
        ("http://hl7.org/fhir/v3/ObservationInterpretation", SYSTEMS["v3-interpretation"]),
        ("urn:oid:2.16.840.1.113883.5.83", SYSTEMS["v3-interpretation"]),
        ("http://www.genenames.org/geneId", SYSTEMS["hgnc"]),
        ("http://loinc.org", "http://loinc.org"),
        ("http://example.org/local", "http://example.org/local"),
        (None, ""),
        ("", ""),
    ],
)
def test_canonical_system(system: str | None, expected: str) -> None:
    assert canonical_system(system) == expected


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (RXNORM, "1601374"),
        ("urn:oid:2.16.840.1.113883.6.88", "1601374"),
        ("http://www.nlm.nih.gov/research/umls/rxnorm/", "1601374"),
        (RXNORM, " 1601374 "),
        (SNOMED, "715958001"),
        ("urn:oid:2.16.840.1.113883.6.96", "715958001"),
        ("https://snomed.info/sct", "715958001"),
    ],
)
def test_ingredient_codes_through_aliases(vs: ValueSets, system: str, code: str) -> None:
    assert vs.lookup("medications", system, code) == {"palbociclib"}


@pytest.mark.parametrize(
    ("system", "code"),
    [("http://example.org/rxnorm", "1601374"), (None, "1601374"), (LOINC, "1601374"), (RXNORM, ""), (RXNORM, None)],
)
def test_codes_in_the_wrong_system_or_empty_do_not_match(vs: ValueSets, system: str | None, code: str | None) -> None:
    assert vs.lookup("medications", system, code) == frozenset()


def test_lookup_is_per_domain(vs: ValueSets) -> None:
    assert vs.lookup("observations", LOINC, "751-8") == {"anc"}
    assert vs.lookup("conditions", LOINC, "751-8") == frozenset()
    assert vs.lookup("no-such-domain", LOINC, "751-8") == frozenset()


# ---------------------------------------------------------------------------------------------- ICD-10-CM
@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (ICD10CM, "C50.912", {"breast-cancer"}),
        (ICD10CM, "C50912", {"breast-cancer"}),
        (ICD10CM, "c50.912", {"breast-cancer"}),
        (ICD10CM, " C50.912 ", {"breast-cancer"}),
        (ICD10CM, "C50.011", {"breast-cancer"}),
        (ICD10CM, "C50.A1", {"breast-cancer"}),
        (ICD10CM, "C50", {"breast-cancer"}),
        ("urn:oid:2.16.840.1.113883.6.90", "C50.912", {"breast-cancer"}),
        ("http://hl7.org/fhir/sid/icd-10-cm/", "C50912", {"breast-cancer"}),
        (ICD10CM, "C78.7", {"secondary-malignancy"}),
        (ICD10CM, "C787", {"secondary-malignancy"}),
        (ICD10CM, "C79.51", {"secondary-malignancy"}),
        (ICD10CM, "C77.3", {"secondary-malignancy"}),
        (ICD10CM, "C7B.03", {"secondary-malignancy"}),
        (ICD10CM, "Z17.411", {"hr-positive-her2-negative"}),
        (ICD10CM, "Z17411", {"hr-positive-her2-negative"}),
        (ICD10CM, "Z17.410", {"hr-positive-her2-positive"}),
        (ICD10CM, "Z17.421", {"hr-negative-her2-negative"}),
        (ICD10CM, "Z17.0", {"er-positive"}),
        (ICD10CM, "Z17.1", {"er-negative"}),
        (ICD10CM, "Z17.31", {"her2-positive"}),
        (ICD10CM, "Z90.722", {"bilateral-oophorectomy-status"}),
        (ICD10CM, "O09.511", {"pregnancy"}),
        # not a family member
        (ICD10CM, "C5", set()),
        (ICD10CM, "C51.9", set()),
        (ICD10CM, "D05.10", set()),
        (ICD10CM, "Z17.4", set()),  # exact codes are not prefixes
        (ICD10CM, "Z17.41", set()),
        # the same code in another system is another code
        (SNOMED, "C50.912", set()),
        # WHO ICD-10: only the categories that mean the same as in ICD-10-CM (C50, C77-C79)
        (SYSTEMS["icd10"], "C50.9", {"breast-cancer"}),
        (SYSTEMS["icd10"], "C50.4", {"breast-cancer"}),
        ("urn:oid:2.16.840.1.113883.6.3", "C50.9", {"breast-cancer"}),
        (SYSTEMS["icd10"], "C78.7", {"secondary-malignancy"}),
        (SYSTEMS["icd10"], "C79.5", {"secondary-malignancy"}),
        (SYSTEMS["icd10"], "C77.3", {"secondary-malignancy"}),
        (SYSTEMS["icd10"], "C7B.03", set()),  # an ICD-10-CM addition
        (SYSTEMS["icd10"], "Z17.411", set()),
        (SYSTEMS["icd10"], "Z17.0", set()),
        (SYSTEMS["icd10"], "D05.1", set()),
    ],
)
def test_icd10cm_conditions(vs: ValueSets, system: str, code: str, expected: set[str]) -> None:
    assert vs.lookup("conditions", system, code) == frozenset(expected)


def test_snomed_double_mapping_is_kept(vs: ValueSets) -> None:
    assert vs.lookup("conditions", SNOMED, "427685000") == {"breast-cancer", "her2-positive"}


def test_lookup_codings_unions_concepts(vs: ValueSets) -> None:
    codes = [Code(ICD10CM, "C50.912"), Code(ICD10CM, "Z17.411"), Code("", ""), Code(SNOMED, "x")]
    found = vs.lookup_codings("conditions", codes)
    assert found == {"breast-cancer", "hr-positive-her2-negative"}


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (SYSTEMS["icd10cm"], "c50.912", "C50912"),
        (SYSTEMS["icd10"], "C50.9", "C509"),
        (SYSTEMS["icd10pcs"], "0ut20zz", "0UT20ZZ"),
        (SYSTEMS["ndc"], "0069-0188-21", "00069018821"),
        (SYSTEMS["rxnorm"], " 2284105 ", "2284105"),
        (SYSTEMS["loinc"], "751-8", "751-8"),  # hyphens kept outside NDC
        (SYSTEMS["snomed"], "a.b", "a.b"),  # dots kept outside ICD
    ],
)
def test_normalise_code(system: str, code: str, expected: str) -> None:
    assert normalise_code(system, code) == expected


# ---------------------------------------------------------------------------------------------- NDC
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("0069-0188-21", "00069018821"),  # 4-4-2
        ("63539-688-03", "63539068803"),  # 5-3-2
        ("12345-6789-1", "12345678901"),  # 5-4-1
        ("12345-6789-01", "12345678901"),  # already 5-4-2
        ("0069-0188", "000690188"),  # 4-4 product
        ("63539-688", "635390688"),  # 5-3 product
        ("12345-6789", "123456789"),  # 5-4 product
        ("00069018821", "00069018821"),  # unhyphenated 11 digits unchanged
        (" 0069-0188-21 ", "00069018821"),
        ("0069-0188-2X", "006901882X"),  # not all digits: hyphens only removed
        ("1-2-3-4", "1234"),  # too many parts
        ("", ""),
    ],
)
def test_normalise_ndc(code: str, expected: str) -> None:
    assert normalise_ndc(code) == expected


@pytest.mark.parametrize(
    ("code", "strength", "form"),
    [
        ("0069-0188", 100.0, "capsule"),  # product as published
        ("00069-0188", 100.0, "capsule"),  # product in 5-4
        ("000690188", 100.0, "capsule"),  # product unhyphenated
        ("0069-0188-21", 100.0, "capsule"),  # listed package 4-4-2
        ("00069-0188-21", 100.0, "capsule"),  # listed package 5-4-2
        ("00069018821", 100.0, "capsule"),  # listed package, 11 digits
        ("0069-0688-01", 125.0, "tablet"),  # unlisted package reaches its product
        ("00069068801", 125.0, "tablet"),
        ("0069-0284-07", 75.0, "tablet"),
        ("63539-688-03", 125.0, "tablet"),  # 5-3-2
        ("63539-688-99", 125.0, "tablet"),  # 5-3-2 unlisted package
        ("63539068899", 125.0, "tablet"),
    ],
)
def test_ndc_products_reach_palbociclib(vs: ValueSets, code: str, strength: float, form: str) -> None:
    product = vs.product(NDC, code)
    assert product is not None
    assert product.ingredients == {"palbociclib"}
    assert product.strength_mg == strength
    assert product.form == form


def test_ndc_through_oid_alias(vs: ValueSets) -> None:
    product = vs.product("urn:oid:2.16.840.1.113883.6.69", "0069-0688")
    assert product is not None
    assert product.ingredients == {"palbociclib"}


@pytest.mark.parametrize("code", ["0069-9999", "0069-9999-01", "9999999999", "0069018821", "0069-0188-211"])
def test_unknown_ndc_gives_no_product(vs: ValueSets, code: str) -> None:
    assert vs.product(NDC, code) is None


# ---------------------------------------------------------------------------------------------- products
@pytest.mark.parametrize(
    ("code", "ingredients", "strength", "form"),
    [
        ("2284105", {"palbociclib"}, 125.0, "tablet"),
        ("2284106", {"palbociclib"}, 125.0, "tablet"),
        ("1601380", {"palbociclib"}, 100.0, "capsule"),
        ("2284107", {"palbociclib"}, 75.0, "tablet"),
        ("1601377", {"palbociclib"}, None, None),
        ("200064", {"letrozole"}, 2.5, "tablet"),
        ("199224", {"anastrozole"}, 1.0, "tablet"),
        ("198240", {"tamoxifen"}, 10.0, "tablet"),
        ("597730", {"lopinavir", "ritonavir"}, None, "tablet"),
        ("847741", {"lopinavir", "ritonavir"}, None, "tablet"),
        ("2587899", {"nirmatrelvir", "ritonavir"}, None, "tablet"),
        ("1923053", {"ribociclib", "letrozole"}, None, None),
        ("317150", {"ritonavir"}, 100.0, "capsule"),
    ],
)
def test_rxnorm_products(
    vs: ValueSets, code: str, ingredients: set[str], strength: float | None, form: str | None
) -> None:
    product = vs.product("urn:oid:2.16.840.1.113883.6.88", code)
    assert product is not None
    assert product.system == RXNORM
    assert product.code == code
    assert product.ingredients == frozenset(ingredients)
    assert product.strength_mg == strength
    assert product.form == form


def test_palbociclib_125_tablet_display(vs: ValueSets) -> None:
    product = vs.product(RXNORM, "2284105")
    assert product is not None
    assert product.display == "palbociclib 125 MG Oral Tablet"


def test_paxlovid_ndc_gives_both_ingredients(vs: ValueSets) -> None:
    product = vs.product(NDC, "00069-1085-30")
    assert product is not None
    assert product.ingredients == {"nirmatrelvir", "ritonavir"}


@pytest.mark.parametrize(("system", "code"), [(RXNORM, "1601374"), (RXNORM, None), (RXNORM, ""), (SNOMED, "2284105")])
def test_not_a_product(vs: ValueSets, system: str, code: str | None) -> None:
    assert vs.product(system, code) is None


def test_every_product_ingredient_is_a_medication_concept(vs: ValueSets) -> None:
    assert vs.products
    for product in vs.products.values():
        assert product.ingredients
        for ingredient in product.ingredients:
            assert vs.concept(ingredient, "medications") is not None


# ---------------------------------------------------------------------------------------------- names in text
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBRANCE 125 mg", {"palbociclib"}),
        ("ibrance", {"palbociclib"}),
        ("Palbociclib 125mg tablet", {"palbociclib"}),
        ("palbociclib/letrozole", {"palbociclib", "letrozole"}),
        ("(Femara) 2.5 mg", {"letrozole"}),
        ("Kisqali Femara Co-Pack", {"ribociclib", "letrozole"}),
        ("Lupron Depot 7.5 mg", {"leuprolide"}),
        ("St John's Wort extract", {"st-johns-wort"}),
        ("ST. JOHN'S WORT", {"st-johns-wort"}),
        ("Paxlovid", {"ritonavir"}),
        # a word that merely contains a drug name does not match
        ("ibrances", set()),
        ("xibrance", set()),
        ("ibrance2", set()),
        ("levoketoconazole 150 mg", {"levoketoconazole"}),
        ("esomeprazole 40 mg", {"esomeprazole"}),
        ("dexlansoprazole", {"dexlansoprazole"}),
        ("fosphenytoin", {"fosphenytoin"}),
        ("dihydroergotamine nasal", {"dihydroergotamine"}),
        ("acetaminophen 500 mg", set()),
        ("", set()),
    ],
)
def test_medication_names_in(vs: ValueSets, text: str, expected: set[str]) -> None:
    assert vs.medication_names_in(text) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "expected"), [("Positive", "positive"), ("  NEG. ", "negative"), ("3+", "her2-ihc-3plus"), ("maybe", None)]
)
def test_text_concept(vs: ValueSets, text: str, expected: str | None) -> None:
    assert vs.text_concept("result_values", text) == expected


def test_text_concept_in_unknown_domain(vs: ValueSets) -> None:
    assert vs.text_concept("nowhere", "positive") is None


# ---------------------------------------------------------------------------------------------- concepts
def test_groups_of(vs: ValueSets) -> None:
    assert vs.groups_of(["letrozole", "palbociclib"]) == {"aromatase-inhibitor", "cdk46-inhibitor"}
    assert vs.groups_of(["lopinavir", "ritonavir"]) == {"strong-cyp3a-inhibitor"}
    assert vs.groups_of(["not-a-drug"]) == frozenset()
    assert vs.groups_of([]) == frozenset()


def test_concept_ids_shared_between_domains_are_kept_apart(vs: ValueSets) -> None:
    medication = vs.concept("estradiol", "medications")
    lab = vs.concept("estradiol", "observations")
    assert medication is not None
    assert lab is not None
    assert medication.domain == "medications"
    assert lab.domain == "observations"
    assert lab.unit_kind == "mass-per-volume"
    assert vs.concept("estradiol", "conditions") is None


def test_codes_of(vs: ValueSets) -> None:
    codes = vs.codes_of(["anc"], "observations")
    assert (LOINC, "751-8") in codes
    assert (LOINC, "26499-4") in codes
    # prefix families are not search codes
    assert all(code != "C50" for _, code in vs.codes_of(["breast-cancer"], "conditions"))
    assert (ICD10CM, "Z17.411") in vs.codes_of(["hr-positive-her2-negative"], "conditions")


def test_codes_of_unknown_concept_raises(vs: ValueSets) -> None:
    with pytest.raises(ValueSetError, match="no concept 'nope'"):
        vs.codes_of(["nope"], "observations")


def test_concept_display_groups_and_names(vs: ValueSets) -> None:
    palbociclib = vs.concept("palbociclib", "medications")
    assert palbociclib is not None
    assert palbociclib.groups == {"cdk46-inhibitor"}
    assert palbociclib.names == ("palbociclib", "ibrance")
    assert (RXNORM, "1601374") in palbociclib.prefetch_codes


# ---------------------------------------------------------------------------------------------- loading
def test_load_valuesets_is_cached_and_has_a_digest() -> None:
    first = load_valuesets()
    assert first is load_valuesets(VALUESETS_DIR)
    assert len(first.digest) == 64


def test_a_folder_without_value_sets_is_refused(tmp_path: Path) -> None:
    # A wrong path must stop start-up: with no value sets loaded no code would match and no card would fire.
    with pytest.raises(ValueSetError, match="no value-set files"):
        load_valuesets(tmp_path)


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


_MEDS = """
concepts:
  palbociclib:
    display: palbociclib
    groups: [cdk46-inhibitor]
    names: [palbociclib, ibrance]
    codes:
      - {system: rxnorm, code: "1601374"}
"""


def test_minimal_directory_loads(tmp_path: Path) -> None:
    products = 'products:\n  - {system: ndc, code: "0069-0688", display: "Ibrance", ingredients: [palbociclib]}\n'
    loaded = load_valuesets(_write(tmp_path / "ok", {"medications.yaml": _MEDS, "medication_products.yaml": products}))
    assert loaded.lookup("medications", RXNORM, "1601374") == {"palbociclib"}
    product = loaded.product(NDC, "00069-0688-01")
    assert product is not None
    assert product.ingredients == {"palbociclib"}
    assert product.strength_mg is None
    assert loaded.digest != load_valuesets().digest


def test_empty_directory_loads_empty(tmp_path: Path) -> None:
    loaded = load_valuesets(_write(tmp_path / "empty", {"medications.yaml": ""}))
    assert loaded.products == {}
    assert loaded.lookup("medications", RXNORM, "1601374") == frozenset()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"conditions.yaml": "concepts:\n  x:\n    codes:\n      - {system: icd-11, code: 'C50'}\n"},
            "unknown system alias 'icd-11'",
        ),
        (
            {"conditions.yaml": "concepts:\n  x:\n    codes:\n      - {system: 'http://snomed.info/sct', code: '1'}\n"},
            "unknown system alias",
        ),
        (
            {
                "medications.yaml": _MEDS,
                "medication_products.yaml": (
                    "products:\n  - {system: rxnorm, code: '1', display: X, ingredients: [palbociclib, unobtainium]}\n"
                ),
            },
            "unknown or missing ingredients",
        ),
        (
            {"medications.yaml": _MEDS, "medication_products.yaml": "products:\n  - {system: rxnorm, code: '1'}\n"},
            "unknown or missing ingredients",
        ),
        (
            {"medication_products.yaml": "products:\n  - {system: bogus, code: '1', ingredients: [x]}\n"},
            "unknown system alias 'bogus'",
        ),
        ({"conditions.yaml": "concepts: [a, b]\n"}, "'concepts' must be a mapping"),
        ({"conditions.yaml": "concepts:\n  x: just-a-string\n"}, "entry must be a mapping"),
        ({"conditions.yaml": "concepts:\n  x:\n    codes:\n      - {system: snomed}\n"}, "needs a system and a code"),
        ({"conditions.yaml": "concepts:\n  x:\n    codes:\n      - '12345'\n"}, "needs a system and a code"),
        ({"conditions.yaml": "concepts: {x: [unclosed\n"}, "not valid YAML"),
        ({"medications.yaml": "a: b: c\n"}, "medications.yaml: not valid YAML"),
    ],
)
def test_malformed_directory_raises(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ValueSetError, match=message):
        load_valuesets(_write(tmp_path / "bad", files))


def test_value_set_error_is_a_value_error() -> None:
    assert issubclass(ValueSetError, ValueError)
