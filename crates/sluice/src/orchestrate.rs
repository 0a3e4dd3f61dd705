//! `sluice run [JOB]` and `sluice extract`: the project's asset graph,
//! selected, planned and executed by `sluice-orchestrator`; this module is
//! its [`StepRunner`] (loads, dbt nodes, checks) and its observer (the run
//! store, progress lines).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::json;
use sluice_core::config::JobConfig;
use sluice_core::connector::Destination;
use sluice_orchestrator::partition::{Partition, PartitionSpec};
use sluice_orchestrator::{
    AssetKind, Event, ExecOptions, Limits, Observer, Plan, PlanOptions, RetryPolicy, RunOutcome,
    Step, StepContext, StepError, StepKind, StepOutput, StepPolicy, StepRunner, StepStatus,
};
use sluice_quality::{Check, CheckResult, Status as QStatus, run_table};
use sluice_store::{RunStart, RunStatus, StepRecord, Store};
use sluice_transform::engine::Engine;
use sluice_transform::manifest::NodeKind;
use sluice_transform::runner::{self, Command, RunOptions, Status as NodeStatus};
use tokio::sync::watch;

use crate::assets::{ProjectAssets, TRANSFORM_POOL};
use crate::commands::run::{StopSignals, print_summary};
use crate::commands::transform::{engine_for, tests_as_checks};
use crate::engine::{RunContext, StreamJob, StreamOutcome, run_stream, run_together};
use crate::output::{Reporter, UserError, table, thousands};
use crate::project::Project;
use crate::quality::{CheckPlace, history, record};
use crate::registry::build_destination;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// A job of `jobs:`.
    pub job: Option<String>,
    /// Selectors (narrowing the job's, when both are given).
    pub select: Vec<String>,
    /// Selectors of assets to leave out.
    pub exclude: Vec<String>,
    /// Ignore state; rebuild tables and incremental models from scratch.
    pub full_refresh: bool,
    /// Send every stream to this destination (`extract --to`).
    pub to: Option<String>,
    /// The command, for the run history (`run`, `run nightly`, `extract shop`).
    pub command: String,
    /// Re-run the failed, skipped and cancelled steps of this run.
    pub from_failure: Option<String>,
    /// Run check steps (default true).
    pub checks: bool,
    /// Streams only (`sluice extract`): no dbt project is loaded.
    pub streams_only: bool,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// What started the run (`manual`, `schedule:<job>`, …).
    pub trigger: String,
    /// The run's id, when the caller chose it (a webhook answers with it).
    pub run_id: Option<String>,
    /// Wait for another run of the project to finish instead of failing
    /// (`sluice serve`).
    pub wait_lock: bool,
    /// The partition of a partitioned job to build (its key).
    pub partition: Option<String>,
    /// Print no summary (the caller reports: `sluice backfill`).
    pub silent: bool,
}

/// The partitions of `job`, when it declares them (located errors).
pub fn job_partitions(
    project: &Project,
    name: &str,
    job: &JobConfig,
) -> Result<Option<PartitionSpec>> {
    let Some(p) = &job.partitions else {
        return Ok(None);
    };
    PartitionSpec::parse(&p.every.value, &p.start.value, p.timezone.as_deref())
        .map(Some)
        .map_err(|e| {
            UserError::usage(
                format!(
                    "{}:{}:{}: job `{name}` partitions: {e}",
                    project.loaded.file.display(),
                    p.every.referenced.line(),
                    p.every.referenced.column()
                ),
                Some(e.hint()),
            )
        })
}

/// The dbt vars a partition's run gets.
fn partition_vars(part: &Partition) -> String {
    let t =
        |d: &chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "{{partition_key: '{}', partition_start: '{}', partition_end: '{}'}}",
        part.key,
        t(&part.start),
        t(&part.end)
    )
}

/// Plan and run the request.
pub async fn run(dir: Option<&Path>, reporter: &Reporter, mut req: RunRequest) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let config = project.config();
    // A re-run repeats the earlier run's selection.
    let mut repeat: Option<(String, HashSet<String>)> = None;
    if let Some(id) = req.from_failure.clone() {
        let store = project.store()?;
        let Some(prev) = store.find_run(&id)? else {
            return Err(UserError::usage(
                format!("no run `{id}` in the run history"),
                Some("list runs with `sluice runs`".to_string()),
            ));
        };
        let summary = prev.summary.clone().unwrap_or_default();
        let strings = |k: &str| -> Vec<String> {
            summary[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        req.job = prev.job.clone();
        req.select = strings("select");
        req.exclude = strings("exclude");
        req.streams_only = summary["streams_only"].as_bool().unwrap_or(false);
        // `--no-checks` now still leaves them out.
        req.checks = req.checks && summary["checks"].as_bool().unwrap_or(true);
        req.full_refresh = req.full_refresh || summary["full_refresh"].as_bool().unwrap_or(false);
        req.to = summary["to"].as_str().map(str::to_string);
        req.partition = prev.partition.clone();
        let again: HashSet<String> = store
            .run_steps(&prev.run_id)?
            .into_iter()
            .filter(|s| s.status != "success")
            .map(|s| s.step_id)
            .collect();
        if again.is_empty() {
            return Err(UserError::usage(
                format!(
                    "run {} has no failed, skipped or cancelled step to re-run",
                    prev.run_id
                ),
                Some("run the job again with `sluice run [JOB]`".to_string()),
            ));
        }
        repeat = Some((prev.run_id, again));
    }
    let job: Option<(&String, &JobConfig)> = match &req.job {
        Some(name) => Some(config.jobs.get_key_value(name).ok_or_else(|| {
            let known: Vec<&str> = config.jobs.keys().map(String::as_str).collect();
            UserError::usage(
                format!("no job `{name}` in sluice.yml"),
                Some(if known.is_empty() {
                    "declare jobs under `jobs:` (docs/orchestration.md), or select assets with --select".to_string()
                } else {
                    format!("the jobs: {}", known.join(", "))
                }),
            )
        })?),
        None => None,
    };
    let run_id = req
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let partition: Option<Partition> = match (&req.partition, job) {
        (None, _) => None,
        (Some(key), Some((name, j))) => match job_partitions(&project, name, j)? {
            Some(spec) => Some(
                spec.partition(key)
                    .map_err(|e| UserError::usage(format!("job `{name}`: {e}"), Some(e.hint())))?,
            ),
            None => {
                return Err(UserError::usage(
                    format!("job `{name}` has no partitions"),
                    Some(
                        "declare `partitions: {every: daily, start: 2026-01-01}` on the job"
                            .to_string(),
                    ),
                ));
            }
        },
        (Some(_), None) => {
            return Err(UserError::usage(
                "a partition belongs to a job",
                Some("name the job: `sluice run JOB --partition KEY`".to_string()),
            ));
        }
    };
    // `sluice extract SOURCE` connects to that source only.
    let only_source = if req.streams_only {
        req.select.first().and_then(|s| {
            s.strip_prefix("source:")
                .or_else(|| s.strip_prefix("key:").and_then(|k| k.split('.').next()))
        })
    } else {
        None
    };
    if let Some(s) = only_source
        && !config.sources.0.contains_key(s)
    {
        return Err(crate::registry::unknown_source(&project, s));
    }
    let assets = ProjectAssets::load(
        &project,
        &run_id,
        req.full_refresh,
        !req.streams_only,
        only_source,
        partition.as_ref().map(partition_vars),
    )
    .await?;
    let graph = &assets.graph;
    let to_user = |e: sluice_orchestrator::SelectError| {
        UserError::usage(e.to_string(), Some(e.hint().to_string()))
    };
    let mut selected = match job {
        Some((_, j)) => {
            sluice_orchestrator::select(graph, &j.select, &j.exclude).map_err(to_user)?
        }
        None => sluice_orchestrator::select(graph, &[], &[]).map_err(to_user)?,
    };
    if !req.select.is_empty() || !req.exclude.is_empty() {
        let narrowed =
            sluice_orchestrator::select(graph, &req.select, &req.exclude).map_err(to_user)?;
        selected.retain(|k| narrowed.contains(k));
    }
    if req.streams_only {
        selected.retain(|k| graph.get(k).is_some_and(|a| a.kind == AssetKind::Stream));
    }
    // Checks name the stream's own table; `--to` loads somewhere else.
    let checks_on =
        req.checks && req.to.is_none() && job.and_then(|(_, j)| j.checks).unwrap_or(true);
    let mut plan = Plan::new(graph, &selected, PlanOptions { checks: checks_on });
    if let Some((_, again)) = &repeat {
        plan = plan.restrict(again);
    }
    if plan.is_empty() {
        return Err(UserError::error(
            if graph.is_empty() {
                "the project has nothing to run: no streams and no models".to_string()
            } else {
                "the selection leaves nothing to run".to_string()
            },
            Some("list the assets with `sluice graph`".to_string()),
        ));
    }
    // Every setting is checked before anything is recorded or read.
    let opts = exec_options(&project, job.map(|(_, j)| j))?;
    crate::commands::serve::check_schedules(&project)?;
    if req.dry_run {
        print_plan(reporter, &plan)?;
        return Ok(ExitCode::SUCCESS);
    }

    // Every load's destination and checks, before any data moves.
    let mut destinations: HashMap<String, Arc<dyn Destination>> = HashMap::new();
    let mut jobs: HashMap<String, StreamJob> = HashMap::new();
    for key in plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Materialize)
        .flat_map(|s| &s.assets)
    {
        let Some(spec) = assets.streams.get(key) else {
            continue;
        };
        let own = spec.destination.clone().unwrap_or_else(|| "lake".into());
        let dest_name = req.to.clone().unwrap_or_else(|| own.clone());
        let state_key = if dest_name == own {
            spec.id()
        } else {
            format!("{}@{dest_name}", spec.id())
        };
        if !destinations.contains_key(&dest_name) {
            destinations.insert(
                dest_name.clone(),
                build_destination(&project, Some(&dest_name))?,
            );
        }
        let checks = crate::quality::stream_checks(&project, spec, Some(dest_name.as_str()))?;
        let check_place = if checks.iter().any(|c| !c.is_row_check()) {
            CheckPlace::of_destination(&project, &dest_name)?
        } else {
            None
        };
        if !req.full_refresh
            && let Some(place) = &check_place
        {
            let backend = place.backend("validate").await?;
            sluice_quality::validate(backend.as_ref(), &checks).await?;
        }
        jobs.insert(
            key.clone(),
            StreamJob {
                source: assets.sources[&spec.source].clone(),
                destination: destinations[&dest_name].clone(),
                spec: spec.clone(),
                full_refresh: req.full_refresh,
                state_key,
                checks,
                check_place,
            },
        );
    }
    let needs_engine = plan.steps.iter().any(|s| {
        s.assets.iter().any(|k| {
            assets.tests.contains_key(k)
                || graph.get(k).is_some_and(|a| {
                    matches!(
                        a.kind,
                        AssetKind::Model | AssetKind::Seed | AssetKind::Snapshot
                    )
                })
        })
    });
    let engine: Option<Box<dyn Engine>> = match (&assets.dbt, needs_engine) {
        (Some(l), true) => Some(engine_for(l, &run_id).await?),
        _ => None,
    };

    let _lock = if req.wait_lock {
        wait_for_lock(&project, reporter).await?
    } else {
        project.lock()?
    };
    let store = project.store()?;
    let abandoned = store.mark_abandoned()?;
    if abandoned > 0 {
        reporter.warn(&format!(
            "{abandoned} earlier run(s) had been killed; marked failed"
        ));
    }
    let trigger = if repeat.is_some() {
        "from_failure".to_string()
    } else {
        req.trigger.clone()
    };
    store.begin_run(&RunStart {
        run_id: &run_id,
        command: &req.command,
        job: req.job.as_deref(),
        trigger: &trigger,
        parent_run_id: repeat.as_ref().map(|(p, _)| p.as_str()),
        partition: partition.as_ref().map(|p| p.key.as_str()),
    })?;
    let pending_rows: Vec<StepRecord> = plan.steps.iter().map(pending).collect();
    store.record_steps(&run_id, &pending_rows)?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let signal_reporter = reporter.clone();
    let mut stop = StopSignals::new();
    let signals = tokio::spawn(async move {
        if let Some(first) = stop.next().await {
            signal_reporter.warn(&format!(
                "stopping ({}): nothing half-written will be committed ({} again to force)",
                first.name(),
                first.name()
            ));
            let _ = cancel_tx.send(true);
            if let Some(second) = stop.next().await {
                std::process::exit(second.exit_code());
            }
        }
    });
    let secrets = project.loaded.clone();
    // What loads say (schema changes, quarantined rows, warnings) is the
    // run's log too; the recorder writes it to the store between events.
    let logs: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let tap_logs = logs.clone();
    let tap: crate::output::LogTap = Arc::new(move |level: &str, text: &str| {
        if let Ok(mut l) = tap_logs.lock() {
            l.push((level.to_string(), text.to_string()));
        }
    });
    let run_reporter = reporter.with_tap(tap.clone());
    crate::output::set_run_log(Some(tap));
    let ctx = RunContext {
        run_id: run_id.clone(),
        store: Arc::new(Mutex::new(store)),
        reporter: run_reporter,
        cancel: cancel_rx.clone(),
        redact: Arc::new(move |t: &str| secrets.redact(t)),
    };
    let runner = ProjectRunner {
        project: &project,
        assets: &assets,
        jobs,
        ctx: &ctx,
        engine: engine.as_deref(),
        full_refresh: req.full_refresh,
        planned: plan
            .steps
            .iter()
            .flat_map(|s| s.assets.iter().cloned())
            .collect(),
        outcomes: Mutex::new(IndexMap::new()),
        checks: Mutex::new(Vec::new()),
        loaded: std::sync::atomic::AtomicBool::new(false),
        listing: tokio::sync::Mutex::new(()),
    };
    let recorder = Recorder {
        store: &ctx.store,
        run_id: &run_id,
        reporter,
        total: plan.len(),
        done: Mutex::new(0),
        redact: ctx.redact.clone(),
        logs: logs.clone(),
    };
    let report = sluice_orchestrator::execute(&plan, &runner, &opts, &recorder, cancel_rx).await;
    crate::output::set_run_log(None);
    recorder.flush_logs();
    signals.abort();

    let status = match report.outcome {
        RunOutcome::Success => RunStatus::Success,
        RunOutcome::Failed => RunStatus::Failed,
        RunOutcome::Cancelled => RunStatus::Cancelled,
    };
    // Loads in graph order (the project's), however they finished.
    let mut outcomes: Vec<StreamOutcome> = runner
        .outcomes
        .lock()
        .map(|o| o.values().cloned().collect())
        .unwrap_or_default();
    outcomes.sort_by_key(|o| graph.position(&o.stream).unwrap_or(usize::MAX));
    let check_results: Vec<CheckResult> =
        runner.checks.lock().map(|c| c.clone()).unwrap_or_default();
    let summary = json!({
        "run_id": run_id,
        "status": status,
        "seconds": report.seconds,
        "job": req.job,
        "select": req.select,
        "exclude": req.exclude,
        "checks": checks_on,
        "streams_only": req.streams_only,
        "full_refresh": req.full_refresh,
        "partition": partition.as_ref().map(|p| &p.key),
        "to": req.to,
        "parent_run_id": repeat.as_ref().map(|(p, _)| p),
        "streams": outcomes,
        "steps": report.steps,
        "check_results": check_results,
    });
    let first_error = report
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .and_then(|s| s.error.clone())
        .map(|e| (ctx.redact)(&e));
    if let Ok(store) = ctx.store.lock()
        && let Err(e) = store.finish_run(&run_id, status, first_error.as_deref(), &summary)
    {
        reporter.warn(&format!("could not record the run: {e}"));
    }
    if req.silent {
        // The caller reports.
    } else if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        if !outcomes.is_empty() {
            print_summary(reporter, &run_id, &outcomes, report.seconds);
        }
        // Anything besides loads, or a step that did not succeed: the
        // steps table (a failed check step is not in the loads table).
        let other = outcomes.is_empty()
            || report.steps.iter().any(|s| s.status != StepStatus::Success)
            || plan.steps.iter().any(|s| {
                s.kind == StepKind::Check
                    || !s.assets.iter().all(|k| assets.streams.contains_key(k))
            });
        if other {
            print_steps(reporter, &run_id, &plan, &report);
        }
    }
    let all_checks: Vec<CheckResult> = outcomes
        .iter()
        .flat_map(|o| o.checks.iter().cloned())
        .chain(check_results.iter().cloned())
        .collect();
    alert(&project, reporter, &summary, &report, &all_checks).await;
    if status != RunStatus::Success && report.count(StepStatus::Failed) > 0 {
        reporter.line(&format!(
            "hint: fix the cause, then re-run what failed with `sluice run --from-failure {run_id}`"
        ));
    }
    Ok(if status == RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The project lock, once the run holding it (another process) is done.
async fn wait_for_lock(project: &Project, reporter: &Reporter) -> Result<std::fs::File> {
    let mut said = false;
    loop {
        match project.lock() {
            Ok(l) => return Ok(l),
            Err(e) if e.downcast_ref::<UserError>().is_some() => {
                if !said {
                    reporter.info("another run of the project is going on: waiting for it");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `run_failed` and `check_failed` alerts for a finished run.
async fn alert(
    project: &Project,
    reporter: &Reporter,
    summary: &serde_json::Value,
    report: &sluice_orchestrator::RunReport,
    checks: &[CheckResult],
) {
    if project.config().orchestration.alerts.is_empty() {
        return;
    }
    let head = |extra: serde_json::Value| {
        let mut v = json!({
            "run_id": summary["run_id"],
            "job": summary["job"],
            "status": summary["status"],
            "seconds": summary["seconds"],
        });
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    if report.outcome == RunOutcome::Failed {
        let failed: Vec<serde_json::Value> = report
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .map(|s| json!({"step": s.id, "error": s.error}))
            .collect();
        let skipped = report.count(StepStatus::Skipped);
        let body = head(json!({"failed_steps": failed, "skipped_steps": skipped}));
        crate::alerts::send(project, reporter, "run_failed", body).await;
    }
    let bad: Vec<serde_json::Value> = checks
        .iter()
        .filter(|c| matches!(c.status, QStatus::Fail | QStatus::Error))
        .map(|c| json!({"check": c.id, "table": c.table, "status": c.status, "message": c.message}))
        .collect();
    if !bad.is_empty() {
        let body = head(json!({"checks": bad}));
        crate::alerts::send(project, reporter, "check_failed", body).await;
    }
}

/// Limits, pools, retries and timeouts from `orchestration:` and the job.
fn exec_options(project: &Project, job: Option<&JobConfig>) -> Result<ExecOptions> {
    let config = project.config();
    let o = &config.orchestration;
    let global = job
        .and_then(|j| j.max_parallel)
        .or(o.max_parallel)
        .or(config.defaults.parallelism)
        .unwrap_or(4)
        .max(1);
    let mut resources: HashMap<String, usize> = o
        .pools
        .iter()
        .map(|(k, v)| (k.clone(), (*v).max(1)))
        .collect();
    let threads = config
        .transform
        .as_ref()
        .and_then(|t| t.threads)
        .unwrap_or(4) as usize;
    resources
        .entry(TRANSFORM_POOL.to_string())
        .or_insert(threads.max(1));
    let duration =
        |v: &Option<serde_saphyr::Spanned<String>>, key: &str| -> Result<Option<Duration>> {
            match v {
                None => Ok(None),
                Some(s) => sluice_quality::spec::parse_duration(&s.value)
                    .map(|secs| Some(Duration::from_secs(secs.max(0) as u64)))
                    .map_err(|m| {
                        UserError::usage(
                            format!(
                                "{}:{}:{}: `{key}`: {m}",
                                project.loaded.file.display(),
                                s.referenced.line(),
                                s.referenced.column()
                            ),
                            Some("write a duration such as `30s`, `10m`, `2h`".to_string()),
                        )
                    }),
            }
        };
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        max_retries: job.and_then(|j| j.retries).or(o.retries).unwrap_or(0),
        initial: duration(
            job.map_or(&o.retry_delay, |j| {
                if j.retry_delay.is_some() {
                    &j.retry_delay
                } else {
                    &o.retry_delay
                }
            }),
            "retry_delay",
        )?
        .unwrap_or(defaults.initial),
        max: duration(&o.retry_max_delay, "retry_max_delay")?.unwrap_or(defaults.max),
        multiplier: 2.0,
        jitter: true,
    };
    let timeout = duration(
        job.map_or(&o.timeout, |j| {
            if j.timeout.is_some() {
                &j.timeout
            } else {
                &o.timeout
            }
        }),
        "timeout",
    )?;
    Ok(ExecOptions {
        limits: Limits { global, resources },
        policy: StepPolicy { retry, timeout },
        policies: HashMap::new(),
        grace: None,
    })
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

/// Runs the project's steps.
struct ProjectRunner<'a> {
    project: &'a Project,
    assets: &'a ProjectAssets,
    jobs: HashMap<String, StreamJob>,
    ctx: &'a RunContext,
    engine: Option<&'a dyn Engine>,
    full_refresh: bool,
    /// Assets this run makes.
    planned: HashSet<String>,
    /// The last outcome of each stream (a retry replaces it).
    outcomes: Mutex<IndexMap<String, StreamOutcome>>,
    checks: Mutex<Vec<CheckResult>>,
    /// A load committed since the engine last listed the lake's tables.
    loaded: std::sync::atomic::AtomicBool,
    /// One listing at a time: an older listing finishing after a newer one
    /// would hide tables.
    listing: tokio::sync::Mutex<()>,
}

#[async_trait]
impl StepRunner for ProjectRunner<'_> {
    async fn run(&self, step: &Step, sctx: StepContext) -> Result<StepOutput, StepError> {
        if step.kind == StepKind::Check {
            return self.checks(step).await;
        }
        let first = step.assets.first().and_then(|k| self.assets.graph.get(k));
        match first.map(|a| a.kind) {
            Some(AssetKind::Stream) => self.load(step, sctx).await,
            Some(AssetKind::Seed | AssetKind::Model | AssetKind::Snapshot) => {
                self.build(step).await
            }
            _ => Err(StepError::fatal(format!(
                "`{}` is not an asset Sluice can make",
                step.id
            ))),
        }
    }
}

impl ProjectRunner<'_> {
    async fn load(&self, step: &Step, sctx: StepContext) -> Result<StepOutput, StepError> {
        let jobs: Vec<StreamJob> = step
            .assets
            .iter()
            .filter_map(|k| self.jobs.get(k).cloned())
            .collect();
        let ctx = RunContext {
            cancel: sctx.cancel.clone(),
            ..self.ctx.clone()
        };
        let together = jobs.len() > 1 || jobs.first().is_some_and(|j| j.source.reads_together());
        let outcomes = if together {
            run_together(&ctx, jobs).await
        } else {
            let mut out = Vec::with_capacity(1);
            for job in jobs {
                out.push(run_stream(&ctx, job).await);
            }
            out
        };
        if outcomes.iter().any(|o| o.commits > 0) {
            self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let rows = outcomes.iter().map(|o| o.rows_written).sum();
        let bytes = outcomes.iter().map(|o| o.bytes_read).sum();
        let cancelled = outcomes.iter().any(|o| o.status == RunStatus::Cancelled);
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| o.status == RunStatus::Failed)
            .map(|o| format!("{}: {}", o.stream, o.error.clone().unwrap_or_default()))
            .collect();
        // Bad config, bad data or a failed check: trying again changes
        // nothing. An external system that failed (network, database,
        // disk) may be back.
        let retryable = outcomes
            .iter()
            .filter(|o| o.status == RunStatus::Failed)
            .all(|o| o.retryable);
        if let Ok(mut all) = self.outcomes.lock() {
            for o in outcomes {
                all.insert(o.stream.clone(), o);
            }
        }
        if cancelled {
            return Err(StepError::cancelled(
                "cancelled; nothing half-written was committed",
            ));
        }
        if !failed.is_empty() {
            let message = failed.join("; ");
            return Err(if retryable {
                StepError::transient(message)
            } else {
                StepError::fatal(message)
            });
        }
        Ok(StepOutput {
            rows,
            bytes,
            message: Some(format!("{} rows", thousands(rows))),
        })
    }

    /// One seed, model or snapshot.
    async fn build(&self, step: &Step) -> Result<StepOutput, StepError> {
        let (Some(l), Some(engine)) = (&self.assets.dbt, self.engine) else {
            return Err(StepError::fatal(
                "the project has no dbt project to build from",
            ));
        };
        let name = &step.assets[0];
        if let Some(reason) = self.failing_upstream(name) {
            return Err(StepError::fatal(reason));
        }
        self.see_loads(engine).await?;
        let command = match l.manifest.nodes.get(name).map(|n| n.kind) {
            Some(NodeKind::Seed) => Command::Seed,
            Some(NodeKind::Snapshot) => Command::Snapshot,
            _ => Command::Run,
        };
        let opts = RunOptions {
            full_refresh: self.full_refresh,
            selected: Some(HashSet::from([name.clone()])),
            fail_fast: false,
        };
        let results = runner::execute(
            &l.manifest,
            &l.project.dir,
            &l.project.target_path,
            engine,
            command,
            &opts,
            &mut |_| {},
        )
        .await;
        let Some(r) = results.results.into_iter().next() else {
            return Err(StepError::fatal(format!("dbt did not run `{name}`")));
        };
        match r.status {
            NodeStatus::Success | NodeStatus::Pass | NodeStatus::Warn => Ok(StepOutput {
                rows: r.rows.unwrap_or(0),
                bytes: 0,
                message: Some(r.message),
            }),
            _ => Err(StepError::fatal((self.ctx.redact)(&r.message))),
        }
    }

    /// Let the engine see the tables loads of this run made.
    async fn see_loads(&self, engine: &dyn Engine) -> Result<(), StepError> {
        let _one = self.listing.lock().await;
        if self.loaded.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = engine.refresh().await
        {
            self.loaded.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(StepError::transient(format!(
                "listing the lake's tables: {}",
                e.message
            )));
        }
        Ok(())
    }

    /// A stream this run does not load, upstream of `name`, whose table's
    /// newest check failed: the model is held back.
    fn failing_upstream(&self, name: &str) -> Option<String> {
        let graph = &self.assets.graph;
        let store = self.ctx.store.lock().ok()?;
        for up in graph.upstream(name, None) {
            if self.planned.contains(&up) {
                continue;
            }
            let Some(a) = graph.get(&up).filter(|a| a.kind == AssetKind::Stream) else {
                continue;
            };
            let Some(table) = &a.table else { continue };
            // A check no longer declared does not hold anything back.
            if let Ok(failing) = store.failing_checks(table)
                && let Some((check, _, message)) = failing
                    .iter()
                    .find(|(id, _, _)| self.assets.declared_checks.contains(id))
            {
                return Some(format!(
                    "held back: `{table}` (loaded by `{up}`) has a failing check `{check}`: {message}; fix the data and re-check (`sluice check`), or run `{up}` in this run"
                ));
            }
        }
        None
    }

    /// The checks of one asset: the top-level map's and dbt's tests.
    async fn checks(&self, step: &Step) -> Result<StepOutput, StepError> {
        let key = &step.assets[0];
        let mut results: Vec<CheckResult> = Vec::new();
        if let Some(checks) = self.assets.checks.get(key).filter(|c| !c.is_empty()) {
            results.extend(self.sluice_checks(checks).await?);
        }
        if let Some(tests) = self.assets.tests.get(key).filter(|t| !t.is_empty()) {
            let (Some(l), Some(engine)) = (&self.assets.dbt, self.engine) else {
                return Err(StepError::fatal(
                    "the project has no dbt project to test with",
                ));
            };
            let opts = RunOptions {
                full_refresh: false,
                selected: Some(tests.iter().cloned().collect()),
                fail_fast: false,
            };
            let r = runner::execute(
                &l.manifest,
                &l.project.dir,
                &l.project.target_path,
                engine,
                Command::Test,
                &opts,
                &mut |_| {},
            )
            .await;
            let unit_failed: Vec<String> = r
                .results
                .iter()
                .filter(|n| n.kind == NodeKind::UnitTest && n.status.failed())
                .map(|n| format!("unit test `{}`: {}", n.name, n.message))
                .collect();
            results.extend(tests_as_checks(l, &r));
            if !unit_failed.is_empty() {
                self.keep(&results);
                return Err(StepError::fatal(unit_failed.join("; ")));
            }
        }
        self.keep(&results);
        let bad: Vec<String> = results
            .iter()
            .filter(|r| matches!(r.status, QStatus::Fail | QStatus::Error))
            .map(|r| format!("{} {}: {}", r.status.as_str(), r.id, r.message))
            .collect();
        let warned = results.iter().filter(|r| r.status == QStatus::Warn).count();
        if !bad.is_empty() {
            return Err(StepError::fatal(format!(
                "{} of {} checks failed: {}",
                bad.len(),
                results.len(),
                bad.join("; ")
            )));
        }
        Ok(StepOutput {
            rows: 0,
            bytes: 0,
            message: Some(if warned > 0 {
                format!(
                    "{} of {} checks passed, {warned} warned",
                    results.len() - warned,
                    results.len()
                )
            } else {
                format!("{} of {} checks passed", results.len(), results.len())
            }),
        })
    }

    async fn sluice_checks(&self, checks: &[Check]) -> Result<Vec<CheckResult>, StepError> {
        let table = &checks[0].table;
        let err = |e: anyhow::Error| {
            StepError::fatal((self.ctx.redact)(&format!("checks on `{table}`: {e:#}")))
        };
        let (place, name) = CheckPlace::of_key(self.project, table).map_err(err)?;
        let backend = place.backend(&self.ctx.run_id).await.map_err(err)?;
        let refs: Vec<&Check> = checks.iter().collect();
        let store = self.ctx.store.clone();
        let hist = move |id: &str, n: usize| history(&store, id, n);
        Ok(run_table(backend.as_ref(), &name, &refs, &hist, chrono::Utc::now()).await)
    }

    /// Record results in the store and keep them for the summary.
    fn keep(&self, results: &[CheckResult]) {
        record(
            &self.ctx.store,
            &self.ctx.run_id,
            results,
            self.ctx.redact.as_ref(),
        );
        if let Ok(mut all) = self.checks.lock() {
            all.extend(results.iter().cloned());
        }
    }
}

/// Writes steps and events to the run store and prints one line per step.
struct Recorder<'a> {
    store: &'a Arc<Mutex<Store>>,
    run_id: &'a str,
    reporter: &'a Reporter,
    total: usize,
    done: Mutex<usize>,
    redact: Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// Log lines of the run not written yet.
    logs: Arc<Mutex<Vec<(String, String)>>>,
}

impl Recorder<'_> {
    /// Write the log lines gathered since the last event.
    fn flush_logs(&self) {
        let lines: Vec<(String, String)> = match self.logs.lock() {
            Ok(mut l) => std::mem::take(&mut *l),
            Err(_) => return,
        };
        if lines.is_empty() {
            return;
        }
        let Ok(store) = self.store.lock() else { return };
        for (level, text) in lines {
            if let Err(e) =
                store.append_event(self.run_id, None, &level, "log", &(self.redact)(&text))
            {
                tracing::warn!("could not record a log line: {e}");
            }
        }
    }

    fn write(&self, record: &StepRecord, level: &str, kind: &str, message: &str) {
        self.flush_logs();
        let Ok(store) = self.store.lock() else { return };
        let message = (self.redact)(message);
        if let Err(e) = store.record_step(self.run_id, record).and_then(|_| {
            store
                .append_event(self.run_id, Some(&record.step_id), level, kind, &message)
                .map(|_| ())
        }) {
            tracing::warn!("could not record step `{}`: {e}", record.step_id);
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
                let what = if attempt > 1 {
                    format!("started (try {attempt})")
                } else {
                    "started".to_string()
                };
                self.write(&record, "info", "step_started", &what);
            }
            Event::Retrying {
                step,
                attempt,
                error,
                delay,
            } => {
                let record = StepRecord {
                    status: "running".to_string(),
                    attempts: attempt,
                    error: Some((self.redact)(&error.message)),
                    ..pending(step)
                };
                let message = format!(
                    "try {attempt} failed: {}; retrying in {:.1}s",
                    error.message,
                    delay.as_secs_f64()
                );
                self.write(&record, "warn", "step_retrying", &message);
                self.reporter
                    .warn(&format!("{}: {}", step.id, (self.redact)(&message)));
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
                    error: report.error.as_ref().map(|e| (self.redact)(e)),
                    ..pending(step)
                };
                let level = match report.status {
                    StepStatus::Success => "info",
                    StepStatus::Skipped | StepStatus::Cancelled => "warn",
                    StepStatus::Failed => "error",
                };
                let text = report
                    .error
                    .clone()
                    .or_else(|| report.output.message.clone())
                    .unwrap_or_default();
                self.write(
                    &record,
                    level,
                    &format!("step_{}", report.status.as_str()),
                    &text,
                );
                let n = self.done.lock().map(|mut d| {
                    *d += 1;
                    *d
                });
                if !self.reporter.json() {
                    self.reporter.info(&format!(
                        "[{}/{}] {:<9} {} ({:.2}s) {}",
                        n.unwrap_or(0),
                        self.total,
                        label(report.status),
                        step.id,
                        report.seconds,
                        (self.redact)(&text)
                    ));
                }
            }
        }
    }
}

fn label(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Success => "OK",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "SKIPPED",
        StepStatus::Cancelled => "CANCELLED",
    }
}

fn print_plan(reporter: &Reporter, plan: &Plan) -> Result<()> {
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    let mut t = table(&["#", "step", "kind", "waits for", "pools"]);
    for (i, s) in plan.steps.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            s.id.clone(),
            s.kind.as_str().to_string(),
            s.deps.join(", "),
            s.resources.join(", "),
        ]);
    }
    crate::outln!("{t}");
    crate::outln!("{} steps (dry run: nothing ran)", plan.len());
    Ok(())
}

fn print_steps(
    reporter: &Reporter,
    run_id: &str,
    plan: &Plan,
    report: &sluice_orchestrator::RunReport,
) {
    let mut t = table(&["step", "kind", "status", "tries", "time", "result"]);
    for (s, r) in plan.steps.iter().zip(&report.steps) {
        t.add_row(vec![
            s.id.clone(),
            s.kind.as_str().to_string(),
            label(r.status).to_string(),
            r.attempts.to_string(),
            format!("{:.2}s", r.seconds),
            r.error
                .clone()
                .or_else(|| r.output.message.clone())
                .unwrap_or_default(),
        ]);
    }
    crate::outln!("{t}");
    let _ = reporter;
    crate::outln!(
        "run {run_id}: {}/{} steps ok, {} failed, {} skipped in {:.2}s",
        report.count(StepStatus::Success),
        report.steps.len(),
        report.count(StepStatus::Failed),
        report.count(StepStatus::Skipped),
        report.seconds
    );
}
