//! What `sluice run` and `sluice extract` share: stop signals and the
//! summary of loads (the runs themselves: [`crate::orchestrate`]).

use sluice_store::RunStatus;

use crate::engine::StreamOutcome;
use crate::output::{Reporter, human_bytes, table, thousands};

/// A request to stop the run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StopSignal {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM, as orchestrators and service managers send it.
    Terminate,
}

impl StopSignal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "Ctrl-C",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit code when a second signal forces the exit (128 + signal).
    pub(crate) fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Ctrl-C and, on Unix, SIGTERM. Both cancel the run gracefully (plugins
/// stopped, their config files removed, nothing half-written committed).
pub(crate) struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(crate) fn new() -> StopSignals {
        StopSignals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| tracing::debug!("cannot handle SIGTERM: {e}"))
                .ok(),
        }
    }

    /// The next stop signal; `None` once none can come any more.
    pub(crate) async fn next(&mut self) -> Option<StopSignal> {
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
