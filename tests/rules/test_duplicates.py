"""Duplicate CDK4/6 therapy, duplicate palbociclib, progression on a prior CDK4/6 inhibitor (PALMIRA) and the
ESR1 switch (PADA-1), as pure functions of hand-built snapshots; plus one ESR1 Observation built through
build_snapshot, to pin how its components reach the rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.prefetch.model import KeyOutcome, PatientData
from cds_service.rules import duplicates
from cds_service.rules.base import Finding
from cds_service.snapshot.build import build_snapshot
from cds_service.snapshot.model import (
    Evidence,
    LabResult,
    MedicationSource,
    MedicationUse,
    PalbociclibOrder,
    PatientSnapshot,
)
from cds_service.terminology import load_valuesets
from tests.rules.builders import coded_result, medication_use

AS_OF = datetime(2026, 11, 20, 15, tzinfo=UTC)
MARCH_9 = datetime(2026, 3, 9, tzinfo=UTC)
NOV_2 = datetime(2026, 11, 2, tzinfo=UTC)
GROUPS = {
    "palbociclib": {"cdk46-inhibitor"},
    "ribociclib": {"cdk46-inhibitor"},
    "abemaciclib": {"cdk46-inhibitor"},
    "letrozole": {"aromatase-inhibitor"},
    "anastrozole": {"aromatase-inhibitor"},
    "fulvestrant": set(),
}


def day(year: int, month: int, dd: int) -> datetime:
    return datetime(year, month, dd, tzinfo=UTC)


def _order(replaces: tuple[str, ...] = ()) -> PalbociclibOrder:
    return PalbociclibOrder(
        resource_id="draft",
        status="draft",
        product=None,
        matched_by="ingredient",
        text="palbociclib",
        evidence=Evidence("MedicationRequest", "draft", AS_OF, "palbociclib (draft order)"),
        replaces=replaces,
    )


def _med(
    ingredient: str,
    source: MedicationSource = "request",
    status: str | None = "active",
    *,
    rid: str | None = None,
    started: datetime | None = MARCH_9,
    ended: datetime | None = None,
) -> MedicationUse:
    return medication_use(ingredient, GROUPS[ingredient], source, status, started=started, ended=ended, rid=rid)


def _lab(concept: str, *results: str, when: datetime | None, rid: str, original: str = "") -> LabResult:
    return coded_result(concept, results, when, rid, original=original)


def _snapshot(medications: tuple[MedicationUse, ...] = (), labs: tuple[LabResult, ...] = ()) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=64,
        medications=medications,
        labs=tuple(sorted(labs, key=lambda lab: -(lab.effective or day(1, 1, 1)).timestamp())),
    )


def _ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


# ------------------------------------------------------------------------------------------ duplicate CDK4/6
@pytest.mark.parametrize(
    ("medications", "fires"),
    [
        ((_med("ribociclib"),), True),
        ((_med("ribociclib", status="on-hold"),), True),
        ((_med("abemaciclib", "statement", "active"),), True),
        ((_med("abemaciclib", "statement", "intended"),), True),
        ((_med("ribociclib", "draft", "draft"),), True),  # co-ordered in this order set
        ((_med("ribociclib", status="stopped"),), False),
        ((_med("ribociclib", status="completed"),), False),
        ((_med("abemaciclib", "statement", "completed"),), False),
        ((_med("palbociclib"),), False),  # another palbociclib is the other rule
        ((_med("letrozole"),), False),
        ((), False),
    ],
)
def test_duplicate_cdk46(medications: tuple[MedicationUse, ...], fires: bool) -> None:
    findings = duplicates.evaluate_cdk46(_snapshot(medications), _order(), {})
    assert _ids(findings) == (["duplicate-cdk46"] if fires else [])


def test_duplicate_cdk46_names_the_drug_and_the_order_to_stop() -> None:
    ribociclib = _med("ribociclib", rid="ribo")
    (finding,) = duplicates.evaluate_cdk46(_snapshot((ribociclib, _med("letrozole"))), _order(), {})
    assert finding.params["drug"] == "ribociclib"
    assert finding.params["target_reference"] == "MedicationRequest/ribo"
    assert finding.params["current"] == "ribociclib (request, active), since 2026-03-09"
    assert finding.evidence == (ribociclib.evidence,)


def test_duplicate_cdk46_statement_has_no_order_to_stop() -> None:
    (finding,) = duplicates.evaluate_cdk46(_snapshot((_med("abemaciclib", "statement"),)), _order(), {})
    assert finding.params["target_reference"] == ""


# ------------------------------------------------------------------------------------- duplicate palbociclib
ACTIVE_PALBO = _med("palbociclib", rid="palbo-1")


@pytest.mark.parametrize(
    ("medications", "replaces", "fires"),
    [
        ((ACTIVE_PALBO,), (), True),
        ((_med("palbociclib", status="on-hold"),), (), True),
        ((_med("palbociclib", "statement"),), (), True),
        ((_med("palbociclib", "draft", "draft"),), (), True),  # a second palbociclib draft in the order set
        ((ACTIVE_PALBO,), ("MedicationRequest/palbo-1",), False),  # renewal
        # the renewal also covers the medication-list entry for the same therapy
        ((ACTIVE_PALBO, _med("palbociclib", "statement")), ("MedicationRequest/palbo-1",), False),
        # replacing one order does not cover a second one
        ((ACTIVE_PALBO, _med("palbociclib", rid="palbo-2")), ("MedicationRequest/palbo-1",), True),
        # naming an order that is not on record does not cover a statement
        ((_med("palbociclib", "statement"),), ("MedicationRequest/elsewhere",), True),
        ((_med("palbociclib", status="completed"),), (), False),
        ((_med("palbociclib", status="stopped"),), (), False),
        ((), (), False),
    ],
)
def test_duplicate_palbociclib(medications: tuple[MedicationUse, ...], replaces: tuple[str, ...], fires: bool) -> None:
    findings = duplicates.evaluate_palbociclib(_snapshot(medications), _order(replaces), {})
    assert _ids(findings) == (["duplicate-palbociclib"] if fires else [])


def test_duplicate_palbociclib_lists_only_what_is_not_replaced() -> None:
    other = _med("palbociclib", rid="palbo-2", started=day(2026, 10, 23))
    (finding,) = duplicates.evaluate_palbociclib(
        _snapshot((ACTIVE_PALBO, other)), _order(("MedicationRequest/palbo-1",)), {}
    )
    assert finding.evidence == (other.evidence,)
    assert finding.params["target_reference"] == "MedicationRequest/palbo-2"
    assert finding.params["current"] == "palbociclib (request, active), since 2026-10-23"


# ---------------------------------------------------------------------------------- progression on CDK4/6
def _progression(when: datetime | None, rid: str = "status", *results: str) -> LabResult:
    return _lab("cancer-disease-status", *(results or ("disease-progression",)), when=when, rid=rid)


PALBO_PAST = _med("palbociclib", status="stopped", rid="palbo-past", started=day(2024, 3, 4), ended=day(2026, 10, 16))


@pytest.mark.parametrize(
    ("medications", "labs", "fires"),
    [
        ((PALBO_PAST,), (_progression(day(2026, 10, 14)),), True),  # brief #38
        ((PALBO_PAST,), (_progression(day(2027, 1, 10)),), True),  # within 90 days of stopping
        ((PALBO_PAST,), (_progression(day(2027, 1, 20)),), False),  # more than 90 days after
        ((PALBO_PAST,), (_progression(day(2023, 12, 1)),), False),  # before the CDK4/6 inhibitor (PALOMA-3)
        ((_med("palbociclib", started=day(2026, 3, 9)),), (_progression(day(2026, 11, 1)),), True),  # on it now
        ((_med("ribociclib", status="stopped", started=day(2025, 1, 1)),), (_progression(day(2026, 6, 1)),), True),
        ((_med("abemaciclib", "statement", "completed", started=None),), (_progression(day(2026, 6, 1)),), True),
        ((PALBO_PAST,), (_progression(None),), True),  # undated progression counts
        ((PALBO_PAST,), (_progression(day(2026, 10, 14), "s", "stable"),), False),
        ((_med("letrozole", status="stopped", started=day(2024, 3, 4)),), (_progression(day(2026, 10, 14)),), False),
        ((_med("palbociclib", "draft", "draft"),), (_progression(day(2026, 10, 14)),), False),  # only the draft
        ((PALBO_PAST,), (), False),
    ],
)
def test_progression_on_cdk46(medications: tuple[MedicationUse, ...], labs: tuple[LabResult, ...], fires: bool) -> None:
    findings = duplicates.evaluate_progression(_snapshot(medications, labs), _order(), {"progression_window_days": 90})
    assert _ids(findings) == (["progression-on-cdk46"] if fires else [])


def test_progression_window_is_a_threshold() -> None:
    snapshot = _snapshot((PALBO_PAST,), (_progression(day(2027, 1, 20)),))
    assert duplicates.evaluate_progression(snapshot, _order(), {"progression_window_days": 120})
    assert not duplicates.evaluate_progression(snapshot, _order(), {"progression_window_days": 30})
    rule = next(r for r in duplicates.RULES if r.name == "prior-cdk46-progression")
    assert rule.thresholds == {"progression_window_days": 90}


def test_progression_finding_names_the_newest_progression_and_the_exposure() -> None:
    old = _progression(day(2025, 5, 1), "old")
    new = _progression(day(2026, 10, 14), "new")
    (finding,) = duplicates.evaluate_progression(_snapshot((PALBO_PAST,), (old, new)), _order(), {})
    assert finding.params["progression"] == "disease-progression (2026-10-14)"
    assert finding.params["exposure"] == "palbociclib (request, stopped), 2024-03-04 to 2026-10-16"
    assert finding.evidence == (new.evidence, PALBO_PAST.evidence)


# ---------------------------------------------------------------------------------------------- ESR1 switch
def _esr1(
    result: str, when: datetime | None = NOV_2, gene: str = "gene-esr1", rid: str = "esr1"
) -> tuple[LabResult, ...]:
    """A variant assessment and its gene-studied component, as the snapshot holds them."""
    return (
        _lab("esr1-variant", result, when=when, rid=rid, original="ESR1 variant"),
        _lab("gene-studied", gene, when=when, rid=rid),
    )


LETROZOLE = _med("letrozole", rid="letrozole")
PALBO_NOW = _med("palbociclib", rid="palbo-now")


@pytest.mark.parametrize(
    ("medications", "labs", "replaces", "fires"),
    [
        ((LETROZOLE, PALBO_NOW), _esr1("variant-present"), (), True),  # brief #39
        ((LETROZOLE, PALBO_NOW), _esr1("detected"), (), True),
        ((LETROZOLE, PALBO_NOW), _esr1("positive"), (), True),
        ((_med("anastrozole", "statement"), PALBO_NOW), _esr1("detected"), (), True),
        ((_med("letrozole", "draft", "draft"), PALBO_NOW), _esr1("detected"), (), True),
        # palbociclib only through the order this draft renews (the old order completed)
        (
            (LETROZOLE, _med("palbociclib", status="completed", rid="palbo-old")),
            _esr1("detected"),
            ("MedicationRequest/palbo-old",),
            True,
        ),
        ((LETROZOLE, _med("palbociclib", status="completed", rid="palbo-old")), _esr1("detected"), (), False),
        ((LETROZOLE,), _esr1("detected"), (), False),  # palbociclib is being started, not continued
        ((PALBO_NOW,), _esr1("detected"), (), False),  # no aromatase inhibitor
        ((LETROZOLE, PALBO_NOW, _med("fulvestrant")), _esr1("detected"), (), False),  # already switched
        ((LETROZOLE, PALBO_NOW), _esr1("variant-absent"), (), False),
        ((LETROZOLE, PALBO_NOW), _esr1("not-detected"), (), False),
        ((LETROZOLE, PALBO_NOW), _esr1("detected", gene="gene-pik3ca"), (), False),  # another gene
        ((LETROZOLE, PALBO_NOW), _esr1("detected", when=day(2026, 1, 5)), (), False),  # before palbociclib
        # a newer ESR1 test without the variant
        (
            (LETROZOLE, PALBO_NOW),
            _esr1("detected", when=day(2026, 9, 1), rid="a") + _esr1("not-detected", rid="b"),
            (),
            False,
        ),
        # progression since palbociclib started: PALMIRA territory, not PADA-1
        ((LETROZOLE, PALBO_NOW), (*_esr1("detected"), _progression(day(2026, 11, 10))), (), False),
        # progression before palbociclib started does not count
        ((LETROZOLE, PALBO_NOW), (*_esr1("detected"), _progression(day(2025, 12, 1))), (), True),
        ((LETROZOLE, PALBO_NOW), (*_esr1("detected"), _progression(day(2026, 10, 5), "s", "stable")), (), True),
    ],
)
def test_esr1_switch(
    medications: tuple[MedicationUse, ...], labs: tuple[LabResult, ...], replaces: tuple[str, ...], fires: bool
) -> None:
    findings = duplicates.evaluate_esr1(_snapshot(medications, labs), _order(replaces), {})
    assert _ids(findings) == (["esr1-mutation-on-ai"] if fires else [])


def test_esr1_finding_targets_the_aromatase_inhibitor_order() -> None:
    (finding,) = duplicates.evaluate_esr1(_snapshot((LETROZOLE, PALBO_NOW), _esr1("detected")), _order(), {})
    assert finding.params["target_reference"] == "MedicationRequest/letrozole"
    assert finding.params["esr1"] == "ESR1 variant (2026-11-02)"
    assert finding.evidence[0].resource_id == "esr1"


def _resource(kind: str, rid: str, **body: Any) -> dict[str, Any]:
    return {"resourceType": kind, "id": rid, "subject": {"reference": "Patient/p"}, **body}


def _coding(system: str, code: str, display: str = "") -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _esr1_observation(gene: str, value: str) -> dict[str, Any]:
    return _resource(
        "Observation",
        "ctdna",
        status="final",
        code=_coding(LOINC, "69548-6", "Genetic variant assessment"),
        effectiveDateTime="2026-11-02T09:00:00Z",
        valueCodeableConcept=_coding(LOINC, value),
        component=[
            {
                "code": _coding(LOINC, "48018-6"),
                "valueCodeableConcept": _coding("http://www.genenames.org/geneId", gene),
            },
            {"code": _coding(LOINC, "48005-3"), "valueCodeableConcept": {"text": "p.Asp538Gly"}},
        ],
    )


@pytest.mark.parametrize(
    ("gene", "value", "fires"),
    [("HGNC:3467", "LA9633-4", True), ("HGNC:3467", "LA9634-2", False), ("HGNC:8975", "LA9633-4", False)],
)
def test_esr1_observation_through_the_snapshot(gene: str, value: str, fires: bool) -> None:
    """The gene-studied component becomes its own LabResult; the rule pairs it with the variant by resource."""
    resources = [
        _resource("Patient", "p", gender="female", birthDate="1962-03-14"),
        _esr1_observation(gene, value),
        _resource(
            "MedicationRequest",
            "ai",
            status="active",
            intent="order",
            authoredOn="2026-03-09",
            medicationCodeableConcept=_coding(RXNORM, "200064"),
        ),
        _resource(
            "MedicationRequest",
            "palbo",
            status="active",
            intent="order",
            authoredOn="2026-03-09",
            medicationCodeableConcept=_coding(RXNORM, "2284105"),
        ),
    ]
    data = PatientData(resources={"all": tuple(resources)}, outcomes={"all": KeyOutcome("all", "prefetched")})
    snapshot = build_snapshot(
        data, patient_id="p", draft_orders=[], evaluated_orders=[], as_of=AS_OF, vs=load_valuesets()
    )
    findings = duplicates.evaluate_esr1(snapshot, _order(), {})
    assert _ids(findings) == (["esr1-mutation-on-ai"] if fires else [])
    if fires:
        assert findings[0].params["esr1"].endswith("p.Asp538Gly (2026-11-02)")


def test_rule_metadata() -> None:
    by_name = {rule.name: rule for rule in duplicates.RULES}
    assert by_name["duplicate-cdk46"].needs == {"medicationRequests", "medicationStatements"}
    assert by_name["duplicate-palbociclib"].needs == {"medicationRequests", "medicationStatements"}
    assert by_name["prior-cdk46-progression"].needs >= {"medicationHistory", "diseaseStatus"}
    assert by_name["esr1-switch"].needs >= {"esr1", "diseaseStatus", "medicationHistory"}
    assert [card for rule in duplicates.RULES for card in rule.fires] == [
        "duplicate-cdk46",
        "duplicate-palbociclib",
        "progression-on-cdk46",
        "esr1-mutation-on-ai",
    ]
