#!/usr/bin/env bash
# End-to-end benchmark of the release `sluice` binary on the `orders` CSV,
# with the peer tools (DuckDB, dlt, Sling) in the same run when installed.
#
#   bench/run.sh                          # 1M rows: CSV -> Delta, CSV -> Parquet (+ peers)
#   ROWS=100000 REPS=1 bench/run.sh       # quick
#   MEMCHECK=1 ROWS=10000000 bench/run.sh # peak RSS of CSV -> Delta on 10M rows (target < 300 MB)
#
# Knobs (environment):
#   ROWS=1000000      rows of bench/data/orders_$ROWS.csv (made by gen_orders.py if missing)
#   SEED=42           generator seed
#   REPS=3            runs per tool and task; the table shows the median run (by wall time)
#   BUILD=1           0: skip `cargo build --release -p sluice` (use the binary as it is)
#   SLUICE=path       use this binary instead of $CARGO_TARGET_DIR/release/sluice (implies BUILD=0)
#   PEERS=auto        0: skip the peers; auto: run them when the peers venv exists
#   PEERS_VENV=/tmp/peers-venv  SLING_VENV=/tmp/peers-venv-sling   (made by shared/bench/peers/setup.sh)
#   MEMCHECK=0        1: only Sluice, ROWS defaults to 10M, REPS to 1, checks peak RSS of
#                     CSV -> Delta against MEMCHECK_LIMIT_MB (300); exit 2 when above it
#   SLUICE_COMMIT_BYTES / SLUICE_COMMIT_SECONDS are passed through to sluice.
#
# Output: per-run lines, then a summary table and a markdown table (for
# bench/README.md).  Raw rows: bench/out/results-<utc stamp>.tsv; each
# command's output: bench/out/logs/.  Exit status: 1 if a Sluice run failed or
# wrote the wrong number of rows, 2 if MEMCHECK is over the limit.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
MEMCHECK="${MEMCHECK:-0}"
if [ "$MEMCHECK" = 1 ]; then
  ROWS="${ROWS:-10000000}"; REPS="${REPS:-1}"; PEERS="${PEERS:-0}"
else
  ROWS="${ROWS:-1000000}"; REPS="${REPS:-3}"; PEERS="${PEERS:-auto}"
fi
SEED="${SEED:-42}"
BUILD="${BUILD:-1}"
MEMCHECK_LIMIT_MB="${MEMCHECK_LIMIT_MB:-300}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
PEERS_VENV="${PEERS_VENV:-/tmp/peers-venv}"
SLING_VENV="${SLING_VENV:-/tmp/peers-venv-sling}"
PEERS_SETUP="$(cd "$ROOT/.." && pwd)/shared/bench/peers/setup.sh"

DATA="$BENCH_DIR/data"
OUT="$BENCH_DIR/out"
CSV="$DATA/orders_${ROWS}.csv"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"
RESULTS="$OUT/results-$STAMP.tsv"
mkdir -p "$DATA" "$OUT" "$LOGS"

say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- build
if [ -n "${SLUICE:-}" ]; then
  BUILD=0
else
  SLUICE="$CARGO_TARGET_DIR/release/sluice"
fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (run with BUILD=1)"; exit 1; }
SLUICE_VERSION="$("$SLUICE" --version)"

# ---------------------------------------------------------------- data
if [ ! -s "$CSV" ]; then
  say "== generating $CSV"
  python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
fi
CSV_BYTES="$(stat -c %s "$CSV")"
cat "$CSV" > /dev/null   # warm page cache: every tool starts from the same state

# ---------------------------------------------------------------- helpers
# A python that has pyarrow (to count parquet rows), if any.
PYARROW_PY=""
for py in "$PEERS_VENV/bin/python" python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import pyarrow' 2>/dev/null; then
    PYARROW_PY="$py"; break
  fi
done

printf 'tool\ttask\tkind\trep\trows\trows_out\trc\twall_s\tuser_s\tsys_s\tmax_rss_mb\ttree_rss_mb\tout_mb\tload_before\tload_after\tlog\n' > "$RESULTS"

# sluice_project DIR: a throwaway project loading the CSV (append mode; a fresh
# folder per run, so every run loads every row into an empty lake/folder).
sluice_project() {
  rm -rf "$1"; mkdir -p "$1"
  cat > "$1/sluice.yml" <<EOF
name: bench
sources:
  bench:
    type: files
    format: csv
    path: $CSV
    stream: orders
    write_mode: append
destinations:
  parquet:
    type: parquet
    path: export
EOF
}

count_parquet() { # DIR_OR_FILE -> row count on stdout
  if [ -n "$PYARROW_PY" ]; then
    "$PYARROW_PY" - "$1" <<'EOF'
import glob, os, sys
import pyarrow.parquet as pq
p = sys.argv[1]
files = sorted(glob.glob(os.path.join(p, "**", "*.parquet"), recursive=True)) if os.path.isdir(p) else [p]
print(sum(pq.ParquetFile(f).metadata.num_rows for f in files))
EOF
  else
    # No pyarrow: read the files back with sluice itself into a scratch lake.
    local v="$OUT/verify"; rm -rf "$v"; mkdir -p "$v"
    printf 'sources:\n  check:\n    type: files\n    format: parquet\n    path: "%s/**/*.parquet"\n    stream: rows\n' "$1" > "$v/sluice.yml"
    "$SLUICE" --project-dir "$v" -q --no-progress run >/dev/null
    "$SLUICE" --project-dir "$v" sql "SELECT count(*) AS n FROM check.rows" --format csv | tail -n 1
    rm -rf "$v"
  fi
}

count_lake() { # PROJECT_DIR
  "$SLUICE" --project-dir "$1" sql "SELECT count(*) AS n FROM bench.orders" --format csv | tail -n 1
}

FAILED=0
# run_one TOOL TASK KIND REP OUTPATH VERIFY_FN -- CMD...   (VERIFY_FN gets OUTPATH)
run_one() {
  local tool="$1" task="$2" kind="$3" rep="$4" outpath="$5" verify="$6"; shift 7
  local log="$LOGS/$(printf '%s_%s_%s' "$tool" "$task" "$rep" | tr -c 'A-Za-z0-9_\n' '_').log"
  local m rc rows_out out_mb
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(jq_ "$m" rc)"
  rows_out="?"
  if [ "$rc" = 0 ]; then
    rows_out="$($verify "$outpath" 2>>"$log" || echo '?')"
  fi
  out_mb="$(du -sm "$outpath" 2>/dev/null | cut -f1 || echo '')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$tool" "$task" "$kind" "$rep" "$ROWS" "$rows_out" "$rc" \
    "$(jq_ "$m" wall_s)" "$(jq_ "$m" user_s)" "$(jq_ "$m" sys_s)" \
    "$(jq_ "$m" max_rss_mb)" "$(jq_ "$m" tree_rss_mb)" "$out_mb" \
    "$(jq_ "$m" load_before)" "$(jq_ "$m" load_after)" "$log" >> "$RESULTS"
  python3 - "$m" "$tool" "$task" "$rep" "$ROWS" "$rows_out" <<'EOF' >&2
import json, sys
m = json.loads(sys.argv[1]); tool, task, rep, rows, out = sys.argv[2:7]
rss = max(m["max_rss_mb"], m["tree_rss_mb"])
ok = "ok" if m["rc"] == 0 and out == rows else f"FAILED rc={m['rc']} rows_out={out}"
print(f"  {tool:8} {task:28} #{rep}  {int(rows) / max(m['wall_s'], 1e-3):>12,.0f} rows/s  {m['wall_s']:7.2f} s wall"
      f"  {m['user_s'] + m['sys_s']:6.2f} s cpu  peak RSS {rss:7.1f} MB  load {m['load_before']}  {ok}")
EOF
  if [ "$rc" != 0 ] || [ "$rows_out" != "$ROWS" ]; then
    say "    log: $log"; tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}
jq_() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------- runs
# Each rep runs every tool once, back to back, so drift in machine load hits
# all tools alike.
HAVE_PEERS=0; PEER_NOTE=""; SLING_BIN=""; HAVE_DLT=0
if [ "$PEERS" != 0 ] && [ -x "$PEERS_VENV/bin/python" ]; then
  HAVE_PEERS=1
  PY="$PEERS_VENV/bin/python"
  export RUNTIME__DLTHUB_TELEMETRY=false RUNTIME__LOG_LEVEL=WARNING DO_NOT_TRACK=1 SLING_DISABLE_TELEMETRY=true
  count_duckdb() { "$PY" -c 'import duckdb,sys; print(duckdb.connect(sys.argv[1], read_only=True).execute("select count(*) from orders").fetchone()[0])' "$1"; }
  SLING_BIN="$(ls "$SLING_VENV"/lib/python3*/site-packages/sling_linux_amd64/bin/sling-linux-amd64 2>/dev/null | head -n 1 || true)"
  "$PY" -c 'import dlt' 2>/dev/null && HAVE_DLT=1
  PEER_NOTE="$("$PY" -c 'import duckdb; print("duckdb", duckdb.__version__)' 2>/dev/null || echo 'duckdb missing')"
  [ "$HAVE_DLT" = 1 ] && PEER_NOTE="$PEER_NOTE, $("$PY" -c 'import dlt; print("dlt", dlt.__version__)')"
  [ -n "$SLING_BIN" ] && PEER_NOTE="$PEER_NOTE, sling $("$SLING_BIN" --version 2>/dev/null | awk '/Version/{print $2}')"
fi

say "== $SLUICE_VERSION; $ROWS rows ($CSV_BYTES bytes) from $CSV; $REPS rep(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$HAVE_PEERS" = 1 ] && say "== peers: $PEER_NOTE"
for rep in $(seq 1 "$REPS"); do
  P="$OUT/sluice-delta"; sluice_project "$P"
  run_one sluice "csv->delta (sluice run)" table "$rep" "$P" count_lake -- \
    "$SLUICE" --project-dir "$P" --json --no-progress run
  # the parquet run gets its own project (fresh state); the last rep's outputs stay for inspection
  P="$OUT/sluice-parquet"; sluice_project "$P"
  run_one sluice "csv->parquet (extract --to)" parquet "$rep" "$P/export" count_parquet -- \
    "$SLUICE" --project-dir "$P" --json --no-progress extract bench --to parquet
  [ "$HAVE_PEERS" = 1 ] || continue
  D="$OUT/peers/duckdb"; rm -rf "$D"; mkdir -p "$D"
  run_one duckdb "csv->parquet (COPY TO)" parquet "$rep" "$D/orders.parquet" count_parquet -- \
    "$PY" -c "import duckdb; duckdb.connect().execute(\"COPY (SELECT * FROM read_csv('$CSV')) TO '$D/orders.parquet' (FORMAT parquet)\")"
  run_one duckdb "csv->duckdb table" table "$rep" "$D/orders.duckdb" count_duckdb -- \
    "$PY" -c "import duckdb; duckdb.connect('$D/orders.duckdb').execute(\"CREATE OR REPLACE TABLE orders AS SELECT * FROM read_csv('$CSV')\")"
  if [ "$HAVE_DLT" = 1 ]; then
    L="$OUT/peers/dlt"; rm -rf "$L"; mkdir -p "$L"
    run_one dlt "csv->parquet (arrow path)" parquet "$rep" "$L/fs/bench/orders" count_parquet -- \
      "$PY" "$BENCH_DIR/peer_dlt.py" --csv "$CSV" --out "$L"
  fi
  if [ -n "$SLING_BIN" ]; then
    S="$OUT/peers/sling"; rm -rf "$S"; mkdir -p "$S"
    run_one sling "csv->parquet (native writer)" parquet "$rep" "$S/orders.parquet" count_parquet -- \
      env SLING_DUCKDB_COMPUTE=false "$SLING_BIN" run --src-stream "file://$CSV" --tgt-object "file://$S/orders.parquet"
  fi
done

if [ "$HAVE_PEERS" = 1 ]; then
  # Untimed: do all outputs hold the same values?  (Sluice's lake table is read
  # from its parquet files directly: valid for a fresh table with one commit.)
  say "== content check (DuckDB over each output: count, sums, hash of notes, time range)"
  "$PY" - "$OUT/sluice-parquet/export/bench/orders/*.parquet" "$OUT/sluice-delta/.sluice/lake/bench/orders/*.parquet" \
    "$OUT/peers/duckdb/orders.parquet" "$OUT/peers/dlt/fs/bench/orders/*.parquet" "$OUT/peers/sling/orders.parquet" <<'EOF' >&2 || true
import glob, sys, duckdb
con = duckdb.connect()
# '' and NULL notes are compared as equal; how many '' there are is shown apart.
q = ("select count(*), sum(id), sum(customer_id), round(sum(amount::double), 2), sum(quantity), "
     "count(nullif(note, '')), sum(hash(nullif(note, ''))), sum(hash(status)), min(order_ts), "
     "max(updated_at), sum(epoch(updated_at) - epoch(order_ts)), count(*) filter (where note = '') "
     "from read_parquet(?)")
prints = {}
for pattern in sys.argv[1:]:
    files = sorted(glob.glob(pattern))
    if files:
        prints[pattern] = con.execute(q, [files]).fetchone()
ref = next(iter(prints.values()), (None,))[:-1]
for pattern, fp in prints.items():
    same = fp[:-1] == ref
    empty = f"  (empty notes stored as '' not NULL: {fp[-1]})" if fp[-1] else ""
    print(f"  {'same' if same else 'DIFFERENT'}  {pattern.split('/bench/out/')[-1]}{empty}")
    if not same:
        print(f"      {fp[:-1]}\n   vs {ref}")
EOF
elif [ "$PEERS" = 0 ]; then
  say "== peers skipped (PEERS=0)"
else
  say "== peers skipped: no $PEERS_VENV/bin/python. To compare with DuckDB, dlt and Sling in the same run:"
  say "   bash $PEERS_SETUP   (or just: python3 -m venv $PEERS_VENV && $PEERS_VENV/bin/pip install 'dlt[duckdb,parquet]==1.31.0' duckdb==2.0.0 pyarrow==26.0.1;"
  say "   python3 -m venv $SLING_VENV && $SLING_VENV/bin/pip install sling-linux-amd64==1.4.11), then re-run bench/run.sh"
fi

# ---------------------------------------------------------------- report
REPORT_RC=0
python3 - "$RESULTS" "$SLUICE_VERSION" "$PEER_NOTE" "$CSV_BYTES" "$MEMCHECK" "$MEMCHECK_LIMIT_MB" <<'EOF' || REPORT_RC=$?
import csv, os, statistics, sys
path, version, peers, csv_bytes, memcheck, limit = sys.argv[1:7]
rows = list(csv.DictReader(open(path), delimiter="\t"))
if not rows:
    sys.exit(0)
n = int(rows[0]["rows"])
for r in rows:
    for k in ("wall_s", "user_s", "sys_s", "max_rss_mb", "tree_rss_mb"):
        r[k] = float(r[k])
    r["rss"] = max(r["max_rss_mb"], r["tree_rss_mb"])
    r["ok"] = r["rc"] == "0" and r["rows_out"] == r["rows"]
groups = {}
for r in rows:
    groups.setdefault((r["tool"], r["task"], r["kind"]), []).append(r)
summary = []
for (tool, task, kind), runs in groups.items():
    good = sorted((r for r in runs if r["ok"]), key=lambda r: r["wall_s"])
    med = good[(len(good) - 1) // 2] if good else None
    summary.append((tool, task, kind, med, runs))
base = {kind: med for tool, task, kind, med, _ in summary if tool == "sluice" and med}
loads = [float(r["load_before"].split()[0]) for r in rows] + [float(r["load_after"].split()[0]) for r in rows]
cpu = ""
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass

def fmt_row(tool, task, kind, med, runs):
    if not med:
        bad = runs[-1]
        return [tool, task, "FAILED", "", "", "", "", f"rc={bad['rc']} rows_out={bad['rows_out']}"]
    b = base.get(kind)
    ratio = f"{med['wall_s'] / b['wall_s']:.2f}" if b else ""
    walls = sorted(r["wall_s"] for r in runs if r["ok"])
    spread = f"{walls[0]:.2f}–{walls[-1]:.2f}" if len(walls) > 1 else ""
    return [tool, task, f"{n / med['wall_s']:,.0f}", f"{med['wall_s']:.2f}",
            f"{med['user_s'] + med['sys_s']:.2f}", f"{med['rss']:.0f}", ratio, spread]

head = ["tool", "task", "rows/s", "wall s", "CPU s", "peak RSS MB", "ratio vs sluice", "wall range"]
table = [fmt_row(*s) for s in summary]
print()
print(f"{version}; {n:,} rows, {int(csv_bytes) / 2**20:.1f} MiB CSV; {os.cpu_count()} cores ({cpu}); "
      f"1-min load {min(loads):.2f}–{max(loads):.2f} during the runs; median of {max(len(s[4]) for s in summary)} run(s)")
if peers:
    print(f"peers: {peers}")
print("ratio vs sluice = tool's wall ÷ Sluice's wall on the same kind of task "
      "(parquet file(s) / queryable table); > 1: Sluice was faster")
print()
print("| " + " | ".join(head) + " |")
print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
for t in table:
    print("| " + " | ".join(t) + " |")
print(f"\nraw runs: {path}")
rc = 0
if memcheck == "1":
    delta = [r for r in rows if r["tool"] == "sluice" and r["kind"] == "table"]
    peak = max(r["rss"] for r in delta)
    verdict = "PASS" if peak < float(limit) and all(r["ok"] for r in delta) else "FAIL"
    print(f"MEMCHECK {verdict}: CSV -> Delta on {n:,} rows peaked at {peak:.0f} MB RSS "
          f"(target < {limit} MB; SLUICE_COMMIT_BYTES={os.environ.get('SLUICE_COMMIT_BYTES', 'default')})")
    rc = 0 if verdict == "PASS" else 2
sys.exit(rc)
EOF
[ "$FAILED" = 0 ] || { say "a Sluice run failed or wrote the wrong row count (see above)"; exit 1; }
exit "$REPORT_RC"
