#!/usr/bin/env bash
# PostgreSQL benchmarks of the release `sluice` binary, with the floors and
# peers in the same run:
#
#   extract: public.orders (1M rows) -> Delta   vs  psql COPY TO STDOUT (binary and csv, to /dev/null),
#            dlt sql_database (connectorx, pyarrow) -> parquet, Sling -> parquet
#   load:    the orders CSV -> PostgreSQL        vs  psql \copy FROM into the same table definition:
#            a Delta table -> PostgreSQL             append (no key) vs a table without a key,
#                                                    merge (primary key, upsert) vs one with it
#            (Sluice has no Delta source yet: a files source reads the Parquet files of
#            the single-commit Delta table the extract made)
#
#   bench/pg.sh                      # 1M rows, 3 reps
#   ROWS=100000 REPS=1 bench/pg.sh   # quick
#
# Knobs: ROWS, SEED, REPS, BUILD, SLUICE, PEERS, PEERS_VENV, SLING_VENV as in
# bench/run.sh; PGURL=postgres://postgres@127.0.0.1:5432 (a superuser: the
# script creates and drops database sluice_bench).  Peers need the venvs of
# ../shared/bench/peers/setup.sh.
#
# Output: per-run lines, a summary table and a markdown table; raw rows in
# bench/out/pg-results-<stamp>.tsv.  Exit 1 if a Sluice run failed or wrote
# the wrong number of rows.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; SEED="${SEED:-42}"; REPS="${REPS:-3}"; BUILD="${BUILD:-1}"; PEERS="${PEERS:-auto}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
PEERS_VENV="${PEERS_VENV:-/tmp/peers-venv}"
SLING_VENV="${SLING_VENV:-/tmp/peers-venv-sling}"
PGURL="${PGURL:-postgres://postgres@127.0.0.1:5432}"
DB=sluice_bench
DBURL="$PGURL/$DB"

DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out"
CSV="$DATA/orders_${ROWS}.csv"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/pg-$STAMP"; RESULTS="$OUT/pg-results-$STAMP.tsv"
mkdir -p "$DATA" "$OUT" "$LOGS"
say() { printf '%s\n' "$*" >&2; }

if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (run with BUILD=1)"; exit 1; }
SLUICE_VERSION="$("$SLUICE" --version)"
"$ROOT/scripts/services.sh" >/dev/null

if [ ! -s "$CSV" ]; then
  say "== generating $CSV"
  python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
fi
cat "$CSV" > /dev/null

psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
TABLE_DDL="(id bigint PRIMARY KEY, customer_id bigint NOT NULL, order_ts timestamptz NOT NULL,
  status text NOT NULL, amount numeric(12,2) NOT NULL, quantity integer NOT NULL,
  note text, updated_at timestamptz NOT NULL)"
psql_ -d "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PG_VERSION="$(psql -X -Atd "$DBURL" -c 'SHOW server_version')"

printf 'tool\ttask\tkind\trep\trows\trows_out\trc\twall_s\tuser_s\tsys_s\tmax_rss_mb\ttree_rss_mb\tload_before\tload_after\tlog\n' > "$RESULTS"
FAILED=0
jq_() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# run_one TOOL TASK KIND REP VERIFY_CMD -- CMD...   (VERIFY_CMD prints the rows written)
run_one() {
  local tool="$1" task="$2" kind="$3" rep="$4" verify="$5"; shift 6
  local log="$LOGS/$(printf '%s_%s_%s' "$tool" "$task" "$rep" | tr -c 'A-Za-z0-9_\n' '_').log"
  local m rc rows_out
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(jq_ "$m" rc)"; rows_out="?"
  if [ "$rc" = 0 ]; then rows_out="$(bash -c "$verify" 2>>"$log" || echo '?')"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$tool" "$task" "$kind" "$rep" "$ROWS" "$rows_out" "$rc" \
    "$(jq_ "$m" wall_s)" "$(jq_ "$m" user_s)" "$(jq_ "$m" sys_s)" \
    "$(jq_ "$m" max_rss_mb)" "$(jq_ "$m" tree_rss_mb)" \
    "$(jq_ "$m" load_before)" "$(jq_ "$m" load_after)" "$log" >> "$RESULTS"
  python3 - "$m" "$tool" "$task" "$rep" "$ROWS" "$rows_out" <<'EOF' >&2
import json, sys
m = json.loads(sys.argv[1]); tool, task, rep, rows, out = sys.argv[2:7]
rss = max(m["max_rss_mb"], m["tree_rss_mb"])
ok = "ok" if m["rc"] == 0 and out == rows else f"FAILED rc={m['rc']} rows_out={out}"
print(f"  {tool:8} {task:34} #{rep}  {int(rows) / max(m['wall_s'], 1e-3):>12,.0f} rows/s  {m['wall_s']:7.2f} s wall"
      f"  {m['user_s'] + m['sys_s']:6.2f} s cpu  peak RSS {rss:7.1f} MB  load {m['load_before']}  {ok}")
EOF
  if [ "$rc" != 0 ] || [ "$rows_out" != "$ROWS" ]; then
    say "    log: $log"; tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}
pg_count() { echo "psql -X -Atd '$DBURL' -c 'SELECT count(*) FROM $1'"; }

# Projects (fresh folder per run).
extract_project() { # DIR
  rm -rf "$1"; mkdir -p "$1"
  cat > "$1/sluice.yml" <<EOF
sources:
  bench:
    type: postgres
    url: $DBURL
    include: [public.orders]
EOF
}
load_project() { # DIR SCHEMA MODE: the CSV and the lake table of the extract, into PostgreSQL
  rm -rf "$1"; mkdir -p "$1"
  cat > "$1/sluice.yml" <<EOF
sources:
  csv:
    type: files
    format: csv
    path: $CSV
    stream: orders
    columns: { id: int64, customer_id: int64, order_ts: timestamptz, status: string, amount: 'decimal(12,2)', quantity: int32, note: string, updated_at: timestamptz }
    primary_key: [id]
    write_mode: $3
    destination: wh
  delta:
    type: files
    format: parquet
    path: "$OUT/pg-extract/.sluice/lake/bench/orders/*.parquet"
    stream: orders
    primary_key: [id]
    write_mode: $3
    destination: wh
destinations:
  wh:
    type: postgres
    url: $DBURL
    schema: $2
EOF
}

HAVE_PEERS=0; SLING_BIN=""
if [ "$PEERS" != 0 ] && [ -x "$PEERS_VENV/bin/python" ]; then
  HAVE_PEERS=1; PY="$PEERS_VENV/bin/python"
  export RUNTIME__DLTHUB_TELEMETRY=false RUNTIME__LOG_LEVEL=WARNING DO_NOT_TRACK=1 SLING_DISABLE_TELEMETRY=true
  SLING_BIN="$(ls "$SLING_VENV"/lib/python3*/site-packages/sling_linux_amd64/bin/sling-linux-amd64 2>/dev/null | head -n 1 || true)"
  PEERS_DIR="$(cd "$ROOT/.." && pwd)/shared/bench/peers"
fi
say "== $SLUICE_VERSION; PostgreSQL $PG_VERSION; $ROWS rows; $REPS rep(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPS"); do
  # -- load: the references (psql \copy FROM into the same definition without
  #    and with the primary key); the last one stays as the extract's table.
  psql_ -d "$DBURL" -c "DROP TABLE IF EXISTS public.orders_nokey" \
    -c "CREATE TABLE public.orders_nokey $(echo "$TABLE_DDL" | sed 's/ PRIMARY KEY//')"
  run_one postgres "csv->pg (psql \\copy FROM, no key)" load "$rep" "$(pg_count public.orders_nokey)" -- \
    psql -X -v ON_ERROR_STOP=1 -d "$DBURL" -c "\\copy public.orders_nokey FROM '$CSV' WITH (FORMAT csv, HEADER true)"
  psql_ -d "$DBURL" -c "DROP TABLE public.orders_nokey"
  psql_ -d "$DBURL" -c "DROP TABLE IF EXISTS public.orders" -c "CREATE TABLE public.orders $TABLE_DDL"
  run_one postgres "csv->pg (psql \\copy FROM, primary key)" load-key "$rep" "$(pg_count public.orders)" -- \
    psql -X -v ON_ERROR_STOP=1 -d "$DBURL" -c "\\copy public.orders FROM '$CSV' WITH (FORMAT csv, HEADER true)"
  psql_ -d "$DBURL" -c "VACUUM ANALYZE public.orders"

  # -- extract
  run_one postgres "pg->/dev/null (COPY TO binary)" extract "$rep" "echo $ROWS" -- \
    bash -c "psql -X -v ON_ERROR_STOP=1 -d '$DBURL' -c '\\copy public.orders TO STDOUT WITH (FORMAT binary)' > /dev/null"
  run_one postgres "pg->/dev/null (COPY TO csv)" extract "$rep" "echo $ROWS" -- \
    bash -c "psql -X -v ON_ERROR_STOP=1 -d '$DBURL' -c '\\copy public.orders TO STDOUT WITH (FORMAT csv)' > /dev/null"
  P="$OUT/pg-extract"; extract_project "$P"
  run_one sluice "pg->delta (sluice run)" extract "$rep" \
    "'$SLUICE' --project-dir '$P' sql 'SELECT count(*) FROM bench.orders' --format csv | tail -n 1" -- \
    "$SLUICE" --project-dir "$P" --json --no-progress run

  # -- load into PostgreSQL
  L="$OUT/pg-load"
  # append creates the table without a key (append does not enforce one);
  # merge creates it with the primary key and upserts through staging.
  for case in "csv append load" "delta append load" "csv merge load-key" "delta merge load-key"; do
    set -- $case; src="$1"; mode="$2"; kind="$3"
    schema="sluice_${src}_${mode}_$rep"
    load_project "$L" "$schema" "$mode"
    psql_ -d "$DBURL" -c "DROP SCHEMA IF EXISTS $schema CASCADE"
    run_one sluice "$src->pg $mode (sluice run)" "$kind" "$rep" "$(pg_count "$schema.orders")" -- \
      "$SLUICE" --project-dir "$L" --json --no-progress run -s "$src"
    psql_ -d "$DBURL" -c "DROP SCHEMA IF EXISTS $schema CASCADE"
  done

  [ "$HAVE_PEERS" = 1 ] || continue
  export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGPASSWORD=postgres PGDATABASE=$DB
  for b in connectorx pyarrow; do
    D="$OUT/peers/dlt-pg-$b"; rm -rf "$D"
    run_one dlt "pg->parquet (dlt $b)" extract "$rep" \
      "$PY -c \"import duckdb,glob; print(duckdb.connect().execute('select count(*) from read_parquet(?)', [glob.glob('$D/fs/bench/orders/*.parquet')]).fetchone()[0])\"" -- \
      "$PY" "$PEERS_DIR/dlt_pg.py" --backend "$b" --out "$D"
  done
  if [ -n "$SLING_BIN" ]; then
    S="$OUT/peers/sling-pg"; rm -rf "$S"; mkdir -p "$S"
    export SLING_PG="postgresql://postgres@127.0.0.1:5432/$DB?sslmode=disable"
    run_one sling "pg->parquet (sling)" extract "$rep" \
      "$PY -c \"import duckdb; print(duckdb.connect().execute(\\\"select count(*) from read_parquet('$S/orders.parquet')\\\").fetchone()[0])\"" -- \
      env SLING_DUCKDB_COMPUTE=false "$SLING_BIN" run --src-conn SLING_PG --src-stream public.orders --tgt-object "file://$S/orders.parquet"
  fi
done
psql_ -d "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"

python3 - "$RESULTS" "$SLUICE_VERSION" "PostgreSQL $PG_VERSION" <<'EOF'
import csv, os, sys
path, version, pg = sys.argv[1:4]
rows = list(csv.DictReader(open(path), delimiter="\t"))
n = int(rows[0]["rows"])
for r in rows:
    for k in ("wall_s", "user_s", "sys_s", "max_rss_mb", "tree_rss_mb"):
        r[k] = float(r[k])
    r["rss"] = max(r["max_rss_mb"], r["tree_rss_mb"])
    r["ok"] = r["rc"] == "0" and r["rows_out"] == r["rows"]
groups = {}
for r in rows:
    groups.setdefault((r["tool"], r["task"], r["kind"]), []).append(r)
med = {}
for key, runs in groups.items():
    good = sorted((r for r in runs if r["ok"]), key=lambda r: r["wall_s"])
    med[key] = good[(len(good) - 1) // 2] if good else None
# The reference of each kind: COPY TO (binary) for extracts, \copy FROM for loads.
ref = {
    "extract": med.get(("postgres", "pg->/dev/null (COPY TO binary)", "extract")),
    "load": med.get(("postgres", "csv->pg (psql \\copy FROM, no key)", "load")),
    "load-key": med.get(("postgres", "csv->pg (psql \\copy FROM, primary key)", "load-key")),
}
loads = [float(r["load_before"].split()[0]) for r in rows]
print(f"\n{version}; {pg}; {n:,} rows; median of {max(len(v) for v in groups.values())} run(s); "
      f"1-min load {min(loads):.2f}–{max(loads):.2f}")
print("ratio = wall ÷ the reference of its kind (extract: COPY TO STDOUT binary; load: psql \\copy FROM into the\n"
      "same table without a key (sluice append) or with the primary key (sluice merge))\n")
print("| tool | task | rows/s | wall s | CPU s | peak RSS MB | ratio |")
print("|---|---|---:|---:|---:|---:|---:|")
for (tool, task, kind), m in med.items():
    if not m:
        print(f"| {tool} | {task} | FAILED | | | | |")
        continue
    b = ref.get(kind)
    ratio = f"{m['wall_s'] / b['wall_s']:.2f}" if b else ""
    print(f"| {tool} | {task} | {n / m['wall_s']:,.0f} | {m['wall_s']:.2f} | {m['user_s'] + m['sys_s']:.2f} | {m['rss']:.0f} | {ratio} |")
print(f"\nraw runs: {path}")
EOF
[ "$FAILED" = 0 ] || { say "a Sluice run failed or wrote the wrong row count (see above)"; exit 1; }
