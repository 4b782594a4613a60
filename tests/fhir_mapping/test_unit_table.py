"""The one UCUM table converts what real data sends (domain.md §5)."""

from __future__ import annotations

import pytest

from fhir_mapping.units import convert, normalise_unit


@pytest.mark.parametrize(
    ("value", "unit", "dimension", "expected"),
    [
        (185.0, "[lb_av]", "mass_body", 83.91458845),  # HL7 example body weight: 185 lbs
        (20000.0, "g", "mass_body", 20.0),
        (53.0, "umol/L", "creatinine", 0.5994),  # 88.42 umol/L per mg/dL
        (0.6, "mg/dL", "creatinine", 0.6),
        (25.0, "ug/mL", "drug_level", 25.0),  # ug/mL = mg/L
        (1.2, "m", "length_body", 120.0),
        (2.0, "g", "drug_amount", 2000.0),
    ],
)
def test_conversions(value: float, unit: str, dimension: str, expected: float) -> None:
    """Each listed unit converts to the dimension's canonical unit with the right factor."""
    result = convert(value, unit, dimension)
    assert result == pytest.approx(expected, rel=1e-4)


def test_unknown_unit_is_none() -> None:
    """A unit not in the table converts to None (the caller reports a problem), never a guess."""
    assert convert(10.0, "stone", "mass_body") is None
    assert convert(10.0, "mg/dL", "mass_body") is None


def test_text_aliases() -> None:
    """Free-text units are accepted only for unambiguous spellings."""
    assert normalise_unit(None, "lbs") == "[lb_av]"
    assert normalise_unit(None, "µmol/L") == "umol/L"
    assert normalise_unit(None, "furlongs") is None
