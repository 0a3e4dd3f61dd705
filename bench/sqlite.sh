#!/usr/bin/env bash
# SQLite -> Delta / Parquet: the release `sluice` binary reading a generated
# SQLite `orders` table, against `sqlite3 -csv` exporting the same table
# (the floor: SQLite's own fastest way out).
#
#   bench/sqlite.sh                      # 1M rows, 3 reps
#   ROWS=100000 REPS=1 bench/sqlite.sh   # quick
#   BUILD=0 bench/sqlite.sh              # don't run cargo (use the binary as it is)
#
# Knobs (environment), as in run.sh:
#   ROWS=1000000  SEED=42  REPS=3
#   BUILD=1       0: skip `cargo build --release -p sluice`
#   SLUICE=path   use this binary instead of $CARGO_TARGET_DIR/release/sluice (implies BUILD=0)
#   SPLIT=0       N > 0: also time a run with `split: {column: id, ranges: N}`
#
# Data: bench/data/orders_$ROWS.db, made from bench/data/orders_$ROWS.csv
# (gen_orders.py) with python3's sqlite3 module when missing: one table
#   orders(id INTEGER PRIMARY KEY, customer_id INTEGER, order_ts DATETIME,
#          status TEXT, amount DECIMAL(10,2), quantity INTEGER, note TEXT,
#          updated_at DATETIME)
# with timestamps stored as ISO-8601 texts ('2023-04-05T06:07:08Z').
# Output: one line per run, then a markdown table (rows/s, wall, CPU, peak
# RSS, ratio to sqlite3 -csv). Raw rows: bench/out/sqlite-<utc>.tsv; logs:
# bench/out/logs/<utc>/. Exit 1 if a Sluice run failed or lost rows.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; SEED="${SEED:-42}"; REPS="${REPS:-3}"; BUILD="${BUILD:-1}"
SPLIT="${SPLIT:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out"
CSV="$DATA/orders_${ROWS}.csv"; DB="$DATA/orders_${ROWS}.db"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/sqlite-$STAMP.tsv"
mkdir -p "$DATA" "$OUT" "$LOGS"
say() { printf '%s\n' "$*" >&2; }

if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (run with BUILD=1, or SLUICE=path)"; exit 1; }

# ---------------------------------------------------------------- data
if [ ! -s "$DB" ]; then
  if [ ! -s "$CSV" ]; then
    say "== generating $CSV"
    python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
  fi
  say "== building $DB from $CSV"
  python3 - "$CSV" "$DB.tmp" <<'EOF'
import csv, os, sqlite3, sys
src, dst = sys.argv[1:3]
if os.path.exists(dst):
    os.remove(dst)
con = sqlite3.connect(dst)
con.execute("""CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER,
  order_ts DATETIME, status TEXT, amount DECIMAL(10,2), quantity INTEGER, note TEXT,
  updated_at DATETIME)""")
with open(src, newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    next(rows)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
con.commit()
con.close()
EOF
  mv "$DB.tmp" "$DB"
fi
cat "$DB" > /dev/null   # warm page cache
DB_BYTES="$(stat -c %s "$DB")"

# ---------------------------------------------------------------- runs
printf 'tool\ttask\trep\trows\trows_out\trc\twall_s\tuser_s\tsys_s\tmax_rss_mb\tlog\n' > "$RESULTS"
jq_() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

project() { # DIR [SPLIT_RANGES]
  rm -rf "$1"; mkdir -p "$1"
  {
    printf 'name: bench\nsources:\n  bench:\n    type: sqlite\n    path: %s\n    include: [orders]\n' "$DB"
    if [ "${2:-0}" -gt 0 ]; then
      printf '    max_connections: 2\n    streams:\n      orders: { split: { column: id, ranges: %s } }\n' "$2"
    fi
    printf 'destinations:\n  parquet:\n    type: parquet\n    path: export\n'
  } > "$1/sluice.yml"
}
count_lake() { "$SLUICE" --project-dir "$1" sql "SELECT count(*) AS n FROM bench.orders" --format csv | tail -n 1; }
count_parquet() { # read the files back with sluice itself into a scratch lake
  local v="$OUT/verify-sqlite"; rm -rf "$v"; mkdir -p "$v"
  printf 'sources:\n  check:\n    type: files\n    format: parquet\n    path: "%s/**/*.parquet"\n    stream: rows\n' "$1" > "$v/sluice.yml"
  "$SLUICE" --project-dir "$v" -q --no-progress run >/dev/null
  "$SLUICE" --project-dir "$v" sql "SELECT count(*) AS n FROM check.rows" --format csv | tail -n 1
  rm -rf "$v"
}
count_csv() { python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline="", encoding="utf-8"))) - 1)' "$1"; }

FAILED=0
run_one() { # TOOL TASK REP OUTPATH VERIFY -- CMD...
  local tool="$1" task="$2" rep="$3" outpath="$4" verify="$5"; shift 6
  local log="$LOGS/$(printf '%s_%s_%s' "$tool" "$task" "$rep" | tr -c 'A-Za-z0-9_\n' '_').log"
  local m rc rows_out="?"
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(jq_ "$m" rc)"
  [ "$rc" = 0 ] && rows_out="$($verify "$outpath" 2>>"$log" || echo '?')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$task" "$rep" "$ROWS" "$rows_out" "$rc" \
    "$(jq_ "$m" wall_s)" "$(jq_ "$m" user_s)" "$(jq_ "$m" sys_s)" \
    "$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(max(m["max_rss_mb"], m["tree_rss_mb"]))' "$m")" "$log" >> "$RESULTS"
  python3 - "$m" "$tool" "$task" "$rep" "$ROWS" "$rows_out" <<'EOF' >&2
import json, sys
m = json.loads(sys.argv[1]); tool, task, rep, rows, out = sys.argv[2:7]
ok = "ok" if m["rc"] == 0 and out == rows else f"FAILED rc={m['rc']} rows_out={out}"
print(f"  {tool:8} {task:30} #{rep} {int(rows) / max(m['wall_s'], 1e-3):>12,.0f} rows/s {m['wall_s']:7.2f} s wall "
      f"{m['user_s'] + m['sys_s']:6.2f} s cpu  peak RSS {max(m['max_rss_mb'], m['tree_rss_mb']):7.1f} MB  {ok}")
EOF
  if [ "$rc" != 0 ] || [ "$rows_out" != "$ROWS" ]; then
    say "    log: $log"; tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}

SQLITE3="$(command -v sqlite3 || true)"
say "== $("$SLUICE" --version); $ROWS rows, $DB ($DB_BYTES bytes); $REPS rep(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$SQLITE3" ] || say "== no sqlite3 CLI: the sqlite3 -csv baseline is skipped (apt-get install sqlite3)"
for rep in $(seq 1 "$REPS"); do
  P="$OUT/sluice-sqlite-delta"; project "$P"
  run_one sluice "sqlite->delta (sluice run)" "$rep" "$P" count_lake -- \
    "$SLUICE" --project-dir "$P" --json --no-progress run
  P="$OUT/sluice-sqlite-parquet"; project "$P"
  run_one sluice "sqlite->parquet (extract --to)" "$rep" "$P/export" count_parquet -- \
    "$SLUICE" --project-dir "$P" --json --no-progress extract bench --to parquet
  if [ "$SPLIT" -gt 0 ]; then
    P="$OUT/sluice-sqlite-split"; project "$P" "$SPLIT"
    run_one sluice "sqlite->delta (split $SPLIT)" "$rep" "$P" count_lake -- \
      "$SLUICE" --project-dir "$P" --json --no-progress run
  fi
  if [ -n "$SQLITE3" ]; then
    C="$OUT/sqlite3-export.csv"; rm -f "$C"
    run_one sqlite3 "sqlite->csv (sqlite3 -csv)" "$rep" "$C" count_csv -- \
      sh -c '"$1" -csv -header "$2" "SELECT * FROM orders" > "$3"' _ "$SQLITE3" "$DB" "$C"
  fi
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$("$SLUICE" --version)" "$DB_BYTES" <<'EOF'
import csv, os, sys
path, version, db_bytes = sys.argv[1:4]
rows = list(csv.DictReader(open(path), delimiter="\t"))
if not rows:
    sys.exit(0)
n = int(rows[0]["rows"])
groups = {}
for r in rows:
    for k in ("wall_s", "user_s", "sys_s", "max_rss_mb"):
        r[k] = float(r[k])
    r["ok"] = r["rc"] == "0" and r["rows_out"] == r["rows"]
    groups.setdefault((r["tool"], r["task"]), []).append(r)
med = {}
for key, runs in groups.items():
    good = sorted((r for r in runs if r["ok"]), key=lambda r: r["wall_s"])
    med[key] = good[(len(good) - 1) // 2] if good else None
base = next((m for (tool, _), m in med.items() if tool == "sqlite3" and m), None)
print(f"\n{version}; {n:,} rows, SQLite file {int(db_bytes) / 2**20:.1f} MiB; {os.cpu_count()} cores; median of {max(len(v) for v in groups.values())} run(s)")
print("ratio = wall ÷ sqlite3 -csv wall (the floor: SQLite's own export, no types, no Delta)\n")
print("| tool | task | rows/s | wall s | CPU s | peak RSS MB | ratio vs sqlite3 -csv |")
print("|---|---|---:|---:|---:|---:|---:|")
for (tool, task), m in med.items():
    if not m:
        print(f"| {tool} | {task} | FAILED | | | | |")
        continue
    ratio = f"{m['wall_s'] / base['wall_s']:.2f}" if base else ""
    print(f"| {tool} | {task} | {n / m['wall_s']:,.0f} | {m['wall_s']:.2f} | {m['user_s'] + m['sys_s']:.2f} | {m['max_rss_mb']:.0f} | {ratio} |")
print(f"\nraw runs: {path}")
EOF
[ "$FAILED" = 0 ] || { say "a Sluice run failed or wrote the wrong row count (see above)"; exit 1; }
