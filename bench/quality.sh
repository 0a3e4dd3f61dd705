#!/usr/bin/env bash
# Data-quality checks: how long `sluice check` takes on a loaded table, and
# what in-flight row checks add to a load.
#
#   bench/quality.sh                         # 1M rows, 3 reps
#   ROWS=20000 REPS=1 SLUICE=target/debug/sluice bench/quality.sh   # does it work end to end
#   PEERS=0 bench/quality.sh                 # no Soda Core
#
# What it does:
#   data   bench/data/quality_$ROWS.csv (generated here, seeded, stdlib Python
#          only, if missing): id, customer_id, email, status, amount, quantity,
#          ordered_at, sku, country, note; clean, so every check passes
#   check  bench/out/quality/check/: `sluice run` loads the CSV into lake table
#          bench.orders (a stream WITHOUT checks); then a top-level `checks:`
#          map with exactly 20 column checks on bench.orders (not_null ×4,
#          unique, accepted_values ×2, range ×3, regex, format, length ×2,
#          mean, stddev, distinct_count ×2, row_count, freshness) and
#          `sluice check` timed REPS times. Target: ≤ 1 s at 1M rows.
#          Verified: 20 results, all pass (the run's results.json).
#   load   bench/out/quality/load_plain/ and load_checked/: the same file
#          loaded with `sluice run --full-refresh`, without checks and with 8
#          in-flight row checks (`on_fail: warn`, so every row loads), one
#          after the other in each rep. Overhead = median(checked) ÷
#          median(plain) − 1. Target: ≤ 15 %. Verified: ROWS rows in each table.
#          (Row checks during loads need the engine to run them; a binary
#          without that loads the same rows and shows ~0 % overhead.)
#   peer   Soda Core (soda-core-duckdb 3.5.6, SodaCL) with the same 20 checks
#          on a DuckDB table loaded from the same CSV (untimed), `soda scan`
#          timed REPS times. Only when $SODA_VENV/bin/soda exists, or PEERS=1
#          (then it is installed there first; give up after 10 min). Else
#          "peer: none installed".
#
# Knobs: ROWS=1000000  REPS=3 (median of REPS)  SEED=42  BUILD=1 (cargo build
#        --release -p sluice)  SLUICE=path (implies BUILD=0)  PEERS=auto|0|1
#        SODA_VENV=~/.cache/sluice-soda-venv  CHECK_TARGET_S=1
#        OVERHEAD_TARGET_PCT=15
# Output: one line per run (wall, CPU, peak RSS — wait4's ru_maxrss, what
# `/usr/bin/time -v` prints as "Maximum resident set size", or the process
# tree's, whichever is larger — via bench/measure.py), then a summary with
# rows/s. Raw rows: bench/out/quality-<utc>.tsv; logs: bench/out/logs/<utc>/.
# Exit 1 if a Sluice run failed or its result was wrong (targets missed only
# print MISSED).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; REPS="${REPS:-3}"; SEED="${SEED:-42}"; BUILD="${BUILD:-1}"
PEERS="${PEERS:-auto}"; SODA_VENV="${SODA_VENV:-$HOME/.cache/sluice-soda-venv}"
CHECK_TARGET_S="${CHECK_TARGET_S:-1}"; OVERHEAD_TARGET_PCT="${OVERHEAD_TARGET_PCT:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out"; W="$OUT/quality"
CSV="$DATA/quality_${ROWS}.csv"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/quality-$STAMP.tsv"
mkdir -p "$DATA" "$W" "$LOGS"
say() { printf '%s\n' "$*" >&2; }
unset SLUICE_PROJECT_DIR SLUICE_LOG

# ---------------------------------------------------------------- sluice
if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (BUILD=1 or SLUICE=path)"; exit 1; }
SLUICE="$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")"
say "== $("$SLUICE" --version) ($SLUICE), $ROWS rows, $REPS reps"

# ---------------------------------------------------------------- data
if [ ! -s "$CSV" ]; then
  say "== generating $CSV"
  python3 - "$ROWS" "$SEED" "$CSV.tmp" <<'EOF'
import datetime as dt, random, sys
rows, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
statuses = ("pending", "paid", "shipped", "delivered", "cancelled")
weights = (10, 25, 20, 40, 5)
countries = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "JP", "BR", "CA")
words = ("gift", "wrap", "fragile", "leave at door", "call first", "rush", "café", "Größe")
start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
span = 365 * 86400
with open(out, "w", encoding="utf-8", newline="") as f:
    f.write("id,customer_id,email,status,amount,quantity,ordered_at,sku,country,note\n")
    buf = []
    for i in range(1, rows + 1):
        c = r.randint(1, 100000)
        ts = (start + dt.timedelta(seconds=r.randrange(span))).strftime("%Y-%m-%dT%H:%M:%SZ")
        note = r.choice(words) if r.random() < 0.6 else ""
        buf.append(f"{i},{c},user{c}.{i % 97}@example{c % 13}.com,"
                   f"{r.choices(statuses, weights)[0]},{r.randint(50, 499999) / 100:.2f},"
                   f"{r.randint(1, 20)},{ts},SKU-{r.randint(0, 99999):05d},{r.choice(countries)},{note}\n")
        if len(buf) >= 10000:
            f.write("".join(buf)); buf.clear()
    f.write("".join(buf))
EOF
  mv "$CSV.tmp" "$CSV"
fi
cat "$CSV" > /dev/null  # warm page cache

# ---------------------------------------------------------------- projects
# stream_yml DIR [CHECKS_YAML]: a files source `bench` (stream `orders` →
# lake table bench.orders), with the stream's checks when given.
stream_yml() {
  rm -rf "$1"; mkdir -p "$1"
  {
    printf 'sources:\n  bench:\n    type: files\n    format: csv\n    path: %s\n    stream: orders\n' "$CSV"
    if [ -n "${2:-}" ]; then printf '    on_fail: warn\n    checks:\n%s' "$2"; fi
  } > "$1/sluice.yml"
}
# Exactly 20 checks on bench.orders (a top-level map: the stream has none).
TABLE_CHECKS="checks:
  bench.orders:
    - not_null: [id, customer_id, email, status]
    - unique: id
    - accepted_values: {column: status, values: [pending, paid, shipped, delivered, cancelled]}
    - accepted_values: {column: country, values: [US, GB, DE, FR, ES, IT, NL, SE, PL, JP, BR, CA]}
    - range: {column: amount, min: 0, max: 5000}
    - range: {column: quantity, min: 1, max: 20, name: quantity_range}
    - range: {column: customer_id, min: 1, max: 100000, name: customer_range}
    - regex: {column: sku, pattern: '^SKU-[0-9]{5}\$'}
    - format: {column: email, format: email}
    - length: {column: country, min: 2, max: 2}
    - length: {column: email, max: 254, name: email_length}
    - mean: {column: amount, min: 1000, max: 4000}
    - stddev: {column: amount, min: 1}
    - distinct_count: {column: status, min: 5, max: 5}
    - distinct_count: {column: customer_id, min: 1000, name: customers}
    - row_count: {min: $ROWS, max: $ROWS}
    - freshness: {column: ordered_at, max_age: 3650d}
"
# 8 row checks for the in-flight load (each row judged as it streams in).
ROW_CHECKS="      - not_null: [id, email]
      - accepted_values: {column: status, values: [pending, paid, shipped, delivered, cancelled]}
      - range: {column: amount, min: 0, max: 5000}
      - range: {column: quantity, min: 1, max: 20, name: quantity_range}
      - regex: {column: sku, pattern: '^SKU-[0-9]{5}\$'}
      - format: {column: email, format: email}
      - length: {column: country, min: 2, max: 2}
"

# ---------------------------------------------------------------- helpers
printf 'tool\ttask\trep\trc\tok\twall_s\tuser_s\tsys_s\tpeak_rss_mb\tlog\n' > "$RESULTS"
FAILED=0
field() { python3 -c 'import json,sys; m=json.loads(sys.argv[1]); k=sys.argv[2]; print(max(m["max_rss_mb"], m["tree_rss_mb"]) if k == "rss" else m[k])' "$1" "$2"; }
# run_one TOOL TASK REP VERIFY -- CMD...: time CMD; VERIFY (eval'd after a
# successful run) must print "ok", else the run counts as failed.
run_one() {
  local tool="$1" task="$2" rep="$3" verify="$4"; shift 5
  local log="$LOGS/${tool}_${task}_${rep}.log" m rc ok="FAILED"
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(field "$m" rc)"
  if [ "$rc" = 0 ] || [ "$verify" = "rc-any" ]; then
    if [ "$verify" = "-" ] || [ "$verify" = "rc-any" ]; then ok=ok; else ok="$(eval "$verify" 2>>"$log" || echo FAILED)"; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$task" "$rep" "$rc" "$ok" \
    "$(field "$m" wall_s)" "$(field "$m" user_s)" "$(field "$m" sys_s)" "$(field "$m" rss)" "$log" >> "$RESULTS"
  printf '  %-6s %-14s #%s %8.2f s wall %7.2f s cpu  peak RSS %7.1f MB  %s\n' "$tool" "$task" "$rep" \
    "$(field "$m" wall_s)" "$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(m["user_s"]+m["sys_s"])' "$m")" \
    "$(field "$m" rss)" "$([ "$ok" = ok ] && echo ok || echo "FAILED rc=$rc $ok (log: $log)")" >&2
  if [ "$ok" != ok ]; then
    tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}
count_lake() { # PROJECT
  "$SLUICE" --project-dir "$1" --no-progress sql "select count(*) as n from bench.orders" --format csv | tail -n 1
}
rows_ok() { # PROJECT
  local n; n="$(count_lake "$1")"
  if [ "$n" = "$ROWS" ]; then echo ok; else echo "rows=$n"; fi
}
checks_ok() { # PROJECT: the last check run has 20 results, all passing
  python3 - "$1/.sluice/reports/checks/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
bad = [f'{x["id"]}: {x["status"]} {x["message"]}' for x in r["results"] if x["status"] != "pass"]
print("ok" if s["total"] == 20 and s["pass"] == 20 else f'{s["total"]} checks, {s["pass"]} passed; ' + "; ".join(bad))
EOF
}

# ---------------------------------------------------------------- sluice check
P="$W/check"
say "== sluice check: 20 checks on bench.orders ($ROWS rows)"
stream_yml "$P"
run_one sluice load_once 1 "rows_ok '$P'" -- "$SLUICE" --project-dir "$P" --no-progress --json run
printf '%s' "$TABLE_CHECKS" >> "$P/sluice.yml"
for rep in $(seq 1 "$REPS"); do
  run_one sluice check "$rep" "checks_ok '$P'" -- "$SLUICE" --project-dir "$P" --no-progress check
done

# ---------------------------------------------------------------- in-flight load
say "== sluice run --full-refresh, without and with 8 in-flight row checks (on_fail: warn)"
PLAIN="$W/load_plain"; CHECKED="$W/load_checked"
stream_yml "$PLAIN"
stream_yml "$CHECKED" "$ROW_CHECKS"
for rep in $(seq 1 "$REPS"); do
  run_one sluice load_plain "$rep" "rows_ok '$PLAIN'" -- "$SLUICE" --project-dir "$PLAIN" --no-progress --json run --full-refresh
  run_one sluice load_checked "$rep" "rows_ok '$CHECKED'" -- "$SLUICE" --project-dir "$CHECKED" --no-progress --json run --full-refresh
done

# ---------------------------------------------------------------- peer: Soda Core
PEER=none
if [ "$PEERS" = 1 ] && [ ! -x "$SODA_VENV/bin/soda" ]; then
  say "== installing soda-core-duckdb 3.5.6 into $SODA_VENV (at most 10 min)"
  python3 -m venv "$SODA_VENV"
  timeout 600 "$SODA_VENV/bin/pip" install -q --disable-pip-version-check soda-core-duckdb==3.5.6 || say "   install failed"
fi
if [ "$PEERS" != 0 ] && [ -x "$SODA_VENV/bin/soda" ]; then
  S="$W/soda"; rm -rf "$S"; mkdir -p "$S"
  "$SODA_VENV/bin/python" - "$CSV" "$S/bench.duckdb" <<'EOF'
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute(f"CREATE TABLE orders AS SELECT * FROM read_csv('{sys.argv[1]}', header=true)")
EOF
  # No telemetry: Soda reads ~/.soda/config.yml, so it gets a HOME of its own.
  mkdir -p "$S/home/.soda"; printf 'send_anonymous_usage_stats: false\n' > "$S/home/.soda/config.yml"
  cat > "$S/configuration.yml" <<EOF
data_source bench:
  type: duckdb
  path: $S/bench.duckdb
EOF
  # The same 20 checks in SodaCL.
  cat > "$S/checks.yml" <<EOF
checks for orders:
  - missing_count(id) = 0
  - missing_count(customer_id) = 0
  - missing_count(email) = 0
  - missing_count(status) = 0
  - duplicate_count(id) = 0
  - invalid_count(status) = 0:
      valid values: [pending, paid, shipped, delivered, cancelled]
  - invalid_count(country) = 0:
      valid values: [US, GB, DE, FR, ES, IT, NL, SE, PL, JP, BR, CA]
  - invalid_count(amount) = 0:
      valid min: 0
      valid max: 5000
  - invalid_count(quantity) = 0:
      valid min: 1
      valid max: 20
  - invalid_count(customer_id) = 0:
      valid min: 1
      valid max: 100000
  - invalid_count(sku) = 0:
      valid regex: ^SKU-[0-9]{5}\$
  - invalid_count(email) = 0:
      valid format: email
  - invalid_count(country) = 0:
      name: country length
      valid length: 2
  - invalid_count(email) = 0:
      name: email length
      valid max length: 254
  - avg(amount) between 1000 and 4000
  - stddev(amount) >= 1
  - distinct_status = 5:
      distinct_status expression: count(DISTINCT status)
  - distinct_customers >= 1000:
      distinct_customers expression: count(DISTINCT customer_id)
  - row_count = $ROWS
  - freshness(ordered_at) < 3650d
EOF
  PEER="soda-core $("$SODA_VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("soda-core"), "+ duckdb", v("duckdb"))')"
  say "== peer: $PEER, soda scan with the same 20 checks"
  for rep in $(seq 1 "$REPS"); do
    run_one soda check "$rep" "grep -q '20/20 checks PASSED' '$LOGS/soda_check_$rep.log' && echo ok || echo 'not 20 checks passed'" -- \
      env HOME="$S/home" "$SODA_VENV/bin/soda" scan -d bench -c "$S/configuration.yml" "$S/checks.yml"
  done
fi

# ---------------------------------------------------------------- summary
python3 - "$RESULTS" "$ROWS" "$CHECK_TARGET_S" "$OVERHEAD_TARGET_PCT" "$PEER" <<'EOF'
import csv, statistics, sys
path, rows, check_target, overhead_target, peer = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
runs = {}
with open(path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        runs.setdefault((r["tool"], r["task"]), []).append(r)
def med(tool, task):
    rs = [r for r in runs.get((tool, task), []) if r["ok"] == "ok"]
    if not rs:
        return None
    rs.sort(key=lambda r: float(r["wall_s"]))
    m = rs[(len(rs) - 1) // 2]
    return float(m["wall_s"]), max(float(r["peak_rss_mb"]) for r in rs), len(rs)
print()
print(f"| what | median wall s | rows/s | peak RSS MB | runs |")
print(f"|---|---:|---:|---:|---:|")
for tool, task, label in [("sluice", "load_once", "sluice run (no checks), first load"),
                          ("sluice", "check", "sluice check, 20 checks"),
                          ("soda", "check", f"soda scan, 20 checks ({peer})"),
                          ("sluice", "load_plain", "sluice run --full-refresh, no checks"),
                          ("sluice", "load_checked", "sluice run --full-refresh, 8 row checks")]:
    m = med(tool, task)
    if m:
        print(f"| {label} | {m[0]:.2f} | {rows / m[0]:,.0f} | {m[1]:.1f} | {m[2]} |")
print()
c = med("sluice", "check")
if c:
    print(f"sluice check: {c[0]:.2f} s for 20 checks on {rows:,} rows "
          f"(target ≤ {check_target:g} s: {'met' if c[0] <= check_target else 'MISSED'})")
s = med("soda", "check")
if s and c:
    print(f"peer: {peer}: {s[0]:.2f} s ({s[0] / c[0]:.1f}× sluice check's time)")
elif peer == "none":
    print("peer: none installed")
p, k = med("sluice", "load_plain"), med("sluice", "load_checked")
if p and k:
    over = (k[0] / p[0] - 1) * 100
    print(f"in-flight row checks: load {p[0]:.2f} s → {k[0]:.2f} s, ratio {k[0] / p[0]:.3f}, overhead {over:+.1f} % "
          f"(target ≤ {overhead_target:g} %: {'met' if over <= overhead_target else 'MISSED'})")
print(f"raw: {path}")
EOF
exit "$FAILED"
