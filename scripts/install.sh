#!/usr/bin/env bash
# Install epidose and what it needs. Used by the README, CI (scripts/test.sh) and the Dockerfile.
#   scripts/install.sh          the service and training (extras: train)
#   scripts/install.sh dev      also the test tools and a local FHIR server for integration tests
set -euo pipefail
cd "$(dirname "$0")/.."
extras="train"
[ "${1:-}" = "dev" ] && extras="train,dev"
# torch is pinned: plain "torch" would pull a CUDA build of several GB (a local CPU wheel is on disk).
python3 -m pip install --quiet "torch==2.13.0" -e ".[${extras}]"
if [ "${1:-}" = "dev" ]; then
  # The FHIR server for integration tests pins its own FastAPI/pydantic: keep it in its own venv.
  if [ ! -x .venv-fhir/bin/sekmet ]; then
    python3 -m venv .venv-fhir
    .venv-fhir/bin/pip install --quiet "sekmet-fhir==0.1.1"
  fi
fi
