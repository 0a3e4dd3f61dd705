//! `sluice runs`: the run history — `list`, `show ID`, `logs ID`.
//!
//! Read-only: it never marks runs abandoned (only a command that holds the
//! project's run lock may; see `Store::mark_abandoned`), so a run in
//! progress shows as `running`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use sluice_store::{MIN_RUN_PREFIX, RunRecord, RunStatus, Store};

use crate::cli::{RunsAction, RunsArgs, RunsListArgs};
use crate::commands::check::shorten;
use crate::history::millis_between;
use crate::output::{Reporter, UserError, human_bytes, table, thousands};
use crate::project::Project;

/// Characters of a run id `runs list` shows at least: with UUID v7 ids,
/// the whole millisecond timestamp (`0199a1b2-c3d4`). Longer when two runs
/// share it (`short_id`).
const SHORT_ID: usize = 13;

/// Run `sluice runs …`.
pub fn runs(dir: Option<&Path>, args: RunsArgs, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let store = project.store()?;
    match args.action {
        None => list(&store, &args.list, reporter),
        Some(RunsAction::List(list_args)) => list(&store, &list_args, reporter),
        Some(RunsAction::Show { id }) => show(&store, &id, reporter),
        Some(RunsAction::Logs { id, step }) => logs(&store, &id, step.as_deref(), reporter),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// A run as listed: the record and what its steps (or, for a run of
/// streams, its stream loads) add up to.
#[derive(Debug, Serialize)]
struct RunRow {
    #[serde(flatten)]
    run: RunRecord,
    /// `finished_at - started_at`; none while running.
    duration_ms: Option<f64>,
    /// Steps (or stream loads) that succeeded.
    steps_ok: usize,
    /// Steps (or stream loads) in all.
    steps_total: usize,
    /// Rows written by them.
    rows: u64,
}

impl RunRow {
    fn of(store: &Store, run: RunRecord) -> Result<RunRow> {
        let steps = store.run_steps(&run.run_id)?;
        let (steps_ok, steps_total, rows) = if steps.is_empty() {
            let streams = store.stream_runs(&run.run_id)?;
            (
                streams
                    .iter()
                    .filter(|(s, _)| *s == RunStatus::Success)
                    .count(),
                streams.len(),
                streams.iter().map(|(_, s)| s.rows_written).sum(),
            )
        } else {
            (
                steps.iter().filter(|s| s.status == "success").count(),
                steps.len(),
                steps.iter().map(|s| s.rows).sum(),
            )
        };
        Ok(RunRow {
            duration_ms: millis_between(&run.started_at, run.finished_at.as_deref()),
            run,
            steps_ok,
            steps_total,
            rows,
        })
    }
}

fn list(store: &Store, args: &RunsListArgs, reporter: &Reporter) -> Result<()> {
    // clap only lets the four statuses through.
    let status = args.status.as_deref().and_then(RunStatus::parse);
    let runs = store.list_runs_filtered(args.limit, args.job.as_deref(), status)?;
    let rows = runs
        .into_iter()
        .map(|r| RunRow::of(store, r))
        .collect::<Result<Vec<_>>>()?;
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        let filtered = args.job.is_some() || status.is_some();
        crate::outln!(
            "no runs{}; `sluice run` loads the project's sources",
            if filtered { " match" } else { " yet" }
        );
        return Ok(());
    }
    let mut t = table(&[
        "run", "job", "trigger", "status", "started", "duration", "steps", "rows",
    ]);
    for r in &rows {
        t.add_row(vec![
            short_id(store, &r.run.run_id),
            r.run.job.clone().unwrap_or_else(|| r.run.command.clone()),
            r.run.trigger.clone(),
            r.run.status.to_string(),
            when(&r.run.started_at),
            r.duration_ms.map_or_else(|| "-".into(), duration),
            // A check run has neither steps nor stream loads: nothing to count.
            if r.steps_total == 0 {
                "-".into()
            } else {
                format!("{}/{}", r.steps_ok, r.steps_total)
            },
            if r.steps_total == 0 {
                "-".into()
            } else {
                thousands(r.rows)
            },
        ]);
    }
    crate::outln!("{t}");
    Ok(())
}

/// The shortest prefix of `id` (at least [`SHORT_ID`] characters) that
/// `runs show` finds this run by.
fn short_id(store: &Store, id: &str) -> String {
    let ends = id
        .char_indices()
        .map(|(i, _)| i)
        .skip(SHORT_ID)
        .chain([id.len()]);
    for end in ends {
        let prefix = &id[..end];
        if let Ok(Some(r)) = store.find_run(prefix)
            && r.run_id == id
        {
            return prefix.to_string();
        }
    }
    id.to_string()
}

/// The run `id_or_prefix` names, or a user error (exit 2) saying how to find one.
fn find(store: &Store, id_or_prefix: &str) -> Result<RunRecord> {
    store.find_run(id_or_prefix)?.ok_or_else(|| {
        UserError::usage(
            format!("No run `{id_or_prefix}` in this project's history"),
            Some(format!(
                "list runs with `sluice runs`; give a run id or at least {MIN_RUN_PREFIX} characters of one"
            )),
        )
    })
}

fn show(store: &Store, id: &str, reporter: &Reporter) -> Result<()> {
    let run = find(store, id)?;
    let steps = store.run_steps(&run.run_id)?;
    let streams = store.stream_runs(&run.run_id)?;
    let checks = store.checks_of_run(&run.run_id)?;
    let row = RunRow::of(store, run)?;
    if reporter.json() {
        let streams: Vec<_> = streams
            .iter()
            .map(|(status, s)| {
                let mut v = json!(s);
                v["status"] = json!(status);
                v
            })
            .collect();
        let doc = json!({"run": row, "steps": steps, "streams": streams, "checks": checks});
        crate::outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let run = &row.run;
    let mut header = vec![
        ("run", run.run_id.clone()),
        ("job", run.job.clone().unwrap_or_else(|| "-".into())),
        ("command", run.command.clone()),
        ("trigger", run.trigger.clone()),
        ("status", run.status.to_string()),
        ("started", when(&run.started_at)),
        (
            "finished",
            run.finished_at.as_deref().map_or_else(|| "-".into(), when),
        ),
        (
            "duration",
            row.duration_ms.map_or_else(|| "-".into(), duration),
        ),
    ];
    if let Some(p) = &run.partition {
        header.push(("partition", p.clone()));
    }
    if let Some(p) = &run.parent_run_id {
        header.push(("parent run", p.clone()));
    }
    if let Some(e) = &run.error {
        header.push(("error", e.clone()));
    }
    for (k, v) in header {
        crate::outln!("{k:<11}{v}");
    }

    if !steps.is_empty() {
        let mut t = table(&[
            "step", "kind", "status", "attempts", "duration", "rows", "message",
        ]);
        for s in &steps {
            t.add_row(vec![
                s.step_id.clone(),
                s.kind.clone(),
                s.status.clone(),
                s.attempts.to_string(),
                s.duration_ms.map_or_else(|| "-".into(), duration),
                thousands(s.rows),
                s.message.clone().unwrap_or_default(),
            ]);
        }
        crate::outln!("\nsteps\n{t}");
        errors(steps.iter().map(|s| (&s.step_id, &s.error)));
    }
    if !streams.is_empty() {
        let mut t = table(&[
            "stream",
            "target",
            "status",
            "written",
            "quarantined",
            "read",
            "files",
        ]);
        for (status, s) in &streams {
            t.add_row(vec![
                s.stream_id.clone(),
                s.target.clone(),
                status.to_string(),
                thousands(s.rows_written),
                thousands(s.rows_quarantined),
                human_bytes(s.bytes_read),
                s.files.to_string(),
            ]);
        }
        crate::outln!("\nstream loads\n{t}");
        errors(streams.iter().map(|(_, s)| (&s.stream_id, &s.error)));
    }
    if !checks.is_empty() {
        let mut t = table(&["check", "phase", "status", "observed", "message"]);
        for c in &checks {
            t.add_row(vec![
                c.check_id.clone(),
                c.phase.clone(),
                c.status.clone(),
                match c.failing_rows {
                    Some(n) => format!("{} failing", thousands(n)),
                    None => shorten(&c.observed.to_string(), 24),
                },
                c.message.clone(),
            ]);
        }
        crate::outln!("\nchecks\n{t}");
    }
    if steps.is_empty() && streams.is_empty() && checks.is_empty() {
        crate::outln!("\n(no steps, stream loads or check results recorded)");
    }
    Ok(())
}

/// Errors under a table, one per line: long texts would stretch its columns.
fn errors<'a>(items: impl Iterator<Item = (&'a String, &'a Option<String>)>) {
    for (name, error) in items {
        if let Some(e) = error {
            crate::outln!("  {name}: {e}");
        }
    }
}

fn logs(store: &Store, id: &str, step: Option<&str>, reporter: &Reporter) -> Result<()> {
    let run = find(store, id)?;
    if let Some(step) = step {
        let steps = store.run_steps(&run.run_id)?;
        if !steps.is_empty() && !steps.iter().any(|s| s.step_id == step) {
            let names: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
            return Err(UserError::usage(
                format!("Run `{}` has no step `{step}`", run.run_id),
                Some(format!("its steps: {}", names.join(", "))),
            ));
        }
    }
    let events = store.run_events(&run.run_id, step)?;
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    if events.is_empty() {
        reporter.info(&format!("run {} has no events recorded", run.run_id));
    }
    for e in &events {
        crate::outln!(
            "{} {:<5} {} {}",
            clock(&e.at),
            e.level.to_uppercase(),
            e.step_id.as_deref().unwrap_or("-"),
            e.message
        );
    }
    Ok(())
}

/// `2026-01-02 13:04:05 UTC` from RFC 3339.
fn when(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.to_utc().format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// `13:04:05.123` (UTC) from RFC 3339.
fn clock(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.to_utc().format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// `0.42s`, `12.30s`, `2m 03s`, `1h 04m`.
fn duration(ms: f64) -> String {
    let s = ms.max(0.0) / 1000.0;
    if s < 60.0 {
        format!("{s:.2}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(duration(420.0), "0.42s");
        assert_eq!(duration(123_000.0), "2m 03s");
        assert_eq!(duration(3_840_000.0), "1h 04m");
        assert_eq!(when("2026-01-02T13:04:05.123Z"), "2026-01-02 13:04:05 UTC");
        assert_eq!(when("2026-01-02T14:04:05+01:00"), "2026-01-02 13:04:05 UTC");
        assert_eq!(clock("2026-01-02T13:04:05.120Z"), "13:04:05.120");
        assert_eq!(clock("not a time"), "not a time");
    }

    #[test]
    fn short_ids_grow_until_they_name_one_run() {
        let store = Store::in_memory().unwrap();
        store
            .start_run("0199a1b2-c3d4-7000-8000-000000000001", "run")
            .unwrap();
        assert_eq!(
            short_id(&store, "0199a1b2-c3d4-7000-8000-000000000001"),
            "0199a1b2-c3d4"
        );
        // Started in the same millisecond.
        store
            .start_run("0199a1b2-c3d4-7001-8000-000000000002", "run")
            .unwrap();
        assert_eq!(
            short_id(&store, "0199a1b2-c3d4-7000-8000-000000000001"),
            "0199a1b2-c3d4-7000"
        );
        assert_eq!(short_id(&store, "r1"), "r1");
    }
}
