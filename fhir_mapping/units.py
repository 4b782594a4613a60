"""One UCUM conversion table for every quantity the mapping reads.

Quantities are converted to a canonical unit per dimension: kg for weight, cm for height,
mg/dL for serum creatinine, mg/L for drug levels, mg for drug amounts, mL for volumes.
Units are matched on the UCUM code (``Quantity.code`` with system http://unitsofmeasure.org),
falling back to ``Quantity.unit`` text only for the common spellings listed here.
"""

from __future__ import annotations

from typing import Final

UCUM_SYSTEM: Final = "http://unitsofmeasure.org"

# Creatinine molar mass 113.12 g/mol: 1 mg/dL = 88.42 umol/L (standard clinical conversion factor).
CREATININE_UMOL_L_PER_MG_DL: Final = 88.42
# Exact: 1 international avoirdupois pound = 0.45359237 kg (UCUM [lb_av]).
# Levetiracetam C8H14N2O2, molar mass 170.21 g/mol (from the formula with IUPAC standard atomic
# weights: 8·12.011 + 14·1.008 + 2·14.007 + 2·15.999 = 170.21): 1 umol/L = 0.17021 mg/L. The
# "drug_level" dimension holds levetiracetam only (LOINC 30471-7), so the molar factor is its own.
LEVETIRACETAM_G_PER_MOL: Final = 170.21
MG_L_PER_UMOL_L_LEVETIRACETAM: Final = LEVETIRACETAM_G_PER_MOL / 1000.0
KG_PER_LB: Final = 0.45359237
KG_PER_OZ: Final = KG_PER_LB / 16
CM_PER_INCH: Final = 2.54

# dimension -> {ucum code: factor to canonical unit}
CONVERSIONS: Final[dict[str, dict[str, float]]] = {
    "mass_body": {"kg": 1.0, "g": 0.001, "[lb_av]": KG_PER_LB, "[oz_av]": KG_PER_OZ},
    "length_body": {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": CM_PER_INCH},
    "creatinine": {"mg/dL": 1.0, "umol/L": 1.0 / CREATININE_UMOL_L_PER_MG_DL, "mmol/L": 1000.0 / CREATININE_UMOL_L_PER_MG_DL},
    # Levetiracetam level: mg/L and ug/mL are the same concentration; molar units through its molar mass.
    "drug_level": {"mg/L": 1.0, "ug/mL": 1.0, "ug/L": 0.001, "mg/dL": 10.0,
                   "umol/L": MG_L_PER_UMOL_L_LEVETIRACETAM, "mmol/L": 1000.0 * MG_L_PER_UMOL_L_LEVETIRACETAM},
    "drug_amount": {"mg": 1.0, "g": 1000.0, "ug": 0.001},
    "volume": {"mL": 1.0, "L": 1000.0, "cL": 10.0},
    "enzyme": {"U/L": 1.0, "[IU]/L": 1.0, "ukat/L": 60.0},
    "cell_count": {"10*3/uL": 1.0, "10*9/L": 1.0, "/uL": 0.001, "10*3/mm3": 1.0, "/mm3": 0.001},
    "hemoglobin": {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.611},
    "gfr": {"mL/min/{1.73_m2}": 1.0, "mL/min/1.73m2": 1.0, "mL/min": 1.0},
    "dose_rate": {"mg/kg/d": 1.0},
}

CANONICAL_UNIT: Final[dict[str, str]] = {
    "mass_body": "kg",
    "length_body": "cm",
    "creatinine": "mg/dL",
    "drug_level": "mg/L",
    "drug_amount": "mg",
    "volume": "mL",
    "enzyme": "U/L",
    "cell_count": "10*3/uL",
    "hemoglobin": "g/dL",
    "gfr": "mL/min/{1.73_m2}",
    "dose_rate": "mg/kg/d",
}

# Free-text unit spellings seen in real data, mapped to UCUM codes. Only unambiguous ones.
TEXT_ALIASES: Final[dict[str, str]] = {
    "kg": "kg", "kilogram": "kg", "kilograms": "kg", "g": "g", "gram": "g", "grams": "g",
    "lb": "[lb_av]", "lbs": "[lb_av]", "pound": "[lb_av]", "pounds": "[lb_av]", "[lb_av]": "[lb_av]",
    "cm": "cm", "m": "m", "in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]",
    "mg/dl": "mg/dL", "umol/l": "umol/L", "µmol/l": "umol/L", "μmol/l": "umol/L",
    "mg/l": "mg/L", "ug/ml": "ug/mL", "µg/ml": "ug/mL", "μg/ml": "ug/mL", "mcg/ml": "ug/mL",
    "mg": "mg", "milligram": "mg", "milligrams": "mg", "ml": "mL", "milliliter": "mL", "millilitre": "mL",
    "u/l": "U/L", "iu/l": "U/L", "g/dl": "g/dL", "g/l": "g/L",
}


_KNOWN_CODES: Final = frozenset(unit for table in CONVERSIONS.values() for unit in table)


def normalise_unit(code: str | None, text: str | None = None) -> str | None:
    """Return the UCUM code for a Quantity's ``code`` (preferred) or ``unit`` text, if known.

    >>> normalise_unit(None, "Lbs")
    '[lb_av]'
    >>> normalise_unit("umol/L")
    'umol/L'
    """
    for candidate in (code, text):
        if not candidate:
            continue
        stripped = candidate.strip()
        if stripped in _KNOWN_CODES:
            return stripped
        alias = TEXT_ALIASES.get(stripped.lower())
        if alias:
            return alias
    return None


def convert(value: float, unit: str | None, dimension: str, text: str | None = None) -> float | None:
    """Convert ``value`` in ``unit`` to the canonical unit of ``dimension``; None if unknown.

    >>> round(convert(44.0, "[lb_av]", "mass_body"), 3)
    19.958
    >>> round(convert(53.0, "umol/L", "creatinine"), 3)
    0.599
    """
    table = CONVERSIONS[dimension]
    ucum = normalise_unit(unit, text)
    if ucum is None or ucum not in table:
        return None
    return value * table[ucum]
