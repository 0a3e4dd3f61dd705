//! `sluice serve`: the scheduler. Cron schedules of `jobs:` (in their time
//! zones), sensors (`when:` new files, an asset updated, an asset stale),
//! and an HTTP API that triggers jobs (webhooks) and reads runs.
//!
//! - Every tick and every sensor finding is *claimed* in the store before
//!   its run starts; the store's primary key lets exactly one claimant win,
//!   so several `sluice serve` processes sharing a store never double-run a
//!   tick.
//! - Runs go through one queue and run one after another (a run waits for
//!   another process's run of the project to finish).
//! - On start, runs left `running` by a killed process are marked failed
//!   (when no other process holds the project's run lock).
//! - Ctrl-C / SIGTERM: the running run is cancelled cleanly (nothing
//!   half-written is committed), then the server stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_orchestrator::cron::Schedule;
use tokio::sync::mpsc;

use crate::cli::ServeArgs;
use crate::commands::run::StopSignals;
use crate::orchestrate::{self, RunRequest};
use crate::output::{Reporter, UserError};
use crate::project::Project;

/// Environment variable holding the API's bearer token.
pub const TOKEN_VAR: &str = "SLUICE_API_TOKEN";

/// A run waiting in the queue.
struct Queued {
    job: String,
    trigger: String,
    run_id: String,
    /// Sensor claims to tie to the run: (sensor, keys).
    claims: Option<(String, Vec<String>)>,
    /// A schedule tick to tie to the run.
    tick: Option<String>,
    /// The partition to build (a partitioned job's tick: the latest
    /// complete partition then).
    partition: Option<String>,
}

impl Queued {
    /// A run of `job` with nothing tied to it.
    fn new(job: &str, run_id: String) -> Queued {
        Queued {
            job: job.to_string(),
            trigger: "manual".to_string(),
            run_id,
            claims: None,
            tick: None,
            partition: None,
        }
    }

    /// A run a sensor of `job` started, with the keys it claimed.
    fn sensed(job: &str, sensor: String, keys: Vec<String>, run_id: String) -> Queued {
        Queued {
            trigger: format!("sensor:{job}"),
            claims: Some((sensor, keys)),
            ..Queued::new(job, run_id)
        }
    }
}

fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One job's schedule and sensors, compiled.
struct Watch {
    job: String,
    schedule: Option<Schedule>,
    partitions: Option<sluice_orchestrator::partition::PartitionSpec>,
    files: Option<String>,
    updated: Vec<String>,
    stale: Option<(String, Duration)>,
    every: Duration,
    next_look: DateTime<Utc>,
}

/// Run the scheduler (and the API) until stopped; with `--once`, look once
/// (ticks since `--since`, sensors now), run what is due, and stop.
pub async fn serve(dir: Option<&Path>, args: &ServeArgs, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let mut watches = compile(&project)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    let me = format!("{host}:{}", std::process::id());
    recover(&project, reporter)?;
    let start = match &args.since {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                UserError::usage(
                    format!("--since `{t}` is not an RFC 3339 time: {e}"),
                    Some("write it as `2026-11-25T06:00:00Z`".to_string()),
                )
            })?,
        None => Utc::now(),
    };
    let project_dir = project.dir.clone();
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let stopping = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(work(
        project_dir.clone(),
        reporter.clone(),
        rx,
        stopping.clone(),
    ));
    let scheduled: Vec<&str> = watches
        .iter()
        .filter(|w| w.schedule.is_some())
        .map(|w| w.job.as_str())
        .collect();
    reporter.info(&format!(
        "serving `{}`: {} scheduled job(s){}, {} with sensors",
        project.name(),
        scheduled.len(),
        if scheduled.is_empty() {
            String::new()
        } else {
            format!(" ({})", scheduled.join(", "))
        },
        watches
            .iter()
            .filter(|w| w.files.is_some() || !w.updated.is_empty() || w.stale.is_some())
            .count()
    ));
    if args.once {
        look(
            &project,
            &mut watches,
            start,
            Utc::now(),
            &me,
            &tx,
            reporter,
            true,
        )
        .await?;
        drop(tx);
        // Ctrl-C stops the running run and starts no queued one.
        let flag = stopping.clone();
        let signals = tokio::spawn(async move {
            if StopSignals::new().next().await.is_some() {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let failed = worker.await.unwrap_or(0);
        signals.abort();
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let token = std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty());
    let host = args.host.trim_start_matches('[').trim_end_matches(']');
    let addr: SocketAddr = tokio::net::lookup_host((host, args.port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            UserError::usage(
                format!("`{}` is not an address or a known host name", args.host),
                Some("pass --host 127.0.0.1 (or ::1, localhost, 0.0.0.0)".to_string()),
            )
        })?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(UserError::usage(
            format!("refusing to serve the API on {addr} without a token"),
            Some(format!(
                "set {TOKEN_VAR} (clients send `Authorization: Bearer <token>`), or serve on 127.0.0.1"
            )),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        UserError::error(
            format!("cannot listen on {addr}: {e}"),
            Some("pick another port with --port".to_string()),
        )
    })?;
    let state = Arc::new(Api {
        dir: project_dir.clone(),
        tx: tx.clone(),
        token,
    });
    let app = axum::Router::new()
        .route("/health", axum::routing::get(health))
        .route("/api/jobs", axum::routing::get(jobs))
        .route("/api/jobs/{job}/runs", axum::routing::post(trigger))
        .route("/api/runs", axum::routing::get(runs))
        .route("/api/runs/{id}", axum::routing::get(run))
        .with_state(state);
    let bound = listener.local_addr().unwrap_or(addr);
    reporter.info(&format!(
        "API on http://{bound} (POST /api/jobs/<job>/runs)"
    ));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut last = start;
    let mut signals = StopSignals::new();
    let stop = signals.next();
    tokio::pin!(stop);
    loop {
        let now = Utc::now();
        look(&project, &mut watches, last, now, &me, &tx, reporter, false).await?;
        last = now;
        // Sleep until the next tick or sensor look, at most a minute.
        let next = watches
            .iter()
            .flat_map(|w| {
                w.schedule
                    .as_ref()
                    .and_then(|s| s.next_after(now))
                    .into_iter()
                    .chain(sensing(w).then_some(w.next_look))
            })
            .min()
            .unwrap_or(now + chrono::Duration::seconds(60))
            .min(now + chrono::Duration::seconds(60));
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut stop => break,
        }
    }
    reporter.info("stopping: queued runs are dropped; the running run stops cleanly");
    stopping.store(true, Ordering::SeqCst);
    server.abort();
    drop(tx);
    // The running run saw the signal too: it cancels and records itself.
    if tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .is_err()
    {
        reporter
            .warn("the running run did not stop within 60s; it is marked failed on the next start");
    }
    Ok(ExitCode::SUCCESS)
}

fn sensing(w: &Watch) -> bool {
    w.files.is_some() || !w.updated.is_empty() || w.stale.is_some()
}

/// Check every job's schedule, time zone and sensor durations (located
/// errors), as `sluice run` does before it records anything.
pub fn check_schedules(project: &Project) -> Result<()> {
    compile(project).map(|_| ())
}

/// Schedules and sensors of every job, checked (located errors).
fn compile(project: &Project) -> Result<Vec<Watch>> {
    let file = project.loaded.file.display().to_string();
    for (i, a) in project.config().orchestration.alerts.iter().enumerate() {
        let n = i + 1;
        if let Some(bad) =
            a.on.iter()
                .find(|e| !crate::alerts::EVENTS.contains(&e.as_str()))
        {
            return Err(UserError::usage(
                format!("{file}: orchestration.alerts #{n}: `{bad}` is not an event"),
                Some(format!("`on:` takes {}", crate::alerts::EVENTS.join(", "))),
            ));
        }
        if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
            return Err(UserError::usage(
                format!("{file}: orchestration.alerts #{n}: the url is not http:// or https://"),
                Some("alerts POST JSON to a webhook URL (secrets as ${VAR})".to_string()),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, job) in &project.config().jobs {
        let schedule = match &job.schedule {
            None => None,
            Some(expr) => {
                let tz = job.timezone.as_ref().map(|t| t.value.as_str());
                Some(Schedule::parse(&expr.value, tz).map_err(|e| {
                    // Point at the key that is wrong.
                    let at = match (&e, &job.timezone) {
                        (sluice_orchestrator::cron::CronError::UnknownTimeZone { .. }, Some(t)) => {
                            &t.referenced
                        }
                        _ => &expr.referenced,
                    };
                    UserError::usage(
                        format!("{file}:{}:{}: job `{name}`: {e}", at.line(), at.column()),
                        Some(e.hint()),
                    )
                })?)
            }
        };
        let when = job.when.clone().unwrap_or_default();
        let duration = |s: &serde_saphyr::Spanned<String>, key: &str| -> Result<Duration> {
            sluice_quality::spec::parse_duration(&s.value)
                .map(|secs| Duration::from_secs(secs.max(1) as u64))
                .map_err(|m| {
                    UserError::usage(
                        format!(
                            "{file}:{}:{}: job `{name}` `{key}`: {m}",
                            s.referenced.line(),
                            s.referenced.column()
                        ),
                        Some("write a duration such as `30s`, `10m`, `6h`".to_string()),
                    )
                })
        };
        let every = match &when.every {
            Some(e) => duration(e, "every")?,
            None => Duration::from_secs(30),
        };
        let stale = match &when.stale {
            Some(s) => Some((s.asset.clone(), duration(&s.after, "after")?)),
            None => None,
        };
        out.push(Watch {
            job: name.clone(),
            schedule,
            partitions: crate::orchestrate::job_partitions(project, name, job)?,
            files: when.files.clone(),
            updated: when.updated.clone(),
            stale,
            every,
            next_look: Utc::now(),
        });
    }
    Ok(out)
}

/// Runs a killed process left `running` are failed, unless another
/// process is running one now (it holds the lock).
fn recover(project: &Project, reporter: &Reporter) -> Result<()> {
    if let Ok(_lock) = project.lock() {
        let n = project.store()?.mark_abandoned()?;
        if n > 0 {
            reporter.warn(&format!(
                "{n} run(s) had been left running by a killed process: marked failed"
            ));
        }
    }
    Ok(())
}

/// Claim and queue what is due: schedule ticks in `(from, now]`, and every
/// sensor whose look is due (all of them with `all_sensors`).
#[allow(clippy::too_many_arguments)]
async fn look(
    project: &Project,
    watches: &mut [Watch],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    me: &str,
    tx: &mpsc::UnboundedSender<Queued>,
    reporter: &Reporter,
    all_sensors: bool,
) -> Result<()> {
    let store = project.store()?;
    for w in watches.iter_mut() {
        if let Some(s) = &w.schedule {
            for tick in s.ticks_between(from, now) {
                let at = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if store.claim_tick(&w.job, &at, me)? {
                    let partition = w
                        .partitions
                        .as_ref()
                        .and_then(|p| p.latest_complete(tick))
                        .map(|p| p.key);
                    reporter.info(&format!(
                        "tick {at} of `{}` ({s}){}: queued",
                        w.job,
                        partition
                            .as_ref()
                            .map(|p| format!(", partition {p}"))
                            .unwrap_or_default()
                    ));
                    let _ = tx.send(Queued {
                        trigger: format!("schedule:{}", w.job),
                        tick: Some(at),
                        partition,
                        ..Queued::new(&w.job, new_run_id())
                    });
                }
            }
        }
        if !sensing(w) || (!all_sensors && w.next_look > now) {
            continue;
        }
        w.next_look = now + chrono::Duration::from_std(w.every).unwrap_or_default();
        // New or changed files.
        if let Some(pattern) = &w.files {
            let sensor = format!("{}:files", w.job);
            let mut won = Vec::new();
            for key in file_keys(&project.dir, pattern) {
                if store.claim_sensor_key(&sensor, &key, me)? {
                    won.push(key);
                }
            }
            if !won.is_empty() {
                reporter.info(&format!(
                    "`{}`: {} new or changed file(s) under `{pattern}`: queued",
                    w.job,
                    won.len()
                ));
                let _ = tx.send(Queued::sensed(&w.job, sensor, won, new_run_id()));
            }
        }
        // Assets another run made.
        if !w.updated.is_empty() {
            let sensor = format!("{}:updated", w.job);
            let mut won = Vec::new();
            for asset in &w.updated {
                if let Some(at) = store.last_materialization(asset, Some(&w.job))?
                    && store.claim_sensor_key(&sensor, &format!("{asset}@{at}"), me)?
                {
                    won.push(format!("{asset}@{at}"));
                }
            }
            if !won.is_empty() {
                reporter.info(&format!(
                    "`{}`: updated upstream ({}): queued",
                    w.job,
                    won.join(", ")
                ));
                let _ = tx.send(Queued::sensed(&w.job, sensor, won, new_run_id()));
            }
        }
        // Freshness.
        if let Some((asset, after)) = &w.stale {
            let last = store.last_materialization(asset, None)?;
            let age = last
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| now - t.with_timezone(&Utc));
            let stale = age.is_none_or(|a| a.to_std().unwrap_or(Duration::ZERO) > *after);
            let sensor = format!("{}:stale", w.job);
            let key = format!("{asset}@{}", last.as_deref().unwrap_or("never"));
            if stale && store.claim_sensor_key(&sensor, &key, me)? {
                let age_text = age.map_or("never made".to_string(), |a| {
                    format!("last made {} min ago", a.num_minutes())
                });
                reporter.warn(&format!(
                    "`{asset}` is stale ({age_text}; allowed {}s): `{}` queued",
                    after.as_secs(),
                    w.job
                ));
                let run_id = new_run_id();
                crate::alerts::send(
                    project,
                    reporter,
                    "stale",
                    json!({"asset": asset, "last_made": last, "allowed_seconds": after.as_secs(), "job": w.job, "run_id": run_id}),
                )
                .await;
                let _ = tx.send(Queued::sensed(&w.job, sensor, vec![key], run_id));
            }
        }
    }
    Ok(())
}

/// `path@mtime:size` of every file `pattern` matches, relative to the project.
fn file_keys(dir: &Path, pattern: &str) -> Vec<String> {
    let full = dir.join(pattern);
    let Ok(paths) = glob::glob(&full.to_string_lossy()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = paths
        .flatten()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            if !meta.is_file() {
                return None;
            }
            let mtime = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            Some(format!("{rel}@{mtime}:{}", meta.len()))
        })
        .collect();
    out.sort();
    out
}

/// Runs the queue, one run at a time.
async fn work(
    dir: PathBuf,
    reporter: Reporter,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    stopping: Arc<AtomicBool>,
) -> usize {
    let mut failed = 0;
    while let Some(q) = rx.recv().await {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        // Tie the claim to the run before it starts: a crash mid-run
        // leaves the tick pointing at a failed run, not at nothing.
        if let Ok(project) = Project::load(Some(&dir))
            && let Ok(store) = project.store()
        {
            if let Some(t) = &q.tick {
                let _ = store.set_tick_run(&q.job, t, &q.run_id);
            }
            if let Some((sensor, keys)) = &q.claims {
                let _ = store.set_sensor_run(sensor, keys, &q.run_id);
            }
        }
        let req = RunRequest {
            job: Some(q.job.clone()),
            command: format!("run {}", q.job),
            checks: true,
            trigger: q.trigger.clone(),
            run_id: Some(q.run_id.clone()),
            wait_lock: true,
            partition: q.partition.clone(),
            // The server logs one line per run; `sluice runs show` has the rest.
            silent: true,
            ..Default::default()
        };
        reporter.info(&format!(
            "run {} of `{}` ({}) starts",
            q.run_id, q.job, q.trigger
        ));
        match orchestrate::run(Some(&dir), &reporter, req).await {
            Ok(code) if code == ExitCode::SUCCESS => {
                reporter.info(&format!("run {} of `{}` succeeded", q.run_id, q.job));
            }
            Ok(_) => {
                failed += 1;
                reporter.warn(&format!(
                    "run {} of `{}` did not succeed: `sluice runs show {}`",
                    q.run_id, q.job, q.run_id
                ));
            }
            Err(e) => {
                failed += 1;
                reporter.warn(&format!("run of `{}` could not start: {e:#}", q.job));
            }
        }
    }
    failed
}

/// The API's state.
struct Api {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<Queued>,
    token: Option<String>,
}

impl Api {
    fn allowed(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            None => true,
            Some(t) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| same(given.as_bytes(), t.as_bytes())),
        }
    }
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// 200 with the value, or the error: 400 for an ambiguous run prefix, 500
/// otherwise.
fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e)
            if matches!(
                e.downcast_ref::<sluice_store::StoreError>(),
                Some(sluice_store::StoreError::AmbiguousRun { .. })
            ) =>
        {
            reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}))
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": e.to_string()}),
        ),
    }
}

fn denied() -> Response {
    reply(
        StatusCode::UNAUTHORIZED,
        json!({"error": "missing or wrong token", "hint": "send `Authorization: Bearer <SLUICE_API_TOKEN>`"}),
    )
}

async fn health() -> Response {
    reply(StatusCode::OK, json!({"status": "ok"}))
}

async fn jobs(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if !api.allowed(&headers) {
        return denied();
    }
    answer(Project::load(Some(&api.dir)).map(|p| {
        let list: HashMap<&String, Value> = p
            .config()
            .jobs
            .iter()
            .map(|(k, j)| {
                (
                    k,
                    json!({
                        "description": j.description,
                        "select": j.select,
                        "schedule": j.schedule.as_ref().map(|s| s.value.clone()),
                        "partitions": j.partitions.as_ref().map(|p| p.every.value.clone()),
                    }),
                )
            })
            .collect();
        json!(list)
    }))
}

async fn trigger(
    State(api): State<Arc<Api>>,
    UrlPath(job): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !api.allowed(&headers) {
        return denied();
    }
    let known = Project::load(Some(&api.dir))
        .map(|p| p.config().jobs.contains_key(&job))
        .unwrap_or(false);
    if !known {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no job `{job}`"), "hint": "GET /api/jobs lists them"}),
        );
    }
    let run_id = new_run_id();
    let queued = api.tx.send(Queued {
        trigger: "webhook".to_string(),
        ..Queued::new(&job, run_id.clone())
    });
    match queued {
        Ok(()) => reply(
            StatusCode::ACCEPTED,
            json!({"run_id": run_id, "job": job, "status": "queued", "links": {"run": format!("/api/runs/{run_id}")}}),
        ),
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the server is stopping"}),
        ),
    }
}

async fn runs(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if !api.allowed(&headers) {
        return denied();
    }
    answer(Project::load(Some(&api.dir)).and_then(|p| Ok(json!(p.store()?.list_runs(50)?))))
}

async fn run(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !api.allowed(&headers) {
        return denied();
    }
    let found = Project::load(Some(&api.dir)).and_then(|p| {
        let store = p.store()?;
        Ok(match store.find_run(&id)? {
            Some(r) => {
                let steps = store.run_steps(&r.run_id)?;
                Some(json!({"run": r, "steps": steps}))
            }
            None => None,
        })
    });
    match found {
        // Queued, not started yet.
        Ok(None) => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no run `{id}` (yet: a queued run appears once it starts)")}),
        ),
        other => answer(other.map(Option::unwrap_or_default)),
    }
}
