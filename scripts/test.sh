#!/usr/bin/env bash
# Install everything and run the whole test suite: lint, types, tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
echo "== ruff";   python3 -m ruff check .
echo "== mypy";   python3 -m mypy
echo "== pytest"; python3 -m pytest -q "$@"
