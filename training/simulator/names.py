"""Synthetic names for simulated children, so that an EHR or FHIR viewer shows a person, not a bare id.

The name is drawn from the patient id (stable across runs and seeds), matched to the child's
administrative gender, and tagged in ``HumanName.text`` as synthetic so nobody mistakes it for a real
child. It carries no information the model uses.
"""

from __future__ import annotations

import hashlib
from typing import Any

GIVEN = {
    "male": ("Leo", "Noah", "Milan", "Arjun", "Tomas", "Yusuf", "Hugo", "Kenji", "Mateo", "Oskar", "Ravi", "Elias"),
    "female": ("Mia", "Lena", "Aisha", "Sofia", "Ines", "Yuna", "Clara", "Nora", "Priya", "Eva", "Amara", "Lucia"),
}
FAMILY = ("Example", "Testcase", "Sample", "Synthia", "Modelle", "Proxy", "Simula", "Demo", "Placebo", "Mock")


def synthetic_name(patient_id: str, gender: str) -> list[dict[str, Any]]:
    """One FHIR HumanName for ``patient_id`` (deterministic), its text saying it is synthetic."""
    digest = hashlib.sha256(patient_id.encode("utf-8")).digest()
    given = GIVEN.get(gender, GIVEN["female"] + GIVEN["male"])
    first, family = given[digest[0] % len(given)], FAMILY[digest[1] % len(FAMILY)]
    return [{"use": "official", "family": family, "given": [first], "text": f"{first} {family} (synthetic)"}]
