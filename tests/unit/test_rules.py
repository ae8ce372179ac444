"""Receptor-status and endocrine-partner rules as pure functions of a hand-built PatientSnapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds_service.rules import partner, receptors
from cds_service.rules.base import Finding
from cds_service.snapshot.model import (
    CodedFact,
    Evidence,
    LabResult,
    MatchedBy,
    MedicationSource,
    MedicationUse,
    PalbociclibOrder,
    PatientSnapshot,
)
from tests.rules.builders import coded_result

AS_OF = datetime(2026, 11, 20, tzinfo=UTC)
ORDER = PalbociclibOrder(
    resource_id="palbo",
    status="draft",
    product=None,
    matched_by="ingredient",
    text="palbociclib",
    evidence=Evidence("MedicationRequest", "palbo", None, "palbociclib (draft order)"),
)
D2023 = datetime(2023, 5, 1, tzinfo=UTC)
D2024 = datetime(2024, 5, 1, tzinfo=UTC)
D2025 = datetime(2025, 5, 1, tzinfo=UTC)


def _lab(concept: str, *results: str, when: datetime | None = D2024, rid: str | None = None) -> LabResult:
    rid = rid or f"{concept}-{'-'.join(results)}-{when.date() if when else 'undated'}"
    return coded_result(concept, results, when, rid)


def _condition(*concepts: str, when: datetime | None = D2024, rid: str = "cond") -> CodedFact:
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(),
        text=None,
        status="active",
        date=when,
        evidence=Evidence("Condition", rid, when, " ".join(concepts)),
    )


def _snapshot(
    labs: tuple[LabResult, ...] = (),
    conditions: tuple[CodedFact, ...] = (),
    medications: tuple[MedicationUse, ...] = (),
) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=None,
        conditions=conditions,
        labs=labs,
        medications=medications,
        available=frozenset({"conditions", "receptors", "medicationRequests", "medicationStatements"}),
    )


def _ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


def _receptors(snapshot: PatientSnapshot) -> list[Finding]:
    return receptors.evaluate(snapshot, ORDER, {})


# ---------------------------------------------------------------------------------------------- receptors
ER_POS = _lab("er-status", "positive")
ER_NEG = _lab("er-status", "negative")
PR_POS = _lab("pr-status", "positive")
PR_NEG = _lab("pr-status", "negative")
HER2_NEG = _lab("her2-interpretation", "negative")
HER2_IHC_0 = _lab("her2-ihc", "her2-ihc-0")
HER2_IHC_1 = _lab("her2-ihc", "her2-ihc-1plus")
HER2_IHC_3 = _lab("her2-ihc", "her2-ihc-3plus")


@pytest.mark.parametrize(
    ("labs", "conditions", "expected"),
    [
        # ER+/HER2-: the labelled population, nothing to say
        ((ER_POS, HER2_NEG), (), []),
        ((ER_POS, PR_NEG, HER2_IHC_0), (), []),
        ((ER_POS, HER2_IHC_1), (), []),
        ((_lab("er-status", "low-positive"), HER2_NEG), (), []),
        # ER-/PR-: not hormone-receptor positive
        ((ER_NEG, PR_NEG, HER2_NEG), (), ["receptor-er-negative"]),
        ((ER_NEG, HER2_NEG), (), ["receptor-er-negative"]),
        # ER-/PR+: hormone-receptor positive through PR
        ((ER_NEG, PR_POS, HER2_NEG), (), []),
        ((PR_POS, HER2_NEG), (), []),
        # HER2 IHC 3+ is HER2-positive
        ((ER_POS, HER2_IHC_3), (), ["receptor-her2-positive"]),
        ((ER_POS, _lab("her2-ish", "positive")), (), ["receptor-her2-positive"]),
        ((ER_NEG, PR_NEG, HER2_IHC_3), (), ["receptor-er-negative", "receptor-her2-positive"]),
        # conditions (ICD-10-CM Z17.*, SNOMED findings)
        ((), (_condition("hr-positive-her2-negative"),), []),  # Z17.411 only
        ((), (_condition("er-positive"), _condition("her2-negative")), []),
        ((), (_condition("hr-negative-her2-negative"),), ["receptor-er-negative"]),
        ((), (_condition("hr-positive-her2-positive"),), ["receptor-her2-positive"]),
        (
            (),
            (_condition("er-negative"), _condition("pr-negative"), _condition("her2-negative")),
            ["receptor-er-negative"],
        ),
        # equivocal ER alone does not settle hormone status
        ((_lab("er-status", "equivocal"), HER2_NEG), (), ["receptor-status-unknown"]),
        ((_lab("er-status", "equivocal"), PR_POS, HER2_NEG), (), []),
    ],
)
def test_receptor_findings(labs: tuple[LabResult, ...], conditions: tuple[CodedFact, ...], expected: list[str]) -> None:
    assert _ids(_receptors(_snapshot(labs, conditions))) == expected


def test_nothing_on_record_names_both_missing() -> None:
    (finding,) = _receptors(_snapshot())
    assert finding.rule_id == "receptor-status-unknown"
    assert finding.params["missing"] == "hormone receptor (ER) and HER2"
    assert finding.params["er"] == finding.params["pr"] == finding.params["her2"] == "not on record"
    assert finding.evidence == ()


def test_only_her2_missing() -> None:
    (finding,) = _receptors(_snapshot((ER_POS,)))
    assert finding.rule_id == "receptor-status-unknown"
    assert finding.params["missing"] == "HER2"
    assert finding.evidence == (ER_POS.evidence,)


def test_only_hormone_status_missing() -> None:
    (finding,) = _receptors(_snapshot((HER2_NEG,)))
    assert finding.params["missing"] == "hormone receptor (ER)"
    assert finding.evidence == (HER2_NEG.evidence,)


def test_her2_ihc_2plus_then_same_day_ish_negative_is_not_positive() -> None:
    ihc = _lab("her2-ihc", "her2-ihc-2plus", when=D2024)
    ish = _lab("her2-ish", "negative", when=D2024)
    for labs in ((ER_POS, ihc, ish), (ER_POS, ish, ihc)):
        snapshot = _snapshot(labs)
        assert _receptors(snapshot) == []
        assert receptors.receptor_results(snapshot)["her2"][0].status == "negative"


def test_her2_ihc_2plus_alone_is_equivocal_not_positive_but_known() -> None:
    snapshot = _snapshot((ER_POS, _lab("her2-ihc", "her2-ihc-2plus")))
    assert _receptors(snapshot) == []
    assert receptors.receptor_results(snapshot)["her2"][0].status == "equivocal"


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        # the latest ER result wins across dates
        ((_lab("er-status", "negative", when=D2023), _lab("er-status", "positive", when=D2025), HER2_NEG), []),
        (
            (_lab("er-status", "positive", when=D2023), _lab("er-status", "negative", when=D2025), HER2_NEG),
            ["receptor-er-negative"],
        ),
        # the latest HER2 result wins across dates
        ((ER_POS, _lab("her2-ihc", "her2-ihc-3plus", when=D2023), _lab("her2-ish", "negative", when=D2025)), []),
        (
            (ER_POS, _lab("her2-ish", "negative", when=D2023), _lab("her2-ihc", "her2-ihc-3plus", when=D2025)),
            ["receptor-her2-positive"],
        ),
        # an undated result loses to any dated one
        ((_lab("er-status", "negative", when=None), _lab("er-status", "positive", when=D2023), HER2_NEG), []),
    ],
)
def test_latest_result_wins(labs: tuple[LabResult, ...], expected: list[str]) -> None:
    assert _ids(_receptors(_snapshot(labs))) == expected


def test_latest_result_wins_between_lab_and_condition() -> None:
    old_lab = _lab("er-status", "negative", when=D2023)
    new_condition = _condition("er-positive", when=D2025)
    assert _ids(_receptors(_snapshot((old_lab, HER2_NEG), (new_condition,)))) == []
    new_lab = _lab("er-status", "negative", when=D2025)
    old_condition = _condition("er-positive", when=D2023)
    assert _ids(_receptors(_snapshot((new_lab, HER2_NEG), (old_condition,)))) == ["receptor-er-negative"]


@pytest.mark.parametrize(
    "lab",
    [
        _lab("er-status", "positive", "negative"),  # conflicting results in one Observation
        _lab("er-status", "indeterminate"),
        _lab("er-status", "not-tested"),
        _lab("er-status"),
        _lab("anc", "positive"),  # not a receptor marker
    ],
)
def test_results_that_say_nothing_are_ignored(lab: LabResult) -> None:
    results = receptors.receptor_results(_snapshot((lab,)))
    assert all(not found for found in results.values())


def test_receptor_results_per_marker_newest_first() -> None:
    snapshot = _snapshot(
        (
            _lab("er-status", "negative", when=D2023),
            _lab("er-status", "positive", when=D2025),
            _lab("pr-status", "positive", when=D2024),
        ),
        (_condition("hr-positive-her2-negative", when=D2024),),
    )
    results = receptors.receptor_results(snapshot)
    assert [r.status for r in results["er"]] == ["positive", "negative"]
    assert [r.date for r in results["er"]] == [D2025, D2023]
    assert [r.status for r in results["pr"]] == ["positive"]
    assert [r.status for r in results["hr"]] == ["positive"]
    assert [r.status for r in results["her2"]] == ["negative"]


def test_er_negative_finding_shows_results_and_evidence() -> None:
    (finding,) = _receptors(_snapshot((ER_NEG, PR_NEG, HER2_NEG)))
    assert finding.rule_id == "receptor-er-negative"
    assert finding.params["er"].startswith("negative (er-status: negative, 2024-05-01)")
    assert finding.params["her2"] == "negative (her2-interpretation: negative, 2024-05-01)"
    assert set(finding.evidence) == {ER_NEG.evidence, PR_NEG.evidence}


def test_her2_positive_finding_evidence() -> None:
    findings = _receptors(_snapshot((ER_POS, HER2_IHC_3)))
    assert findings[0].evidence == (HER2_IHC_3.evidence,)


def test_undated_result_is_shown_as_undated() -> None:
    (finding,) = _receptors(_snapshot((_lab("er-status", "positive", when=None),)))
    assert "undated" in finding.params["er"]


def test_receptor_rule_metadata() -> None:
    assert receptors.RULES[0].name == "receptor-status"
    assert set(receptors.RULES[0].fires) == {
        "receptor-er-negative",
        "receptor-her2-positive",
        "receptor-status-unknown",
    }
    assert receptors.RULES[0].needs == {"conditions", "receptors"}
    assert receptors.RULES[0].evaluate is receptors.evaluate


# ---------------------------------------------------------------------------------------------- endocrine partner
_GROUPS = {
    "letrozole": {"aromatase-inhibitor"},
    "anastrozole": {"aromatase-inhibitor"},
    "exemestane": {"aromatase-inhibitor"},
    "fulvestrant": {"serd"},
    "tamoxifen": {"serm"},
    "toremifene": {"serm"},
    "elacestrant": {"serd"},
    "goserelin": {"lhrh-agonist"},
    "omeprazole": {"ppi"},
}


def _med(
    ingredient: str, source: MedicationSource, status: str | None, matched_by: MatchedBy = "ingredient"
) -> MedicationUse:
    return MedicationUse(
        ingredients=frozenset({ingredient}),
        groups=frozenset(_GROUPS[ingredient]),
        source=source,
        status=status,
        product=None,
        matched_by=matched_by,
        text=ingredient,
        evidence=Evidence("MedicationRequest", ingredient, None, ingredient),
    )


def _partner(*medications: MedicationUse) -> list[str]:
    return _ids(partner.evaluate(_snapshot(medications=medications), ORDER, {}))


@pytest.mark.parametrize(
    "medication",
    [
        _med("letrozole", "draft", "draft"),
        _med("letrozole", "draft", None),
        _med("letrozole", "statement", "active"),
        _med("letrozole", "statement", "intended"),
        _med("letrozole", "request", "on-hold"),
        _med("letrozole", "request", "active"),
        _med("anastrozole", "request", "active"),
        _med("exemestane", "statement", "active", matched_by="text"),
        _med("fulvestrant", "request", "active"),
        _med("tamoxifen", "request", "active"),  # tamoxifen only: its own rule speaks of it
        _med("toremifene", "statement", "active"),
    ],
)
def test_partner_present(medication: MedicationUse) -> None:
    assert _partner(medication) == []


@pytest.mark.parametrize(
    "medications",
    [
        (),
        (_med("letrozole", "request", "completed"),),  # completed letrozole only
        (_med("letrozole", "request", "stopped"),),
        (_med("letrozole", "statement", "completed"),),
        (_med("letrozole", "request", "draft"),),  # a draft in the record, not in this order set
        (_med("goserelin", "request", "active"),),  # ovarian suppression is not the endocrine partner
        (_med("elacestrant", "request", "active"),),
        (_med("omeprazole", "statement", "active"), _med("anastrozole", "request", "completed")),
    ],
)
def test_partner_missing(medications: tuple[MedicationUse, ...]) -> None:
    (finding,) = partner.evaluate(_snapshot(medications=medications), ORDER, {})
    assert finding.rule_id == "partner-missing"
    assert finding.params == {}


def test_one_current_partner_among_stopped_ones_is_enough() -> None:
    assert _partner(_med("letrozole", "request", "completed"), _med("anastrozole", "statement", "active")) == []


def test_partner_rule_metadata() -> None:
    assert partner.RULES[0].fires == ("partner-missing",)
    assert partner.RULES[0].needs == {"medicationRequests", "medicationStatements"}
    assert set(partner.PARTNER_GROUPS) >= {"aromatase-inhibitor", "fulvestrant", "tamoxifen"}
