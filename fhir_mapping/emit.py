"""FHIR R4 resources epidose writes: a MedicationRequest for a recommended daily dose.

Formulation follows the label (../shared/domain.md §2): oral solution 100 mg/mL at ≤20 kg; above
that whole tablets when each twice-daily dose is a whole number of one tablet strength (the ladders
250→500→750 mg BID at 20.1–40 kg and 500→1000→1500 mg BID above 40 kg fall out of this), otherwise
the oral solution. XR tablets once daily only when asked for and from 12 years.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_mapping.codes import LEV_PRODUCT_BY_CODE, LEV_PRODUCTS, RXNORM, UCUM, Product

SOLUTION_MAX_WEIGHT_KG: Final = 20.0  # use oral solution at ≤20 kg (label, domain.md §2)
XR_MIN_AGE_YEARS: Final = 12.0  # XR once daily for ≥12 y (label, domain.md §2)
MAX_TABLETS_PER_DOSE: Final = 3
# An uneven twice-daily split (one tablet more in the evening) may take one tablet more: for a child who
# takes tablets, four 250 mg tablets beat switching to 8.75 mL of oral solution (project choice).
MAX_TABLETS_PER_UNEVEN_DOSE: Final = MAX_TABLETS_PER_DOSE + 1
SOLUTION: Final[Product] = next(p for p in LEV_PRODUCTS if p.form == "solution")
TABLETS: Final[tuple[Product, ...]] = tuple(p for p in LEV_PRODUCTS if p.form == "tablet")
XR_TABLETS: Final[tuple[Product, ...]] = tuple(p for p in LEV_PRODUCTS if p.form == "xr-tablet")


@dataclass(frozen=True)
class Regimen:
    """How a daily dose is given: product, amount per administration, administrations per day."""

    product: Product
    amount: float  # tablets or mL per administration (the morning one when ``evening_amount`` is set)
    unit: str  # UCUM: "{tbl}" or "mL"
    times_per_day: int
    mg_per_day: float
    evening_amount: float | None = None  # twice daily with a different evening amount (whole tablets)

    @property
    def mg_per_dose(self) -> float:
        return self.mg_per_day / self.times_per_day

    def administrations(self) -> list[tuple[float, str | None]]:
        """(amount, FHIR timing ``when`` code or None) for each administration schedule of the day."""
        if self.evening_amount is None:
            return [(self.amount, None)]
        return [(self.amount, "MORN"), (self.evening_amount, "EVE")]

    def instruction(self) -> str:
        """Patient-facing text, e.g. "3.75 mL (375 mg) of 100 mg/mL oral solution twice daily"."""
        if self.evening_amount is not None:
            strength = self.product.strength_mg
            return (f"{_tablets(self.amount)} of {strength:g} mg ({self.amount * strength:g} mg) in the morning and "
                    f"{_tablets(self.evening_amount)} ({self.evening_amount * strength:g} mg) in the evening")
        how_often = {1: "once daily", 2: "twice daily"}.get(self.times_per_day, f"{self.times_per_day} times daily")
        if self.unit == "mL":
            return f"{self.amount:g} mL ({self.mg_per_dose:g} mg) of 100 mg/mL oral solution {how_often}"
        count = f"{self.amount:g} tablet" + ("s" if self.amount != 1 else "")
        return f"{count} of {self.product.strength_mg:g} mg ({self.mg_per_dose:g} mg) {how_often}"


def _tablets(count: float) -> str:
    return f"{count:g} tablet" + ("s" if count != 1 else "")


def _uneven_tablets(mg_per_day: float) -> Regimen | None:
    """Whole tablets of one strength twice daily, one tablet more in the evening (e.g. 500 + 750 mg).

    For a child who takes tablets and a dose that is no whole number of tablets per equal dose. The
    larger dose goes in the evening: 80–90% of BECT seizures occur in sleep (domain.md §4).
    """
    for product in sorted(TABLETS, key=lambda p: -p.strength_mg):
        count = mg_per_day / product.strength_mg
        if count.is_integer() and count >= 3 and count % 2 == 1 and (count + 1) / 2 <= MAX_TABLETS_PER_UNEVEN_DOSE:
            return Regimen(product, (count - 1) / 2, "{tbl}", 2, mg_per_day, evening_amount=(count + 1) / 2)
    return None


def choose_regimen(mg_per_day: float, weight_kg: float | None, age_years: float | None, *, prefer_xr: bool = False,
                   prefer_solution: bool = False, prefer_tablets: bool = False) -> Regimen:
    """The label formulation for a positive daily dose (see the module docstring).

    ``prefer_solution`` keeps a child who takes the oral solution on it (a child who cannot swallow
    tablets is not switched by a dose change); ``prefer_tablets`` keeps a child above 20 kg who takes
    tablets on tablets, with an uneven split when equal doses are no whole number of tablets.
    """
    if mg_per_day <= 0:
        raise ValueError("a regimen needs a positive daily dose")
    if prefer_solution:
        return Regimen(SOLUTION, mg_per_day / 2 / SOLUTION.strength_mg, "mL", 2, mg_per_day)
    if prefer_xr and age_years is not None and age_years >= XR_MIN_AGE_YEARS:
        for product in sorted(XR_TABLETS, key=lambda p: -p.strength_mg):
            count = mg_per_day / product.strength_mg
            if count.is_integer() and 1 <= count <= MAX_TABLETS_PER_DOSE:
                return Regimen(product, count, "{tbl}", 1, mg_per_day)
    per_dose = mg_per_day / 2
    if weight_kg is not None and weight_kg > SOLUTION_MAX_WEIGHT_KG:
        # Fewest whole tablets of one strength per dose; otherwise fall back to the solution.
        whole = [
            (per_dose / p.strength_mg, p)
            for p in TABLETS
            if (per_dose / p.strength_mg).is_integer() and 1 <= per_dose / p.strength_mg <= MAX_TABLETS_PER_DOSE
        ]
        if whole:
            count, product = min(whole, key=lambda item: (item[0], -item[1].strength_mg))
            return Regimen(product, count, "{tbl}", 2, mg_per_day)
        uneven = _uneven_tablets(mg_per_day) if prefer_tablets else None
        if uneven is not None:
            return uneven
    return Regimen(SOLUTION, per_dose / SOLUTION.strength_mg, "mL", 2, mg_per_day)


def medication_request(
    patient_id: str,
    mg_per_day: float,
    *,
    weight_kg: float | None,
    age_years: float | None,
    authored_on: date | None = None,
    status: str = "draft",
    intent: str = "proposal",
    resource_id: str | None = None,
    encounter_id: str | None = None,
    prefer_xr: bool = False,
    prefer_solution: bool = False,
    prefer_tablets: bool = False,
    note: str | None = None,
) -> dict[str, Any]:
    """A valid R4 MedicationRequest for a levetiracetam daily dose (RxNorm product, doseAndRate, timing)."""
    regimen = choose_regimen(mg_per_day, weight_kg, age_years, prefer_xr=prefer_xr, prefer_solution=prefer_solution,
                             prefer_tablets=prefer_tablets)
    product = regimen.product
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": resource_id or str(uuid.uuid4()),
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": product.code, "display": product.display}],
            "text": product.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "dosageInstruction": [_dosage(regimen, amount, when) for amount, when in regimen.administrations()],
    }
    if authored_on is not None:
        resource["authoredOn"] = authored_on.isoformat()
    if encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    if note:
        resource["note"] = [{"text": note}]
    return resource


def _dosage(regimen: Regimen, amount: float, when: str | None) -> dict[str, Any]:
    dose_quantity = {"value": amount, "unit": "mL" if regimen.unit == "mL" else "tablet", "system": UCUM,
                     "code": regimen.unit}
    repeat: dict[str, Any] = {"frequency": regimen.times_per_day, "period": 1, "periodUnit": "d"}
    if when is not None:
        repeat = {"frequency": 1, "period": 1, "periodUnit": "d", "when": [when]}
    return {"text": regimen.instruction(), "timing": {"repeat": repeat},
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]},
            "doseAndRate": [{"doseQuantity": dose_quantity}]}


def product_form(order: dict[str, Any]) -> str | None:
    """The form ("tablet", "solution", "xr-tablet") of an order's coded levetiracetam product, if coded by product."""
    concept = order.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and coding.get("system") == RXNORM:
            product = LEV_PRODUCT_BY_CODE.get(str(coding.get("code")))
            if product is not None:
                return product.form
    return None


def updated_order(draft: dict[str, Any], mg_per_day: float, *, weight_kg: float | None,
                  age_years: float | None) -> dict[str, Any]:
    """The draft with a new daily dose, every field the dose does not touch kept as written.

    Changed: the product coding (tablet strength or solution), the first dosage instruction's text,
    timing and doseAndRate (its route, asNeeded, additional instructions... stay), and the dispensed
    quantity (recomputed from the supply duration when it is given in days, else dropped because it
    would contradict the new dose). Kept: id, status, intent, category, authoredOn, requester,
    encounter, reasonCode, note, dispenseRequest's supply duration and repeats, and everything else.
    """
    form = product_form(draft)
    fresh = medication_request("x", mg_per_day, weight_kg=weight_kg, age_years=age_years, prefer_xr=form == "xr-tablet",
                               prefer_solution=form == "solution", prefer_tablets=form == "tablet")
    resource = copy.deepcopy(draft)
    reference = resource.pop("medicationReference", None)
    target = reference.get("reference") if isinstance(reference, dict) else None
    if isinstance(target, str) and target.startswith("#") and isinstance(resource.get("contained"), list):
        # A contained resource must be referenced: the Medication the old product pointed at goes with it.
        resource["contained"] = [c for c in resource["contained"] if not (isinstance(c, dict) and c.get("id") == target[1:])]
        if not resource["contained"]:
            del resource["contained"]
    resource["medicationCodeableConcept"] = fresh["medicationCodeableConcept"]
    instructions = resource.get("dosageInstruction")
    first = dict(instructions[0]) if isinstance(instructions, list) and instructions and isinstance(instructions[0], dict) else {}
    first.pop("maxDosePerPeriod", None)  # written for the old dose
    dosages = []
    for new in fresh["dosageInstruction"]:
        dosage = dict(first)
        dosage.update({"text": new["text"], "timing": new["timing"], "doseAndRate": new["doseAndRate"]})
        dosage.setdefault("route", new["route"])
        dosages.append(dosage)
    resource["dosageInstruction"] = dosages  # the draft's further instructions described the old dose
    new = fresh["dosageInstruction"][0]
    dispense = resource.get("dispenseRequest")
    if isinstance(dispense, dict) and "quantity" in dispense:
        dispense = dict(dispense)
        supply = dispense.get("expectedSupplyDuration")
        days = supply.get("value") if isinstance(supply, dict) and supply.get("code") in ("d", None) and \
            supply.get("unit", "d") in ("d", "day", "days") else None
        amount = new["doseAndRate"][0]["doseQuantity"]
        if isinstance(days, (int, float)) and not isinstance(days, bool) and days > 0:
            per_day = sum(float(d["doseAndRate"][0]["doseQuantity"]["value"]) * d["timing"]["repeat"]["frequency"]
                          for d in fresh["dosageInstruction"])
            dispense["quantity"] = {"value": round(per_day * float(days), 2), "unit": amount["unit"],
                                    "system": UCUM, "code": amount["code"]}
        else:
            del dispense["quantity"]
        resource["dispenseRequest"] = dispense
    return resource


def stopped_order(order: dict[str, Any]) -> dict[str, Any]:
    """The order in effect, stopped (status "stopped"; every other field as written) so a replacement never doubles it."""
    resource = copy.deepcopy(order)
    resource["status"] = "stopped"
    return resource
