"""Indication rules (breast-cancer diagnosis, advanced disease) and the receptor checks added with them (HER2
equivocal without ISH, discordance between specimens), as pure functions of hand-built snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds_service.rules import indication, receptors
from cds_service.rules.base import Finding
from cds_service.snapshot.model import Code, CodedFact, Evidence, LabResult, PalbociclibOrder, PatientSnapshot
from tests.rules.builders import coded_result

AS_OF = datetime(2026, 11, 20, 15, tzinfo=UTC)
D2021 = datetime(2021, 4, 6, tzinfo=UTC)
D2025 = datetime(2025, 10, 14, tzinfo=UTC)
ORDER = PalbociclibOrder(
    resource_id="draft",
    status="draft",
    product=None,
    matched_by="ingredient",
    text="palbociclib",
    evidence=Evidence("MedicationRequest", "draft", AS_OF, "palbociclib (draft order)"),
)
PRIMARY = "Left breast (core biopsy of primary tumour)"
LIVER = "Liver (core biopsy of metastasis)"


def _condition(
    *concepts: str, status: str | None = "active", text: str | None = None, rid: str = "c", display: str = ""
) -> CodedFact:
    return CodedFact(
        concepts=frozenset(concepts),
        codes=(Code("http://snomed.info/sct", "0", display or None),),
        text=text,
        status=status,
        date=D2025,
        evidence=Evidence("Condition", rid, D2025, text or " ".join(concepts)),
    )


def _lab(
    concept: str, *results: str, when: datetime | None = D2025, site: str | None = None, rid: str | None = None
) -> LabResult:
    rid = rid or f"{concept}-{'-'.join(results)}-{when.date() if when else 'undated'}-{site}"
    return coded_result(concept, results, when, rid, site)


def _snapshot(labs: tuple[LabResult, ...] = (), conditions: tuple[CodedFact, ...] = ()) -> PatientSnapshot:
    return PatientSnapshot(
        as_of=AS_OF,
        patient_id="p",
        sex="female",
        birth_date=None,
        age_years=64,
        conditions=conditions,
        labs=tuple(sorted(labs, key=lambda lab: -(lab.effective or datetime(1, 1, 1, tzinfo=UTC)).timestamp())),
        available=frozenset({"conditions", "receptors", "staging"}),
    )


def _ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


BREAST = _condition("breast-cancer", rid="breast")
METS = _condition("secondary-malignancy", rid="mets")


# ------------------------------------------------------------------------------- breast-cancer diagnosis
@pytest.mark.parametrize(
    ("conditions", "fires"),
    [
        ((), True),
        ((METS,), True),  # metastases without a breast primary on the problem list
        ((_condition("breast-cancer", status="resolved"), METS), True),
        ((_condition("breast-cancer", status="remission"),), True),
        ((_condition("breast-cancer", status="inactive"),), True),
        ((BREAST,), False),
        ((_condition("breast-cancer", status="recurrence"),), False),
        ((_condition("breast-cancer", status="relapse"),), False),
        ((_condition("breast-cancer", status="Active"),), False),
        ((_condition("breast-cancer", status=None),), False),  # no clinical status recorded
        ((_condition("breast-cancer", status="resolved"), _condition("breast-cancer", status="recurrence")), False),
    ],
)
def test_breast_cancer_diagnosis(conditions: tuple[CodedFact, ...], fires: bool) -> None:
    findings = indication.evaluate_diagnosis(_snapshot(conditions=conditions), ORDER, {})
    assert _ids(findings) == (["indication-no-breast-cancer"] if fires else [])


def test_no_breast_cancer_names_the_inactive_entries() -> None:
    resolved = _condition("breast-cancer", status="resolved", text="Left breast cancer 2015", rid="old")
    (finding,) = indication.evaluate_diagnosis(_snapshot(conditions=(resolved,)), ORDER, {})
    assert "clinical status resolved" in finding.params["other"]
    assert finding.evidence == (resolved.evidence,)
    (finding,) = indication.evaluate_diagnosis(_snapshot(), ORDER, {})
    assert finding.params["other"] == "no breast-cancer diagnosis of any status"


# ---------------------------------------------------------------------------------- advanced disease
STAGE_IIA = _lab("tnm-stage-group", "stage-iia-not-iv", rid="stage-iia")
STAGE_IV = _lab("tnm-stage-group", "stage-iv", rid="stage-iv")


@pytest.mark.parametrize(
    ("labs", "conditions", "fires"),
    [
        ((), (BREAST,), True),
        ((STAGE_IIA,), (BREAST,), True),
        ((), (BREAST, METS), False),
        ((), (BREAST, _condition("secondary-malignancy", status="remission")), False),  # still metastatic
        ((STAGE_IV,), (BREAST,), False),
        ((STAGE_IIA, STAGE_IV), (BREAST,), False),
        ((), (_condition("breast-cancer", text="Metastatic breast cancer"),), False),
        ((), (_condition("breast-cancer", text="Locally advanced breast cancer, inoperable"),), False),
        ((), (_condition("breast-cancer", text="Breast cancer, stage IV"),), False),
        ((), (_condition("breast-cancer", display="Metastatic malignant neoplasm of breast"),), False),
        ((), (_condition("breast-cancer", text="Breast cancer, no metastases on staging CT"),), True),
        ((), (_condition("breast-cancer", text="Non-metastatic breast cancer"),), True),
        ((), (_condition("breast-cancer", text="Metastatic breast cancer, no brain metastases"),), False),
        ((), (_condition("breast-cancer", text="Breast cancer, stage IIA"),), True),
        # no active diagnosis: the other card speaks
        ((), (), False),
        ((), (_condition("breast-cancer", status="resolved"),), False),
    ],
)
def test_advanced_disease(labs: tuple[LabResult, ...], conditions: tuple[CodedFact, ...], fires: bool) -> None:
    findings = indication.evaluate_advanced(_snapshot(labs, conditions), ORDER, {})
    assert _ids(findings) == (["indication-not-advanced"] if fires else [])


def test_not_advanced_shows_the_diagnosis_and_latest_stage() -> None:
    older = _lab("tnm-stage-group", "x", when=datetime(2026, 9, 1, tzinfo=UTC), rid="older")
    newer = LabResult(
        concept="tnm-stage-group",
        effective=datetime(2026, 10, 12, tzinfo=UTC),
        value=None,
        unit=None,
        interpretable=True,
        original="Stage IIA",
        evidence=Evidence("Observation", "newer", datetime(2026, 10, 12, tzinfo=UTC), "Stage group: Stage IIA"),
    )
    (finding,) = indication.evaluate_advanced(_snapshot((older, newer), (BREAST,)), ORDER, {})
    assert finding.params["stage"] == "Stage IIA (2026-10-12)"
    assert "since 2025-10-14" in finding.params["diagnosis"]
    assert finding.evidence == (BREAST.evidence, newer.evidence)
    (finding,) = indication.evaluate_advanced(_snapshot((), (BREAST,)), ORDER, {})
    assert finding.params["stage"] == "not on record"


def test_indication_rule_metadata() -> None:
    by_name = {rule.name: rule for rule in indication.RULES}
    assert by_name["breast-cancer-diagnosis"].fires == ("indication-no-breast-cancer",)
    assert by_name["breast-cancer-diagnosis"].needs == {"conditions"}
    assert by_name["advanced-disease"].fires == ("indication-not-advanced",)
    assert by_name["advanced-disease"].needs == {"conditions", "staging"}


# ------------------------------------------------------------------------------------ HER2 equivocal
ER_POS = _lab("er-status", "positive", site=LIVER)
PR_POS = _lab("pr-status", "positive", site=LIVER)
IHC_2 = _lab("her2-ihc", "her2-ihc-2plus", site=LIVER)


def _her2_equivocal(*labs: LabResult, conditions: tuple[CodedFact, ...] = ()) -> list[str]:
    return _ids(receptors.evaluate_her2_equivocal(_snapshot((ER_POS, PR_POS, *labs), conditions), ORDER, {}))


@pytest.mark.parametrize(
    ("labs", "fires"),
    [
        ((IHC_2,), True),
        ((_lab("her2-ihc", "equivocal"),), True),
        ((_lab("her2-interpretation", "equivocal"),), True),
        # an ISH result on the same day or later resolves it, whatever it says
        ((IHC_2, _lab("her2-ish", "negative")), False),
        ((IHC_2, _lab("her2-ish", "not-detected", when=datetime(2025, 11, 2, tzinfo=UTC))), False),
        ((IHC_2, _lab("her2-ish", "positive")), False),
        # an ISH before the equivocal IHC does not
        ((IHC_2, _lab("her2-ish", "negative", when=D2021)), True),
        # a newer definitive IHC replaces the equivocal one
        ((IHC_2, _lab("her2-ihc", "her2-ihc-1plus", when=datetime(2026, 1, 5, tzinfo=UTC))), False),
        # at the same time the pathologist's definitive interpretation leads
        ((IHC_2, _lab("her2-interpretation", "negative")), False),
        # an older equivocal IHC under a newer definitive result
        ((_lab("her2-ihc", "her2-ihc-2plus", when=D2021), _lab("her2-ihc", "her2-ihc-0")), False),
        ((_lab("her2-ihc", "her2-ihc-1plus"),), False),
        ((), False),
    ],
)
def test_her2_equivocal(labs: tuple[LabResult, ...], fires: bool) -> None:
    assert _her2_equivocal(*labs) == (["receptor-her2-equivocal"] if fires else [])


def test_her2_equivocal_stays_quiet_when_a_newer_result_is_positive() -> None:
    positive = CodedFact(frozenset({"her2-positive"}), (), None, "active", AS_OF, Evidence("Condition", "z", AS_OF, ""))
    assert _her2_equivocal(IHC_2, conditions=(positive,)) == []


def test_her2_equivocal_finding_shows_the_ihc() -> None:
    (finding,) = receptors.evaluate_her2_equivocal(_snapshot((ER_POS, IHC_2)), ORDER, {})
    assert finding.params["her2_ihc"].startswith("equivocal (her2-ihc: her2-ihc-2plus, 2025-10-14")
    assert finding.params["pr"] == "not on record"
    assert finding.evidence == (IHC_2.evidence,)


def test_her2_equivocal_is_not_a_receptor_status_card() -> None:
    """The existing receptor-status rule is unchanged: equivocal HER2 is known, neither positive nor unknown."""
    assert _ids(receptors.evaluate(_snapshot((ER_POS, IHC_2)), ORDER, {})) == []


# --------------------------------------------------------------------------------------- discordance
def _receptor_cards(*labs: LabResult) -> list[str]:
    snapshot = _snapshot(labs)
    return _ids(receptors.evaluate(snapshot, ORDER, {})) + _ids(receptors.evaluate_discordance(snapshot, ORDER, {}))


HER2_NEG = _lab("her2-interpretation", "negative", site=LIVER)


@pytest.mark.parametrize(
    ("labs", "expected"),
    [
        # brief #40: ER+ primary 2021, ER- liver 2025 -> one warning, no critical
        (
            (
                _lab("er-status", "positive", when=D2021, site=PRIMARY),
                _lab("er-status", "negative", site=LIVER),
                _lab("pr-status", "negative", site=LIVER),
                HER2_NEG,
            ),
            ["receptor-discordant"],
        ),
        # the other direction: the leading metastatic result supports palbociclib
        (
            (
                _lab("er-status", "negative", when=D2021, site=PRIMARY),
                _lab("er-status", "positive", site=LIVER),
                HER2_NEG,
            ),
            [],
        ),
        # no sites: not comparable, the latest result leads and the critical card fires
        (
            (_lab("er-status", "positive", when=D2021), _lab("er-status", "negative"), HER2_NEG),
            ["receptor-er-negative"],
        ),
        # same site re-biopsied: the newer result leads, no discordance
        (
            (
                _lab("er-status", "positive", when=D2021, site=LIVER),
                _lab("er-status", "negative", site=LIVER),
                HER2_NEG,
            ),
            ["receptor-er-negative"],
        ),
        # site text differs only in case and spacing: same site
        (
            (
                _lab("er-status", "positive", when=D2021, site="liver  (core biopsy of metastasis)"),
                _lab("er-status", "negative", site=LIVER),
                HER2_NEG,
            ),
            ["receptor-er-negative"],
        ),
        # ER-/PR+ on the metastasis is hormone-receptor positive: neither card
        (
            (
                _lab("er-status", "positive", when=D2021, site=PRIMARY),
                _lab("er-status", "negative", site=LIVER),
                _lab("pr-status", "positive", site=LIVER),
                HER2_NEG,
            ),
            [],
        ),
        # the most recent *metastatic* specimen leads even when a breast specimen is newer
        (
            (
                _lab("er-status", "negative", when=D2021, site=LIVER),
                _lab("er-status", "positive", site=PRIMARY),
                HER2_NEG,
            ),
            ["receptor-discordant"],
        ),
        # HER2-negative primary, HER2-positive metastasis: warning instead of the critical card
        (
            (
                _lab("er-status", "positive", site=LIVER),
                _lab("her2-ihc", "her2-ihc-1plus", when=D2021, site=PRIMARY),
                _lab("her2-ihc", "her2-ihc-3plus", site=LIVER),
            ),
            ["receptor-discordant"],
        ),
        # HER2 0 vs 1+: both negative
        (
            (
                _lab("er-status", "positive", site=LIVER),
                _lab("her2-ihc", "her2-ihc-0", when=D2021, site=PRIMARY),
                _lab("her2-ihc", "her2-ihc-1plus", site=LIVER),
            ),
            [],
        ),
        # equivocal results are not compared
        (
            (
                _lab("er-status", "positive", site=LIVER),
                _lab("her2-interpretation", "negative", when=D2021, site=PRIMARY),
                _lab("her2-ihc", "her2-ihc-2plus", site=LIVER),
            ),
            [],
        ),
    ],
)
def test_discordance(labs: tuple[LabResult, ...], expected: list[str]) -> None:
    assert _receptor_cards(*labs) == expected


def test_discordance_between_two_breast_specimens_names_the_latest_biopsy() -> None:
    left = _lab("er-status", "positive", when=D2021, site="Left breast")
    right = _lab("er-status", "negative", site="Right breast")
    (finding,) = receptors.evaluate_discordance(_snapshot((left, right, HER2_NEG)), ORDER, {})
    assert finding.params["leading_label"] == "the latest biopsy"
    assert finding.params["leading"].startswith("negative on Right breast")


def test_discordance_with_conditions_only_is_not_compared() -> None:
    snapshot = _snapshot(
        (_lab("er-status", "negative", site=LIVER), HER2_NEG),
        (_condition("er-positive", rid="z17-0"),),
    )
    assert receptors.evaluate_discordance(snapshot, ORDER, {}) == []


def test_discordant_finding_shows_both_specimens() -> None:
    primary = _lab("er-status", "positive", when=D2021, site=PRIMARY, rid="er-2021")
    metastasis = _lab("er-status", "negative", site=LIVER, rid="er-2025")
    (finding,) = receptors.evaluate_discordance(_snapshot((primary, metastasis, HER2_NEG)), ORDER, {})
    assert finding.params["marker"] == "ER"
    assert finding.params["leading_status"] == "negative"
    assert finding.params["other_status"] == "positive"
    assert finding.params["leading_label"] == "the latest metastatic biopsy"
    assert finding.params["leading"] == f"negative on {LIVER} (2025-10-14)"
    assert finding.params["others"] == f"positive on {PRIMARY} (2021-04-06)"
    assert "hormone-receptor negative" in finding.params["consequence"]
    assert finding.evidence == (metastasis.evidence, primary.evidence)


@pytest.mark.parametrize(
    ("site", "metastatic"),
    [
        (LIVER, True),
        ("Bone, iliac crest", True),
        ("Axillary lymph node", True),
        (PRIMARY, False),
        ("Right breast, 10 o'clock", False),
        ("Primary tumour", False),
        ("Breast skin nodule (metastasis)", True),
    ],
)
def test_metastatic_site(site: str, metastatic: bool) -> None:
    assert receptors.is_metastatic_site(site) is metastatic


def test_receptor_rules_metadata() -> None:
    by_name = {rule.name: rule for rule in receptors.RULES}
    assert by_name["her2-ish-confirmation"].fires == ("receptor-her2-equivocal",)
    assert by_name["receptor-discordance"].fires == ("receptor-discordant",)
    assert all(rule.needs == {"conditions", "receptors"} for rule in receptors.RULES)
