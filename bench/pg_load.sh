#!/usr/bin/env bash
# Loading the `orders` table into PostgreSQL: Sluice (CSV -> PG, Delta -> PG)
# against `psql \copy … FROM` of the same CSV, into a fresh table each run.
#
#   bench/pg_load.sh                               # 1M rows, 3 reps, release binary (built if missing)
#   BUILD=0 SLUICE=target/debug/sluice ROWS=100000 REPS=1 bench/pg_load.sh   # quick smoke run
#
# Knobs (environment):
#   ROWS=1000000     rows of bench/data/orders_$ROWS.csv (made by gen_orders.py if missing)
#   SEED=42          generator seed
#   REPS=3           runs per task; the summary shows the median (by wall time)
#   BUILD=1          0: skip `cargo build --release -p sluice`
#   SLUICE=path      use this binary (implies BUILD=0)
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   the server (trust or PGPASSWORD)
#   PGDB=sluice_bench_load  database created (if missing) and used; schemas bench_* are dropped per run
#
# What runs, each into an empty table created in the load's own transaction:
#   copy    psql: BEGIN; CREATE TABLE (LIKE the table Sluice made); \copy FROM the CSV; COMMIT
#   csv->pg   sluice extract bench --to wh   (files source, CSV, append)
#   delta->pg sluice extract lake --to wh    (the Delta table's Parquet files, read by a files source:
#             a single-commit Delta table made by `sluice extract bench` in the same project)
# Time and peak RSS come from /usr/bin/time -v (of the client: psql or sluice; the
# server's work is in the wall time). Output: one line per run, then a summary
# with rows/s, peak RSS and the ratio to `copy`. Exit 1 when a run fails or a
# table has the wrong row count.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; REPS="${REPS:-3}"; SEED="${SEED:-42}"; BUILD="${BUILD:-1}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
PGDB="${PGDB:-sluice_bench_load}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out/pg"
CSV="$DATA/orders_${ROWS}.csv"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"; LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/results-$STAMP.tsv"
mkdir -p "$DATA" "$LOGS"
say() { printf '%s\n' "$*" >&2; }

if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (BUILD=1, or SLUICE=path)"; exit 1; }
command -v psql >/dev/null || { say "psql is needed"; exit 1; }
[ -x /usr/bin/time ] || { say "/usr/bin/time (GNU time) is needed"; exit 1; }

if [ ! -s "$CSV" ]; then
  say "== generating $CSV"
  python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
fi
cat "$CSV" > /dev/null   # warm page cache

q() { psql -d "$PGDB" -v ON_ERROR_STOP=1 -Atqc "$1"; }
psql -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PGDB'" | grep -q 1 \
  || psql -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $PGDB"
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$PGDB"

# One project: the CSV source, a lake source over the Delta table's files, the PG destination.
P="$OUT/project"; rm -rf "$P"; mkdir -p "$P"
cat > "$P/sluice.yml" <<EOF
name: pgbench
sources:
  bench:
    type: files
    format: csv
    path: $CSV
    stream: orders
    write_mode: append
  lake:
    type: files
    format: parquet
    path: .sluice/lake/bench/orders/*.parquet
    stream: orders
    write_mode: append
destinations:
  wh:
    type: postgres
    url: \${WH_URL}
    schema: bench_sluice
EOF
printf 'WH_URL=%s\n' "$URL" > "$P/.env"
say "== making the Delta table (sluice extract bench)"
"$SLUICE" --project-dir "$P" -q --no-progress extract bench > "$LOGS/delta.log" 2>&1

printf 'task\trep\trows\trc\twall_s\tmax_rss_mb\tlog\n' > "$RESULTS"
FAILED=0
# timed TASK REP COUNT_SQL -- CMD...: run under /usr/bin/time -v, check the count.
timed() {
  local task="$1" rep="$2" count_sql="$3"; shift 4
  local log="$LOGS/${task//[^A-Za-z0-9]/_}_$rep.log" rc=0 n wall rss
  /usr/bin/time -v "$@" > "$log" 2>&1 || rc=$?
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')"
  rss="$(awk -F': ' '/Maximum resident set size/{printf "%.1f", $2/1024}' "$log")"
  n="$(q "$count_sql" 2>/dev/null || echo '?')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$task" "$rep" "$n" "$rc" "$wall" "$rss" "$log" >> "$RESULTS"
  local ok="ok"; if [ "$rc" != 0 ] || [ "$n" != "$ROWS" ]; then ok="FAILED rc=$rc rows=$n"; FAILED=1; tail -n 15 "$log" >&2; fi
  python3 -c 'import sys; t,r,w,m,ok=sys.argv[1:6]; rows=int(sys.argv[6]); print(f"  {t:10} #{r}  {rows/max(float(w),1e-3):>12,.0f} rows/s  {float(w):7.2f} s wall  peak RSS {float(m):7.1f} MB  {ok}")' \
    "$task" "$rep" "$wall" "$rss" "$ok" "$ROWS" >&2
}

say "== $("$SLUICE" --version); $ROWS rows from $CSV into $URL; $REPS rep(s)"
for rep in $(seq 1 "$REPS"); do
  # Sluice CSV -> PG: a fresh schema, fresh state (the project's store is reset).
  q "DROP SCHEMA IF EXISTS bench_sluice CASCADE"; rm -rf "$P/.sluice/sluice.db"*
  timed "csv->pg" "$rep" "SELECT count(*) FROM bench_sluice.orders" -- \
    "$SLUICE" --project-dir "$P" --json --no-progress extract bench --to wh
  # psql \copy into a table of the same columns, created in the same transaction.
  q "DROP SCHEMA IF EXISTS bench_copy CASCADE; CREATE SCHEMA bench_copy"
  cat > "$OUT/copy.sql" <<EOF
BEGIN;
CREATE TABLE bench_copy.orders (LIKE bench_sluice.orders);
\\copy bench_copy.orders FROM '$CSV' WITH (FORMAT csv, HEADER true)
COMMIT;
EOF
  timed "copy" "$rep" "SELECT count(*) FROM bench_copy.orders" -- \
    psql -d "$PGDB" -v ON_ERROR_STOP=1 -q -f "$OUT/copy.sql"
  # Delta -> PG.
  q "DROP SCHEMA IF EXISTS bench_sluice CASCADE"; rm -rf "$P/.sluice/sluice.db"*
  timed "delta->pg" "$rep" "SELECT count(*) FROM bench_sluice.orders" -- \
    "$SLUICE" --project-dir "$P" --json --no-progress extract lake --to wh
done

python3 - "$RESULTS" "$ROWS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
n = int(sys.argv[2])
def median_run(task):
    runs = sorted((r for r in rows if r["task"] == task and r["rc"] == "0"), key=lambda r: float(r["wall_s"]))
    return runs[len(runs) // 2] if runs else None
base = median_run("copy")
print(f"\n| task | wall s | rows/s | peak RSS MB | × COPY FROM |")
print("|---|---|---|---|---|")
for task in ["copy", "csv->pg", "delta->pg"]:
    r = median_run(task)
    if not r:
        print(f"| {task} | failed | | | |"); continue
    w = float(r["wall_s"])
    ratio = w / float(base["wall_s"]) if base else float("nan")
    print(f"| {task} | {w:.2f} | {n / w:,.0f} | {float(r['max_rss_mb']):.1f} | {ratio:.2f} |")
EOF
say "raw: $RESULTS"
exit "$FAILED"
