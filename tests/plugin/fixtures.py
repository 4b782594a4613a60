"""Builders for the plugin tests: FHIR prefetch, hook requests, signing keys and fake models."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jwt
import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_mapping.dosing import N_DOSE_CLASSES

LOINC = "http://loinc.org"
EPI = "https://epidose.org/fhir/CodeSystem/epidose"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ISSUER = "https://ehr.example.org"
KID = "test-key-1"


def observation(oid: str, patient: str, code: str, system: str, day: date, value: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": day.isoformat(), **value}


def lev_order(oid: str, patient: str, mg_per_dose: float, day: date, status: str = "active") -> dict[str, Any]:
    """A levetiracetam tablet order, twice daily."""
    product = {250: "311288", 500: "311289", 750: "311290", 1000: "387003"}[int(mg_per_dose)]
    return {"resourceType": "MedicationRequest", "id": oid, "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": product}]},
            "subject": {"reference": f"Patient/{patient}"}, "authoredOn": day.isoformat(),
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet",
                                                                     "system": "http://unitsofmeasure.org",
                                                                     "code": "{tbl}"}}]}]}


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources]}


def patient_resources(patient: str = "p1", *, weight_kg: float = 25.0, age_years: float = 8.0,
                      lev_mg_per_dose: float | None = 250, creatinine: float | None = 0.5,
                      n_extra_observations: int = 0, n_extra_orders: int = 0, birth_date: bool = True) -> dict[str, Any]:
    """Prefetch values for one child (weight, height, seizures, labs, conditions, medications; no
    encounters, notes or questionnaire answers)."""
    today = date.today()
    born = today - timedelta(days=int(age_years * 365.25))
    patient_resource: dict[str, Any] = {"resourceType": "Patient", "id": patient, "gender": "male"}
    if birth_date:
        patient_resource["birthDate"] = born.isoformat()
    last = today - timedelta(days=90)
    weight = observation(f"{patient}-w", patient, "29463-7", LOINC, last,
                         {"valueQuantity": {"value": weight_kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
    height = observation(f"{patient}-h", patient, "8302-2", LOINC, last,
                         {"valueQuantity": {"value": 128, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}})
    # Breakthrough seizures at the latest visit (2 since the previous one): a dose change is indicated.
    seizures = [observation(f"{patient}-s{i}", patient, "seizure-count-since-last-visit", EPI, last - timedelta(days=90 * i),
                            {"valueInteger": 2 if i == 0 else i % 2}) for i in range(3)]
    seizures += [observation(f"{patient}-x{i}", patient, "seizure-count-since-last-visit", EPI,
                             last - timedelta(days=300 + 30 * i), {"valueInteger": i % 3})
                 for i in range(n_extra_observations)]
    labs = []
    if creatinine is not None:
        labs.append(observation(f"{patient}-cr", patient, "2160-0", LOINC, last,
                                {"valueQuantity": {"value": creatinine, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}))
    meds = []
    if lev_mg_per_dose is not None:
        meds.append(lev_order(f"{patient}-m", patient, lev_mg_per_dose, last - timedelta(days=200)))
    meds += [dict(lev_order(f"{patient}-old{i}", patient, 250, last - timedelta(days=400 + 20 * i)), status="completed")
             for i in range(n_extra_orders)]
    condition = {"resourceType": "Condition", "id": f"{patient}-c", "subject": {"reference": f"Patient/{patient}"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44145005"}]},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}}
    return {"patient": patient_resource, "weight": bundle([weight]), "height": bundle([height]),
            "seizures": bundle(seizures), "labs": bundle(labs), "conditions": bundle([condition]),
            "medications": bundle(meds), "encounters": bundle([]), "notes": bundle([]), "questionnaires": bundle([])}


def hook_request(hook: str, prefetch: dict[str, Any] | None, patient: str = "p1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()),
                            "context": {"userId": "Practitioner/dr", "patientId": patient}}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def draft_bundle(order: dict[str, Any], *, sandbox: bool = False) -> dict[str, Any]:
    """A draftOrders Bundle; sandbox-shaped = no type, category as an object, {pill} doses."""
    order = json.loads(json.dumps(order))
    order["status"], order["intent"] = "draft", "order"
    if sandbox:
        order["category"] = {"coding": [{"code": "outpatient"}]}
        order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 1, "unit": "{pill}"}
        return {"resourceType": "Bundle", "entry": [{"resource": order}]}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}


class FakeModel:
    """A model whose scores rise with the dose; ``adversarial`` ignores the mask (returns the raw argmax).

    Scores rise by 1 per dose class (a narrow margin); ``favour`` gives one class 100 (a clear margin
    when it is allowed). ``coverage_percent`` is the share of training children as far from the centre
    (None: the model has no coverage statistics, so the service cannot call its choice clear).
    """

    def __init__(self, version: str, adversarial: bool = True, favour: int | None = None,
                 coverage_percent: float | None = 50.0) -> None:
        self.version = version
        self.adversarial = adversarial
        self.favour = favour
        self.coverage_percent = coverage_percent

    def model_input(self, values: Any, observed: Any) -> Any:
        return np.asarray(values, dtype=float)

    def coverage(self, model_input: Any) -> np.ndarray:
        if self.coverage_percent is None:
            raise AttributeError("no coverage statistics")
        return np.full(np.atleast_2d(model_input).shape[0], self.coverage_percent)

    def choose(self, model_input: Any, allowed_mask: Any) -> tuple[int, np.ndarray, int]:
        scores = np.arange(N_DOSE_CLASSES, dtype=float)
        if self.favour is not None:
            scores[self.favour] = 100.0
        raw = int(np.argmax(scores))
        if self.adversarial:
            return raw, scores, raw
        masked = np.where(np.asarray(allowed_mask, dtype=bool), scores, -np.inf)
        return int(np.argmax(masked)), scores, raw


class FakeArtifactError(Exception):
    pass


def write_fake_artifact(folder: Path, version: str, *, schema_ok: bool = True, favour: int | None = None,
                        report: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fake.json").write_text(json.dumps({"version": version, "schema_ok": schema_ok, "favour": favour}))
    if report:
        (folder / "REPORT").mkdir(exist_ok=True)
        (folder / "REPORT" / "report.md").write_text(
            "# Evaluation\n\n| dose | agreement |\n|---|---|\n| 0.5 g | 83% |\n\n![agreement](agreement.png)\n\n<script>x</script>\n")
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
        (folder / "REPORT" / "agreement.png").write_bytes(png)
        (folder / "REPORT" / "value.png").write_bytes(png)
    return folder


def fake_loader(path: Path) -> FakeModel:
    data = json.loads((Path(path) / "fake.json").read_text())
    if not data["schema_ok"]:
        raise FakeArtifactError("model feature schema differs")
    return FakeModel(data["version"], favour=data.get("favour"))


class Signer:
    """Signs CDS client JWTs with a local key; writes the matching JWKS file."""

    def __init__(self, folder: Path, algorithm: str = "ES384") -> None:
        self.algorithm = algorithm
        if algorithm.startswith("ES"):
            curve = ec.SECP384R1() if algorithm == "ES384" else ec.SECP256R1()
            self.key: Any = ec.generate_private_key(curve)
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(self.key.public_key()))
        jwk.update({"kid": KID, "alg": algorithm, "use": "sig"})
        self.jwks_path = folder / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [jwk]}))

    def token(self, aud: str, *, iss: str = ISSUER, kid: str = KID, exp_in: float = 300, iat_shift: float = 0,
              jti: str | None = None, key: Any = None, algorithm: str | None = None, **claims: Any) -> str:
        now = time.time()
        payload = {"iss": iss, "aud": aud, "exp": int(now + exp_in), "iat": int(now + iat_shift),
                   "jti": jti or str(uuid.uuid4()), **claims}
        return jwt.encode(payload, key if key is not None else self.key, algorithm=algorithm or self.algorithm,
                          headers={"kid": kid, "typ": "JWT"})


SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def solution_order(oid: str, patient: str, mg_per_day: float, authored: date, status: str = "active") -> dict[str, Any]:
    """A levetiracetam 100 mg/mL oral solution order, twice daily, with the fields EHRs fill in."""
    return {"resourceType": "MedicationRequest", "id": oid, "status": status, "intent": "order",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                      "code": "outpatient"}]}],
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "403884"}]},
            "subject": {"reference": f"Patient/{patient}"}, "authoredOn": authored.isoformat(),
            "requester": {"reference": "Practitioner/dr"},
            "note": [{"text": "give with food"}],
            "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "system": UCUM, "code": "d"},
                                "numberOfRepeatsAllowed": 2, "quantity": {"value": 300, "unit": "mL", "system": UCUM, "code": "mL"}},
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                   "doseAndRate": [{"doseQuantity": {"value": mg_per_day / 200, "unit": "mL",
                                                                     "system": UCUM, "code": "mL"}}]}]}


def child_chart(patient: str = "c1", *, age_years: float = 8.0, weight_kg: float = 25.0, height_cm: float = 128.0,
                visits: tuple[tuple[int, int], ...] = ((10, 0),), lev_mg_per_day: float | None = None,
                lev_days_ago: int = 200, creatinine: float | None = None, level_mg_l: float | None = None,
                adverse_effect: bool = False, condition: tuple[str, str] | None = (SNOMED, "44145005"),
                birth_date: str | None = None, today: date | None = None) -> dict[str, Any]:
    """Prefetch for a child: ``visits`` are (days ago, seizures since the previous visit); measurements at the latest."""
    today = today or date.today()
    born = birth_date or (today - timedelta(days=int(age_years * 365.25))).isoformat()
    latest = today - timedelta(days=min(ago for ago, _ in visits))
    seizures = [observation(f"{patient}-s{i}", patient, "seizure-count-since-last-visit", EPI, today - timedelta(days=ago),
                            {"valueInteger": count}) for i, (ago, count) in enumerate(visits)]
    if adverse_effect:
        seizures.append(observation(f"{patient}-ae", patient, "behaviour-adverse-effect", EPI, latest, {"valueBoolean": True}))
    labs = []
    if creatinine is not None:
        labs.append(observation(f"{patient}-cr", patient, "2160-0", LOINC, latest, _quantity(creatinine, "mg/dL")))
    if level_mg_l is not None:
        labs.append(observation(f"{patient}-lev", patient, "30471-7", LOINC, latest, _quantity(level_mg_l, "mg/L")))
    meds = [] if lev_mg_per_day is None else [solution_order(f"{patient}-m", patient, lev_mg_per_day,
                                                             today - timedelta(days=lev_days_ago))]
    conditions = [] if condition is None else [{
        "resourceType": "Condition", "id": f"{patient}-c", "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": condition[0], "code": condition[1]}]}}]
    return {"patient": {"resourceType": "Patient", "id": patient, "birthDate": born, "gender": "female"},
            "weight": bundle([observation(f"{patient}-w", patient, "29463-7", LOINC, latest, _quantity(weight_kg, "kg"))]),
            "height": bundle([observation(f"{patient}-h", patient, "8302-2", LOINC, latest, _quantity(height_cm, "cm"))]),
            "seizures": bundle(seizures), "labs": bundle(labs), "conditions": bundle(conditions),
            "medications": bundle(meds), "encounters": bundle([]), "notes": bundle([]), "questionnaires": bundle([])}


def container_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every non-empty dict or list inside a JSON value (where a property test may mutate)."""
    found = [path] if isinstance(value, (dict, list)) and value else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += container_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += container_paths(child, (*path, index))
    return found
