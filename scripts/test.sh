#!/usr/bin/env bash
# Install everything and run the whole test suite: lint, types, the image install, tests.
# CI runs exactly this (through .ci/run). Each phase prints its wall and CPU (user + sys) time, and a
# table of all of them closes the run (also when a phase fails).
# pytest runs on TEST_WORKERS pytest-xdist workers (default 2), one test module per worker at a time
# (--dist loadscope: a module's fixtures are built once); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

phases=()
timings="$(mktemp)"
trap 'rm -f "$timings"; summary' EXIT

cpu_so_far() {  # user + sys seconds of every finished child of this shell, as last written to $timings
  awk 'END { n = split($0, t, /[ms ]+/); print t[1] * 60 + t[2] + t[3] * 60 + t[4] }' "$timings"
}

phase() {  # phase NAME COMMAND...: run COMMAND, then say how long it took
  local name=$1 started cpu_started line
  shift
  echo "== $name"
  started=$(date +%s.%N)
  times > "$timings"  # the builtin, in this shell: inside $(...) it would count a subshell's children only
  cpu_started=$(cpu_so_far)
  "$@"
  times > "$timings"
  line=$(awk -v name="$name" -v a="$started" -v b="$(date +%s.%N)" -v c="$cpu_started" -v d="$(cpu_so_far)" \
    'BEGIN { printf "%-44s %7.1f s wall %7.1f s CPU", name, b - a, d - c }')
  echo "== $line"
  phases+=("$line")
}

summary() {
  [ ${#phases[@]} -gt 0 ] || return 0
  echo "== time by phase (wall clock; CPU = user + sys of the phase's processes)"
  printf '   %s\n' "${phases[@]}"
}

image_install() {
  local image_prefix
  image_prefix="$(mktemp -d)/epidose"
  bash scripts/install.sh image "$image_prefix"
  rm -rf "$(dirname "$image_prefix")"
}

phase "install (scripts/install.sh dev)" bash scripts/install.sh dev
phase "ruff" python3 -m ruff check .
phase "mypy" python3 -m mypy
phase "hadolint" hadolint Dockerfile
phase "image install (the Dockerfile's steps, here)" image_install
phase "pytest (${TEST_WORKERS:-2} workers)" python3 -m pytest -q -p no:benchmark -n "${TEST_WORKERS:-2}" --dist loadscope "$@"
