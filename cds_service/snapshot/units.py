"""Unit conversion to one canonical unit per lab concept.

UCUM codes (http://unitsofmeasure.org) are matched exactly; the non-UCUM spellings real feeds send
(clinical brief §6.5: ``K/uL``, ``x10E3/uL``, ``thou/mm3``, ``G/L`` ...) are listed explicitly and matched
ignoring case. In UCUM ``K`` is kelvin and ``G`` only a prefix, so these strings are never handed to a
generic UCUM parser. A unit as printed on a report is first put in plain characters (µ or μ as UCUM's
``u``, 10³ as 10^3, no spaces): a change of typeface, not of unit. A unit that is not listed then makes the
value uninterpretable: it is never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

UnitKind = Literal[
    "count-per-volume",
    "mass-per-volume",
    "enzyme-activity",
    "arbitrary-units",
    "percent",
    "temperature",
    "ratio",
]

# factor to the canonical unit of each kind
_COUNT = {  # canonical 10*9/L (= 10*3/uL = 1000/mm3)
    "10*9/L": 1.0,
    "10*3/uL": 1.0,
    "10*3/mm3": 1.0,
    "10^9/L": 1.0,
    "x10^9/L": 1.0,
    "x10E9/L": 1.0,
    "10E9/L": 1.0,
    "x10(9)/L": 1.0,
    "10^3/uL": 1.0,
    "x10^3/uL": 1.0,
    "x10E3/uL": 1.0,
    "10E3/uL": 1.0,
    "x10(3)/uL": 1.0,
    "10^3/mm3": 1.0,
    "K/uL": 1.0,
    "K/mm3": 1.0,
    "thou/uL": 1.0,
    "thou/mm3": 1.0,
    "THOU/uL": 1.0,
    "G/L": 1.0,
    "Gi/L": 1.0,
    "/nL": 1.0,
    "10*3/ul": 1.0,
    "/uL": 1e-3,
    "/mm3": 1e-3,
    "{cells}/uL": 1e-3,
    "cells/uL": 1e-3,
    "cells/mm3": 1e-3,
    "/cumm": 1e-3,
    "10*6/uL": 1e3,
    "10*12/L": 1e3,
    "M/uL": 1e3,
}
_MASS = {  # grams per litre
    "g/L": 1.0,
    "g/l": 1.0,
    "g/dL": 10.0,
    "g/dl": 10.0,
    "mg/dL": 1e-2,
    "mg/L": 1e-3,
    "ug/mL": 1e-3,
    "ug/dL": 1e-5,
    "ug/L": 1e-6,
    "ng/mL": 1e-6,
    "ng/dL": 1e-8,
    "pg/mL": 1e-9,
    "mg/mL": 1.0,
}
_MOLAR = {  # moles per litre
    "mol/L": 1.0,
    "mmol/L": 1e-3,
    "umol/L": 1e-6,
    "nmol/L": 1e-9,
    "pmol/L": 1e-12,
    "µmol/L": 1e-6,
}
_ENZYME = {"U/L": 1.0, "[IU]/L": 1.0, "IU/L": 1.0, "U/l": 1.0, "ukat/L": 60.0, "µkat/L": 60.0}
_ARBITRARY = {
    "[IU]/L": 1.0,
    "IU/L": 1.0,
    "m[IU]/mL": 1.0,
    "mIU/mL": 1.0,
    "m[IU]/L": 1e-3,
    "mIU/L": 1e-3,
    "[IU]/mL": 1e3,
    "IU/mL": 1e3,
}
_PERCENT = {"%": 1.0, "percent": 1.0}
_RATIO = {"{INR}": 1.0, "{ratio}": 1.0, "1": 1.0, "INR": 1.0, "ratio": 1.0}

_TABLES: dict[str, dict[str, float]] = {
    "count-per-volume": _COUNT,
    "enzyme-activity": _ENZYME,
    "arbitrary-units": _ARBITRARY,
    "percent": _PERCENT,
    "ratio": _RATIO,
}
_EXACT_ELSEWHERE = frozenset(
    unit for table in (_COUNT, _MASS, _MOLAR, _ENZYME, _ARBITRARY, _PERCENT, _RATIO) for unit in table
)
# Spellings that differ only in case between kinds (G/L giga-count vs g/L grams): never matched by case.
_TABLES_ALL = (_COUNT, _MASS, _MOLAR, _ENZYME, _ARBITRARY, _PERCENT, _RATIO)
_AMBIGUOUS = frozenset(
    folded
    for folded in {u.casefold() for u in _EXACT_ELSEWHERE}
    if sum(1 for t in _TABLES_ALL if any(k.casefold() == folded for k in t)) > 1
    and len({k for t in _TABLES_ALL for k in t if k.casefold() == folded}) > 1
)
CANONICAL: dict[str, str] = {
    "count-per-volume": "10*9/L",
    "enzyme-activity": "U/L",
    "arbitrary-units": "[IU]/L",
    "percent": "%",
    "temperature": "Cel",
    "ratio": "{ratio}",
}


@dataclass(frozen=True, slots=True)
class LabUnit:
    """How one lab concept is measured: its kind, canonical unit, and molar mass for mol<->g."""

    kind: UnitKind
    canonical: str
    molar_mass: float | None = None  # g/mol, for mass-per-volume analytes also reported in mol/L


def _lookup(table: dict[str, float], unit: str) -> float | None:
    """Exact match first; case is ignored only for a spelling that is not exactly a unit of another
    kind (``g/L`` is grams per litre, never the count ``G/L``)."""
    found = table.get(unit)
    if found is not None:
        return found
    folded = unit.casefold()
    if unit in _EXACT_ELSEWHERE or folded in _AMBIGUOUS:
        return None
    for key, factor in table.items():
        if key.casefold() == folded:
            return factor
    return None


_TYPOGRAPHIC = str.maketrans(
    {
        "µ": "u",  # MICRO SIGN, UCUM's print symbol for the prefix whose code is "u"
        "μ": "u",  # GREEK SMALL LETTER MU, the same symbol as typed elsewhere
        " ": None,
        "\u00a0": None,
        "\u202f": None,
    }
)
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_POWER = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")


def typographic(unit: str) -> str:
    """A unit as printed on a report ("x10³/µL", "10^9 /L") in the plain characters of the tables: the micro
    sign or Greek mu as UCUM's "u", a superscript power of ten after a caret, no spaces."""
    unit = unit.strip()
    if unit.isascii() and " " not in unit:  # nearly every unit: nothing to replace
        return unit
    unit = unit.translate(_TYPOGRAPHIC)
    return _POWER.sub(lambda power: "^" + power.group().translate(_SUPERSCRIPT_DIGITS), unit)


def convert(value: float, unit: str | None, lab: LabUnit) -> float | None:
    """``value`` in ``unit`` expressed in ``lab.canonical``; ``None`` when the unit cannot be interpreted."""
    unit = typographic(unit or "")
    if lab.kind == "ratio":
        factor = _lookup(_RATIO, unit) if unit else 1.0
        return None if factor is None else value * factor
    if not unit:
        return None
    if lab.kind == "temperature":
        return _temperature(value, unit)
    if lab.kind == "mass-per-volume":
        return _mass(value, unit, lab)
    table = _TABLES[lab.kind]
    factor = _lookup(table, unit)
    target = _lookup(table, lab.canonical)
    if factor is None or target is None:
        return None
    return value * factor / target


def _mass(value: float, unit: str, lab: LabUnit) -> float | None:
    target = _lookup(_MASS, lab.canonical)
    if target is None:
        return None
    grams = _lookup(_MASS, unit)
    if grams is not None:
        return value * grams / target
    moles = _lookup(_MOLAR, unit)
    if moles is not None and lab.molar_mass:
        return value * moles * lab.molar_mass / target
    return None


def _temperature(value: float, unit: str) -> float | None:
    if unit in ("Cel", "°C", "C", "degC") or unit.casefold() == "cel":
        return value
    if unit in ("[degF]", "°F", "F", "degF"):
        return (value - 32.0) * 5.0 / 9.0
    return None
