#!/usr/bin/env bash
# Install everything and run the whole test suite: lint, types, the image install, tests.
# CI runs exactly this (through .ci/run). Each phase prints its wall and CPU (user + sys) time, and a
# table of all of them closes the run (also when a phase fails).
# The image install (mostly unpacking wheels) runs in the background beside lint, types and tests; its
# output is shown when it ends. pytest runs on TEST_WORKERS pytest-xdist workers (default 2), one test
# module per worker at a time (--dist loadscope: a module's fixtures are built once); extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
timings="$work/times" lines="$work/phases" background=""
touch "$lines"
trap 'status=$?; stop_background; summary; rm -rf "$work"; exit $status' EXIT

stop_background() {  # a failed phase ends the run: the image install beside it stops too
  if [ -n "$background" ] && [ -s "$work/image.pid" ]; then
    pkill -TERM -P "$(cat "$work/image.pid")" 2>/dev/null || true
    kill "$(cat "$work/image.pid")" 2>/dev/null || true
  fi
}

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
    'BEGIN { printf "%-58s %7.1f s wall %7.1f s CPU", name, b - a, d - c }')
  echo "== $line"
  echo "$line" >> "$lines"
}

summary() {
  [ -s "$lines" ] || return 0
  echo "== time by phase (wall clock; CPU = user + sys of the phase's processes)"
  sed 's/^/   /' "$lines"
}

image_install() {
  local image_prefix
  image_prefix="$work/image/epidose"
  mkdir -p "$work/image"
  bash scripts/install.sh image "$image_prefix"
  rm -rf "$work/image"
}

background_image_install() {  # the image install as a grandchild: its CPU is not counted in the phases beside it
  ( (
    echo "$BASHPID" > "$work/image.pid"
    status=0
    timings="$work/times-image" phase "image install (the Dockerfile's steps; in the background)" image_install \
      > "$work/image.log" 2>&1 || status=$?
    echo "$status" > "$work/image.status"
  ) & )
  background=started
}

wait_for_image_install() {
  while [ ! -s "$work/image.status" ]; do sleep 1; done
  background=""
  cat "$work/image.log"
  return "$(cat "$work/image.status")"
}

phase "install (scripts/install.sh dev)" bash scripts/install.sh dev
background_image_install
phase "ruff" python3 -m ruff check .
phase "mypy" python3 -m mypy
phase "hadolint" hadolint Dockerfile
phase "pytest (${TEST_WORKERS:-2} workers)" python3 -m pytest -q -p no:benchmark -n "${TEST_WORKERS:-2}" --dist loadscope "$@"
wait_for_image_install
