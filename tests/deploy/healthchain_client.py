"""HealthChain's SandboxClient calls a CDS service; run with the HealthChain virtual environment's Python.

    .venv-healthchain/bin/python healthchain_client.py SERVICE_URL PREFETCH.json PATIENT_ID

Sends two patient-view requests built by SandboxClient from the prefetch file: one as HealthChain builds
it (its own random ``context.patientId``), one with ``context.patientId`` set to the prefetch's patient.
Prints JSON: per request the context patient, the response as HealthChain returned it, and the
validation errors of HealthChain's ``CDSResponse`` model on that response (field path and error type).
It imports nothing from epidose: this is an independent client.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def main(url: str, prefetch_file: str, patient_id: str) -> dict[str, Any]:
    from healthchain.models.responses.cdsresponse import CDSResponse
    from healthchain.sandbox import SandboxClient
    from pydantic import ValidationError

    client = SandboxClient(url=url, workflow="patient-view", timeout=30.0)
    client.load_from_path(prefetch_file)
    client.load_from_path(prefetch_file)
    client.requests[1].context.patientId = patient_id
    responses = client.send_requests()
    results = []
    for request, response in zip(client.requests, responses, strict=True):
        errors: list[dict[str, Any]] = []
        try:
            CDSResponse(**response)
        except ValidationError as error:
            errors = [{"loc": [str(part) for part in e["loc"]], "type": e["type"]} for e in error.errors()]
        results.append({"patientId": request.context.patientId, "response": response, "model_errors": errors})
    return {"results": results}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3])))
