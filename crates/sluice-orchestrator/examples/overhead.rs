//! What the orchestrator costs per step when the steps themselves cost
//! nothing: plan, dispatch and record a job of N no-op steps, the way
//! `sluice run` does it, and print milliseconds per step.
//!
//! ```text
//! cargo run --release -p sluice-orchestrator --example overhead -- \
//!     [--steps 100] [--reps 20] [--parallel 4] [--json] [--print-graph]
//! ```
//!
//! One rep = one `sluice run` minus process start and project loading:
//!
//! ```text
//!  plan     AssetGraph::new (check, topological order) → select (all) → Plan::new
//!  setup    take run.lock → Store::open (SQLite file, WAL) → mark_abandoned
//!           → begin_run → one `pending` row per step
//!  execute  execute(plan, no-op runner, limits, recorder): on every start and
//!           finish the recorder does record_step + append_event, as the
//!           binary's `Recorder` (crates/sluice/src/orchestrate.rs) does
//!  finish   finish_run with the run summary (every step report, as JSON)
//! ```
//!
//! The graph has four layers (10 % streams, 40 % staging models, 40 % marts,
//! 10 % reports), each asset reading 1–3 seeded-random assets of the layer
//! above; streams take `source:*`/`destination:lake` pools, models the
//! `transform` pool (limit = `--parallel`), like the binary's assets.
//!
//! Every rep writes into the same store file, so the run history grows as
//! it does in a project. What the binary does and this does not: load the
//! project, redact messages (no secrets here), print the progress line to
//! stderr (formatted here and written to a sink). One line per rep goes to
//! stderr, the summary (text, or one JSON object with `--json`) to stdout.
//! `--print-graph` prints the graph as JSON (`[[key, [deps…]], …]`) for a
//! peer to rebuild.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_orchestrator::{
    Asset, AssetGraph, AssetKind, Event, ExecOptions, Limits, Observer, Plan, PlanOptions,
    RunOutcome, Step, StepContext, StepError, StepOutput, StepPolicy, StepRunner, StepStatus,
    execute, select,
};
use sluice_store::{RunStart, RunStatus, StepRecord, Store};
use tokio::sync::watch;

type Res<T> = Result<T, Box<dyn Error>>;

struct Args {
    steps: usize,
    reps: usize,
    parallel: usize,
    json: bool,
    print_graph: bool,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        steps: 100,
        reps: 20,
        parallel: 4,
        json: false,
        print_graph: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Res<usize> {
            let v = it.next().ok_or(format!("`{name}` needs a number"))?;
            Ok(v.parse().map_err(|e| format!("`{name} {v}`: {e}"))?)
        };
        match arg.as_str() {
            "--steps" => a.steps = number("--steps")?,
            "--reps" => a.reps = number("--reps")?,
            "--parallel" => a.parallel = number("--parallel")?,
            "--json" => a.json = true,
            "--print-graph" => a.print_graph = true,
            "-h" | "--help" => {
                return Err(
                    "usage: overhead [--steps N (>= 10)] [--reps R] [--parallel P] \
                            [--json] [--print-graph]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    if a.steps < 10 || a.reps == 0 || a.parallel == 0 {
        return Err("need --steps >= 10, --reps >= 1, --parallel >= 1".into());
    }
    Ok(a)
}

/// The no-op job's assets: four layers, each asset reading 1–3 of the layer above.
fn assets(n: usize) -> Vec<Asset> {
    let sources = n / 10;
    let staging = n * 4 / 10;
    let marts = n * 4 / 10;
    let reports = n - sources - staging - marts;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out: Vec<Asset> = Vec::with_capacity(n);
    for i in 0..sources {
        let mut a = Asset::new(format!("shop.t{i:04}"), AssetKind::Stream);
        a.table = Some(format!("raw.t{i:04}"));
        a.sources = vec!["shop".into()];
        a.resources = vec!["source:shop".into(), "destination:lake".into()];
        out.push(a);
    }
    let mut above: Vec<String> = out.iter().map(|a| a.key.clone()).collect();
    for (prefix, count) in [("stg", staging), ("mart", marts), ("rpt", reports)] {
        let mut layer = Vec::with_capacity(count);
        for i in 0..count {
            let key = format!("{prefix}_{i:04}");
            let mut a = Asset::new(key.clone(), AssetKind::Model);
            let reads = rng.usize(1..=3).min(above.len());
            while a.deps.len() < reads {
                let d = &above[rng.usize(..above.len())];
                if !a.deps.contains(d) {
                    a.deps.push(d.clone());
                }
            }
            a.table = Some(format!("analytics.{key}"));
            a.path = Some(format!("models/{prefix}/{key}.sql"));
            a.resources = vec!["transform".into()];
            layer.push(key);
            out.push(a);
        }
        above = layer;
    }
    out
}

/// Succeeds at once.
struct Noop;

#[async_trait]
impl StepRunner for Noop {
    async fn run(&self, _step: &Step, _ctx: StepContext) -> Result<StepOutput, StepError> {
        Ok(StepOutput::default())
    }
}

fn pending(step: &Step) -> StepRecord {
    StepRecord {
        step_id: step.id.clone(),
        kind: step.kind.as_str().to_string(),
        assets: step.assets.clone(),
        status: "pending".to_string(),
        ..StepRecord::default()
    }
}

/// Records like the binary's `Recorder`, and times each write.
struct Recorder<'a> {
    store: &'a Arc<Mutex<Store>>,
    run_id: &'a str,
    total: usize,
    done: Mutex<usize>,
    writes: Mutex<Vec<Duration>>,
}

impl Recorder<'_> {
    fn write(&self, record: &StepRecord, level: &str, kind: &str, message: &str) {
        let t = Instant::now();
        let Ok(store) = self.store.lock() else { return };
        if let Err(e) = store.record_step(self.run_id, record).and_then(|_| {
            store
                .append_event(self.run_id, Some(&record.step_id), level, kind, message)
                .map(|_| ())
        }) {
            eprintln!("could not record step `{}`: {e}", record.step_id);
        }
        drop(store);
        if let Ok(mut w) = self.writes.lock() {
            w.push(t.elapsed());
        }
    }
}

impl Observer for Recorder<'_> {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Started { step, attempt } => {
                let record = StepRecord {
                    status: "running".to_string(),
                    attempts: attempt,
                    started_at: Some(chrono::Utc::now().to_rfc3339()),
                    ..pending(step)
                };
                self.write(&record, "info", "step_started", "started");
            }
            Event::Retrying { step, .. } => {
                eprintln!("unexpected retry of `{}`", step.id);
            }
            Event::Finished { step, report } => {
                let record = StepRecord {
                    status: report.status.as_str().to_string(),
                    attempts: report.attempts,
                    started_at: report.started_at.map(|t| t.to_rfc3339()),
                    finished_at: report.finished_at.map(|t| t.to_rfc3339()),
                    duration_ms: Some(report.seconds * 1e3),
                    rows: report.output.rows,
                    bytes: report.output.bytes,
                    message: report.output.message.clone(),
                    error: report.error.clone(),
                    ..pending(step)
                };
                let text = report
                    .error
                    .clone()
                    .or_else(|| report.output.message.clone())
                    .unwrap_or_default();
                self.write(
                    &record,
                    "info",
                    &format!("step_{}", report.status.as_str()),
                    &text,
                );
                let n = self.done.lock().map(|mut d| {
                    *d += 1;
                    *d
                });
                // The binary prints this line to stderr.
                let _ = writeln!(
                    std::io::sink(),
                    "[{}/{}] {:<9} {} ({:.2}s) {}",
                    n.unwrap_or(0),
                    self.total,
                    "OK",
                    step.id,
                    report.seconds,
                    text
                );
            }
        }
    }
}

/// What one rep took.
struct Rep {
    plan: Duration,
    setup: Duration,
    execute: Duration,
    finish: Duration,
    /// The same plan executed again with no observer and no store.
    dispatch_only: Duration,
    writes: Vec<Duration>,
}

impl Rep {
    fn total(&self) -> Duration {
        self.plan + self.setup + self.execute + self.finish
    }
}

fn options(parallel: usize) -> ExecOptions {
    ExecOptions {
        limits: Limits {
            global: parallel,
            resources: [("transform".to_string(), parallel)].into(),
        },
        policy: StepPolicy::default(),
        policies: Default::default(),
        grace: None,
    }
}

async fn one_rep(dir: &Path, all: &[Asset], rep: usize, parallel: usize) -> Res<Rep> {
    let n = all.len();
    let assets = all.to_vec();
    let opts = options(parallel);
    let run_id = format!(
        "{:08x}-0000-7000-8000-{:012x}",
        std::process::id(),
        rep as u64
    );

    let t0 = Instant::now();
    let graph = AssetGraph::new(assets)?;
    let selected = select(&graph, &[], &[])?;
    let plan = Plan::new(&graph, &selected, PlanOptions { checks: true });
    let t_plan = t0.elapsed();
    if plan.len() != n {
        return Err(format!("planned {} steps, expected {n}", plan.len()).into());
    }

    let t1 = Instant::now();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("run.lock"))?;
    lock.try_lock()?;
    let store = Store::open(&dir.join("sluice.db"))?;
    store.mark_abandoned()?;
    store.begin_run(&RunStart {
        run_id: &run_id,
        command: "run",
        job: None,
        trigger: "manual",
        parent_run_id: None,
        partition: None,
    })?;
    // As the binary does: every `pending` row in one transaction.
    let rows: Vec<StepRecord> = plan.steps.iter().map(pending).collect();
    store.record_steps(&run_id, &rows)?;
    let store = Arc::new(Mutex::new(store));
    let t_setup = t1.elapsed();

    let t2 = Instant::now();
    let recorder = Recorder {
        store: &store,
        run_id: &run_id,
        total: plan.len(),
        done: Mutex::new(0),
        writes: Mutex::new(Vec::with_capacity(2 * n)),
    };
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let report = execute(&plan, &Noop, &opts, &recorder, cancel_rx.clone()).await;
    let t_execute = t2.elapsed();

    let t3 = Instant::now();
    let status = match report.outcome {
        RunOutcome::Success => RunStatus::Success,
        RunOutcome::Failed => RunStatus::Failed,
        RunOutcome::Cancelled => RunStatus::Cancelled,
    };
    let summary = serde_json::json!({
        "run_id": run_id,
        "status": status,
        "seconds": report.seconds,
        "job": null,
        "select": [],
        "exclude": [],
        "checks": true,
        "streams": [],
        "steps": report.steps,
        "check_results": [],
    });
    store
        .lock()
        .map_err(|_| "store lock poisoned")?
        .finish_run(&run_id, status, None, &summary)?;
    let t_finish = t3.elapsed();
    drop(lock);

    // Checked, untimed: every step succeeded and is in the store.
    if report.count(StepStatus::Success) != n {
        return Err(format!(
            "only {} of {n} steps succeeded",
            report.count(StepStatus::Success)
        )
        .into());
    }
    {
        let store = store.lock().map_err(|_| "store lock poisoned")?;
        let steps = store.run_steps(&run_id)?;
        let events = store.run_events(&run_id, None)?;
        if steps.len() != n || steps.iter().any(|s| s.status != "success") || events.len() != 2 * n
        {
            return Err(format!(
                "store holds {} steps and {} events for {n} steps",
                steps.len(),
                events.len()
            )
            .into());
        }
    }
    let writes = recorder.writes.into_inner().map_err(|_| "poisoned")?;

    let t4 = Instant::now();
    let _ = execute(
        &plan,
        &Noop,
        &opts,
        &sluice_orchestrator::executor::Quiet,
        cancel_rx,
    )
    .await;
    let dispatch_only = t4.elapsed();

    Ok(Rep {
        plan: t_plan,
        setup: t_setup,
        execute: t_execute,
        finish: t_finish,
        dispatch_only,
        writes,
    })
}

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Peak resident set size of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let all = assets(args.steps);
    let mut out = std::io::stdout().lock();
    if args.print_graph {
        let g: Vec<(&str, &[String])> = all.iter().map(|a| (a.key.as_str(), &a.deps[..])).collect();
        writeln!(out, "{}", serde_json::to_string(&g)?)?;
        return Ok(());
    }
    let edges: usize = all.iter().map(|a| a.deps.len()).sum();
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let n = args.steps as f64;
    let mut reps = Vec::with_capacity(args.reps);
    for r in 0..args.reps {
        let rep = runtime.block_on(one_rep(dir.path(), &all, r, args.parallel))?;
        // Progress on stderr, the summary on stdout.
        {
            eprintln!(
                "rep {:>2}: {} steps  total {:>8.2} ms = {:.3} ms/step  (plan {:.2}, setup {:.2}, \
                 execute+record {:.2}, finish {:.2}; dispatch only {:.2})",
                r + 1,
                args.steps,
                ms(rep.total()),
                ms(rep.total()) / n,
                ms(rep.plan),
                ms(rep.setup),
                ms(rep.execute),
                ms(rep.finish),
                ms(rep.dispatch_only),
            );
        }
        reps.push(rep);
    }
    let col = |f: &dyn Fn(&Rep) -> Duration| sorted(reps.iter().map(|r| ms(f(r))).collect());
    let total = col(&|r| r.total());
    let plan = col(&|r| r.plan);
    let setup = col(&|r| r.setup);
    let exec = col(&|r| r.execute);
    let finish = col(&|r| r.finish);
    let dispatch = col(&|r| r.dispatch_only);
    let record = col(&|r| r.setup + r.execute + r.finish);
    let writes = sorted(
        reps.iter()
            .flat_map(|r| r.writes.iter().map(|d| d.as_secs_f64() * 1e6))
            .collect(),
    );
    let writes_sum: f64 = writes.iter().sum::<f64>() / 1e3;
    let writes_per_rep = writes_sum / args.reps as f64;
    let exec_mean = exec.iter().sum::<f64>() / args.reps as f64;
    let write_mean = writes_sum * 1e3 / writes.len().max(1) as f64;
    let db_mb = std::fs::metadata(dir.path().join("sluice.db"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(f64::NAN);
    let rss = peak_rss_mb();
    let med = |v: &[f64]| pct(v, 50.0);
    if args.json {
        let j = serde_json::json!({
            "steps": args.steps,
            "edges": edges,
            "reps": args.reps,
            "parallel": args.parallel,
            "ms_per_step_median": med(&total) / n,
            "ms_per_step_p95": pct(&total, 95.0) / n,
            "run_ms_median": med(&total),
            "run_ms_p95": pct(&total, 95.0),
            "run_ms_min": total[0],
            "run_ms_max": total[total.len() - 1],
            "plan_ms_median": med(&plan),
            "setup_ms_median": med(&setup),
            "execute_record_ms_median": med(&exec),
            "finish_ms_median": med(&finish),
            "record_total_ms_median": med(&record),
            "dispatch_only_ms_median": med(&dispatch),
            "write_us_median": med(&writes),
            "write_us_p95": pct(&writes, 95.0),
            "write_us_mean": write_mean,
            "write_us_max": writes[writes.len().saturating_sub(1)],
            "write_share_of_execute": writes_per_rep / exec_mean,
            "db_mb": db_mb,
            "peak_rss_mb": rss,
        });
        writeln!(out, "{j}")?;
    } else {
        writeln!(
            out,
            "{} no-op steps ({} edges, 4 layers), {} reps, parallel {}, store {}",
            args.steps,
            edges,
            args.reps,
            args.parallel,
            dir.path().join("sluice.db").display()
        )?;
        writeln!(
            out,
            "per step (plan + dispatch + record): median {:.3} ms, p95 {:.3} ms   (target < 50 ms)",
            med(&total) / n,
            pct(&total, 95.0) / n
        )?;
        writeln!(
            out,
            "per run: median {:.2} ms, p95 {:.2} ms, range {:.2}–{:.2} ms",
            med(&total),
            pct(&total, 95.0),
            total[0],
            total[total.len() - 1]
        )?;
        writeln!(
            out,
            "split (medians): plan {:.2} ms | execute+record {:.2} ms = setup {:.2} + execute {:.2} \
             + finish {:.2}",
            med(&plan),
            med(&record),
            med(&setup),
            med(&exec),
            med(&finish)
        )?;
        writeln!(
            out,
            "dispatch alone (same plan, no observer, no store): median {:.2} ms = {:.4} ms/step",
            med(&dispatch),
            med(&dispatch) / n
        )?;
        writeln!(
            out,
            "one record (record_step + append_event): median {:.1} µs, p95 {:.1} µs, mean {:.1} µs, \
             max {:.1} ms, {} writes = {:.0} % of execute",
            med(&writes),
            pct(&writes, 95.0),
            write_mean,
            writes[writes.len().saturating_sub(1)] / 1e3,
            writes.len(),
            100.0 * writes_per_rep / exec_mean
        )?;
        writeln!(
            out,
            "store after {} runs: {:.2} MB; peak RSS {:.1} MB",
            args.reps, db_mb, rss
        )?;
    }
    Ok(())
}
