#!/usr/bin/env bash
# Idle memory of `sluice serve`: a project with a cron schedule and a file
# sensor, the server started, left alone for IDLE seconds (default 20), then
# its resident set read from /proc. Prints RSS (and its anonymous part) and
# exits 2 if RSS >= LIMIT_MB (default 50, the issue's target).
#
#   SLUICE=~/.cache/sluice-target-rel/release/sluice bench/serve_rss.sh
set -euo pipefail
SLUICE="${SLUICE:-$HOME/.cache/sluice-target-rel/release/sluice}"
IDLE="${IDLE:-20}"
LIMIT_MB="${LIMIT_MB:-50}"
[ -x "$SLUICE" ] || { echo "no sluice binary at $SLUICE (build: cargo build --release -p sluice)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir/data"
printf 'id,amount\n1,10\n' > "$dir/data/orders.csv"
cat > "$dir/sluice.yml" <<'YML'
sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
jobs:
  nightly:
    select: kind:stream
    schedule: "0 6 * * *"
    timezone: Europe/Paris
  drops:
    select: source:raw
    when: {files: "incoming/*.csv", every: 5s}
YML
"$SLUICE" --project-dir "$dir" --no-progress serve --port 0 2>"$dir/serve.log" &
pid=$!
sleep "$IDLE"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
anon=$(awk '/^Anonymous/ {print $2}' "/proc/$pid/smaps_rollup")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
awk -v idle="$IDLE" -v rss="$rss" -v hwm="$hwm" -v anon="$anon" -v t="$threads" 'BEGIN {
  printf "sluice serve idle %ss: RSS %.1f MB (peak %.1f MB, anonymous %.1f MB), %s threads\n", idle, rss/1024, hwm/1024, anon/1024, t }'
[ "$rss" -lt $((LIMIT_MB * 1024)) ] || { echo "over ${LIMIT_MB} MB" >&2; exit 2; }
