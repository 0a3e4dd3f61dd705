#!/usr/bin/env bash
# MySQL/MariaDB -> Delta with the release `sluice` binary, next to the floor:
# the `mysql` client streaming the same table to /dev/null (`--quick`, no types).
#
#   bench/mysql.sh                    # 1M rows, 3 reps
#   ROWS=100000 REPS=1 bench/mysql.sh
#
# Knobs: ROWS, SEED, REPS, SLUICE (default $CARGO_TARGET_DIR/release/sluice; no
# build here, see bench/run.sh), MYSQL_URL=mysql://root@127.0.0.1:3306.  The
# script creates and drops database sluice_bench.  Output: one line per run and
# a markdown table.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
ROWS="${ROWS:-1000000}"; SEED="${SEED:-42}"; REPS="${REPS:-3}"
SLUICE="${SLUICE:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/release/sluice}"
MYSQL_URL="${MYSQL_URL:-mysql://root@127.0.0.1:3306}"
DB=sluice_bench
CSV="$BENCH_DIR/data/orders_${ROWS}.csv"
OUT="$BENCH_DIR/out"; LOGS="$OUT/logs/mysql-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$LOGS" "$BENCH_DIR/data"
[ -x "$SLUICE" ] || { echo "no sluice binary at $SLUICE (cargo build --release -p sluice)" >&2; exit 1; }
"$ROOT/scripts/services.sh" >/dev/null
[ -s "$CSV" ] || python3 "$BENCH_DIR/gen_orders.py" --rows "$ROWS" --seed "$SEED" --out "$CSV"
my() { mysql -h 127.0.0.1 -P 3306 -u root --local-infile=1 "$@"; }
my -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
my "$DB" -e "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL,
  order_ts DATETIME(6) NOT NULL, status VARCHAR(20) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  quantity INT NOT NULL, note TEXT, updated_at DATETIME(6) NOT NULL);
  LOAD DATA LOCAL INFILE '$CSV' INTO TABLE orders CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\n' IGNORE 1 LINES
  (id, customer_id, @ots, status, amount, quantity, note, @uat)
  SET order_ts = STR_TO_DATE(REPLACE(REPLACE(@ots, 'T', ' '), 'Z', ''), '%Y-%m-%d %H:%i:%s.%f'),
      updated_at = STR_TO_DATE(REPLACE(REPLACE(@uat, 'T', ' '), 'Z', ''), '%Y-%m-%d %H:%i:%s.%f');"
echo "rows in MariaDB: $(my -N "$DB" -e 'SELECT count(*) FROM orders')" >&2
RES="$LOGS/results.tsv"; : > "$RES"
for rep in $(seq 1 "$REPS"); do
  m="$(python3 "$BENCH_DIR/measure.py" --log "$LOGS/mysql_$rep.log" -- \
    bash -c "mysql -h 127.0.0.1 -u root --quick -N $DB -e 'SELECT * FROM orders' > /dev/null")"
  echo -e "mysql\tmysql --quick > /dev/null\t$m" >> "$RES"
  P="$OUT/mysql-extract"; rm -rf "$P"; mkdir -p "$P"
  printf 'sources:\n  bench:\n    type: mysql\n    url: %s/%s\n    include: [orders]\n' "$MYSQL_URL" "$DB" > "$P/sluice.yml"
  m="$(python3 "$BENCH_DIR/measure.py" --log "$LOGS/sluice_$rep.log" -- "$SLUICE" --project-dir "$P" --json --no-progress run)"
  n="$("$SLUICE" --project-dir "$P" sql 'SELECT count(*) FROM bench.orders' --format csv | tail -n 1)"
  [ "$n" = "$ROWS" ] || { echo "sluice wrote $n rows, expected $ROWS" >&2; exit 1; }
  echo -e "sluice\tmysql->delta (sluice run)\t$m" >> "$RES"
done
my -e "DROP DATABASE $DB"
python3 - "$RES" "$ROWS" "$("$SLUICE" --version)" "$(my -N -e 'SELECT version()')" <<'PY'
import json, sys
path, rows, version, server = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {}
for line in open(path):
    tool, task, m = line.rstrip("\n").split("\t")
    runs.setdefault((tool, task), []).append(json.loads(m))
med = {k: sorted(v, key=lambda m: m["wall_s"])[(len(v) - 1) // 2] for k, v in runs.items()}
floor = med[("mysql", "mysql --quick > /dev/null")]["wall_s"]
print(f"\n{version}; MariaDB {server}; {rows:,} rows; median of {len(next(iter(runs.values())))} run(s)\n")
print("| tool | task | rows/s | wall s | CPU s | peak RSS MB | ratio vs mysql --quick |")
print("|---|---|---:|---:|---:|---:|---:|")
for (tool, task), m in med.items():
    print(f"| {tool} | {task} | {rows / m['wall_s']:,.0f} | {m['wall_s']:.2f} | {m['user_s'] + m['sys_s']:.2f} | "
          f"{max(m['max_rss_mb'], m['tree_rss_mb']):.0f} | {m['wall_s'] / floor:.2f} |")
PY
