"""Endocrine-partner rules: partner-missing (rules/partner.py) and the partner/menopause rules
(rules/partner_menopause.py: ovarian-suppression-missing, menopausal-status-unconfirmed,
male-ai-without-gnrh, partner-tamoxifen, ai-resistant-relapse) on hand-built snapshots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cds_service.catalogue import load_catalogue
from cds_service.rules import RULES as ALL_RULES
from cds_service.rules import partner, partner_menopause
from cds_service.rules.base import Finding, Threshold
from cds_service.rules.menopause import THRESHOLDS, add_months
from cds_service.snapshot.model import (
    CodedFact,
    Evidence,
    LabResult,
    MedicationSource,
    MedicationUse,
    PalbociclibOrder,
    PatientSnapshot,
    Sex,
)
from tests.rules.builders import medication_use

AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
CARDS = Path(__file__).resolve().parents[2] / "cards"
ORDER = PalbociclibOrder(
    resource_id="palbo",
    status="draft",
    product=None,
    matched_by="ingredient",
    text="palbociclib",
    evidence=Evidence("MedicationRequest", "palbo", AS_OF, "palbociclib (draft order)"),
)
GROUPS = {
    "letrozole": {"aromatase-inhibitor"},
    "anastrozole": {"aromatase-inhibitor"},
    "exemestane": {"aromatase-inhibitor"},
    "fulvestrant": {"serd"},
    "elacestrant": {"serd"},
    "tamoxifen": {"serm"},
    "toremifene": {"serm"},
    "goserelin": {"lhrh-agonist"},
    "leuprolide": {"lhrh-agonist"},
    "triptorelin": {"lhrh-agonist"},
    "degarelix": {"gnrh-antagonist"},
    "inavolisib": {"pi3k-inhibitor"},
}


def months_ago(months: int) -> datetime:
    return add_months(AS_OF, -months)


def med(
    ingredient: str,
    status: str | None = "active",
    source: MedicationSource = "request",
    *,
    started: datetime | None = None,
    ended: datetime | None = None,
    rid: str | None = None,
) -> MedicationUse:
    started = started or months_ago(1)
    return medication_use(ingredient, GROUPS[ingredient], source, status, started=started, ended=ended, rid=rid)


def condition(*concepts: str, when: datetime | None = None, rid: str = "cond", status: str = "active") -> CodedFact:
    when = when or months_ago(2)
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=" ".join(concepts),
        status=status,
        date=when,
        evidence=Evidence("Condition", rid, when, " ".join(concepts)),
    )


def hormone(concept: str, value: float) -> LabResult:
    when = AS_OF - timedelta(days=10)
    return LabResult(
        concept=concept,
        effective=when,
        value=value,
        unit="x",
        interpretable=True,
        original=str(value),
        evidence=Evidence("Observation", concept, when, f"{concept} {value}"),
    )


def snapshot(
    *medications: MedicationUse,
    sex: Sex = "female",
    age: int | None = 64,
    conditions: Iterable[CodedFact] = (),
    labs: Iterable[LabResult] = (),
) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex=sex,
        birth_date=None,
        age_years=age,
        conditions=tuple(conditions),
        medications=medications,
        labs=tuple(labs),
    )


def cards(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.rule_id, f.indicator) for f in findings]


PRE = condition("premenopausal", rid="pre")
PERI = condition("perimenopausal", rid="peri")
METASTASIS = condition("secondary-malignancy", when=datetime(2026, 9, 1, tzinfo=UTC), rid="mets")


def menopause(snap: PatientSnapshot, thresholds: Mapping[str, Threshold] = THRESHOLDS) -> list[Finding]:
    return partner_menopause.evaluate_menopause(snap, ORDER, thresholds)


# ---------------------------------------------------------------------------------------------- partner-missing


@pytest.mark.parametrize(
    ("medications", "fires"),
    [
        ((), True),
        ((med("goserelin"),), True),
        ((med("inavolisib"),), True),
        ((med("letrozole", "completed"),), True),
        ((med("elacestrant"),), True),
        ((med("letrozole"),), False),
        ((med("letrozole", "draft", "draft"),), False),
        ((med("fulvestrant", "active", "statement"),), False),
        ((med("inavolisib"), med("fulvestrant")), False),  # behaviour 52: labelled since 4/2025
        ((med("tamoxifen"),), False),  # behaviour 51: info only, from its own rule
        ((med("toremifene"),), False),
    ],
)
def test_partner_missing(medications: tuple[MedicationUse, ...], fires: bool) -> None:
    findings = partner.evaluate(snapshot(*medications), ORDER, {})
    assert cards(findings) == ([("partner-missing", None)] if fires else [])


# ---------------------------------------------------------------------------------------------- ovarian suppression


@pytest.mark.parametrize(
    ("medications", "conditions", "expected"),
    [
        # behaviour 19: premenopausal, letrozole, no LHRH agonist
        ((med("letrozole"),), (PRE,), [("ovarian-suppression-missing", "critical")]),
        ((med("anastrozole", "active", "statement"),), (PERI,), [("ovarian-suppression-missing", "critical")]),
        ((med("exemestane", "draft", "draft"),), (PRE,), [("ovarian-suppression-missing", "critical")]),
        # behaviour 21: fulvestrant, no LHRH agonist -> warning
        ((med("fulvestrant"),), (PRE,), [("ovarian-suppression-missing", "warning")]),
        # an aromatase inhibitor with fulvestrant grades as the aromatase inhibitor
        ((med("fulvestrant"), med("letrozole")), (PRE,), [("ovarian-suppression-missing", "critical")]),
        # behaviour 20: fulvestrant + goserelin; and an LHRH agonist in this order set
        ((med("fulvestrant"), med("goserelin")), (PRE,), []),
        ((med("letrozole"), med("goserelin", "draft", "draft")), (PRE,), []),
        ((med("letrozole"), med("triptorelin", "on-hold")), (PERI,), []),
        # a stopped LHRH agonist does not count
        (
            (med("letrozole"), med("leuprolide", "stopped", ended=months_ago(20))),
            (PRE,),
            [("ovarian-suppression-missing", "critical")],
        ),
        # a stopped aromatase inhibitor is not the partner
        ((med("letrozole", "completed"),), (PRE,), []),
        # tamoxifen and elacestrant are not partners this rule speaks of
        ((med("tamoxifen"),), (PRE,), []),
        ((med("elacestrant"),), (PRE,), []),
    ],
)
def test_ovarian_suppression(
    medications: tuple[MedicationUse, ...], conditions: tuple[CodedFact, ...], expected: list[tuple[str, str]]
) -> None:
    assert cards(menopause(snapshot(*medications, age=42, conditions=conditions))) == expected


def test_ovarian_suppression_card_params_and_evidence() -> None:
    letrozole = med("letrozole", rid="mr-letrozole")
    (finding,) = menopause(snapshot(letrozole, age=42, conditions=[PRE]))
    assert finding.params["partner"] == "letrozole"
    assert finding.params["status"] == "premenopausal"
    assert finding.params["age"] == "age 42"
    assert finding.params["basis"].startswith("recorded on ")
    assert finding.params["basis"].endswith(" as premenopausal")
    assert finding.evidence == (letrozole.evidence, PRE.evidence)


@pytest.mark.parametrize(
    ("kwargs", "medications"),
    [
        ({"age": 64}, (med("letrozole"),)),  # behaviour 1: postmenopausal by age
        ({"age": 48, "conditions": [condition("bilateral-oophorectomy-status")]}, (med("letrozole"),)),  # behaviour 22
        ({"age": 52, "conditions": [condition("postmenopausal")]}, (med("letrozole"),)),
        ({"age": 42, "conditions": [PRE]}, ()),
        ({"age": 42, "conditions": [PRE], "sex": "unknown"}, (med("letrozole"),)),
        ({"age": 42, "conditions": [PRE], "sex": "male"}, (med("letrozole"),)),
    ],
)
def test_no_menopause_card(kwargs: dict[str, Any], medications: tuple[MedicationUse, ...]) -> None:
    assert menopause(snapshot(*medications, **kwargs)) == []


# ---------------------------------------------------------------------------------------------- status unconfirmed


def test_unconfirmed_with_reasons() -> None:
    labs = [hormone("fsh", 12), hormone("estradiol", 85)]
    (finding,) = menopause(snapshot(med("letrozole"), age=55, labs=labs))
    assert (finding.rule_id, finding.indicator) == ("menopausal-status-unconfirmed", None)
    assert finding.params["partner"] == "letrozole"
    assert finding.params["age"] == "age 55"
    lines = finding.params["reasons"].splitlines()
    assert all(line.startswith("- ") for line in lines)
    assert any("FSH 12 on" in line and "not in the postmenopausal range" in line for line in lines)
    assert {e.resource_id for e in finding.evidence} >= {"fsh", "estradiol"}


def test_unconfirmed_without_age() -> None:
    (finding,) = menopause(snapshot(med("anastrozole"), age=None))
    assert finding.rule_id == "menopausal-status-unconfirmed"
    assert finding.params["age"] == "age not recorded"
    assert "- age not recorded" in finding.params["reasons"]


@pytest.mark.parametrize(
    ("medications", "conditions"),
    [
        ((med("fulvestrant"),), ()),  # unknown status with fulvestrant: no card (aromatase inhibitor only)
        ((med("letrozole"), med("goserelin")), ()),  # ovarian-suppressed
        ((med("letrozole"),), (condition("postmenopausal"),)),
    ],
)
def test_unconfirmed_not_raised(medications: tuple[MedicationUse, ...], conditions: tuple[CodedFact, ...]) -> None:
    assert menopause(snapshot(*medications, age=50, conditions=conditions)) == []


@pytest.mark.parametrize(
    "conditions", [(PRE,), (PERI,), (), (condition("postmenopausal"), condition("antineoplastic-chemotherapy-history"))]
)
def test_never_both_menopause_cards(conditions: tuple[CodedFact, ...]) -> None:
    findings = menopause(snapshot(med("letrozole"), age=45, conditions=conditions))
    assert len(findings) == 1


def test_site_thresholds_reach_the_derivation() -> None:
    labs = [hormone("fsh", 35), hormone("estradiol", 12)]
    record = snapshot(med("letrozole"), age=54, conditions=[condition("amenorrhoea", when=months_ago(14))], labs=labs)
    assert menopause(record) == []
    tuned = {**THRESHOLDS, "fsh_postmenopausal_min_iu_l": 40}
    assert cards(menopause(record, tuned)) == [("menopausal-status-unconfirmed", None)]


# ---------------------------------------------------------------------------------------------- men


@pytest.mark.parametrize(
    ("medications", "fires"),
    [
        ((med("letrozole"),), True),  # behaviour 25
        ((med("anastrozole", "draft", "draft"),), True),
        ((med("letrozole"), med("leuprolide")), False),
        ((med("letrozole"), med("goserelin", "draft", "draft")), False),
        ((med("letrozole"), med("degarelix")), False),  # GnRH antagonist (ASCO: "GnRH agonist/antagonist")
        ((med("letrozole"), med("goserelin", "completed")), True),
        ((med("fulvestrant"),), False),  # behaviour 26
        ((med("tamoxifen"),), False),
        ((med("letrozole", "stopped"),), False),
    ],
)
def test_male_aromatase_inhibitor(medications: tuple[MedicationUse, ...], fires: bool) -> None:
    findings = partner_menopause.evaluate_male(snapshot(*medications, sex="male", age=66), ORDER, {})
    assert cards(findings) == ([("male-ai-without-gnrh", None)] if fires else [])
    if fires:
        assert findings[0].params == {"partner": medications[0].text}
        assert findings[0].evidence == (medications[0].evidence,)


@pytest.mark.parametrize("sex", ["female", "unknown", "other"])
def test_male_rule_only_for_men(sex: Sex) -> None:
    assert partner_menopause.evaluate_male(snapshot(med("letrozole"), sex=sex), ORDER, {}) == []


# ---------------------------------------------------------------------------------------------- tamoxifen


def test_tamoxifen_partner_is_info() -> None:
    (finding,) = partner_menopause.evaluate_tamoxifen(snapshot(med("tamoxifen")), ORDER, {})
    assert finding.rule_id == "partner-tamoxifen"
    assert finding.params["partner"] == "tamoxifen"
    assert finding.params["suppression"] == "In PATHWAY, pre/perimenopausal women also received goserelin."


def test_tamoxifen_with_goserelin_names_it() -> None:
    goserelin = med("goserelin")
    (finding,) = partner_menopause.evaluate_tamoxifen(snapshot(med("tamoxifen"), goserelin, age=44), ORDER, {})
    assert "goserelin" in finding.params["suppression"]
    assert goserelin.evidence in finding.evidence


@pytest.mark.parametrize(
    ("medications", "fires"),
    [
        ((med("toremifene", "active", "statement"),), True),
        ((med("tamoxifen", "draft", "draft"),), True),
        ((med("tamoxifen"), med("letrozole")), False),
        ((med("tamoxifen"), med("fulvestrant")), False),
        ((med("tamoxifen", "completed"),), False),
        ((med("letrozole"),), False),
    ],
)
def test_tamoxifen_partner(medications: tuple[MedicationUse, ...], fires: bool) -> None:
    findings = partner_menopause.evaluate_tamoxifen(snapshot(*medications), ORDER, {})
    assert [f.rule_id for f in findings] == (["partner-tamoxifen"] if fires else [])


# ---------------------------------------------------------------------------------------------- AI-resistant relapse


def adjuvant(
    ingredient: str = "letrozole",
    *,
    start: datetime = datetime(2021, 6, 1, tzinfo=UTC),
    end: datetime | None = datetime(2026, 3, 1, tzinfo=UTC),
    status: str = "completed",
    source: MedicationSource = "request",
) -> MedicationUse:
    return med(ingredient, status, source, started=start, ended=end, rid=f"{ingredient}-adjuvant")


CURRENT = med("letrozole", started=datetime(2026, 9, 15, tzinfo=UTC), rid="mr-letrozole")


def relapse(
    *medications: MedicationUse, conditions: Iterable[CodedFact] = (METASTASIS,), **thresholds: Threshold
) -> list[Finding]:
    return partner_menopause.evaluate_relapse(
        snapshot(*medications, conditions=conditions), ORDER, {"months_after_adjuvant_ai": 12, **thresholds}
    )


def test_relapse_six_months_after_adjuvant_letrozole() -> None:
    prior = adjuvant()
    (finding,) = relapse(prior, CURRENT)
    assert finding.rule_id == "ai-resistant-relapse"
    assert finding.params == {
        "partner": "letrozole",
        "prior": "letrozole",
        "prior_end": "2026-03-01",
        "recurrence": "secondary-malignancy",
        "recurrence_date": "2026-09-01",
        "interval": "6 months after",
        "months": "12",
        "target_reference": "MedicationRequest/mr-letrozole",
    }
    assert finding.evidence == (prior.evidence, METASTASIS.evidence, CURRENT.evidence)


@pytest.mark.parametrize(
    ("prior", "interval"),
    [
        (adjuvant(end=datetime(2025, 9, 1, tzinfo=UTC)), "12 months after"),  # exactly 12 months: still within
        (adjuvant(end=datetime(2026, 8, 20, tzinfo=UTC)), "within a month of"),
        (adjuvant(end=datetime(2026, 10, 1, tzinfo=UTC)), "during"),  # recurrence on the adjuvant AI
        (adjuvant("anastrozole", source="statement"), "6 months after"),
        (adjuvant("exemestane", status="stopped"), "6 months after"),
        # no end: its last recorded date stands in
        (adjuvant(start=datetime(2026, 2, 1, tzinfo=UTC), end=None), "7 months after"),
    ],
)
def test_relapse_fires(prior: MedicationUse, interval: str) -> None:
    (finding,) = relapse(prior, CURRENT)
    assert finding.params["interval"] == interval


@pytest.mark.parametrize(
    ("medications", "conditions"),
    [
        ((adjuvant(end=datetime(2025, 8, 31, tzinfo=UTC)), CURRENT), (METASTASIS,)),  # more than 12 months
        (
            (adjuvant(start=datetime(2016, 6, 1, tzinfo=UTC), end=datetime(2021, 6, 1, tzinfo=UTC)), CURRENT),
            (METASTASIS,),
        ),
        # a renewal written after the recurrence is not adjuvant
        (
            (adjuvant(start=datetime(2026, 9, 10, tzinfo=UTC), end=datetime(2026, 10, 10, tzinfo=UTC)), CURRENT),
            (METASTASIS,),
        ),
        ((adjuvant(),), (METASTASIS,)),  # no aromatase inhibitor now
        ((adjuvant(), med("fulvestrant")), (METASTASIS,)),  # behaviour 52 shape: fulvestrant partner
        ((adjuvant(), CURRENT), ()),  # no recurrence on record
        ((adjuvant(), CURRENT), (condition("breast-cancer", when=datetime(2026, 9, 1, tzinfo=UTC)),)),
        (
            (
                med(
                    "tamoxifen",
                    "completed",
                    started=datetime(2021, 6, 1, tzinfo=UTC),
                    ended=datetime(2026, 3, 1, tzinfo=UTC),
                ),
                CURRENT,
            ),
            (METASTASIS,),
        ),
        ((CURRENT,), (METASTASIS,)),
    ],
)
def test_relapse_not_raised(medications: tuple[MedicationUse, ...], conditions: tuple[CodedFact, ...]) -> None:
    assert relapse(*medications, conditions=conditions) == []


def test_relapse_uses_the_first_metastasis_and_the_last_adjuvant_end() -> None:
    later = condition("secondary-malignancy", when=datetime(2026, 11, 1, tzinfo=UTC), rid="bone")
    early = adjuvant(start=datetime(2019, 1, 1, tzinfo=UTC), end=datetime(2021, 1, 1, tzinfo=UTC))
    (finding,) = relapse(early, adjuvant(), CURRENT, conditions=(later, METASTASIS))
    assert (finding.params["recurrence_date"], finding.params["prior_end"]) == ("2026-09-01", "2026-03-01")


def test_relapse_site_window_and_statement_partner() -> None:
    assert relapse(adjuvant(), CURRENT, months_after_adjuvant_ai=5) == []
    statement = med("letrozole", "active", "statement", started=datetime(2026, 9, 15, tzinfo=UTC))
    (finding,) = relapse(adjuvant(), statement)
    assert finding.params["target_reference"] == ""  # no order to stop: the switch suggestion is dropped


# ---------------------------------------------------------------------------------------------- rule metadata


def test_rule_metadata() -> None:
    rules = {rule.name: rule for rule in partner_menopause.RULES}
    assert {name: rule.fires for name, rule in rules.items()} == {
        "menopausal-status": ("ovarian-suppression-missing", "menopausal-status-unconfirmed"),
        "male-endocrine-partner": ("male-ai-without-gnrh",),
        "tamoxifen-partner": ("partner-tamoxifen",),
        "ai-resistant-relapse": ("ai-resistant-relapse",),
    }
    assert rules["menopausal-status"].needs == {
        "patient",
        "medicationRequests",
        "medicationStatements",
        "conditions",
        "procedures",
        "hormones",
    }
    assert rules["male-endocrine-partner"].needs == {"patient", "medicationRequests", "medicationStatements"}
    assert rules["tamoxifen-partner"].needs == {"medicationRequests", "medicationStatements"}
    assert rules["ai-resistant-relapse"].needs == {
        "medicationRequests",
        "medicationStatements",
        "medicationHistory",
        "conditions",
    }
    assert rules["menopausal-status"].thresholds == THRESHOLDS
    assert rules["ai-resistant-relapse"].thresholds == {"months_after_adjuvant_ai": 12}
    assert all(rule in ALL_RULES for rule in (*partner.RULES, *partner_menopause.RULES))


def test_every_card_exists_with_the_params_the_rules_fill() -> None:
    catalogue = load_catalogue(CARDS)
    filled = {
        "ovarian-suppression-missing": {"partner", "status", "age", "basis"},
        "menopausal-status-unconfirmed": {"partner", "age", "reasons", "basis"},
        "male-ai-without-gnrh": {"partner"},
        "partner-tamoxifen": {"partner", "suppression"},
        "ai-resistant-relapse": {
            "partner",
            "prior",
            "prior_end",
            "recurrence",
            "recurrence_date",
            "interval",
            "months",
            "target_reference",
        },
    }
    for rule_id, params in filled.items():
        assert set(catalogue[rule_id].params) <= params, rule_id
    assert catalogue["ovarian-suppression-missing"].indicator == "critical"
    assert catalogue["partner-tamoxifen"].indicator == "info"
    assert {
        catalogue[r].indicator
        for r in ("menopausal-status-unconfirmed", "male-ai-without-gnrh", "ai-resistant-relapse")
    } == {"warning"}
