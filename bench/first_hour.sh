#!/usr/bin/env bash
# The README's step 1 and local try-out from a fresh clone and an empty home folder, each step timed
# (wall and CPU of the step's processes). Prints one line per step and the total to a first card.
#   bash bench/first_hour.sh [REPOSITORY]     (default: this checkout; clones it into a temporary folder)
# Needs a free port on 127.0.0.1 (it picks one) and the package index pip is configured with.
set -euo pipefail
source_repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
work="$(mktemp -d)"
export HOME="$work/home"
mkdir -p "$HOME"
unset PYTHONPATH EPIDOSE_DATA_DIR
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
timing="$work/time"

step() {  # step NAME COMMAND...: run, print wall and user+system CPU seconds of the command and its children
  local name="$1"
  shift
  /usr/bin/time -f "%e %U %S" -o "$timing" "$@"
  read -r wall user system <"$timing"
  printf '%-34s wall %7.1f s   CPU %7.1f s\n' "$name" "$wall" "$(echo "$user + $system" | bc)"
}

echo "fresh clone of $source_repo in $work (HOME=$HOME), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s.%N)
step "git clone" git clone --quiet "$source_repo" "$work/epidose"
cd "$work/epidose"
step1_started=$(date +%s.%N)
step "python3 -m venv .venv" python3 -m venv .venv
step "pip install torch + epidose[train]" .venv/bin/pip install --quiet "torch==2.13.0" -e ".[train]"

# The first start builds the embedded default model; the service is ready when /healthz answers.
log="$work/serve.log"
serve_started=$(date +%s.%N)
EPIDOSE_AUTH=off /usr/bin/time -f "%e %U %S" -o "$work/serve.time" .venv/bin/epidose serve --port "$port" >"$log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then cat "$log"; exit 1; fi
  sleep 0.5
done
ready=$(date +%s.%N)
printf '%-34s wall %7.1f s   (builds the default model; log: %s)\n' "first start until healthy" \
  "$(echo "$ready - $serve_started" | bc)" "$log"
card="$(curl -s -X POST "http://127.0.0.1:$port/cds-services/epidose-patient-view" \
  -H 'Content-Type: application/json' -d @docs/examples/patient-view.json)"
done_at=$(date +%s.%N)
kill -TERM "$(pgrep -P "$server")"  # epidose itself, not /usr/bin/time around it
wait "$server" || true
read -r s_wall s_user s_system <"$work/serve.time"
printf '%-34s wall %7.1f s   CPU %7.1f s (whole serve process, start to stop)\n' "epidose serve" "$s_wall" \
  "$(echo "$s_user + $s_system" | bc)"
echo "first card: $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["cards"][0]["summary"])' "$card")"
printf '%-34s wall %7.1f s\n' "clone to first card" "$(echo "$done_at - $started" | bc)"
printf '%-34s wall %7.1f s\n' "step 1 (venv) to first card" "$(echo "$done_at - $step1_started" | bc)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve log:"
sed 's/^/  | /' "$log"
rm -rf "$work"
