"""Menopausal status, derived once per patient with its evidence (clinical brief §4.4; NCCN criteria as
used by PALOMA-2).

Postmenopausal if any of: prior bilateral oophorectomy (procedure, or ICD-10-CM Z90.722); age 60 or
more; a coded postmenopausal state. A woman on an LHRH agonist (active, or ordered in this order set) is
``ovarian-suppressed``, which satisfies the aromatase-inhibitor rule. Coded pre- or perimenopausal
status gives those states; a woman under 60 with nothing that establishes menopause is ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cds_service.snapshot.model import Evidence, PatientSnapshot

State = Literal["postmenopausal", "premenopausal", "perimenopausal", "ovarian-suppressed", "male", "unknown"]

POSTMENOPAUSAL_AGE = 60
_OOPHORECTOMY_CONDITIONS = ("bilateral-oophorectomy-status", "surgical-menopause")
_CODED_STATES: dict[str, State] = {
    "postmenopausal": "postmenopausal",
    "premenopausal": "premenopausal",
    "perimenopausal": "perimenopausal",
}


@dataclass(frozen=True, slots=True)
class MenopausalStatus:
    state: State
    basis: str
    """What established the state, in words for the card ("bilateral oophorectomy", "age 64")."""
    evidence: tuple[Evidence, ...] = ()


def menopausal_status(snapshot: PatientSnapshot) -> MenopausalStatus:
    if snapshot.sex == "male":
        return MenopausalStatus("male", "male patient")
    if snapshot.sex != "female":
        return MenopausalStatus("unknown", "sex not recorded as female or male")

    suppression = [m for m in snapshot.medications_in("lhrh-agonist") if m.is_current]
    if suppression:
        return MenopausalStatus("ovarian-suppressed", "LHRH agonist", tuple(m.evidence for m in suppression))

    surgery = [p.evidence for p in snapshot.procedures if "bilateral-oophorectomy" in p.concepts]
    surgery += [c.evidence for c in snapshot.conditions if set(_OOPHORECTOMY_CONDITIONS) & c.concepts]
    if surgery:
        return MenopausalStatus("postmenopausal", "bilateral oophorectomy", tuple(surgery))

    if snapshot.age_years is not None and snapshot.age_years >= POSTMENOPAUSAL_AGE:
        return MenopausalStatus("postmenopausal", f"age {snapshot.age_years}")

    coded = [
        (condition, _CODED_STATES[concept])
        for condition in snapshot.conditions
        for concept in condition.concepts
        if concept in _CODED_STATES
    ]
    if coded:
        condition, state = max(
            coded, key=lambda item: item[0].evidence.date.timestamp() if item[0].evidence.date else 0
        )
        return MenopausalStatus(state, f"recorded {state} status", (condition.evidence,))
    return MenopausalStatus("unknown", "menopause not established")
