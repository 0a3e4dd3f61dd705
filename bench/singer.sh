#!/usr/bin/env bash
# Singer: a real tap from PyPI (tap-csv-folder) run by Sluice into the lake,
# against the same tap writing to /dev/null (the floor: the tap alone) and
# piped into target-jsonl (the usual Singer pipe). Then Sluice's own message
# reader: a recorded stream of RECORD messages piped into
# `sluice singer target lake`, against `cat` of the same file. And Sluice as
# a tap: `sluice singer tap` of the same CSV, alone and into target-jsonl.
#
#   bench/singer.sh                           # 200k tap rows, 1M messages, 3 reps
#   ROWS=20000 MSGS=200000 REPS=1 bench/singer.sh   # quick
#   BUILD=0 bench/singer.sh                   # use the release binary as it is
#
# Knobs: ROWS=200000 (rows through the tap)  MSGS=1000000 (recorded messages)
#        REPS=3  SEED=42  BUILD=1  SLUICE=path (implies BUILD=0)
#        SINGER_VENVS=bench/out/singer-venvs (one venv per plugin, made when missing)
# Data: bench/data/orders_$ROWS.csv (gen_orders.py); bench/data/records_$MSGS.jsonl.
# Output: one line per run, then a markdown table; raw rows in
# bench/out/singer-<utc>.tsv, logs in bench/out/logs/<utc>/. Exit 1 if a
# Sluice run failed or lost rows.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-200000}"; MSGS="${MSGS:-1000000}"; SEED="${SEED:-42}"; REPS="${REPS:-3}"
BUILD="${BUILD:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
DATA="$BENCH_DIR/data"; OUT="$BENCH_DIR/out"
VENVS="${SINGER_VENVS:-$OUT/singer-venvs}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/singer-$STAMP.tsv"
mkdir -p "$DATA" "$OUT" "$LOGS"
say() { printf '%s\n' "$*" >&2; }

if [ -n "${SLUICE:-}" ]; then BUILD=0; else SLUICE="$CARGO_TARGET_DIR/release/sluice"; fi
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p sluice"
  (cd "$ROOT" && cargo build --release -p sluice)
fi
[ -x "$SLUICE" ] || { say "no sluice binary at $SLUICE (BUILD=1, or SLUICE=path)"; exit 1; }

# ---------------------------------------------------------------- plugins
plugin() { # NAME SPEC
  if [ ! -x "$VENVS/$1/bin/$1" ]; then
    say "== installing $2 into $VENVS/$1"
    python3 -m venv "$VENVS/$1"
    "$VENVS/$1/bin/pip" install -q --disable-pip-version-check "$2"
  fi
}
plugin tap-csv-folder "tap-csv-folder==0.0.1a1"
plugin target-jsonl "target-jsonl==0.1.4"
TAP="$VENVS/tap-csv-folder/bin/tap-csv-folder"
TARGET_JSONL="$VENVS/target-jsonl/bin/target-jsonl"

# ---------------------------------------------------------------- data
CSV="$DATA/orders_${ROWS}.csv"
[ -s "$CSV" ] || python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
FOLDER="$DATA/singer_$ROWS"; mkdir -p "$FOLDER"; ln -sf "$CSV" "$FOLDER/orders.csv"
MSG_FILE="$DATA/records_${MSGS}.jsonl"
if [ ! -s "$MSG_FILE" ]; then
  say "== recording $MSGS RECORD messages in $MSG_FILE"
  python3 - "$MSGS" "$MSG_FILE.tmp" <<'EOF'
import json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
schema = {"type": "object", "properties": {
    "id": {"type": "integer"}, "customer_id": {"type": "integer"},
    "status": {"type": "string"}, "amount": {"type": ["number", "null"]},
    "quantity": {"type": "integer"}, "updated_at": {"type": "string", "format": "date-time"}}}
with open(path, "w") as f:
    f.write(json.dumps({"type": "SCHEMA", "stream": "orders", "schema": schema, "key_properties": ["id"]}) + "\n")
    statuses = ["new", "paid", "shipped", "cancelled"]
    for i in range(1, n + 1):
        rec = {"id": i, "customer_id": rnd.randrange(1, 50000), "status": statuses[i % 4],
               "amount": round(rnd.random() * 500, 2), "quantity": rnd.randrange(1, 9),
               "updated_at": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"}
        f.write(json.dumps({"type": "RECORD", "stream": "orders", "record": rec,
                            "time_extracted": "2024-06-01T00:00:00Z"}) + "\n")
        if i % 100000 == 0:
            f.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"orders": {"id": i}}}}) + "\n")
EOF
  mv "$MSG_FILE.tmp" "$MSG_FILE"
fi
cat "$CSV" "$MSG_FILE" > /dev/null   # warm the page cache

W="$OUT/singer"; rm -rf "$W"; mkdir -p "$W"
printf '{"filesystem": "local", "path": "%s", "read_mode": "merge", "stream_name": "orders"}\n' "$FOLDER" > "$W/tap.json"
printf '{"destination_path": "%s/jsonl", "do_timestamp_file": false}\n' "$W" > "$W/target-jsonl.json"
printf '{"type": "lake", "url": "%s/target-lake"}\n' "$W" > "$W/target-lake.json"
printf '{"type": "files", "path": "%s", "stream": "orders"}\n' "$CSV" > "$W/files-tap.json"

project() { # DIR WRITE_MODE
  rm -rf "$1"; mkdir -p "$1"
  printf 'sources:\n  csvtap:\n    type: singer\n    plugin: tap-csv-folder\n    executable: %s\n    config: {filesystem: local, path: "%s", read_mode: merge, stream_name: orders}\n    write_mode: %s\n' \
    "$TAP" "$FOLDER" "$2" > "$1/sluice.yml"
}
# The target runs write here; a sluice.yml pointing at their lake lets the
# row counts be read back.
printf 'lake:\n  url: target-lake\n' > "$W/sluice.yml"

# ---------------------------------------------------------------- runs
printf 'tool\ttask\trep\trows\trows_out\trc\twall_s\tuser_s\tsys_s\tmax_rss_mb\tlog\n' > "$RESULTS"
jq_() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
count_lines() { cat "$1"/*.jsonl 2>/dev/null | wc -l | tr -d ' '; }
count_lake() { "$SLUICE" --project-dir "$1" sql "SELECT count(*) AS n FROM $2" --format csv | tail -n 1; }
FAILED=0
run_one() { # TOOL TASK REP ROWS VERIFY_CMD -- CMD...
  local tool="$1" task="$2" rep="$3" rows="$4" verify="$5"; shift 6
  local log="$LOGS/$(printf '%s_%s_%s' "$tool" "$task" "$rep" | tr -c 'A-Za-z0-9_\n' '_').log"
  local m rc rows_out="?"
  m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- "$@")"
  rc="$(jq_ "$m" rc)"
  if [ "$rc" = 0 ]; then
    if [ "$verify" = "-" ]; then rows_out="$rows"; else rows_out="$(eval "$verify" 2>>"$log" || echo '?')"; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$task" "$rep" "$rows" "$rows_out" "$rc" \
    "$(jq_ "$m" wall_s)" "$(jq_ "$m" user_s)" "$(jq_ "$m" sys_s)" \
    "$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(max(m["max_rss_mb"], m["tree_rss_mb"]))' "$m")" "$log" >> "$RESULTS"
  python3 - "$m" "$tool" "$task" "$rep" "$rows" "$rows_out" <<'EOF' >&2
import json, sys
m = json.loads(sys.argv[1]); tool, task, rep, rows, out = sys.argv[2:7]
ok = "ok" if m["rc"] == 0 and out == rows else f"FAILED rc={m['rc']} rows_out={out}"
print(f"  {tool:7} {task:40} #{rep} {int(rows) / max(m['wall_s'], 1e-3):>12,.0f} rows/s {m['wall_s']:7.2f} s wall "
      f"{m['user_s'] + m['sys_s']:6.2f} s cpu  peak RSS {max(m['max_rss_mb'], m['tree_rss_mb']):7.1f} MB  {ok}")
EOF
  if [ "$rc" != 0 ] || [ "$rows_out" != "$rows" ]; then
    say "    log: $log"; tail -n 15 "$log" >&2 || true
    [ "$tool" = sluice ] && FAILED=1
  fi
  return 0
}

say "== $("$SLUICE" --version); $ROWS tap rows, $MSGS recorded messages; $REPS rep(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPS"); do
  run_one singer "tap-csv-folder > /dev/null" "$rep" "$ROWS" - -- \
    sh -c '"$1" --config "$2" > /dev/null' _ "$TAP" "$W/tap.json"
  for mode in append merge; do
    P="$OUT/sluice-singer-$mode"; project "$P" "$mode"
    "$SLUICE" --project-dir "$P" -q discover csvtap > /dev/null   # discovery cached, as on every later run
    run_one sluice "tap-csv-folder -> lake ($mode)" "$rep" "$ROWS" "count_lake $P csvtap.orders" -- \
      "$SLUICE" --project-dir "$P" --json --no-progress run
  done
  rm -rf "$W/jsonl"; mkdir -p "$W/jsonl"
  run_one singer "tap-csv-folder | target-jsonl" "$rep" "$ROWS" "count_lines $W/jsonl" -- \
    bash -o pipefail -c '"$1" --config "$2" | "$3" --config "$4" > /dev/null' _ "$TAP" "$W/tap.json" "$TARGET_JSONL" "$W/target-jsonl.json"
  rm -rf "$W/target-lake"
  run_one sluice "tap-csv-folder | sluice singer target" "$rep" "$ROWS" "count_lake $W singer.orders" -- \
    bash -o pipefail -c 'cd "$5" && "$1" --config "$2" | "$3" -q singer target lake --config "$4" > /dev/null' _ "$TAP" "$W/tap.json" "$SLUICE" "$W/target-lake.json" "$W"
  run_one sluice "sluice singer tap (CSV) > /dev/null" "$rep" "$ROWS" - -- \
    sh -c '"$1" singer tap files --config "$2" > /dev/null' _ "$SLUICE" "$W/files-tap.json"
  rm -rf "$W/jsonl"; mkdir -p "$W/jsonl"
  run_one singer "sluice singer tap (CSV) | target-jsonl" "$rep" "$ROWS" "count_lines $W/jsonl" -- \
    bash -o pipefail -c '"$1" singer tap files --config "$2" | "$3" --config "$4" > /dev/null' _ "$SLUICE" "$W/files-tap.json" "$TARGET_JSONL" "$W/target-jsonl.json"
  run_one floor "cat $MSGS messages > /dev/null" "$rep" "$MSGS" - -- \
    sh -c 'cat "$1" > /dev/null' _ "$MSG_FILE"
  rm -rf "$W/target-lake"
  run_one sluice "$MSGS messages | sluice singer target" "$rep" "$MSGS" "count_lake $W singer.orders" -- \
    sh -c 'cd "$4" && "$1" -q singer target lake --config "$2" < "$3" > /dev/null' _ "$SLUICE" "$W/target-lake.json" "$MSG_FILE" "$W"
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$("$SLUICE" --version)" <<'EOF'
import csv, os, sys
path, version = sys.argv[1:3]
rows = list(csv.DictReader(open(path), delimiter="\t"))
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
floor = med.get(("singer", "tap-csv-folder > /dev/null"))
print(f"\n{version}; {os.cpu_count()} cores; median of {max(len(v) for v in groups.values())} run(s)")
print("ratio = wall ÷ `tap-csv-folder > /dev/null` wall (the tap alone) for the tap rows\n")
print("| tool | task | rows | rows/s | wall s | CPU s | peak RSS MB | ratio vs tap alone |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (tool, task), m in med.items():
    if not m:
        print(f"| {tool} | {task} | | FAILED | | | | |")
        continue
    n = int(m["rows"])
    ratio = f"{m['wall_s'] / floor['wall_s']:.2f}" if floor and int(m["rows"]) == int(floor["rows"]) else ""
    print(f"| {tool} | {task} | {n:,} | {n / m['wall_s']:,.0f} | {m['wall_s']:.2f} | {m['user_s'] + m['sys_s']:.2f} | {m['max_rss_mb']:.0f} | {ratio} |")
print(f"\nraw runs: {path}")
EOF
[ "$FAILED" = 0 ] || { say "a Sluice run failed or wrote the wrong row count (see above)"; exit 1; }
