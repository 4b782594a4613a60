#!/usr/bin/env bash
# Install everything and run the whole test suite: lint, types, the image install, tests.
# CI runs exactly this (through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
echo "== ruff";     python3 -m ruff check .
echo "== mypy";     python3 -m mypy
echo "== hadolint"; hadolint Dockerfile
echo "== image install (the Dockerfile's steps, on this machine)"
image_prefix="$(mktemp -d)/epidose"
bash scripts/install.sh image "$image_prefix"
rm -rf "$(dirname "$image_prefix")"
echo "== pytest";   python3 -m pytest -q "$@"
