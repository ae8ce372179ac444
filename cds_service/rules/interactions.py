"""Interacting medicines: CYP3A inhibitors and inducers, narrow-therapeutic-index CYP3A substrates,
estrogens, proton-pump inhibitors with the capsules, and grapefruit.

Palbociclib is metabolised mainly by CYP3A and SULT2A1 and is a weak time-dependent CYP3A inhibitor
(IBRANCE US prescribing information §7, §12.3; clinical brief §5, §6.2, behaviours 27-35):

- strong CYP3A inhibitors (§2.2, §7.1; itraconazole raised palbociclib AUC by 87%): avoid; if unavoidable,
  75 mg once daily, and back to the previous dose 3-5 inhibitor half-lives after the inhibitor stops.
  Critical while the order is above 75 mg a day, information at 75 mg;
- strong CYP3A inducers (§7.2; rifampin lowered palbociclib AUC by 85%): avoid. Critical;
- moderate CYP3A inducers (EU SmPC §4.5: modafinil lowered AUC by 32%, no dose change). Information;
- sensitive CYP3A substrates with a narrow therapeutic index (§7.3): their dose may need to be lowered.
  Warning;
- estrogens oppose endocrine therapy; hormonal contraception is US MEC category 4 with current breast
  cancer (CDC US MEC 2024). Warning; low-dose vaginal estrogen is information;
- proton-pump inhibitors with palbociclib capsules (capsules with food: Cmax -41%, AUC -13%; tablets are
  not affected, Canadian product monograph). Information;
- grapefruit where the record names it in an allergy/intolerance entry or a diet order (§7.1, §17).
  Information.

A medicine counts when it is current (an active or on-hold order, an active, intended or on-hold
medication-list entry) or is another draft in the same order set; combination products count through
each ingredient. A topical, ophthalmic or otic product (product form, else the words of its name) of a
CYP3A-active ingredient is not a systemic exposure and is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cds_service.rules.base import Finding, Indicator, Rule, Threshold
from cds_service.snapshot.model import Evidence, MedicationUse, PalbociclibOrder, PatientSnapshot

STRONG_INHIBITOR = "strong-cyp3a-inhibitor"
STRONG_INDUCER = "strong-cyp3a-inducer"
MODERATE_INDUCER = "moderate-cyp3a-inducer"
NTI_SUBSTRATE = "nti-cyp3a-substrate"
ESTROGEN = "estrogen"
PROGESTIN = "progestin"
PPI = "ppi"
GRAPEFRUIT = "grapefruit"

REDUCED_DOSE_MG = 75
"""IBRANCE US prescribing information §2.2: 75 mg once daily with a strong CYP3A inhibitor."""

LEVEL_MONITORED = frozenset({"tacrolimus", "cyclosporine", "sirolimus", "everolimus"})
"""NTI substrates whose blood levels are measured in practice."""

_NON_SYSTEMIC = re.compile(
    r"\b(cream|ointment|shampoo|lotion|foam|gel|topical|cutaneous|ophthalmic|otic|eye drops?|ear drops?"
    r"|mouthwash|mouth rinse|oral rinse|swish and spit)\b"
)
_VAGINAL = re.compile(r"\b(vaginal|vagina|intravaginal|pessary|vagifem|yuvafem|estring|imvexxy)\b")
_SYSTEMIC_VAGINAL = re.compile(r"\b(systemic|femring|estradiol acetate|nuvaring|annovera|etonogestrel)\b")
_CONTRACEPTIVE = re.compile(r"\bcontracepti")
_CAPSULE = re.compile(r"\bcapsules?\b")

_DISPLAY = {
    "st-johns-wort": "St John's wort",
    "ethinyl-estradiol": "ethinyl estradiol",
    "conjugated-estrogens": "conjugated estrogens",
    "esterified-estrogens": "esterified estrogens",
}


# ----------------------------------------------------------------------------------------------- helpers
def agent_names(agents: Iterable[str]) -> str:
    """Ingredient concepts as words: "lopinavir and ritonavir"."""
    names = sorted(_DISPLAY.get(a, a.replace("-", " ")) for a in agents)
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def is_non_systemic(use: MedicationUse) -> bool:
    """A topical, ophthalmic, otic or mouth-rinse product: the form of a coded product decides, else the
    Medication's form or the medicine's name; a topical route on the order also counts."""
    form = use.product.form if use.product and use.product.form else None
    described = " ".join(part for part in (form or use.form or use.text, use.route) if part)
    return bool(_NON_SYSTEMIC.search(described.casefold()))


def where(use: MedicationUse) -> str:
    if use.source == "draft":
        return "ordered in this order set"
    if use.source == "request":
        return "on-hold order" if use.status == "on-hold" else "active order"
    return "medication list" if use.status in (None, "active") else f"medication list, {use.status}"


def describe(use: MedicationUse, agents: Iterable[str]) -> str:
    return f"{use.text or agent_names(agents)} ({where(use)})"


@dataclass(frozen=True, slots=True)
class Interacting:
    """The current medicines that bring the same interacting ingredients."""

    agents: frozenset[str]
    uses: tuple[MedicationUse, ...]

    @property
    def names(self) -> str:
        return agent_names(self.agents)

    @property
    def described(self) -> str:
        return "; ".join(describe(u, self.agents) for u in self.uses)

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(u.evidence for u in self.uses)

    @property
    def target_reference(self) -> str:
        """The one MedicationRequest (active or draft) a suggestion could stop, else ""."""
        requests = {
            u.evidence.reference
            for u in self.uses
            if u.evidence.resource_type == "MedicationRequest" and u.evidence.resource_id
        }
        return requests.pop() if len(requests) == 1 else ""


def interacting(snapshot: PatientSnapshot, group: str, *, systemic_only: bool = True) -> list[Interacting]:
    """Current medicines with an ingredient in ``group``, gathered by product (the same ingredients).

    The snapshot keeps a medicine's groups, not each ingredient's, so a combination product is named by
    all its ingredients (lopinavir and ritonavir; cobicistat, elvitegravir, ...)."""
    by_agents: dict[frozenset[str], list[MedicationUse]] = {}
    for use in snapshot.medications:
        if group not in use.groups or not use.is_current or (systemic_only and is_non_systemic(use)):
            continue
        by_agents.setdefault(use.ingredients, []).append(use)
    return [Interacting(agents, tuple(uses)) for agents, uses in by_agents.items()]


def order_daily_dose(order: PalbociclibOrder, reduced_mg: float = REDUCED_DOSE_MG) -> float | None:
    """Palbociclib mg a day: the parsed schedule; else, when the dosage could not be read, a product of the
    reduced strength or less (one unit a day); else unknown (None, taken as above the reduced dose)."""
    schedule = order.details.schedule
    if schedule is not None and schedule.daily_dose_mg is not None:
        return schedule.daily_dose_mg
    strength = order.product.strength_mg if order.product is not None else None
    if strength is not None and strength <= reduced_mg:
        return strength
    return None


def shown_dose(order: PalbociclibOrder) -> str:
    schedule = order.details.schedule
    if schedule is not None and schedule.daily_dose_mg is not None:
        return f"{schedule.daily_dose_mg:g} mg a day"
    product = order.product
    if product is not None and product.strength_mg is not None:
        return f"not stated in the dosage ({product.strength_mg:g} mg {product.form or 'units'})"
    return "not stated in the dosage"


def _number(thresholds: Mapping[str, Threshold], name: str, default: float) -> float:
    value = thresholds.get(name, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


# ------------------------------------------------------------------------------------ CYP3A inhibitors
def evaluate_inhibitors(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """Strong CYP3A inhibitor: critical above the reduced dose (or when the dose is unknown), else info."""
    reduced = _number(thresholds, "reduced_dose_mg", REDUCED_DOSE_MG)
    dose = order_daily_dose(order, reduced)
    above = dose is None or dose > reduced
    indicator: Indicator = "critical" if above else "info"
    findings = []
    for found in interacting(snapshot, STRONG_INHIBITOR):
        advice = (
            f"avoid, or give {reduced:g} mg once daily"
            if above
            else f"the order is already at the {reduced:g} mg dose the label gives for this"
        )
        params = {
            "inhibitor": found.names,
            "medicines": found.described,
            "dose": shown_dose(order),
            "summary_advice": advice,
            "reduced_dose_mg": f"{reduced:g}" if above else "",
            "action": _inhibitor_action(found.names, reduced, above),
            "target_reference": found.target_reference,
        }
        findings.append(Finding("cyp3a-strong-inhibitor", params, found.evidence, indicator))
    return findings


def _inhibitor_action(names: str, reduced: float, above: bool) -> str:
    if above:
        return (
            f"Choose an alternative to {names} that is not a strong CYP3A inhibitor, or change this order to "
            f"{reduced:g} mg once daily while both are taken (a short course counts too)."
        )
    return (
        f"This order is at {reduced:g} mg a day: keep it there while {names} is taken; when {names} stops, "
        "wait 3-5 of its half-lives before going back to the dose used before it."
    )


# ------------------------------------------------------------------------------------- CYP3A inducers
def evaluate_inducers(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """Strong CYP3A inducer: critical (avoid). Moderate CYP3A inducer: information (no dose change)."""
    findings = [
        Finding("cyp3a-strong-inducer", {"inducer": f.names, "medicines": f.described}, f.evidence)
        for f in interacting(snapshot, STRONG_INDUCER)
    ]
    strong = {f.agents for f in interacting(snapshot, STRONG_INDUCER)}
    findings += [
        Finding("cyp3a-moderate-inducer", {"inducer": f.names, "medicines": f.described}, f.evidence)
        for f in interacting(snapshot, MODERATE_INDUCER)
        if f.agents not in strong
    ]
    return findings


# --------------------------------------------------------------------------- narrow-index substrates
def evaluate_substrates(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """Sensitive CYP3A substrate with a narrow therapeutic index: its dose may need to be lowered."""
    findings = []
    for found in interacting(snapshot, NTI_SUBSTRATE):
        monitored = found.agents & LEVEL_MONITORED
        monitoring = (
            f"Check {agent_names(monitored)} blood (trough) levels after palbociclib starts and on each "
            "change, and lower its dose as needed."
            if monitored
            else f"Watch for {found.names} toxicity after palbociclib starts; its dose may need to be lowered."
        )
        params = {"substrate": found.names, "medicines": found.described, "monitoring": monitoring}
        findings.append(Finding("cyp3a-nti-substrate", params, found.evidence))
    return findings


# ------------------------------------------------------------------------------------------- estrogens
def is_contraceptive(use: MedicationUse) -> bool:
    return (
        "ethinyl-estradiol" in use.ingredients
        or PROGESTIN in use.groups
        or bool(_CONTRACEPTIVE.search(use.text.casefold()))
    )


def is_low_dose_vaginal(use: MedicationUse) -> bool:
    """Local vaginal estrogen (cream, insert, low-dose ring): not a contraceptive and not a systemic-dose
    ring (estradiol acetate, etonogestrel/ethinyl estradiol)."""
    if is_contraceptive(use):
        return False
    form = use.product.form if use.product and use.product.form else ""
    words = f"{form} {use.text}".casefold()
    return bool(_VAGINAL.search(words)) and not _SYSTEMIC_VAGINAL.search(words)


def evaluate_estrogens(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    findings = []
    for found in interacting(snapshot, ESTROGEN, systemic_only=False):
        local = all(is_low_dose_vaginal(u) for u in found.uses)
        contraceptive = any(is_contraceptive(u) for u in found.uses)
        if local:
            kind, assessment = (
                "low-dose vaginal estrogen",
                "Low-dose vaginal estrogen acts mainly locally, so this is for information: review with the "
                "patient whether it is still needed.",
            )
        elif contraceptive:
            kind, assessment = (
                "estrogen-containing hormonal contraceptive",
                "Stop this contraceptive and change to a non-hormonal method.",
            )
        else:
            kind, assessment = (
                "systemic estrogen therapy",
                "Stop it, or document why it must continue.",
            )
        params = {
            "estrogen": found.names,
            "medicines": found.described,
            "kind": kind,
            "assessment": assessment,
            "target_reference": found.target_reference,
        }
        indicator: Indicator = "info" if local else "warning"
        findings.append(Finding("estrogen-containing", params, found.evidence, indicator))
    return findings


# ---------------------------------------------------------------------------- PPIs with the capsules
def order_is_capsule(order: PalbociclibOrder) -> bool:
    if order.product is not None and order.product.form:
        return order.product.form == "capsule"
    return bool(_CAPSULE.search(order.text.casefold()))


def evaluate_acid_reducers(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """A proton-pump inhibitor with palbociclib capsules; tablets, H2 blockers and antacids: no card."""
    if not order_is_capsule(order):
        return []
    found = interacting(snapshot, PPI)
    if not found:
        return []
    names = agent_names(set().union(*(f.agents for f in found)))
    food = (
        "The order already tells the patient to take the capsules with food."
        if order.details.food_instruction
        else "The order does not say to take the capsules with food."
    )
    params = {"ppi": names, "medicines": "; ".join(f.described for f in found), "food": food}
    evidence = (*(e for f in found for e in f.evidence), order.evidence)
    return [Finding("ppi-with-capsule", params, evidence)]


# ------------------------------------------------------------------------------------------ grapefruit
def evaluate_grapefruit(
    snapshot: PatientSnapshot, order: PalbociclibOrder, thresholds: Mapping[str, Threshold]
) -> list[Finding]:
    """Grapefruit named in an allergy/intolerance entry or a current diet order."""
    facts = [fact for fact in snapshot.substances if GRAPEFRUIT in fact.concepts]
    if not facts:
        return []
    found = "; ".join(f"{fact.text or 'grapefruit'} ({fact.evidence.resource_type})" for fact in facts)
    return [Finding("grapefruit", {"found": found}, tuple(fact.evidence for fact in facts))]


MEDICATIONS = frozenset({"medicationRequests", "medicationStatements"})

RULES: tuple[Rule, ...] = (
    Rule(
        name="cyp3a-inhibitors",
        fires=("cyp3a-strong-inhibitor",),
        needs=MEDICATIONS,
        evaluate=evaluate_inhibitors,
        thresholds={"reduced_dose_mg": REDUCED_DOSE_MG},
    ),
    Rule(
        name="cyp3a-inducers",
        fires=("cyp3a-strong-inducer", "cyp3a-moderate-inducer"),
        needs=MEDICATIONS,
        evaluate=evaluate_inducers,
    ),
    Rule(
        name="cyp3a-substrates",
        fires=("cyp3a-nti-substrate",),
        needs=MEDICATIONS,
        evaluate=evaluate_substrates,
    ),
    Rule(
        name="estrogen-products",
        fires=("estrogen-containing",),
        needs=MEDICATIONS,
        evaluate=evaluate_estrogens,
    ),
    Rule(
        name="acid-reducers-with-capsules",
        fires=("ppi-with-capsule",),
        needs=MEDICATIONS,
        evaluate=evaluate_acid_reducers,
    ),
    Rule(
        name="grapefruit",
        fires=("grapefruit",),
        needs=frozenset({"allergies", "nutritionOrders"}),
        evaluate=evaluate_grapefruit,
    ),
)
