//! A run's steps (one row per step, rewritten on each state change) and its
//! events (an append-only log, numbered per run).
//!
//! ```text
//!  orchestrator ── record_step(run, step)     pending → running → success | failed | skipped | cancelled
//!               ── append_event(run, step, …)  step_started, step_retrying, step_failed, log, …
//!  sluice runs  ── run_steps / run_events      (`runs show`, `runs logs`)
//!  sluice sql   ── all_steps / all_events      (`sluice.history.steps`, `sluice.history.events`)
//! ```

use rusqlite::{Row, params};
use serde::Serialize;

use crate::{Result, Store, now};

/// One step of a run, as last recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step's id, unique in its run.
    pub step_id: String,
    /// `materialize` or `check`.
    pub kind: String,
    /// The asset keys the step materializes or checks.
    pub assets: Vec<String>,
    /// `pending`, `running`, `success`, `failed`, `skipped` or `cancelled`.
    pub status: String,
    /// Attempts so far (retries included).
    pub attempts: u32,
    /// Start of the first attempt (RFC 3339).
    pub started_at: Option<String>,
    /// End of the last attempt.
    pub finished_at: Option<String>,
    /// Time taken.
    pub duration_ms: Option<f64>,
    /// Rows written (or checked).
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
    /// One line on what happened.
    pub message: Option<String>,
    /// Error text (redacted), if the step failed.
    pub error: Option<String>,
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// 1, 2, … in the run.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The step it is about, if any.
    pub step_id: Option<String>,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// What happened: `step_started`, `step_retrying`, `step_failed`, `log`, ….
    pub kind: String,
    /// Text (redacted).
    pub message: String,
}

/// The columns [`step_of_row`] reads (after the run id), in its order.
const STEP_COLUMNS: &str = "run_id, step_id, kind, assets, status, attempts, started_at, \
    finished_at, duration_ms, rows, bytes, message, error";

fn step_of_row(r: &Row<'_>) -> rusqlite::Result<(String, StepRecord)> {
    let assets: String = r.get(3)?;
    let assets = serde_json::from_str(&assets).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let n = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok((
        r.get(0)?,
        StepRecord {
            step_id: r.get(1)?,
            kind: r.get(2)?,
            assets,
            status: r.get(4)?,
            attempts: u32::try_from(r.get::<_, i64>(5)?.max(0)).unwrap_or(u32::MAX),
            started_at: r.get(6)?,
            finished_at: r.get(7)?,
            duration_ms: r.get(8)?,
            rows: n(9)?,
            bytes: n(10)?,
            message: r.get(11)?,
            error: r.get(12)?,
        },
    ))
}

/// The columns [`event_of_row`] reads, in its order.
const EVENT_COLUMNS: &str = "run_id, seq, at, step_id, level, kind, message";

fn event_of_row(r: &Row<'_>) -> rusqlite::Result<(String, EventRecord)> {
    Ok((
        r.get(0)?,
        EventRecord {
            seq: r.get(1)?,
            at: r.get(2)?,
            step_id: r.get(3)?,
            level: r.get(4)?,
            kind: r.get(5)?,
            message: r.get(6)?,
        },
    ))
}

impl Store {
    /// Record a step's state: the first call adds it, later ones replace
    /// every field (call it on each state change). Steps keep the order of
    /// their first call.
    pub fn record_step(&self, run_id: &str, s: &StepRecord) -> Result<()> {
        // An upsert, not INSERT OR REPLACE: a replaced row would get a new
        // rowid and move to the end of the run's steps.
        self.conn
            .execute(
                "INSERT INTO run_steps (run_id, step_id, kind, assets, status, attempts, started_at,
                   finished_at, duration_ms, rows, bytes, message, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind,
                   assets = excluded.assets, status = excluded.status, attempts = excluded.attempts,
                   started_at = excluded.started_at, finished_at = excluded.finished_at,
                   duration_ms = excluded.duration_ms, rows = excluded.rows, bytes = excluded.bytes,
                   message = excluded.message, error = excluded.error",
                params![
                    run_id,
                    s.step_id,
                    s.kind,
                    serde_json::Value::from(s.assets.clone()).to_string(),
                    s.status,
                    s.attempts,
                    s.started_at,
                    s.finished_at,
                    s.duration_ms,
                    s.rows as i64,
                    s.bytes as i64,
                    s.message,
                    s.error,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// [`Store::record_step`] for many steps in one transaction (a plan's
    /// `pending` rows: one commit instead of one per step).
    pub fn record_steps(&self, run_id: &str, steps: &[StepRecord]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        for s in steps {
            self.record_step(run_id, s)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Append an event to a run's log, stamped now; returns its sequence
    /// number (1 for a run's first event).
    pub fn append_event(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        level: &str,
        kind: &str,
        message: &str,
    ) -> Result<i64> {
        // One statement: the next number is taken under SQLite's write lock.
        self.conn
            .query_row(
                "INSERT INTO run_events (run_id, seq, at, step_id, level, kind, message)
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6
                 FROM run_events WHERE run_id = ?1
                 RETURNING seq",
                params![run_id, now(), step_id, level, kind, message],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// A run's steps, in the order they were first recorded.
    pub fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ?1 ORDER BY rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], |r| step_of_row(r).map(|(_, s)| s))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// A run's events in order, or only those of step `step_id`.
    pub fn run_events(&self, run_id: &str, step_id: Option<&str>) -> Result<Vec<EventRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM run_events
                 WHERE run_id = ?1 AND (?2 IS NULL OR step_id = ?2) ORDER BY seq"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id, step_id], |r| {
                event_of_row(r).map(|(_, e)| e)
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Every step of every run as (run id, step), in the order recorded (for
    /// `sluice.history.steps`). Known limit: all of them are read into memory.
    pub fn all_steps(&self) -> Result<Vec<(String, StepRecord)>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STEP_COLUMNS} FROM run_steps ORDER BY rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], step_of_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Every event of every run as (run id, event), oldest first (for
    /// `sluice.history.events`). Known limit: all of them are read into memory.
    pub fn all_events(&self) -> Result<Vec<(String, EventRecord)>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM run_events ORDER BY at, run_id, seq"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], event_of_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, status: &str) -> StepRecord {
        StepRecord {
            step_id: id.into(),
            kind: "materialize".into(),
            assets: vec![format!("shop.{id}"), "shop.other".into()],
            status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn steps_are_updated_in_place_and_keep_their_order() {
        let store = Store::in_memory().unwrap();
        store.start_run("r1", "run daily").unwrap();
        store
            .record_steps(
                "r1",
                &[
                    step("load", "pending"),
                    step("model", "pending"),
                    step("check", "pending"),
                ],
            )
            .unwrap();
        // The first step changes state last: it stays first.
        let done = StepRecord {
            attempts: 2,
            started_at: Some("2026-01-01T00:00:00.000Z".into()),
            finished_at: Some("2026-01-01T00:00:01.500Z".into()),
            duration_ms: Some(1500.0),
            rows: 1_000_000,
            bytes: 5_000_000_000,
            message: Some("1,000,000 rows".into()),
            ..step("load", "success")
        };
        store.record_step("r1", &step("model", "skipped")).unwrap();
        store.record_step("r1", &done).unwrap();
        let steps = store.run_steps("r1").unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
        assert_eq!(ids, ["load", "model", "check"]);
        assert_eq!(steps[0], done);
        assert_eq!(steps[1].status, "skipped");
        assert_eq!(steps[1].assets, ["shop.model", "shop.other"]);
        assert!(store.run_steps("r2").unwrap().is_empty());
        // Two runs may have steps of the same id.
        store.record_step("r2", &step("load", "running")).unwrap();
        let all = store.all_steps().unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].0, "r2");
        assert_eq!(all[0].1, done);
    }

    #[test]
    fn events_are_numbered_per_run_and_filtered_by_step() {
        let store = Store::in_memory().unwrap();
        let e = |run, step, kind| {
            store
                .append_event(run, step, "info", kind, &format!("{kind} of {step:?}"))
                .unwrap()
        };
        assert_eq!(e("r1", Some("load"), "step_started"), 1);
        assert_eq!(e("r1", Some("model"), "step_started"), 2);
        assert_eq!(e("r2", None, "log"), 1);
        assert_eq!(e("r1", Some("load"), "step_retrying"), 3);
        let all = store.run_events("r1", None).unwrap();
        let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(all[2].kind, "step_retrying");
        assert_eq!(all[2].message, "step_retrying of Some(\"load\")");
        assert!(chrono::DateTime::parse_from_rfc3339(&all[0].at).is_ok());
        let load = store.run_events("r1", Some("load")).unwrap();
        assert_eq!(load.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
        assert!(store.run_events("r1", Some("nope")).unwrap().is_empty());
        let every = store.all_events().unwrap();
        assert_eq!(every.len(), 4);
        assert_eq!(every.iter().filter(|(run, _)| run == "r2").count(), 1);
    }
}
