"""MedicationRequest → levetiracetam total daily dose in mg, and which order is in effect on a day.

Reading a dose (:func:`normalise_medication_request`):

- **Product.** ``medicationCodeableConcept`` or the Medication that ``medicationReference`` points at
  (contained ``#id``, or ``Medication/id`` in the ``medications`` mapping). An RxNorm levetiracetam
  product code (:data:`fhir_mapping.codes.LEV_PRODUCTS`) gives strength and form; otherwise the
  ingredient code (RxNorm 114477 or ATC N03AX14, in ``code`` or ``ingredient[].itemCodeableConcept``)
  with ``ingredient[].strength`` (a Ratio: mg per 1 tablet or per 1 mL) and ``Medication.form``.
- **Amount per administration.** ``doseAndRate[].doseQuantity`` (or the STU3 ``doseQuantity``): mass
  units convert to mg; mL multiply by the mg/mL of a solution; tablets (``{tbl}``, ``{tablet}``,
  ``{pill}``, ``{tab}``, ``1``, ``TAB``, or "tablet" text) multiply by the mg per tablet.
  ``doseRange`` is read only when low equals high; a real range is refused as **ambiguous**: a
  daily total taken from either end would be a guess, and the state must not carry a guess.
- **Administrations per day.** ``timing.repeat`` frequency / period / periodUnit (``h``, ``d``,
  ``wk``), else its ``when`` or ``timeOfDay`` list (one administration each), else ``timing.code``
  (v3-GTSAbbreviation: BID, TID, QID, QD, QOD, Q4H…Q12H, AM, PM, QAM, QPM, QHS). A range
  (``frequencyMax`` or ``periodMax``) is refused as ambiguous. An extended-release product without
  timing is once daily (its label). Anything else without timing is unreadable.
- **Several dosageInstruction entries.** Entries with the same ``sequence`` (or none) apply together
  and are summed (e.g. 250 mg in the morning + 500 mg in the evening = 750 mg/day). Entries with
  different ``sequence`` values are successive steps of a schedule that changes over time; the order
  is refused as ambiguous rather than choosing a step.
- ``asNeeded`` dosing has no daily total and is refused.

Order in effect (:func:`order_on_arrival`, :func:`order_at_end_of_day`):

- statuses ``active``, ``on-hold``, ``completed`` and ``stopped`` count by their dates; ``draft``,
  ``entered-in-error``, ``cancelled`` and ``unknown`` never count as taken (drafts arrive as CDS Hooks
  draftOrders and are proposals, not what the child takes);
- an order starts at the earliest ``timing.repeat.boundsPeriod.start``, else
  ``dispenseRequest.validityPeriod.start``, else ``authoredOn``; it ends at the latest
  ``boundsPeriod.end`` (the last day taken);
- a ``stopped`` or ``completed`` order without an end ends at ``meta.lastUpdated`` or the date its
  status is known (``status_known_on``: the service's "today", or the date of the patient's latest
  data), whichever is earlier (servers set lastUpdated at load time); a newer order replaces it anyway;
- ``intent`` is not used: an active order is taken whether its intent is order, plan or proposal;
- the latest start wins: on a day, the order in effect is the counted order with the latest start
  (ties: later ``authoredOn`` timestamp, then later in the input), if it has not ended. An older
  order never "comes back" when a newer one ends;
- on arrival at a visit = the winning order among those started before the visit day and not ended
  before it; at the end of the visit day = among those started on or before it and ending after it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_mapping import codes
from fhir_mapping.inputs import parse_date, resource_label
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.timeline import LevOrder
from fhir_mapping.units import normalise_unit

COUNTED_STATUSES: Final = frozenset({"active", "on-hold", "completed", "stopped"})
NEVER_TAKEN_STATUSES: Final = frozenset({"draft", "entered-in-error", "cancelled", "unknown"})
ENDED_STATUSES: Final = frozenset({"completed", "stopped"})

TABLET_UNITS: Final = frozenset({"{tbl}", "{tablet}", "{tablets}", "{pill}", "{pills}", "{tab}", "{tabs}", "1", "tab", "tabs", "tablet", "tablets", "pill", "pills", "tbl"})
MASS_MG: Final[dict[str, float]] = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}
VOLUME_ML: Final[dict[str, float]] = {"mL": 1.0, "ml": 1.0, "L": 1000.0, "cL": 10.0}
DAYS_PER_UNIT: Final[dict[str, float]] = {"h": 1.0 / 24.0, "d": 1.0, "wk": 7.0}
# v3-GTSAbbreviation (and the common Q12H/QAM/QPM/QHS) → administrations per day.
TIMING_CODES: Final[dict[str, float]] = {
    "QD": 1.0, "AM": 1.0, "PM": 1.0, "QAM": 1.0, "QPM": 1.0, "QHS": 1.0, "HS": 1.0, "BED": 1.0,
    "BID": 2.0, "TID": 3.0, "QID": 4.0, "QOD": 0.5, "WK": 1.0 / 7.0,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "Q12H": 2.0, "Q24H": 1.0,
}
FORM_WORDS: Final = (("extended", "xr-tablet"), ("prolonged", "xr-tablet"), ("solution", "solution"), ("syrup", "solution"), ("tablet", "tablet"))
ORDERABLE_FORMS: Final[dict[str, str]] = {"TAB": "tablet", "FILMTAB": "tablet", "ORTAB": "tablet", "ERTAB": "xr-tablet", "ORALSOL": "solution", "SOL": "solution", "SYRUP": "solution"}
# v3-orderableDrugForm codes that count tablets when used as a dose unit.
TABLET_FORM_CODES: Final = frozenset(code for code, form in ORDERABLE_FORMS.items() if form in ("tablet", "xr-tablet"))


@dataclass(frozen=True)
class NormalisedDose:
    """A levetiracetam MedicationRequest read with confidence, plus the dates that place it in time."""

    mg_per_day: float
    formulation: str  # "tablet", "solution", "xr-tablet" or "unknown"
    doses_per_day: float | None
    product_code: str | None  # RxNorm product code when the order names one
    source: str  # "MedicationRequest/<id>"
    status: str
    start: date | None
    end: date | None
    authored_on: date | None

    def lev_order(self) -> LevOrder:
        """The timeline's view of this order."""
        return LevOrder(self.mg_per_day, self.source, self.status, self.formulation, self.doses_per_day, self.authored_on)


@dataclass(frozen=True)
class _Product:
    mg_per_unit: float | None  # mg per tablet or per mL
    per: str | None  # "tablet" or "mL"
    form: str
    code: str | None


def medication_codings(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[dict[str, Any]], Mapping[str, Any] | None]:
    """All codings naming the medicine of a MedicationRequest/Statement, and the Medication it points at."""
    found: list[dict[str, Any]] = []
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        found.extend(c for c in _list(concept.get("coding")) if isinstance(c, dict))
    medication = resolve_medication(resource, medications)
    if medication is not None:
        code = medication.get("code")
        if isinstance(code, dict):
            found.extend(c for c in _list(code.get("coding")) if isinstance(c, dict))
        for ingredient in _list(medication.get("ingredient")):
            item = ingredient.get("itemCodeableConcept") if isinstance(ingredient, dict) else None
            if isinstance(item, dict):
                found.extend(c for c in _list(item.get("coding")) if isinstance(c, dict))
    return found, medication


def resolve_medication(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None) -> Mapping[str, Any] | None:
    """The Medication a ``medicationReference`` points at: contained (``#id``) or from ``medications``.

    ``medications`` may be keyed by ``Medication/id`` or by the bare id.
    """
    reference = resource.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(target, str) or not target:
        return None
    if target.startswith("#"):
        for contained in _list(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                return contained
        return None
    if medications is None:
        return None
    ident = target.rstrip("/").split("/")[-1].split(":")[-1]
    return medications.get(target) or medications.get(f"Medication/{ident}") or medications.get(ident)


def _system_codes(codings: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    """(system, code) of each coding that has both as strings, trimmed."""
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            yield system.strip(), code.strip()


def asm_key(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """The anti-seizure-medicine key (:data:`codes.ASM_KEYS`) of a MedicationRequest, or None."""
    return asm_key_of_codings(medication_codings(resource, medications)[0])


def asm_key_of_codings(codings: Iterable[Mapping[str, Any]]) -> str | None:
    """:func:`asm_key` of the codings :func:`medication_codings` found."""
    for system, code in _system_codes(codings):
        if system == codes.RXNORM and code in codes.LEV_PRODUCT_BY_CODE:
            return "levetiracetam"
        concept = codes.ASM_BY_CODING.get((system, code))
        if concept is not None:
            return concept.key
    return None


LEV_NAMES: Final = ("levetiracetam", "keppra", "levetiracetamum")


def mentions_levetiracetam(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Whether the medicine's text or displays name levetiracetam (used only to report uncoded orders)."""
    texts: list[str] = []
    concept = resource.get("medicationCodeableConcept")
    medication = resolve_medication(resource, medications)
    for codeable in (concept, medication.get("code") if medication is not None else None):
        if isinstance(codeable, dict):
            texts.append(str(codeable.get("text", "")))
            texts.extend(str(c.get("display", "")) for c in _list(codeable.get("coding")) if isinstance(c, dict))
    reference = resource.get("medicationReference")
    if isinstance(reference, dict):
        texts.append(str(reference.get("display", "")))
    joined = " ".join(texts).lower()
    return any(name in joined for name in LEV_NAMES)


def is_levetiracetam(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Whether a MedicationRequest orders levetiracetam (by exact product or ingredient code)."""
    return asm_key(resource, medications) == "levetiracetam"


def order_status(resource: Mapping[str, Any]) -> str:
    """The request status, lower-cased ("unknown" when absent)."""
    status = resource.get("status")
    return status.strip().lower() if isinstance(status, str) and status.strip() else "unknown"


def counts_as_taken(resource: Mapping[str, Any]) -> bool:
    """Whether the order's status lets it count as taken by its dates (module docstring)."""
    return order_status(resource) in COUNTED_STATUSES


def order_dates(resource: Mapping[str, Any]) -> tuple[date | None, date | None, date | None]:
    """(start, end, authoredOn) of an order, by the rules of the module docstring (end as written)."""
    starts: list[date] = []
    ends: list[date] = []
    for dosage in _list(resource.get("dosageInstruction")):
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        if isinstance(bounds, dict):
            start, end = parse_date(bounds.get("start")), parse_date(bounds.get("end"))
            if start:
                starts.append(start)
            if end:
                ends.append(end)
    authored = parse_date(resource.get("authoredOn"))
    start_date = min(starts) if starts else None
    if start_date is None:
        dispense = resource.get("dispenseRequest")
        validity = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
        start_date = parse_date(validity.get("start")) if isinstance(validity, dict) else None
    if start_date is None:
        start_date = authored
    return start_date, (max(ends) if ends else None), authored


def normalise_medication_request(resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None, *,
                                 named: tuple[list[dict[str, Any]], Mapping[str, Any] | None] | None = None) -> NormalisedDose | list[Problem]:
    """Read a levetiracetam MedicationRequest to mg/day, or say exactly why it cannot be read.

    ``named``: :func:`medication_codings` of this resource and ``medications``, when the caller has read them.
    """
    label = resource_label(resource) or "MedicationRequest"
    if not isinstance(resource, Mapping) or resource.get("resourceType") not in ("MedicationRequest", None):
        return [Problem(ProblemKind.UNSUPPORTED_RESOURCE, "not a MedicationRequest", label, "resourceType")]
    codings, medication = named if named is not None else medication_codings(resource, medications)
    if "medicationReference" in resource and medication is None:
        return [Problem(ProblemKind.MISSING, "medicationReference points at a Medication that is neither contained nor supplied", label, "medicationReference.reference")]
    product = _product(codings, medication)
    if product is None:
        return [Problem(ProblemKind.UNKNOWN_CODE, "no levetiracetam RxNorm product or ingredient code", label, "medicationCodeableConcept" if medication is None else "medicationReference")]
    dosages = _list(resource.get("dosageInstruction"))
    if not dosages:
        return [Problem(ProblemKind.UNREADABLE_DOSE, "no dosageInstruction", label, "dosageInstruction")]
    sequences = [d.get("sequence") if isinstance(d, dict) else None for d in dosages] if len(dosages) > 1 else []
    if any(sequence != sequences[0] for sequence in sequences):
        return [Problem(ProblemKind.AMBIGUOUS, "dosageInstruction entries with different sequence numbers describe a schedule that changes over time", label, "dosageInstruction.sequence")]
    problems: list[Problem] = []
    total = 0.0
    per_day_counts: list[float] = []
    for index, dosage in enumerate(dosages):
        path = f"dosageInstruction[{index}]"
        if not isinstance(dosage, dict):
            problems.append(Problem(ProblemKind.MALFORMED, "dosageInstruction entry is not an object", label, path))
            continue
        if dosage.get("asNeededBoolean") is True or isinstance(dosage.get("asNeededCodeableConcept"), dict):
            problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "as-needed dosing has no daily total", label, f"{path}.asNeeded[x]"))
            continue
        mg = _mg_per_administration(dosage, product, label, path, problems)
        per_day = _administrations_per_day(dosage, product, label, path, problems)
        if mg is None or per_day is None:
            continue
        total += mg * per_day
        per_day_counts.append(per_day)
    if problems:
        return problems
    if not math.isfinite(total) or total < 0:
        return [Problem(ProblemKind.INVALID_VALUE, f"daily dose {total!r} mg is not a valid amount", label, "dosageInstruction")]
    start, end, authored = order_dates(resource)
    return NormalisedDose(
        mg_per_day=round(total, 6),
        formulation=product.form,
        doses_per_day=sum(per_day_counts) if per_day_counts else None,
        product_code=product.code,
        source=label,
        status=order_status(resource),
        start=start,
        end=end,
        authored_on=authored,
    )


def _list(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _product(codings: Sequence[Mapping[str, Any]], medication: Mapping[str, Any] | None) -> _Product | None:
    is_lev = False
    for system, code in _system_codes(codings):
        if system == codes.RXNORM and code in _PRODUCT_BY_CODE:
            return _PRODUCT_BY_CODE[code]
        concept = codes.ASM_BY_CODING.get((system, code))
        if concept is not None and concept.key == "levetiracetam":
            is_lev = True
    if not is_lev:
        return None
    form = _form(medication)
    strength, per = _strength(medication)
    if per is None and form in ("tablet", "xr-tablet"):
        per = "tablet"
    elif per is None and form == "solution":
        per = "mL"
    if form == "unknown" and per is not None:
        form = "solution" if per == "mL" else "tablet"
    return _Product(strength, per, form, None)


# The product codes' strengths and forms, read once from the code table (immutable).
_PRODUCT_BY_CODE: Final = {code: _Product(product.strength_mg, product.per, product.form, product.code)
                           for code, product in codes.LEV_PRODUCT_BY_CODE.items()}


def _form(medication: Mapping[str, Any] | None) -> str:
    form = medication.get("form") if medication is not None else None
    if not isinstance(form, dict):
        return "unknown"
    for coding in _list(form.get("coding")):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str) and coding["code"].upper() in ORDERABLE_FORMS:
            return ORDERABLE_FORMS[coding["code"].upper()]
    words = " ".join(str(c.get("display", "")) for c in _list(form.get("coding")) if isinstance(c, dict)) + " " + str(form.get("text", ""))
    words = words.lower()
    for word, kind in FORM_WORDS:
        if word in words:
            return kind
    return "unknown"


def _strength(medication: Mapping[str, Any] | None) -> tuple[float | None, str | None]:
    """mg per tablet or per mL from the levetiracetam ingredient's strength Ratio."""
    if medication is None:
        return None, None
    ingredients = [i for i in _list(medication.get("ingredient")) if isinstance(i, dict)]
    for ingredient in ingredients:
        concept = codes.concept_for(ingredient.get("itemCodeableConcept"), codes.ASM_BY_CODING)
        if len(ingredients) > 1 and (concept is None or concept.key != "levetiracetam"):
            continue  # a combination: only the levetiracetam ingredient's strength counts
        ratio = ingredient.get("strength")
        if not isinstance(ratio, dict):
            continue
        numerator, denominator = ratio.get("numerator"), ratio.get("denominator")
        if not isinstance(numerator, dict) or not isinstance(denominator, dict):
            continue
        amount = _number(numerator.get("value"))
        per_value = _number(denominator.get("value", 1))
        unit = _unit(numerator)
        if amount is None or per_value is None or per_value <= 0 or unit not in MASS_MG:
            continue
        mg = amount * MASS_MG[unit] / per_value
        denominator_unit = _unit(denominator)
        if denominator_unit in VOLUME_ML:
            return mg / VOLUME_ML[denominator_unit], "mL"
        if denominator_unit == "{tbl}" or denominator_unit in TABLET_FORM_CODES:
            return mg, "tablet"
    return None, None


def _unit(quantity: Mapping[str, Any]) -> str | None:
    """The unit of a dose quantity: its ``code`` when present (an unknown code is not overridden by
    the display text), else its ``unit`` text."""
    code, text = quantity.get("code"), quantity.get("unit")
    candidates = (code,) if isinstance(code, str) and code.strip() else (text,)
    for candidate in candidates:
        if not isinstance(candidate, str) or not candidate.strip():
            continue
        stripped = candidate.strip()
        if stripped in MASS_MG or stripped in VOLUME_ML or stripped in ORDERABLE_FORMS:
            return stripped
        if stripped.lower() in TABLET_UNITS:
            return "{tbl}"
        ucum = normalise_unit(stripped)
        if ucum in MASS_MG or ucum in VOLUME_ML:
            return ucum
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _dose_quantity(dosage: Mapping[str, Any], label: str, path: str, problems: list[Problem]) -> tuple[Mapping[str, Any] | None, str]:
    for index, rate in enumerate(_list(dosage.get("doseAndRate"))):
        if not isinstance(rate, dict):
            continue
        if isinstance(rate.get("doseQuantity"), dict):
            return rate["doseQuantity"], f"{path}.doseAndRate[{index}].doseQuantity"
        dose_range = rate.get("doseRange")
        if isinstance(dose_range, dict):
            where = f"{path}.doseAndRate[{index}].doseRange"
            low, high = dose_range.get("low"), dose_range.get("high")
            if isinstance(low, dict) and isinstance(high, dict) and _number(low.get("value")) is not None and _number(low.get("value")) == _number(high.get("value")) and _unit(low) == _unit(high):
                return low, f"{where}.low"
            problems.append(Problem(ProblemKind.AMBIGUOUS, "a dose range has no single daily total; order one dose", label, where))
            return None, where
    if isinstance(dosage.get("doseQuantity"), dict):  # STU3 shape, still sent by some systems
        return dosage["doseQuantity"], f"{path}.doseQuantity"
    problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "no doseAndRate.doseQuantity", label, f"{path}.doseAndRate"))
    return None, f"{path}.doseAndRate"


def _mg_per_administration(dosage: Mapping[str, Any], product: _Product, label: str, path: str, problems: list[Problem]) -> float | None:
    quantity, where = _dose_quantity(dosage, label, path, problems)
    if quantity is None:
        return None
    value = _number(quantity.get("value"))
    if value is None or value < 0:
        problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "the dose has no valid numeric value", label, f"{where}.value"))
        return None
    unit = _unit(quantity)
    if unit is None and isinstance(dosage.get("text"), str) and "tablet" in dosage["text"].lower() and not quantity.get("code") and not quantity.get("unit"):
        unit = "{tbl}"
    if unit in MASS_MG:
        return value * MASS_MG[unit]
    if unit in VOLUME_ML:
        if product.per != "mL" or product.mg_per_unit is None:
            problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "a dose in mL needs a solution with a known mg/mL strength", label, f"{where}.unit"))
            return None
        return value * VOLUME_ML[unit] * product.mg_per_unit
    if unit == "{tbl}" or unit in TABLET_FORM_CODES:
        if product.per != "tablet" or product.mg_per_unit is None:
            problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "a dose in tablets needs a tablet product with a known strength", label, f"{where}.unit"))
            return None
        return value * product.mg_per_unit
    shown = quantity.get("code") or quantity.get("unit")
    problems.append(Problem(ProblemKind.UNKNOWN_UNIT, f"dose unit {shown!r} is not a mass, a volume or a tablet count", label, f"{where}.code" if quantity.get("code") else f"{where}.unit"))
    return None


def _administrations_per_day(dosage: Mapping[str, Any], product: _Product, label: str, path: str, problems: list[Problem]) -> float | None:
    timing = dosage.get("timing")
    where = f"{path}.timing"
    if isinstance(timing, dict):
        repeat = timing.get("repeat")
        if isinstance(repeat, dict):
            per_day = _repeat_per_day(repeat, label, f"{where}.repeat", problems)
            if per_day is not None or any(k in repeat for k in ("frequency", "period", "when", "timeOfDay")):
                return per_day
        code = timing.get("code")
        if isinstance(code, dict):
            for coding in _list(code.get("coding")):
                if isinstance(coding, dict) and coding.get("system") in (codes.TIMING_ABBREVIATION, None) and isinstance(coding.get("code"), str):
                    per_day = TIMING_CODES.get(coding["code"].strip().upper())
                    if per_day is not None:
                        return per_day
            text = code.get("text")
            if isinstance(text, str) and text.strip().upper() in TIMING_CODES:
                return TIMING_CODES[text.strip().upper()]
            problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "timing.code is not a known v3-GTSAbbreviation", label, f"{where}.code"))
            return None
    if product.form == "xr-tablet":
        return 1.0  # extended-release levetiracetam is labelled once daily (domain.md §2)
    problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "no timing: how often the dose is given is unknown", label, where))
    return None


def _repeat_per_day(repeat: Mapping[str, Any], label: str, where: str, problems: list[Problem]) -> float | None:
    if "frequencyMax" in repeat or "periodMax" in repeat:
        frequency_max, period_max = _number(repeat.get("frequencyMax")), _number(repeat.get("periodMax"))
        if (frequency_max is not None and frequency_max != _number(repeat.get("frequency", 1))) or (period_max is not None and period_max != _number(repeat.get("period"))):
            problems.append(Problem(ProblemKind.AMBIGUOUS, "a frequency range has no single daily total", label, where))
            return None
    if "frequency" not in repeat and "period" not in repeat:
        slots = [s for key in ("when", "timeOfDay") for s in _list(repeat.get(key))]
        if slots:
            return float(len(slots))
        return None
    frequency = _number(repeat.get("frequency", 1))
    period = _number(repeat.get("period", 1))
    unit = repeat.get("periodUnit", "d")
    if frequency is None or frequency <= 0 or period is None or period <= 0:
        problems.append(Problem(ProblemKind.UNREADABLE_DOSE, "timing.repeat frequency and period must be positive numbers", label, where))
        return None
    if not isinstance(unit, str) or unit not in DAYS_PER_UNIT:
        problems.append(Problem(ProblemKind.UNREADABLE_DOSE, f"periodUnit {unit!r} is not h, d or wk", label, f"{where}.periodUnit"))
        return None
    return frequency / (period * DAYS_PER_UNIT[unit])


# --- Which order is in effect --------------------------------------------------------------


@dataclass(frozen=True)
class PlacedOrder:
    """A counted order placed in time, with its dose when readable (``dose`` None: unreadable)."""

    source: str
    start: date
    end: date | None  # last day taken (inclusive); None: open-ended
    tiebreak: tuple[str, int]  # (authoredOn as written, position in input)
    dose: NormalisedDose | None
    asm: str | None


def place_order(resource: Mapping[str, Any], position: int, dose: NormalisedDose | None, asm: str | None, status_known_on: date | None) -> PlacedOrder | None:
    """Place a counted order in time; None for orders that never count or have no date at all.

    ``dose``, when given, is this order's :func:`normalise_medication_request` (its dates are the order's)."""
    status = order_status(resource)
    if status not in COUNTED_STATUSES:  # counts_as_taken
        return None
    start, end = (dose.start, dose.end) if dose is not None else order_dates(resource)[:2]
    if start is None:
        return None
    if end is None and status in ENDED_STATUSES:
        meta = resource.get("meta")
        updated = parse_date(meta.get("lastUpdated")) if isinstance(meta, dict) else None
        # A server sets lastUpdated when data is loaded, which may be long after the stop: never later
        # than the date the status is known.
        candidates = [d for d in (updated, status_known_on) if d is not None]
        end = min(candidates) if candidates else None
        if end is not None and end < start:
            end = start
    authored = resource.get("authoredOn")
    label = dose.source if dose is not None else resource_label(resource)  # the dose's source is this label
    return PlacedOrder(label, start, end, (authored if isinstance(authored, str) else "", position), dose, asm)


def _latest(orders: Sequence[PlacedOrder], started: Any) -> PlacedOrder | None:
    best: PlacedOrder | None = None
    for order in orders:
        if started(order.start) and (best is None or (order.start, order.tiebreak) > (best.start, best.tiebreak)):
            best = order
    return best


def order_on_arrival(orders: Sequence[PlacedOrder], day: date) -> PlacedOrder | None:
    """The order the child was taking on arriving at a visit on ``day`` (started before that day)."""
    best = _latest(orders, lambda start: start < day)
    return best if best is not None and (best.end is None or best.end >= day) else None


def order_at_end_of_day(orders: Sequence[PlacedOrder], day: date) -> PlacedOrder | None:
    """The order in effect at the end of ``day`` (the visit's decision): started by then, not ended."""
    best = _latest(orders, lambda start: start <= day)
    return best if best is not None and (best.end is None or best.end > day) else None


class OrdersInEffect:
    """One medicine's orders, for the order in effect on many days: what :func:`order_on_arrival` and
    :func:`order_at_end_of_day` give, found by bisection instead of a scan of every order.

    The orders are sorted by (start, tiebreak), so those started before a day are a prefix and the
    latest start among them is the prefix's last; of orders equal on both, the first given wins, as
    in the scan.
    """

    __slots__ = ("_orders", "_starts")

    def __init__(self, orders: Iterable[PlacedOrder]) -> None:
        given = list(orders)
        ranked = sorted(range(len(given)), key=lambda i: (given[i].start, given[i].tiebreak, -i))
        self._orders = [given[i] for i in ranked]
        self._starts = [order.start for order in self._orders]

    def __bool__(self) -> bool:
        return bool(self._orders)

    def on_arrival(self, day: date) -> PlacedOrder | None:
        """:func:`order_on_arrival` of these orders."""
        started = bisect.bisect_left(self._starts, day)
        best = self._orders[started - 1] if started else None
        return best if best is not None and (best.end is None or best.end >= day) else None

    def at_end_of_day(self, day: date) -> PlacedOrder | None:
        """:func:`order_at_end_of_day` of these orders."""
        started = bisect.bisect_right(self._starts, day)
        best = self._orders[started - 1] if started else None
        return best if best is not None and (best.end is None or best.end > day) else None
