//! `sluice run` and `sluice extract`: load streams.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use futures::StreamExt;
use serde_json::json;
use sluice_core::connector::Destination;
use sluice_store::RunStatus;
use tokio::sync::watch;

use crate::engine::{RunContext, StreamJob, StreamOutcome, run_stream, run_together};
use crate::output::{Reporter, human_bytes, table, thousands};
use crate::plan::{Planned, Selection, plan};
use crate::project::Project;
use crate::registry::build_destination;

/// Load the selected streams of the project.
pub async fn run(
    dir: Option<&Path>,
    reporter: &Reporter,
    selection: Selection,
    full_refresh: bool,
    to: Option<&str>,
    command: &str,
) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    // Build every connector first: a configuration mistake fails before any data moves.
    let Planned { specs, sources } = plan(&project, &selection).await?;
    let mut destinations: HashMap<String, Arc<dyn Destination>> = HashMap::new();
    let mut jobs = Vec::new();
    for spec in specs {
        let own = spec.destination.clone().unwrap_or_else(|| "lake".into());
        let dest_name = to.map(str::to_string).unwrap_or_else(|| own.clone());
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
        let checks = crate::quality::stream_checks(&project, &spec, Some(dest_name.as_str()))?;
        let check_place = if checks.iter().any(|c| !c.is_row_check()) {
            crate::quality::CheckPlace::of_destination(&project, &dest_name)?
        } else {
            None
        };
        jobs.push(StreamJob {
            source: sources[&spec.source].clone(),
            destination: destinations[&dest_name].clone(),
            spec,
            full_refresh,
            state_key,
            checks,
            check_place,
        });
    }

    // Every check's columns, against the tables that exist, before any data is read.
    for job in jobs.iter().filter(|j| !j.full_refresh) {
        if let Some(place) = &job.check_place {
            let backend = place.backend("validate").await?;
            sluice_quality::validate(backend.as_ref(), &job.checks).await?;
        }
    }

    let _lock = project.lock()?;
    let store = project.store()?;
    let abandoned = store.mark_abandoned()?;
    if abandoned > 0 {
        reporter.warn(&format!(
            "{abandoned} earlier run(s) had been killed; marked failed"
        ));
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    store.start_run(&run_id, command)?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let signal_reporter = reporter.clone();
    // Registered now, before any plugin starts: a SIGTERM from then on
    // cancels the run instead of killing Sluice on the spot.
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
    let ctx = RunContext {
        run_id: run_id.clone(),
        store: Arc::new(Mutex::new(store)),
        reporter: reporter.clone(),
        cancel: cancel_rx,
        redact: Arc::new(move |t: &str| secrets.redact(t)),
    };
    let parallelism = project.config().defaults.parallelism.unwrap_or(2).max(1);
    let started = Instant::now();
    let ctx_ref = &ctx;
    // Streams of a source that reads them together (a Singer tap) form one
    // unit; every other stream is a unit of its own.
    let mut units: Vec<Vec<(usize, StreamJob)>> = Vec::new();
    let mut together: HashMap<String, usize> = HashMap::new();
    for (i, job) in jobs.into_iter().enumerate() {
        if job.source.reads_together() {
            // By source only: one tap process serves all of its streams,
            // whatever destination each goes to (`run_together` opens each
            // stream's own); two units would run the tap twice at once.
            match together.get(&job.spec.source) {
                Some(&u) => units[u].push((i, job)),
                None => {
                    together.insert(job.spec.source.clone(), units.len());
                    units.push(vec![(i, job)]);
                }
            }
        } else {
            units.push(vec![(i, job)]);
        }
    }
    let mut outcomes: Vec<(usize, StreamOutcome)> = futures::stream::iter(units)
        .map(|mut unit| async move {
            if unit.len() == 1 && !unit[0].1.source.reads_together() {
                let mut out = Vec::with_capacity(1);
                if let Some((i, job)) = unit.pop() {
                    out.push((i, run_stream(ctx_ref, job).await));
                }
                out
            } else {
                let (index, jobs): (Vec<usize>, Vec<StreamJob>) = unit.into_iter().unzip();
                index
                    .into_iter()
                    .zip(run_together(ctx_ref, jobs).await)
                    .collect()
            }
        })
        .buffer_unordered(parallelism)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<StreamOutcome> = outcomes.into_iter().map(|(_, o)| o).collect();
    signals.abort();

    let status = if outcomes.iter().any(|o| o.status == RunStatus::Cancelled) {
        RunStatus::Cancelled
    } else if outcomes.iter().any(|o| o.status == RunStatus::Failed) {
        RunStatus::Failed
    } else {
        RunStatus::Success
    };
    let seconds = started.elapsed().as_secs_f64();
    let summary = json!({
        "run_id": run_id,
        "status": status,
        "seconds": seconds,
        "streams": outcomes,
    });
    let first_error = outcomes.iter().find_map(|o| o.error.clone());
    if let Ok(store) = ctx.store.lock()
        && let Err(e) = store.finish_run(&run_id, status, first_error.as_deref(), &summary)
    {
        reporter.warn(&format!("could not record the run: {e}"));
    }
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(reporter, &run_id, &outcomes, seconds);
    }
    Ok(if status == RunStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A request to stop the run.
#[derive(Debug, Clone, Copy)]
enum StopSignal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM, as orchestrators and service managers send it.
    Terminate,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "Ctrl-C",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit code when a second signal forces the exit (128 + signal).
    fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Ctrl-C and, on Unix, SIGTERM. Both cancel the run gracefully (plugins
/// stopped, their config files removed, nothing half-written committed).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        StopSignals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| tracing::debug!("cannot handle SIGTERM: {e}"))
                .ok(),
        }
    }

    /// The next stop signal; `None` once none can come any more.
    async fn next(&mut self) -> Option<StopSignal> {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match self.term.as_mut() {
                Some(term) => term.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        tokio::select! {
            () = ctrl_c => Some(StopSignal::Interrupt),
            t = term => t.map(|()| StopSignal::Terminate),
        }
    }
}

/// The summary table, then per-stream notes (errors, quarantine, schema changes).
pub fn print_summary(reporter: &Reporter, run_id: &str, outcomes: &[StreamOutcome], seconds: f64) {
    let mut t = table(&[
        "stream",
        "table",
        "mode",
        "read",
        "written",
        "quarantined",
        "skipped",
        "time",
        "rows/s",
        "status",
    ]);
    for o in outcomes {
        t.add_row(vec![
            o.stream.clone(),
            if o.destination == "lake" {
                o.table.clone()
            } else {
                format!("{} ({})", o.location, o.destination)
            },
            o.write_mode.clone(),
            thousands(o.rows_read),
            thousands(o.rows_written),
            thousands(o.rows_quarantined),
            thousands(o.rows_skipped),
            format!("{:.2}s", o.seconds),
            thousands(o.rows_per_second as u64),
            match o.status {
                RunStatus::Success => "ok".to_string(),
                RunStatus::Failed => "FAILED".to_string(),
                RunStatus::Cancelled => "cancelled".to_string(),
                RunStatus::Running => "running".to_string(),
            },
        ]);
    }
    crate::outln!("{t}");
    let ok = outcomes
        .iter()
        .filter(|o| o.status == RunStatus::Success)
        .count();
    let rows: u64 = outcomes.iter().map(|o| o.rows_written).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes_read).sum();
    crate::outln!(
        "run {run_id}: {ok}/{} streams ok, {} rows written, {} read in {seconds:.2}s",
        outcomes.len(),
        thousands(rows),
        human_bytes(bytes)
    );
    for o in outcomes {
        for change in &o.schema_changes {
            crate::outln!("  {}: {change}", o.stream);
        }
        if o.rows_quarantined > 0 && o.destination == "lake" {
            crate::outln!(
                "  {}: {} rows quarantined; see them with: sluice sql \"SELECT line, \\\"column\\\", value, reason FROM {}__quarantine WHERE run_id = '{run_id}'\"",
                o.stream,
                thousands(o.rows_quarantined),
                o.table
            );
        } else if o.rows_quarantined > 0 {
            crate::outln!(
                "  {}: {} rows quarantined next to {}",
                o.stream,
                thousands(o.rows_quarantined),
                o.location
            );
        }
        let checked = o.checks.len();
        if checked > 0 {
            let bad: Vec<&sluice_quality::CheckResult> = o
                .checks
                .iter()
                .filter(|r| r.status != sluice_quality::Status::Pass)
                .collect();
            crate::outln!(
                "  {}: {} of {checked} checks passed{}",
                o.stream,
                checked - bad.len(),
                if bad.is_empty() { "" } else { ":" }
            );
            for r in bad {
                crate::outln!(
                    "    {} {}: {}",
                    r.status.as_str().to_uppercase(),
                    r.id,
                    r.message
                );
            }
        }
        if let Some(e) = &o.error {
            reporter.line(&format!("error: {}: {e}", o.stream));
            if let Some(h) = &o.hint {
                reporter.line(&format!("hint: {h}"));
            }
        }
    }
}
