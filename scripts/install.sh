#!/usr/bin/env bash
# Install epidose and what it needs. Used by the README, CI (scripts/test.sh) and the Dockerfile.
#   scripts/install.sh               the service and training, editable, into the current Python
#   scripts/install.sh dev           also the test tools and a local FHIR server for integration tests
#   scripts/install.sh image PREFIX  a self-contained virtual environment at PREFIX (the container's)
set -euo pipefail
cd "$(dirname "$0")/.."
# torch is pinned: plain "torch" would pull a CUDA build of several GB (a local CPU wheel is on disk;
# an image build passes its own wheel source through PIP_FIND_LINKS or PIP_INDEX_URL).
case "${1:-}" in
  image)
    prefix="${2:?usage: scripts/install.sh image PREFIX}"
    python3 -m venv "$prefix"
    "$prefix/bin/pip" install --quiet --no-cache-dir "torch==2.13.0" ".[train]"
    "$prefix/bin/epidose" --version
    ;;
  dev)
    python3 -m pip install --quiet "torch==2.13.0" -e ".[train,dev]"
    # The FHIR server for integration tests pins its own FastAPI/pydantic: keep it in its own venv.
    if [ ! -x .venv-fhir/bin/sekmet ]; then
      python3 -m venv .venv-fhir
      .venv-fhir/bin/pip install --quiet "sekmet-fhir==0.1.1"
    fi
    # HealthChain's SandboxClient, an independent CDS client for tests/deploy/test_healthchain.py, pins its own
    # pydantic and FHIR models: its own venv too.
    if [ ! -x .venv-healthchain/bin/python ] || ! .venv-healthchain/bin/python -c "import healthchain" 2>/dev/null; then
      python3 -m venv .venv-healthchain
      .venv-healthchain/bin/pip install --quiet "healthchain==0.16.1"
    fi
    # playwright-core (pinned in package.json and package-lock.json) drives Chromium through the reference
    # CDS Hooks sandbox in tests/deploy/test_reference_sandbox.py; no browser download, Debian's is used.
    if command -v npm >/dev/null; then
      PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    else
      echo "npm is missing: the reference sandbox browser test will be skipped (outside CI)" >&2
    fi
    # Debian's PostgreSQL server, for the tests of the shared database (tests/support/postgres.py starts it).
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null \
        && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
        || echo "postgresql did not install: the shared-database tests will be skipped" >&2
    fi
    # Debian's Chromium, for the model-page screenshot and reference sandbox tests (skipped, saying why, without it).
    if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || echo "chromium did not install: the screenshot test will be skipped" >&2
    fi
    # Debian's wrk, the HTTP load generator of bench/serve.py (the benchmark says so and stops without it).
    if ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
        || echo "wrk did not install: bench/serve.py needs it" >&2
    fi
    ;;
  "")
    python3 -m pip install --quiet "torch==2.13.0" -e ".[train]"
    ;;
  *)
    echo "usage: scripts/install.sh [dev | image PREFIX]" >&2
    exit 2
    ;;
esac
