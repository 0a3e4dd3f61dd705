#!/usr/bin/env bash
# Transform: the peers' dbt project (4 table models + 11 data tests over
# raw.orders, shared/bench/peers/dbt) built by dbt-duckdb and by
# `sluice transform build` on the same orders, side by side; then parsing and
# compiling a generated project of 10,000 models.
#
#   bench/transform.sh                          # 1k and 1M rows, 3 reps at 1k; 10k models
#   ROWS=100000 REPS=1 BUILD=0 bench/transform.sh
#   ONLY=dbt BUILD=0 bench/transform.sh         # the dbt-duckdb half only (no sluice binary needed)
#
# For each N in 1000 and $ROWS:
#   data   bench/data/orders_N.csv (bench/gen_orders.py: the peers' columns
#          id, customer_id, order_ts, status, amount, quantity, note, updated_at)
#   dbt    bench/out/transform/dbt_N/: a copy of the peers' project; raw.orders
#          loaded with the peers' dbt_load_raw.py (DuckDB read_csv, typed);
#          `dbt parse` once (warm partial-parse cache, as the peers did), then
#          `dbt build` timed
#   sluice bench/out/transform/sluice_N/: the same project with a profiles.yml
#          of `type: sluice` and a sluice.yml whose `files` source `raw`
#          (stream `orders`) loads the CSV into lake table raw.orders with the
#          types dbt_load_raw.py gives; `sluice run` once, then
#          `sluice transform build` timed
#   check  both wrote N rows to main.orders_enriched
# Then bench/out/transform/models_$MODELS_{sluice,dbt}/ (bench/gen_dbt_models.py):
# `sluice transform parse` (manifest.json only, as dbt parse) and
# `sluice transform compile` (also 12,000 compiled SQL files) timed REPS
# times, `dbt parse --no-partial-parse`
# once (killed after DBT_PARSE_TIMEOUT s).
#
# Knobs: ROWS=1000000  REPS=3 (reps at 1k rows and of the compile)  REPS_BIG=1
#        (reps at $ROWS)  MODELS=10000  SEED=42  BUILD=1  SLUICE=path (implies
#        BUILD=0)  ONLY=dbt|sluice (one side only)  DBT_PARSE_TIMEOUT=120
#        DBT_VENV=~/.cache/sluice-dbt-venv (made with dbt-core 1.11.16 and
#        dbt-duckdb 1.11.1, the peers' versions, when missing)
#        PEERS_DIR=<repo>/../shared/bench/peers (the dbt project and dbt_load_raw.py)
# Output: one line per run, then a markdown table and dbt ÷ sluice ratios; raw
# rows in bench/out/transform-<utc>.tsv, logs in bench/out/logs/<utc>/.
# Exit 1 if a Sluice run failed or its row count differs from dbt's.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; REPS="${REPS:-3}"; REPS_BIG="${REPS_BIG:-1}"; SEED="${SEED:-42}"
MODELS="${MODELS:-10000}"; BUILD="${BUILD:-1}"; ONLY="${ONLY:-}"
DBT_PARSE_TIMEOUT="${DBT_PARSE_TIMEOUT:-120}"
DBT_VENV="${DBT_VENV:-$HOME/.cache/sluice-dbt-venv}"
PEERS_DIR="${PEERS_DIR:-$(cd "$ROOT/.." && pwd)/shared/bench/peers}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
case "$ONLY" in ""|dbt|sluice) ;; *) echo "ONLY must be dbt, sluice or empty" >&2; exit 2 ;; esac
DO_DBT=1; DO_SLUICE=1
[ "$ONLY" = sluice ] && DO_DBT=0
[ "$ONLY" = dbt ] && DO_SLUICE=0
DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out"; W="$OUT/transform"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/transform-$STAMP.tsv"
mkdir -p "$DATA" "$W" "$LOGS"
say() { printf '%s\n' "$*" >&2; }
# Only the profiles.yml in each project folder may count; no telemetry.
unset DBT_PROFILES_DIR DBT_TARGET_PATH DBT_LOG_PATH DBT_DUCKDB_PATH SLUICE_PROJECT_DIR
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1

[ -f "$PEERS_DIR/dbt/dbt_project.yml" ] && [ -f "$PEERS_DIR/dbt_load_raw.py" ] || {
  say "no peers' dbt project in $PEERS_DIR (set PEERS_DIR to shared/bench/peers)"; exit 1; }

# ---------------------------------------------------------------- tools
if [ "$DO_SLUICE" = 1 ]; then
  if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
  if [ "$BUILD" = 1 ]; then
    say "== cargo build --release -p sluice"
    (cd "$ROOT" && cargo build --release -p sluice)
  fi
  [ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (BUILD=1, SLUICE=path, or ONLY=dbt)"; exit 1; }
  SLUICE_VERSION="$("$SLUICE" --version)"
else
  SLUICE_VERSION="sluice skipped (ONLY=dbt)"
fi
DBT_VERSION="dbt skipped (ONLY=sluice)"
if [ "$DO_DBT" = 1 ]; then
  if [ ! -x "$DBT_VENV/bin/dbt" ]; then
    say "== installing dbt-core 1.11.16 + dbt-duckdb 1.11.1 into $DBT_VENV"
    python3 -m venv "$DBT_VENV"
    "$DBT_VENV/bin/pip" install -q --disable-pip-version-check dbt-core==1.11.16 dbt-duckdb==1.11.1
  fi
  DBT="$DBT_VENV/bin/dbt"; DBT_PY="$DBT_VENV/bin/python"
  DBT_VERSION="$("$DBT_PY" -c 'from importlib.metadata import version as v; print(", ".join(p + " " + v(p) for p in ("dbt-core", "dbt-duckdb", "duckdb")))')"
fi

# ---------------------------------------------------------------- helpers
printf 'tool\ttask\tsize\trep\texpected\tout\trc\twall_s\tuser_s\tsys_s\tmax_rss_mb\tload_before\tlog\n' > "$RESULTS"
jq_() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
FAILED=0
# run_one TOOL TASK SIZE REP EXPECTED VERIFY_CMD -- CMD...
#   VERIFY_CMD (eval'd after a successful run) prints what the run produced
#   (a row or node count), compared with EXPECTED; "-" skips the check.
run_one() {
  local tool="$1" task="$2" size="$3" rep="$4" expected="$5" verify="$6"; shift 7
  local log="$LOGS/$(printf '%s_%s_%s_%s' "$tool" "$task" "$size" "$rep" | tr -c 'A-Za-z0-9_\n' '_').log"
  local m rc out="?"
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(jq_ "$m" rc)"
  if [ "$rc" = 0 ]; then
    if [ "$verify" = "-" ]; then out="$expected"; else out="$(eval "$verify" 2>>"$log" || echo '?')"; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$task" "$size" "$rep" "$expected" "$out" "$rc" \
    "$(jq_ "$m" wall_s)" "$(jq_ "$m" user_s)" "$(jq_ "$m" sys_s)" \
    "$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(max(m["max_rss_mb"], m["tree_rss_mb"]))' "$m")" \
    "$(jq_ "$m" load_before)" "$log" >> "$RESULTS"
  python3 - "$m" "$tool" "$task" "$size" "$rep" "$expected" "$out" <<'EOF' >&2
import json, sys
m = json.loads(sys.argv[1]); tool, task, size, rep, expected, out = sys.argv[2:8]
ok = "ok" if m["rc"] == 0 and out == expected else f"FAILED rc={m['rc']} out={out} (expected {expected})"
print(f"  {tool:6} {task:36} {size:>8} #{rep} {m['wall_s']:8.2f} s wall {m['user_s'] + m['sys_s']:7.2f} s cpu"
      f"  peak RSS {max(m['max_rss_mb'], m['tree_rss_mb']):7.1f} MB  load {m['load_before'].split()[0]}  {ok}")
EOF
  if [ "$rc" != 0 ] || [ "$out" != "$expected" ]; then
    say "    log: $log"; tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}
count_duckdb() { # DB RELATION
  "$DBT_PY" -c 'import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).execute(f"select count(*) from {sys.argv[2]}").fetchone()[0])' "$1" "$2"
}
count_lake() { # PROJECT RELATION
  "$SLUICE" --project-dir "$1" --no-progress sql "select count(*) as n from $2" --format csv | tail -n 1
}
count_files() { # DIR PATTERN
  find "$1" -name "$2" -type f 2>/dev/null | wc -l | tr -d ' '
}
count_manifest_models() { # MANIFEST
  python3 -c 'import json, sys; print(sum(1 for n in json.load(open(sys.argv[1]))["nodes"].values() if n["resource_type"] == "model"))' "$1"
}

# The peers' project for Sluice: its own profiles.yml (same profile name,
# the lake), and a sluice.yml loading the CSV as lake table raw.orders with
# dbt_load_raw.py's column types (timestamps with Z become UTC, as DuckDB's
# TIMESTAMP does).
sluice_project() { # DIR CSV
  rm -rf "$1"; cp -r "$PEERS_DIR/dbt" "$1"; rm -rf "$1/target" "$1/logs"
  local profile
  profile="$(awk -F': *' '$1 == "profile" {gsub(/["'\'']/, "", $2); print $2}' "$1/dbt_project.yml")"
  cat > "$1/profiles.yml" <<EOF
$profile:
  target: bench
  outputs:
    bench:
      type: sluice
      schema: main
      threads: 2
EOF
  cat > "$1/sluice.yml" <<EOF
sources:
  raw:                       # source raw, stream orders -> lake table raw.orders
    type: files
    format: csv
    path: "$2"
    stream: orders
    write_mode: overwrite
    columns:
      id: int64
      customer_id: int64
      order_ts: timestamp
      status: string
      amount: "decimal(12,2)"
      quantity: int32
      note: string
      updated_at: timestamp
EOF
}

# ---------------------------------------------------------------- orders
say "== $SLUICE_VERSION; $DBT_VERSION; sizes 1000 and $ROWS; $REPS rep(s) at 1k, $REPS_BIG at $ROWS; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
SIZES=(1000)
[ "$ROWS" != 1000 ] && SIZES+=("$ROWS")
for n in "${SIZES[@]}"; do
  CSV="$DATA/orders_${n}.csv"
  [ -s "$CSV" ] || python3 "$BENCH_DIR/gen_orders.py" --rows "$n" --seed "$SEED" --out "$CSV"
  cat "$CSV" > /dev/null   # warm the page cache
  reps="$REPS_BIG"; [ "$n" = 1000 ] && reps="$REPS"

  if [ "$DO_DBT" = 1 ]; then
    D="$W/dbt_$n"; rm -rf "$D"; cp -r "$PEERS_DIR/dbt" "$D"; rm -rf "$D/target" "$D/logs"
    DB="$D/bench.duckdb"
    DBT_ENV=(env -C "$D" DBT_DUCKDB_PATH="$DB" DBT_PROFILES_DIR="$D")
    run_one dbt "load raw.orders (dbt_load_raw.py)" "$n" 1 "$n" "count_duckdb $DB raw.orders" -- \
      "$DBT_PY" "$PEERS_DIR/dbt_load_raw.py" "$CSV" "$DB"
    "${DBT_ENV[@]}" "$DBT" parse --quiet > "$LOGS/dbt_parse_$n.log" 2>&1 \
      || { say "dbt parse failed:"; tail -n 20 "$LOGS/dbt_parse_$n.log" >&2; exit 1; }
    for rep in $(seq 1 "$reps"); do
      run_one dbt "dbt build (4 models + 11 tests)" "$n" "$rep" "$n" "count_duckdb $DB main.orders_enriched" -- \
        "${DBT_ENV[@]}" "$DBT" build
    done
  fi

  if [ "$DO_SLUICE" = 1 ]; then
    S="$W/sluice_$n"; sluice_project "$S" "$CSV"
    run_one sluice "load raw.orders (sluice run)" "$n" 1 "$n" "count_lake $S raw.orders" -- \
      "$SLUICE" --project-dir "$S" --no-progress run
    for rep in $(seq 1 "$reps"); do
      run_one sluice "transform build (4 models + 11 tests)" "$n" "$rep" "$n" "count_lake $S main.orders_enriched" -- \
        "$SLUICE" --project-dir "$S" --no-progress transform build
    done
  fi

  # Both sides must agree on the final model's rows (untimed).
  if [ "$DO_DBT" = 1 ] && [ "$DO_SLUICE" = 1 ]; then
    a="$(count_duckdb "$W/dbt_$n/bench.duckdb" main.orders_enriched 2>/dev/null || echo '?')"
    b="$(count_lake "$W/sluice_$n" main.orders_enriched 2>/dev/null || echo '?')"
    if [ "$a" = "$b" ] && [ "$a" = "$n" ]; then
      say "  check: orders_enriched has $a rows in both (dbt-duckdb, sluice)"
    else
      say "  check FAILED: orders_enriched rows: dbt-duckdb $a, sluice $b (expected $n)"; FAILED=1
    fi
  fi
done

# ---------------------------------------------------------------- 10k models
say "== $MODELS generated models: parse + compile"
if [ "$DO_SLUICE" = 1 ]; then
  M="$W/models_${MODELS}_sluice"
  python3 "$BENCH_DIR/gen_dbt_models.py" --models "$MODELS" --seed "$SEED" --out "$M"
  for rep in $(seq 1 "$REPS"); do
    rm -rf "$M/target"
    # dbt parse's equivalent: load, render, order, write manifest.json.
    run_one sluice "transform parse ($MODELS models)" "$MODELS" "$rep" "$MODELS" "count_manifest_models $M/target/manifest.json" -- \
      "$SLUICE" --project-dir "$M" --no-progress transform parse
    rm -rf "$M/target"
    run_one sluice "transform compile ($MODELS models)" "$MODELS" "$rep" "$MODELS" "count_files $M/target/compiled 'm_*.sql'" -- \
      "$SLUICE" --project-dir "$M" --no-progress transform compile
  done
fi
if [ "$DO_DBT" = 1 ]; then
  M="$W/models_${MODELS}_dbt"
  python3 "$BENCH_DIR/gen_dbt_models.py" --models "$MODELS" --seed "$SEED" --out "$M"
  run_one dbt "dbt parse --no-partial-parse ($MODELS models)" "$MODELS" 1 "$MODELS" "count_manifest_models $M/target/manifest.json" -- \
    env -C "$M" DBT_DUCKDB_PATH="$M/big.duckdb" timeout "$DBT_PARSE_TIMEOUT" "$DBT" parse --no-partial-parse --target duckdb --profiles-dir "$M"
  if [ "$(tail -n 1 "$RESULTS" | cut -f7)" = 124 ]; then
    say "  dbt parse did not finish within ${DBT_PARSE_TIMEOUT} s (DBT_PARSE_TIMEOUT)"
  fi
fi

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$SLUICE_VERSION" "$DBT_VERSION" <<'EOF'
import csv, os, sys
path, sluice_v, dbt_v = sys.argv[1:4]
rows = list(csv.DictReader(open(path), delimiter="\t"))
groups = {}
for r in rows:
    for k in ("wall_s", "user_s", "sys_s", "max_rss_mb"):
        r[k] = float(r[k])
    r["ok"] = r["rc"] == "0" and r["out"] == r["expected"]
    groups.setdefault((r["tool"], r["task"], r["size"]), []).append(r)
med = {}
for key, runs in groups.items():
    good = sorted((r for r in runs if r["ok"]), key=lambda r: r["wall_s"])
    med[key] = (good[(len(good) - 1) // 2] if good else None, runs)
loads = [float(r["load_before"].split()[0]) for r in rows] or [0.0]
print(f"\n{sluice_v}; {dbt_v}; {os.cpu_count()} cores; 1-min load {min(loads):.2f}–{max(loads):.2f}; median run")
print("\n| tool | task | rows / models | wall s | CPU s | peak RSS MB | wall range | runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (tool, task, size), (m, runs) in med.items():
    if not m:
        print(f"| {tool} | {task} | {int(size):,} | FAILED (rc={runs[-1]['rc']}, out={runs[-1]['out']}) | | | | {len(runs)} |")
        continue
    walls = sorted(r["wall_s"] for r in runs if r["ok"])
    spread = f"{walls[0]:.2f}–{walls[-1]:.2f}" if len(walls) > 1 else ""
    print(f"| {tool} | {task} | {int(size):,} | {m['wall_s']:.2f} | {m['user_s'] + m['sys_s']:.2f} | {m['max_rss_mb']:.0f} | {spread} | {len(runs)} |")

def wall(tool, prefix, size):
    for (t, task, s), (m, _) in med.items():
        if t == tool and task.startswith(prefix) and s == size and m:
            return m["wall_s"]
    return None

ratios = []
for size in sorted({s for (_, task, s) in med if "build" in task}, key=int):
    d, s = wall("dbt", "dbt build", size), wall("sluice", "transform build", size)
    if d and s:
        ratios.append(f"build, {int(size):,} rows: dbt {d:.2f} s ÷ sluice {s:.2f} s = {d / s:.1f}×")
for size in sorted({s for (_, task, s) in med if "models)" in task}, key=int):
    d = wall("dbt", "dbt parse", size)
    for ours in ("transform parse", "transform compile"):
        s = wall("sluice", ours, size)
        if d and s:
            ratios.append(f"{int(size):,} models: dbt parse {d:.2f} s ÷ sluice {ours.split()[1]} {s:.2f} s = {d / s:.1f}×")
if ratios:
    print("\nratio dbt ÷ sluice (wall; > 1: Sluice was faster):")
    for r in ratios:
        print(f"  {r}")
print(f"\nraw runs: {path}")
EOF
[ "$FAILED" = 0 ] || { say "a Sluice run failed or its row count differs (see above)"; exit 1; }
