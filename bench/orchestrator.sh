#!/usr/bin/env bash
# Orchestration overhead: what planning, dispatching and recording cost per
# step when the steps do nothing, for Sluice's orchestrator and for Dagster.
#
#   bench/orchestrator.sh                    # 100 and 1000 steps, 20 reps (+ Dagster if installed)
#   PEERS=1 bench/orchestrator.sh            # install Dagster into $DAGSTER_VENV first
#   PEERS=0 STEPS="100" REPS=5 bench/orchestrator.sh   # quick, Sluice only
#
# What it does:
#   sluice   `cargo build --release -p sluice-orchestrator --example overhead`,
#            then `overhead --steps N --reps REPS --parallel PARALLEL --json`
#            for each N in STEPS: per rep AssetGraph::new + select + Plan::new,
#            then in a SQLite run store (Store::open in a temp dir, as the
#            binary's `Recorder` does) begin_run, a `pending` row per step,
#            execute() of no-op steps recording every start and finish
#            (record_step + append_event), finish_run. Per step = whole rep ÷ N.
#            Checked, untimed: every step succeeded and the store holds N
#            steps and 2N events for the run.
#   dagster  (when $DAGSTER_VENV/bin/dagster exists, or PEERS=1) the same
#            graph (`overhead --print-graph`) as DAGSTER_STEPS no-op @asset's
#            (bench/peer_dagster.py gen), DAGSTER_HOME a fresh temp dir with
#            telemetry off (SQLite storage), no webserver or daemon:
#            cli-multiprocess  `dagster asset materialize -f defs.py --select '*'`
#                              (Dagster's default executor: a process per step)
#            cli-inprocess     the same with Definitions(executor=in_process_executor)
#            api-inprocess     dagster.materialize(ASSETS, instance=DagsterInstance.get())
#                              timed inside one Python process after the import,
#                              DAGSTER_REPS runs: the closest to what `overhead` times
#            The CLI runs are timed whole (process start, import, load, run) by
#            bench/measure.py, once with all assets and once with the first
#            one alone; per step = (wall(N) - wall(1)) / (N - 1) (the run's
#            fixed cost left out) and, for reference, wall(N) / N. Checked,
#            untimed: exit 0, and the newest run in the instance succeeded with
#            N STEP_SUCCESS events (peer_dagster.py verify); the API runs'
#            success and N materializations each.
#
# Knobs: STEPS="100 1000"  REPS=20  PARALLEL=4 (the binary's default
#        max_parallel and transform threads)  BUILD=1  OVERHEAD=path (implies
#        BUILD=0)  PEERS=auto|0|1  DAGSTER_VENV=~/.cache/sluice-bench-dagster
#        DAGSTER_VERSION=1.13.29 (installed with PEERS=1)  DAGSTER_STEPS=100
#        DAGSTER_REPS=3  CLI_MULTIPROCESS=1 (0 skips the slow default-executor run)
#        TARGET_MS=50
# Output: one line per run on stderr, a summary table on stdout. Raw rows:
# bench/out/orchestrator-<utc>.tsv; logs: bench/out/logs/<utc>/. Exit 1 if a
# Sluice run failed its checks (a missed target only prints MISSED).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
STEPS="${STEPS:-100 1000}"; REPS="${REPS:-20}"; PARALLEL="${PARALLEL:-4}"; BUILD="${BUILD:-1}"
PEERS="${PEERS:-auto}"; DAGSTER_VENV="${DAGSTER_VENV:-$HOME/.cache/sluice-bench-dagster}"
DAGSTER_VERSION="${DAGSTER_VERSION:-1.13.29}"; DAGSTER_STEPS="${DAGSTER_STEPS:-100}"
DAGSTER_REPS="${DAGSTER_REPS:-3}"; CLI_MULTIPROCESS="${CLI_MULTIPROCESS:-1}"; TARGET_MS="${TARGET_MS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target-rel}"
OUT="$BENCH_DIR/out"; STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/logs/$STAMP"; RESULTS="$OUT/orchestrator-$STAMP.tsv"
mkdir -p "$LOGS"
say() { printf '%s\n' "$*" >&2; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------- sluice
if [ -n "${OVERHEAD:-}" ]; then BUILD=0; else OVERHEAD="$CARGO_TARGET_DIR/release/examples/overhead"; fi
if [ "$BUILD" = 1 ]; then
  say "building the overhead example (release, $CARGO_TARGET_DIR)"
  LOCK=(); command -v flock >/dev/null && LOCK=(flock /tmp/sluice-cargo.lock)
  (cd "$ROOT" && nice -n 19 "${LOCK[@]}" cargo build --release -p sluice-orchestrator --example overhead)
fi
[ -x "$OVERHEAD" ] || { say "no $OVERHEAD (BUILD=1 builds it)"; exit 1; }

printf 'tool\thow\tsteps\treps\tper_step_ms_median\tper_step_ms_p95\trun_s_median\tfixed_s\tpeak_rss_mb\tload\n' > "$RESULTS"
declare -A OURS
failed=0
for n in $STEPS; do
  say "sluice: $n no-op steps, $REPS reps, parallel $PARALLEL"
  if ! j="$("$OVERHEAD" --steps "$n" --reps "$REPS" --parallel "$PARALLEL" --json 2> >(tee "$LOGS/sluice-$n.err" >&2))"; then
    say "sluice: $n steps FAILED (see $LOGS/sluice-$n.err)"; failed=1; continue
  fi
  echo "$j" > "$LOGS/sluice-$n.json"
  OURS[$n]="$j"
  printf 'sluice\toverhead example\t%s\t%s\t%.4f\t%.4f\t%.4f\t\t%.1f\t%s\n' "$n" "$REPS" \
    "$(jget "$j" ms_per_step_median)" "$(jget "$j" ms_per_step_p95)" \
    "$(python3 -c "print($(jget "$j" run_ms_median)/1e3)")" "$(jget "$j" peak_rss_mb)" \
    "$(cut -d' ' -f1 /proc/loadavg)" >> "$RESULTS"
done

# ---------------------------------------------------------------- dagster
DG_NOTE=""
if [ "$PEERS" = 1 ] && [ ! -x "$DAGSTER_VENV/bin/dagster" ]; then
  say "installing dagster==$DAGSTER_VERSION into $DAGSTER_VENV"
  { python3 -m venv "$DAGSTER_VENV" && "$DAGSTER_VENV/bin/pip" install -q "dagster==$DAGSTER_VERSION"; } \
    > "$LOGS/dagster-install.log" 2>&1 || DG_NOTE="dagster could not be installed (see $LOGS/dagster-install.log)"
fi
if [ "$PEERS" = 0 ]; then
  DG_NOTE="peer: skipped (PEERS=0)"
elif [ ! -x "$DAGSTER_VENV/bin/dagster" ]; then
  DG_NOTE="${DG_NOTE:-peer: Dagster not installed (PEERS=1 installs dagster==$DAGSTER_VERSION into $DAGSTER_VENV)}"
fi

DG_ROWS=()   # "how|per_step_ms|per_step_whole_ms|run_s|fixed_s|rss"
if [ -z "$DG_NOTE" ]; then
  N="$DAGSTER_STEPS"
  DG_VER="$("$DAGSTER_VENV/bin/python" -c 'import dagster; print(dagster.__version__)')"
  W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
  export DAGSTER_HOME="$W/home"; mkdir -p "$DAGSTER_HOME"
  printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
  export DAGSTER_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
  "$OVERHEAD" --steps "$N" --print-graph > "$W/graph.json"
  "$DAGSTER_VENV/bin/python" "$BENCH_DIR/peer_dagster.py" gen "$W/graph.json" "$W/defs"
  say "dagster $DG_VER: $N no-op assets, DAGSTER_HOME=$DAGSTER_HOME"

  # Runs `dagster asset materialize` of DEFS once; prints "wall_s rss_mb" or FAILED.
  cli_run() {
    local defs="$1" n="$2" log="$3" m wall
    m="$(python3 "$BENCH_DIR/measure.py" --log "$log" -- \
         "$DAGSTER_VENV/bin/dagster" asset materialize -f "$defs" --select '*')"
    wall="$(jget "$m" wall_s)"
    if [ "$(jget "$m" rc)" != 0 ] \
       || ! "$DAGSTER_VENV/bin/python" "$BENCH_DIR/peer_dagster.py" verify "$n" >> "$log" 2>&1; then
      echo FAILED; return
    fi
    echo "$wall $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(max(d['max_rss_mb'], d['tree_rss_mb']))" "$m")"
  }
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

  modes=(inproc)
  [ "$CLI_MULTIPROCESS" = 1 ] && modes=(inproc multiprocess)
  for mode in "${modes[@]}"; do
    sfx=""; [ "$mode" = inproc ] && sfx="_inproc"
    walls_n=(); walls_1=(); rss=0; bad=0
    for r in $(seq 1 "$DAGSTER_REPS"); do
      for which in 1 N; do
        if [ "$which" = 1 ]; then defs="$W/defs/defs1$sfx.py"; k=1; else defs="$W/defs/defs$sfx.py"; k="$N"; fi
        res="$(cli_run "$defs" "$k" "$LOGS/dagster-cli-$mode-$which-$r.log")"
        if [ "$res" = FAILED ]; then
          say "dagster cli-$mode ($k assets) rep $r: FAILED (see $LOGS/dagster-cli-$mode-$which-$r.log)"; bad=1; continue
        fi
        read -r w m <<< "$res"
        say "dagster cli-$mode rep $r: $k asset(s) in $w s, peak RSS $m MB"
        if [ "$which" = 1 ]; then walls_1+=("$w"); else walls_n+=("$w"); fi
        rss="$(python3 -c "print(max($rss, $m))")"
      done
    done
    if [ "$bad" = 1 ] || [ ${#walls_n[@]} = 0 ] || [ ${#walls_1[@]} = 0 ]; then
      DG_NOTE="$DG_NOTE dagster cli-$mode failed (logs in $LOGS);"; continue
    fi
    wn="$(median "${walls_n[@]}")"; w1="$(median "${walls_1[@]}")"
    per="$(python3 -c "print(($wn - $w1) * 1e3 / ($N - 1))")"
    whole="$(python3 -c "print($wn * 1e3 / $N)")"
    DG_ROWS+=("cli-$mode|$per|$whole|$wn|$w1|$rss")
    printf 'dagster %s\tcli-%s\t%s\t%s\t%.2f\t\t%.2f\t%.2f\t%.1f\t%s\n' "$DG_VER" "$mode" "$N" "$DAGSTER_REPS" \
      "$per" "$wn" "$w1" "$rss" "$(cut -d' ' -f1 /proc/loadavg)" >> "$RESULTS"
  done

  say "dagster api-inprocess: dagster.materialize() x $DAGSTER_REPS in one process"
  if j="$("$DAGSTER_VENV/bin/python" "$BENCH_DIR/peer_dagster.py" api "$W/defs/defs_inproc.py" \
          --instance persistent --reps "$DAGSTER_REPS" 2> "$LOGS/dagster-api.err")"; then
    echo "$j" > "$LOGS/dagster-api.json"
    read -r ok good med rss imp < <(python3 -c '
import json, statistics, sys
d = json.loads(sys.argv[1]); n = int(sys.argv[2])
good = all(c == n for c in d["materializations"])
print(d["success"], good, statistics.median(d["run_s"]), d["peak_rss_mb"], d["import_s"])' "$j" "$N")
    if [ "$ok" = True ] && [ "$good" = True ]; then
      say "dagster api-inprocess: runs $(jget "$j" run_s) s, import+load $imp s"
      per="$(python3 -c "print($med * 1e3 / $N)")"
      DG_ROWS+=("api-inprocess|$per|$per|$med|$imp|$rss")
      printf 'dagster %s\tapi-inprocess\t%s\t%s\t%.2f\t\t%.2f\t%.2f\t%.1f\t%s\n' "$DG_VER" "$N" "$DAGSTER_REPS" \
        "$per" "$med" "$imp" "$rss" "$(cut -d' ' -f1 /proc/loadavg)" >> "$RESULTS"
    else
      DG_NOTE="$DG_NOTE dagster api-inprocess: success=$ok, materializations=$(jget "$j" materializations);"
    fi
  else
    DG_NOTE="$DG_NOTE dagster api-inprocess failed (see $LOGS/dagster-api.err);"
  fi
fi

# ---------------------------------------------------------------- summary
echo
echo "Orchestration overhead, no-op steps, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), 1-min load $(cut -d' ' -f1 /proc/loadavg)"
printf '%s\n' "${DG_ROWS[@]}" > "$LOGS/dagster-rows.txt"
python3 - "$LOGS" "$TARGET_MS" "$DAGSTER_STEPS" "${DG_VER:-}" $STEPS <<'PY'
import json, os, sys
logs, target, dsteps, dver, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
ours = {}
for n in steps:
    f = os.path.join(logs, f"sluice-{n}.json")
    if os.path.exists(f):
        ours[int(n)] = json.load(open(f))
dg = [r.split("|") for r in open(os.path.join(logs, "dagster-rows.txt")).read().split("\n") if r]
print()
print("| tool | how | steps | ms per step (median) | ms per step (p95; Dagster: whole run ÷ N) | run s (median) | fixed s | peak RSS MB |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for n, d in ours.items():
    print(f"| sluice | overhead example, parallel {d['parallel']}, SQLite run store | {n:,} | **{d['ms_per_step_median']:.3f}** "
          f"| {d['ms_per_step_p95']:.3f} | {d['run_ms_median'] / 1e3:.3f} | — | {d['peak_rss_mb']:.0f} |")
for how, per, whole, run, fixed, rss in dg:
    print(f"| dagster {dver} | {how} | {dsteps:,} | {float(per):.1f} | {float(whole):.1f} | {float(run):.2f} | {float(fixed):.2f} | {float(rss):.0f} |")
print()
for n, d in ours.items():
    m = d["ms_per_step_median"]
    print(f"sluice, {n} steps: {m:.3f} ms/step (target < {target:g} ms: {'met' if m < target else 'MISSED'}); "
          f"plan {d['plan_ms_median']:.2f} ms, execute+record {d['record_total_ms_median']:.2f} ms "
          f"(setup {d['setup_ms_median']:.2f}, execute {d['execute_record_ms_median']:.2f}, finish {d['finish_ms_median']:.2f}); "
          f"dispatch alone {d['dispatch_only_ms_median']:.2f} ms; one record {d['write_us_median']:.0f} µs "
          f"(p95 {d['write_us_p95']:.0f}), {100 * d['write_share_of_execute']:.0f} % of execute")
if dsteps in ours:
    o = ours[dsteps]["ms_per_step_median"]
    for how, per, whole, *_ in dg:
        print(f"ratio dagster {how} ÷ sluice, per step, {dsteps} steps: {float(per) / o:,.0f}× "
              f"(whole run ÷ N: {float(whole) / o:,.0f}×)")
PY
[ -n "$DG_NOTE" ] && echo "$DG_NOTE"
echo "raw rows: $RESULTS"
exit "$failed"
