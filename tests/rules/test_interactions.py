"""Interacting-medicine rules (cds_service/rules/interactions.py): pure functions of a hand-built snapshot,
the value sets they rely on, the cards they render, and every scenario of fhir_fixtures/scenarios-ddi.yaml
replayed through the pipeline with these rules registered."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
import yaml

from cds_service.cli.evaluate import run
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.render import CallContext, Renderer
from cds_service.rules import interactions
from cds_service.rules.base import Finding, Threshold
from cds_service.snapshot.build import substance_fact
from cds_service.snapshot.model import (
    CodedFact,
    DoseSchedule,
    Evidence,
    MedicationSource,
    MedicationUse,
    OrderDetails,
    PalbociclibOrder,
    PatientSnapshot,
    Product,
)
from cds_service.terminology import SYSTEMS, load_valuesets
from tests.support import FIXTURES, REFERENCE_TIME, REPO, SELECT, SIGN, hook_request, rule_ids

AS_OF = datetime(2026, 11, 20, 15, tzinfo=UTC)
RXNORM = SYSTEMS["rxnorm"]


# ------------------------------------------------------------------------------------------- builders
def _product(code: str, form: str | None, strength: float | None = None, *ingredients: str) -> Product:
    return Product(RXNORM, code, code, frozenset(ingredients or ("palbociclib",)), form, strength)


TABLET_125 = _product("2284105", "tablet", 125)
TABLET_75 = _product("2284107", "tablet", 75)
CAPSULE_125 = _product("1601390", "capsule", 125)


def _order(
    product: Product | None = TABLET_125,
    daily: float | None = None,
    text: str = "palbociclib 125 MG Oral Tablet",
    food: bool = False,
) -> PalbociclibOrder:
    schedule = None
    if daily is not None:
        schedule = DoseSchedule(daily, 1, daily, 21, 28, False, "bounds-duration", f"{daily:g} mg daily")
    return PalbociclibOrder(
        resource_id="palbo",
        status="draft",
        product=product,
        matched_by="product" if product else "text",
        text=text,
        evidence=Evidence("MedicationRequest", "palbo", None, f"{text} (draft order)"),
        details=OrderDetails(schedule=schedule, food_instruction=food),
    )


def _use(
    ingredients: tuple[str, ...],
    groups: tuple[str, ...],
    *,
    source: MedicationSource = "request",
    status: str | None = "active",
    text: str = "",
    product: Product | None = None,
    rid: str = "m1",
) -> MedicationUse:
    kind = "MedicationStatement" if source == "statement" else "MedicationRequest"
    return MedicationUse(
        ingredients=frozenset(ingredients),
        groups=frozenset(groups),
        source=source,
        status=status,
        product=product,
        matched_by="product" if product else "ingredient",
        text=text or " / ".join(ingredients),
        evidence=Evidence(kind, rid, AS_OF, text or "medicine"),
    )


def _snapshot(*medications: MedicationUse, substances: tuple[CodedFact, ...] = ()) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=64,
        medications=medications,
        substances=substances,
        available=frozenset({"medicationRequests", "medicationStatements", "allergies", "nutritionOrders"}),
    )


KETOCONAZOLE = ("ketoconazole",), ("strong-cyp3a-inhibitor",)
NO_THRESHOLDS: Mapping[str, Threshold] = {}


def _inhibitor(snapshot: PatientSnapshot, order: PalbociclibOrder, **thresholds: Threshold) -> list[Finding]:
    return interactions.evaluate_inhibitors(snapshot, order, thresholds)


# ------------------------------------------------------------------------------------ strong inhibitors
@pytest.mark.parametrize(
    ("order", "indicator", "reduced"),
    [
        (_order(), "critical", "75"),  # dose not parsed, 125 mg tablets: taken as above 75 mg
        (_order(product=None, text="palbociclib"), "critical", "75"),  # nothing known about the dose
        (_order(daily=125), "critical", "75"),
        (_order(daily=100), "critical", "75"),
        (_order(daily=250), "critical", "75"),
        (_order(product=TABLET_75, text="palbociclib 75 MG Oral Tablet"), "info", ""),  # 75 mg product
        (_order(daily=75), "info", ""),
        (_order(daily=50), "info", ""),  # below 75 mg: the dose rules speak; not an inhibitor problem
    ],
    ids=["unparsed-125", "unknown", "125", "100", "250", "product-75", "schedule-75", "schedule-50"],
)
def test_strong_inhibitor_grades_by_palbociclib_dose(order: PalbociclibOrder, indicator: str, reduced: str) -> None:
    [finding] = _inhibitor(_snapshot(_use(*KETOCONAZOLE, text="ketoconazole 200 mg oral tablet")), order)
    assert finding.rule_id == "cyp3a-strong-inhibitor"
    assert finding.indicator == indicator
    assert finding.params["reduced_dose_mg"] == reduced
    assert finding.params["inhibitor"] == "ketoconazole"
    assert finding.evidence[0].reference == "MedicationRequest/m1"


def test_reduced_dose_is_a_site_threshold() -> None:
    snapshot = _snapshot(_use(*KETOCONAZOLE))
    [finding] = _inhibitor(snapshot, _order(daily=100), reduced_dose_mg=100)
    assert finding.indicator == "info"
    [finding] = _inhibitor(snapshot, _order(daily=125), reduced_dose_mg=100)
    assert finding.indicator == "critical"
    assert finding.params["reduced_dose_mg"] == "100"
    tablet_100 = _product("2284102", "tablet", 100)
    [finding] = _inhibitor(snapshot, _order(product=tablet_100), reduced_dose_mg=100)
    assert finding.indicator == "info"
    [finding] = _inhibitor(snapshot, _order(product=tablet_100))
    assert finding.indicator == "critical"


def test_dose_shown_from_schedule_or_product() -> None:
    snapshot = _snapshot(_use(*KETOCONAZOLE))
    assert _inhibitor(snapshot, _order(daily=125))[0].params["dose"] == "125 mg a day"
    assert _inhibitor(snapshot, _order())[0].params["dose"] == "not stated in the dosage (125 mg tablet)"
    assert _inhibitor(snapshot, _order(product=None))[0].params["dose"] == "not stated in the dosage"


@pytest.mark.parametrize(
    ("use", "target"),
    [
        (_use(*KETOCONAZOLE), "MedicationRequest/m1"),
        (_use(*KETOCONAZOLE, status="on-hold"), "MedicationRequest/m1"),
        (_use(*KETOCONAZOLE, source="draft", status="draft", rid="clari"), "MedicationRequest/clari"),
        (_use(*KETOCONAZOLE, source="statement"), ""),  # nothing a suggestion could stop
    ],
    ids=["active-order", "on-hold-order", "draft-in-order-set", "medication-list"],
)
def test_inhibitor_target_reference_only_for_orders(use: MedicationUse, target: str) -> None:
    [finding] = _inhibitor(_snapshot(use), _order())
    assert finding.params["target_reference"] == target


@pytest.mark.parametrize(
    "use",
    [
        _use(*KETOCONAZOLE, status="completed"),
        _use(*KETOCONAZOLE, status="stopped"),
        _use(*KETOCONAZOLE, source="statement", status="stopped"),
        _use(*KETOCONAZOLE, source="statement", status="completed"),
        _use(*KETOCONAZOLE, product=_product("106336", "shampoo", None, "ketoconazole")),
        _use(*KETOCONAZOLE, product=_product("203088", "cream", None, "ketoconazole")),
        _use(*KETOCONAZOLE, text="ketoconazole 2% topical cream"),
        _use(*KETOCONAZOLE, text="Nizoral 1% shampoo"),
        _use(("voriconazole",), ("strong-cyp3a-inhibitor",), text="voriconazole 1% ophthalmic solution"),
        _use(("fluconazole",), ("moderate-cyp3a-inhibitor",)),
        _use(("famotidine",), ("h2ra",)),
    ],
    ids=[
        "order-completed",
        "order-stopped",
        "statement-stopped",
        "statement-completed",
        "shampoo-product",
        "cream-product",
        "cream-text",
        "shampoo-text",
        "eye-drops-text",
        "moderate-inhibitor",
        "unrelated",
    ],
)
def test_no_inhibitor_card(use: MedicationUse) -> None:
    assert _inhibitor(_snapshot(use), _order()) == []


@pytest.mark.parametrize(
    "text",
    ["clarithromycin 500 mg tablet (ear infection)", "itraconazole 100 mg capsule, eye fungal infection"],
)
def test_words_about_the_indication_do_not_make_a_medicine_topical(text: str) -> None:
    use = _use(("clarithromycin",), ("strong-cyp3a-inhibitor",), text=text)
    assert _inhibitor(_snapshot(use), _order())


def test_product_form_decides_over_text() -> None:
    """A coded oral tablet stays systemic whatever its text says."""
    oral = _product("197853", "tablet", 200, "ketoconazole")
    assert _inhibitor(_snapshot(_use(*KETOCONAZOLE, product=oral, text="ketoconazole (for cream use)")), _order())


def test_combination_product_is_one_finding_named_by_its_ingredients() -> None:
    kaletra = _use(
        ("lopinavir", "ritonavir"), ("strong-cyp3a-inhibitor",), text="lopinavir 200 MG / ritonavir 50 MG Oral Tablet"
    )
    [finding] = _inhibitor(_snapshot(kaletra), _order())
    assert finding.params["inhibitor"] == "lopinavir and ritonavir"
    assert "lopinavir 200 MG / ritonavir 50 MG Oral Tablet (active order)" in finding.params["medicines"]


def test_same_medicine_twice_is_one_finding_with_both_records() -> None:
    order = _use(*KETOCONAZOLE, rid="mr")
    listed = _use(*KETOCONAZOLE, source="statement", rid="ms")
    clarithromycin = _use(("clarithromycin",), ("strong-cyp3a-inhibitor",), rid="cla")
    findings = _inhibitor(_snapshot(order, listed, clarithromycin), _order())
    assert sorted(f.params["inhibitor"] for f in findings) == ["clarithromycin", "ketoconazole"]
    keto = next(f for f in findings if f.params["inhibitor"] == "ketoconazole")
    assert [e.reference for e in keto.evidence] == ["MedicationRequest/mr", "MedicationStatement/ms"]
    assert keto.params["target_reference"] == "MedicationRequest/mr"


def test_two_orders_of_the_same_inhibitor_offer_no_single_stop() -> None:
    findings = _inhibitor(_snapshot(_use(*KETOCONAZOLE, rid="a"), _use(*KETOCONAZOLE, rid="b")), _order())
    assert [f.params["target_reference"] for f in findings] == [""]


# ------------------------------------------------------------------------------------------ inducers
@pytest.mark.parametrize(
    ("use", "expected"),
    [
        (_use(("rifampin",), ("strong-cyp3a-inducer",)), ["cyp3a-strong-inducer"]),
        (
            _use(("st-johns-wort",), ("strong-cyp3a-inducer",), source="statement", text="St. John's Wort 300 mg"),
            ["cyp3a-strong-inducer"],
        ),
        (_use(("modafinil",), ("moderate-cyp3a-inducer",)), ["cyp3a-moderate-inducer"]),
        (_use(("modafinil",), ("moderate-cyp3a-inducer",), status="completed"), []),
        (_use(("dexamethasone",), ("moderate-cyp3a-inducer",), text="dexamethasone 0.1% ophthalmic suspension"), []),
        (_use(("dexamethasone",), ("moderate-cyp3a-inducer",), text="dexamethasone mouthwash (swish and spit)"), []),
        (_use(("rifampin",), ("strong-cyp3a-inducer",), status="stopped"), []),
        (_use(("ketoconazole",), ("strong-cyp3a-inhibitor",)), []),
    ],
    ids=["rifampin", "st-johns-wort-otc", "modafinil", "modafinil-done", "dex-eye", "dex-rinse", "stopped", "other"],
)
def test_inducers(use: MedicationUse, expected: list[str]) -> None:
    findings = interactions.evaluate_inducers(_snapshot(use), _order(), NO_THRESHOLDS)
    assert [f.rule_id for f in findings] == expected
    assert all(f.indicator is None for f in findings)  # the card's own indicator: critical / info


def test_strong_and_moderate_inducers_together() -> None:
    snapshot = _snapshot(
        _use(("carbamazepine",), ("strong-cyp3a-inducer",), rid="a"),
        _use(("efavirenz",), ("moderate-cyp3a-inducer",), rid="b"),
    )
    findings = interactions.evaluate_inducers(snapshot, _order(), NO_THRESHOLDS)
    assert {(f.rule_id, f.params["inducer"]) for f in findings} == {
        ("cyp3a-strong-inducer", "carbamazepine"),
        ("cyp3a-moderate-inducer", "efavirenz"),
    }


def test_st_johns_wort_is_named_in_words() -> None:
    use = _use(("st-johns-wort",), ("strong-cyp3a-inducer",), source="statement", text="St. John's Wort 300 mg")
    [finding] = interactions.evaluate_inducers(_snapshot(use), _order(), NO_THRESHOLDS)
    assert finding.params["inducer"] == "St John's wort"
    assert finding.params["medicines"] == "St. John's Wort 300 mg (medication list)"


# ------------------------------------------------------------------------------------ NTI substrates
@pytest.mark.parametrize(
    ("use", "levels"),
    [
        (_use(("tacrolimus",), ("nti-cyp3a-substrate",), text="tacrolimus 1 mg capsule"), True),
        (_use(("cyclosporine",), ("nti-cyp3a-substrate",)), True),
        (_use(("pimozide",), ("nti-cyp3a-substrate",)), False),
        (_use(("fentanyl",), ("nti-cyp3a-substrate",), text="fentanyl 25 mcg/hr transdermal patch"), False),
    ],
    ids=["tacrolimus", "cyclosporine", "pimozide", "fentanyl-patch-is-systemic"],
)
def test_nti_substrates(use: MedicationUse, levels: bool) -> None:
    [finding] = interactions.evaluate_substrates(_snapshot(use), _order(), NO_THRESHOLDS)
    assert finding.rule_id == "cyp3a-nti-substrate"
    assert ("trough" in finding.params["monitoring"]) is levels


@pytest.mark.parametrize(
    "use",
    [
        _use(("tacrolimus",), ("nti-cyp3a-substrate",), text="tacrolimus 0.1% ointment"),
        _use(("cyclosporine",), ("nti-cyp3a-substrate",), text="cyclosporine 0.05% ophthalmic emulsion"),
        _use(("midazolam",), ("sensitive-cyp3a-substrate",)),
        _use(("tacrolimus",), ("nti-cyp3a-substrate",), status="stopped"),
    ],
    ids=["ointment", "eye-emulsion", "midazolam-not-nti", "stopped"],
)
def test_no_substrate_card(use: MedicationUse) -> None:
    assert interactions.evaluate_substrates(_snapshot(use), _order(), NO_THRESHOLDS) == []


# ------------------------------------------------------------------------------------------ estrogens
PATCH = _product("241527", "transdermal patch", None, "estradiol")
INSERT = _product("884707", "vaginal insert", None, "estradiol")
FEMRING = _product("848331", "vaginal ring, systemic", None, "estradiol")
EE_RING = _product("1367436", "vaginal ring", None, "ethinyl-estradiol", "etonogestrel")


@pytest.mark.parametrize(
    ("use", "indicator", "kind"),
    [
        (_use(("estradiol",), ("estrogen",), product=PATCH), "warning", "systemic estrogen therapy"),
        (
            _use(("estradiol",), ("estrogen",), text="estradiol 1 mg oral tablet"),
            "warning",
            "systemic estrogen therapy",
        ),
        (
            _use(("conjugated-estrogens",), ("estrogen",), text="Premarin 0.625 mg"),
            "warning",
            "systemic estrogen therapy",
        ),
        (_use(("estradiol",), ("estrogen",), product=FEMRING), "warning", "systemic estrogen therapy"),
        (
            _use(("ethinyl-estradiol", "levonorgestrel"), ("estrogen", "progestin"), text="Levlen 28"),
            "warning",
            "estrogen-containing hormonal contraceptive",
        ),
        (
            _use(("ethinyl-estradiol", "etonogestrel"), ("estrogen", "progestin"), product=EE_RING),
            "warning",
            "estrogen-containing hormonal contraceptive",
        ),
        (_use(("estradiol",), ("estrogen",), product=INSERT), "info", "low-dose vaginal estrogen"),
        (_use(("estradiol",), ("estrogen",), text="Vagifem 10 mcg"), "info", "low-dose vaginal estrogen"),
        (
            _use(("estradiol",), ("estrogen",), text="estradiol 0.01% vaginal cream"),
            "info",
            "low-dose vaginal estrogen",
        ),
        (_use(("estradiol",), ("estrogen",), text="Femring vaginal ring"), "warning", "systemic estrogen therapy"),
    ],
    ids=[
        "patch",
        "oral-tablet",
        "conjugated",
        "femring-product",
        "combined-pill",
        "contraceptive-ring",
        "vaginal-insert",
        "vagifem-text",
        "vaginal-cream-text",
        "femring-text",
    ],
)
def test_estrogens(use: MedicationUse, indicator: str, kind: str) -> None:
    [finding] = interactions.evaluate_estrogens(_snapshot(use), _order(), NO_THRESHOLDS)
    assert finding.rule_id == "estrogen-containing"
    assert finding.indicator == indicator
    assert finding.params["kind"] == kind
    assert finding.params["target_reference"] == "MedicationRequest/m1"


def test_no_estrogen_card_for_stopped_or_progestin_only() -> None:
    stopped = _use(("estradiol",), ("estrogen",), source="statement", status="stopped", product=PATCH)
    progestin = _use(("levonorgestrel",), ("progestin",), text="levonorgestrel IUD")
    assert interactions.evaluate_estrogens(_snapshot(stopped, progestin), _order(), NO_THRESHOLDS) == []


# ------------------------------------------------------------------------------------ PPI with capsules
OMEPRAZOLE = _use(("omeprazole",), ("ppi",), text="omeprazole 20 mg capsule", rid="ome")


@pytest.mark.parametrize(
    ("order", "fires"),
    [
        (_order(product=CAPSULE_125, text="Ibrance 125 MG Oral Capsule"), True),
        (_order(product=None, text="IBRANCE 125 mg capsules"), True),
        (_order(product=None, text="palbociclib 125 mg capsule, take with food"), True),
        (_order(), False),
        (_order(product=None, text="IBRANCE 125 mg tablet"), False),
        (_order(product=_product("2284105", None, 125), text="palbociclib capsule"), True),
    ],
    ids=["capsule-product", "capsule-text", "capsule-text-singular", "tablet-product", "tablet-text", "formless"],
)
def test_ppi_with_capsules(order: PalbociclibOrder, fires: bool) -> None:
    findings = interactions.evaluate_acid_reducers(_snapshot(OMEPRAZOLE), order, NO_THRESHOLDS)
    assert [f.rule_id for f in findings] == (["ppi-with-capsule"] if fires else [])
    if fires:
        assert findings[0].params["ppi"] == "omeprazole"
        assert [e.reference for e in findings[0].evidence] == ["MedicationRequest/ome", "MedicationRequest/palbo"]


def test_ppi_card_says_whether_the_order_has_a_food_instruction() -> None:
    capsule = _product("1601390", "capsule", 125)
    without = interactions.evaluate_acid_reducers(_snapshot(OMEPRAZOLE), _order(product=capsule), NO_THRESHOLDS)
    with_food = interactions.evaluate_acid_reducers(
        _snapshot(OMEPRAZOLE), _order(product=capsule, food=True), NO_THRESHOLDS
    )
    assert "does not say" in without[0].params["food"]
    assert "already" in with_food[0].params["food"]


@pytest.mark.parametrize(
    "use",
    [
        _use(("famotidine",), ("h2ra",)),
        _use(("cimetidine",), ("h2ra",)),
        _use(("omeprazole",), ("ppi",), status="completed"),
        _use(("calcium-carbonate",), ()),
    ],
    ids=["famotidine", "cimetidine", "ppi-completed", "antacid"],
)
def test_no_ppi_card_for_other_acid_reducers(use: MedicationUse) -> None:
    capsule = _order(product=CAPSULE_125)
    assert interactions.evaluate_acid_reducers(_snapshot(use), capsule, NO_THRESHOLDS) == []


def test_several_ppis_make_one_card() -> None:
    snapshot = _snapshot(OMEPRAZOLE, _use(("pantoprazole",), ("ppi",), rid="pan"))
    [finding] = interactions.evaluate_acid_reducers(snapshot, _order(product=CAPSULE_125), NO_THRESHOLDS)
    assert finding.params["ppi"] == "omeprazole and pantoprazole"


# ----------------------------------------------------------------------------------------- grapefruit
def _fact(*concepts: str, text: str = "Grapefruit juice with breakfast") -> CodedFact:
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=text,
        status="active",
        date=AS_OF,
        evidence=Evidence("NutritionOrder", "n1", AS_OF, text),
    )


def test_grapefruit_in_a_diet_order() -> None:
    [finding] = interactions.evaluate_grapefruit(_snapshot(substances=(_fact("grapefruit"),)), _order(), {})
    assert finding.rule_id == "grapefruit"
    assert finding.params["found"] == "Grapefruit juice with breakfast (NutritionOrder)"
    assert finding.evidence[0].reference == "NutritionOrder/n1"


def test_no_grapefruit_card_for_other_substances() -> None:
    assert interactions.evaluate_grapefruit(_snapshot(substances=(_fact("peanut", text="Peanut"),)), _order(), {}) == []


# -------------------------------------------------------------------------------------- value sets
@cache
def _vs() -> Any:
    return load_valuesets()


@pytest.mark.parametrize(
    ("system", "code", "ingredients", "group", "form"),
    [
        ("rxnorm", "106336", {"ketoconazole"}, "strong-cyp3a-inhibitor", "shampoo"),
        ("rxnorm", "203088", {"ketoconazole"}, "strong-cyp3a-inhibitor", "cream"),
        ("rxnorm", "197517", {"clarithromycin"}, "strong-cyp3a-inhibitor", "tablet"),
        ("rxnorm", "597730", {"lopinavir", "ritonavir"}, "strong-cyp3a-inhibitor", "tablet"),
        (
            "rxnorm",
            "1306292",
            {"cobicistat", "elvitegravir", "emtricitabine", "tenofovir-disoproxil"},
            "strong-cyp3a-inhibitor",
            "tablet",
        ),
        (
            "ndc",
            "61958-1201-1",
            {"cobicistat", "elvitegravir", "emtricitabine", "tenofovir-disoproxil"},
            "strong-cyp3a-inhibitor",
            "tablet",
        ),
        ("rxnorm", "198202", {"rifampin"}, "strong-cyp3a-inducer", "capsule"),
        (
            "rxnorm",
            "643066",
            {"efavirenz", "emtricitabine", "tenofovir-disoproxil"},
            "moderate-cyp3a-inducer",
            "tablet",
        ),
        ("rxnorm", "241527", {"estradiol"}, "estrogen", "transdermal patch"),
        ("rxnorm", "884707", {"estradiol"}, "estrogen", "vaginal insert"),
        ("rxnorm", "753532", {"ethinyl-estradiol", "levonorgestrel"}, "estrogen", "tablet"),
        ("rxnorm", "1367436", {"ethinyl-estradiol", "etonogestrel"}, "estrogen", "vaginal ring"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isdigit() else None,
)
def test_products_resolve_to_interacting_ingredients(
    system: str, code: str, ingredients: set[str], group: str, form: str | None
) -> None:
    product = _vs().product(SYSTEMS[system], code)
    assert product is not None
    assert product.ingredients == ingredients
    assert group in _vs().groups_of(product.ingredients)
    assert product.form == form
    assert product.strength_mg is None  # nothing here may feed palbociclib dose arithmetic


def test_grapefruit_codes_and_names() -> None:
    vs = _vs()
    assert vs.lookup("medications", SYSTEMS["snomed"], "256315005") == {"grapefruit"}
    assert vs.lookup("medications", RXNORM, "1431224") == {"grapefruit"}
    assert vs.medication_names_in("no grapefruit juice, please") == {"grapefruit"}
    fact = substance_fact(
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": SYSTEMS["snomed"], "code": "256315005"}]},
        },
        vs,
    )
    assert fact is not None
    assert "grapefruit" in fact.concepts


def test_text_names_of_otc_and_combination_partners() -> None:
    vs = _vs()
    assert vs.medication_names_in("St. John's Wort 300 mg capsule (over the counter)") == {"st-johns-wort"}
    assert vs.groups_of(["levonorgestrel"]) == {"progestin"}
    assert vs.groups_of(["elvitegravir", "emtricitabine"]) == frozenset()


# ------------------------------------------------------------------------------------- rules and cards
def test_rules_declare_their_data_cards_and_thresholds() -> None:
    rules = {r.name: r for r in interactions.RULES}
    meds = {"medicationRequests", "medicationStatements"}
    assert {n: set(r.needs) for n, r in rules.items()} == {
        "cyp3a-inhibitors": meds,
        "cyp3a-inducers": meds,
        "cyp3a-substrates": meds,
        "estrogen-products": meds,
        "acid-reducers-with-capsules": meds,
        "grapefruit": {"allergies", "nutritionOrders"},
    }
    assert rules["cyp3a-inhibitors"].thresholds == {"reduced_dose_mg": 75}
    cards = {card for r in interactions.RULES for card in r.fires}
    assert cards == {
        "cyp3a-strong-inhibitor",
        "cyp3a-strong-inducer",
        "cyp3a-moderate-inducer",
        "cyp3a-nti-substrate",
        "estrogen-containing",
        "ppi-with-capsule",
        "grapefruit",
    }
    assert cards <= set(_knowledge().catalogue.entries)


@cache
def _knowledge() -> Knowledge:
    """The service's knowledge with the interaction rules registered (once, whether or not
    cds_service/rules/__init__.py already lists them)."""
    knowledge = load_knowledge(REPO / "cards")
    present = {r.name for r in knowledge.rules}
    extra = tuple(r for r in interactions.RULES if r.name not in present)
    return dataclasses.replace(knowledge, rules=knowledge.rules + extra)


def _render(finding: Finding, draft: dict[str, Any] | None = None) -> Any:
    knowledge = _knowledge()
    renderer = Renderer(knowledge.catalogue, knowledge.site, knowledge.version, valuesets=knowledge.valuesets)
    drafts = {"MedicationRequest/palbo": draft} if draft else {}
    call = CallContext(patient_id="p", user_id="Practitioner/u", encounter_id=None, today=AS_OF.date(), drafts=drafts)
    return renderer.card(finding, _order(), call)


DRAFT = {
    "resourceType": "MedicationRequest",
    "id": "palbo",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p"},
    "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2284105"}]},
    "dosageInstruction": [{"text": "125 mg by mouth once daily on days 1-21 of each 28-day cycle"}],
}


def test_critical_inhibitor_card_offers_75_mg_or_stopping_the_inhibitor() -> None:
    [finding] = _inhibitor(_snapshot(_use(*KETOCONAZOLE, text="ketoconazole 200 mg oral tablet")), _order())
    card = _render(finding, DRAFT)
    assert card.indicator == "critical"
    assert len(card.summary) < 140
    labels = [s.label for s in card.suggestions]
    assert labels == [
        "Change palbociclib to 75 mg once daily (21 days on, 7 off) while the inhibitor is taken",
        "Stop ketoconazole and choose an alternative without strong CYP3A inhibition",
    ]
    update, delete = (s.actions[0] for s in card.suggestions)
    assert update.type == "update"
    assert update.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 75
    assert delete.type == "delete"
    assert delete.resourceId == "MedicationRequest/m1"
    assert "3-5" in card.detail
    assert "87%" in card.detail


def test_info_inhibitor_card_at_75_mg_and_list_entry_offer_nothing() -> None:
    listed = _use(*KETOCONAZOLE, source="statement")
    [finding] = _inhibitor(_snapshot(listed), _order(product=TABLET_75))
    card = _render(finding, DRAFT)
    assert card.indicator == "info"
    assert card.suggestions is None


def test_estrogen_card_offers_stop_and_copper_iud() -> None:
    use = _use(("ethinyl-estradiol", "levonorgestrel"), ("estrogen", "progestin"), text="Levlen 28 Day")
    [finding] = interactions.evaluate_estrogens(_snapshot(use), _order(), NO_THRESHOLDS)
    card = _render(finding)
    assert card.indicator == "warning"
    iud = card.suggestions[1].actions[1].resource
    assert iud["resourceType"] == "ServiceRequest"
    assert iud["code"]["coding"][0]["code"] == "65200003"
    assert iud["subject"] == {"reference": "Patient/p"}
    assert "category 4" in card.detail


# ------------------------------------------------------------------------------ scenarios, end to end
MANIFEST: dict[str, Any] = yaml.safe_load((FIXTURES / "scenarios-ddi.yaml").read_text())
SCENARIOS: list[dict[str, Any]] = MANIFEST["scenarios"]


def _respond(name: str, service: str) -> dict[str, Any]:
    knowledge = _knowledge()
    evaluation = asyncio.run(run(knowledge, hook_request(knowledge, name, service), service, REFERENCE_TIME))
    return evaluation.response.wire()


@pytest.mark.parametrize("service", [SIGN, SELECT])
@pytest.mark.parametrize("entry", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_cards_with_interaction_rules(entry: dict[str, Any], service: str) -> None:
    body = _respond(entry["name"], service)
    expected = {(c["rule_id"], c["indicator"]) for c in entry["expected_cards"]}
    assert rule_ids(body, at_least="warning") == expected
    infos = {(c["rule_id"], "info") for c in entry.get("expected_info") or []}
    assert infos <= rule_ids(body)
    ours = {card for r in interactions.RULES for card in r.fires}
    fired = {rule for rule, _ in rule_ids(body)} & ours
    assert fired == {r for r, _ in expected | infos} & ours, (
        "an interaction card fired that the scenario does not expect"
    )


def test_manifest_covers_every_card_and_behaviours_27_to_35() -> None:
    fired = {c["rule_id"] for s in SCENARIOS for c in s["expected_cards"] + (s.get("expected_info") or [])}
    assert {card for r in interactions.RULES for card in r.fires} <= fired
    assert {s["brief_behaviour"] for s in SCENARIOS} >= set(range(27, 36))
    assert any(not s["expected_cards"] and not s.get("expected_info") for s in SCENARIOS)


def test_base_scenarios_raise_no_interaction_card() -> None:
    """The shared scenarios of scenarios.yaml hold no interacting medicine: none of these cards, not even info."""
    ours = {card for r in interactions.RULES for card in r.fires}
    shared = yaml.safe_load((FIXTURES / "scenarios.yaml").read_text())["scenarios"]
    for entry in shared:
        body = _respond(entry["name"], SIGN)
        assert not {rule for rule, _ in rule_ids(body)} & ours, entry["name"]


def test_topical_route_or_form_on_an_ingredient_coded_order_is_not_systemic() -> None:
    """Ketoconazole coded only by ingredient, with a topical route or a cream Medication: no CYP3A card."""
    from cds_service.snapshot.model import Evidence, MedicationUse

    def use(route: str | None, form: str | None) -> MedicationUse:
        return MedicationUse(
            ingredients=frozenset({"ketoconazole"}),
            groups=frozenset({"strong-cyp3a-inhibitor"}),
            source="request",
            status="active",
            product=None,
            matched_by="ingredient",
            text="ketoconazole",
            evidence=Evidence("MedicationRequest", "k", None, "ketoconazole"),
            route=route,
            form=form,
        )

    assert interactions.is_non_systemic(use("Topical route", None))
    assert interactions.is_non_systemic(use(None, "Cream"))
    assert not interactions.is_non_systemic(use("Oral route", "Tablet"))


def test_st_johns_wort_ingredient_code() -> None:
    assert _vs().lookup("medications", SYSTEMS["rxnorm"], "258326") == {"st-johns-wort"}
