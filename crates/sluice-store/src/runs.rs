//! Runs: one row per run (a load, a check run, a job), with what started it.
//!
//! A run's streams are in [`crate::streams`], its steps and events in
//! [`crate::steps`].

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::{Result, Store, StoreError, now};

/// The error a run, or a step of it, gets when its process died before it finished.
const ABANDONED_RUN: &str = "The process ended before the run finished (killed or crashed)";
/// See [`ABANDONED_RUN`].
const ABANDONED_STEP: &str = "The process ended before the step finished (killed or crashed)";

/// The shortest prefix [`Store::find_run`] looks runs up by.
pub const MIN_RUN_PREFIX: usize = 4;

/// How a run or stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died; see [`Store::mark_abandoned`]).
    Running,
    /// Finished without error.
    Success,
    /// Finished with an error.
    Failed,
    /// Stopped by the user.
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order of a run's life.
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Running,
        RunStatus::Success,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status whose text is `s` (`running`, `success`, `failed`,
    /// `cancelled`); `None` for anything else.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A status read back from the store. Only the store writes the column,
    /// so unknown text means a newer Sluice wrote it: shown as running
    /// rather than failing the whole listing.
    pub(crate) fn stored(s: &str) -> RunStatus {
        RunStatus::parse(s).unwrap_or(RunStatus::Running)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Store::begin_run`] records about a new run.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// Run id (a UUID v7 in the CLI).
    pub run_id: &'a str,
    /// The command (`run`, `run daily`, `extract shop`, `check`).
    pub command: &'a str,
    /// The job run, if any.
    pub job: Option<&'a str>,
    /// What started it: `manual`, `schedule:<name>`, `sensor:<name>`,
    /// `webhook`, `backfill:<id>` or `from_failure`.
    pub trigger: &'a str,
    /// The run a `--from-failure` re-run repeats.
    pub parent_run_id: Option<&'a str>,
    /// The partition run (`2026-01-02`), for partitioned jobs.
    pub partition: Option<&'a str>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// The command (`run`, `extract shop`).
    pub command: String,
    /// Status.
    pub status: RunStatus,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Error text (redacted).
    pub error: Option<String>,
    /// The job run, if any.
    pub job: Option<String>,
    /// What started it (see [`RunStart::trigger`]).
    pub trigger: String,
    /// The run a `--from-failure` re-run repeats.
    pub parent_run_id: Option<String>,
    /// The partition run.
    pub partition: Option<String>,
    /// What the run reported when it finished (JSON; `sluice run --json`'s document).
    pub summary: Option<serde_json::Value>,
}

/// The columns [`run_of_row`] reads, in its order.
const RUN_COLUMNS: &str = "run_id, command, status, started_at, finished_at, error, job, trigger, \
                           parent_run_id, partition_key, summary";

fn run_of_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        command: r.get(1)?,
        status: RunStatus::stored(&r.get::<_, String>(2)?),
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        error: r.get(5)?,
        job: r.get(6)?,
        trigger: r.get(7)?,
        parent_run_id: r.get(8)?,
        partition: r.get(9)?,
        // Written by the store from a JSON value; unreadable text (by hand) is no summary.
        summary: r
            .get::<_, Option<String>>(10)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl Store {
    /// Record the start of a run: status `running`, started now.
    pub fn begin_run(&self, r: &RunStart<'_>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (run_id, command, status, started_at, job, trigger, parent_run_id, partition_key)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.run_id,
                    r.command,
                    now(),
                    r.job,
                    r.trigger,
                    r.parent_run_id,
                    r.partition
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Record the start of a run started by hand, of no job
    /// ([`Store::begin_run`] with trigger `manual`).
    pub fn start_run(&self, run_id: &str, command: &str) -> Result<()> {
        self.begin_run(&RunStart {
            run_id,
            command,
            job: None,
            trigger: "manual",
            parent_run_id: None,
            partition: None,
        })
    }

    /// Record the end of a run.
    pub fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
        summary: &serde_json::Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4, summary = ?5 WHERE run_id = ?1",
                params![run_id, status.as_str(), now(), error, summary.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Runs still marked `running` belong to processes that died: mark them
    /// failed, with their steps still `running` or `pending`, and add an
    /// `error` event `run_abandoned` to each. Returns how many runs were
    /// marked. Call only when no other process of the project is running
    /// (the CLI holds the project lock then).
    pub fn mark_abandoned(&self) -> Result<usize> {
        let at = now();
        // One transaction: a run is never failed with steps still running.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let ids = {
            let mut stmt = tx
                .prepare("SELECT run_id FROM runs WHERE status = 'running' ORDER BY started_at")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        if ids.is_empty() {
            return Ok(0);
        }
        tx.execute(
            "UPDATE run_steps SET status = 'failed', finished_at = COALESCE(finished_at, ?1), error = ?2
             WHERE status IN ('running', 'pending')
               AND run_id IN (SELECT run_id FROM runs WHERE status = 'running')",
            params![at, ABANDONED_STEP],
        )
        .map_err(|e| self.err(e))?;
        for id in &ids {
            self.append_event(id, None, "error", "run_abandoned", ABANDONED_RUN)?;
        }
        let n = tx
            .execute(
                "UPDATE runs SET status = 'failed', finished_at = ?1, error = ?2 WHERE status = 'running'",
                params![at, ABANDONED_RUN],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The newest runs first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.list_runs_filtered(limit, None, None)
    }

    /// The newest `limit` runs first, only those of job `job` and with
    /// status `status` when given.
    pub fn list_runs_filtered(
        &self,
        limit: usize,
        job: Option<&str>,
        status: Option<RunStatus>,
    ) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (?2 IS NULL OR job = ?2) AND (?3 IS NULL OR status = ?3)
                 ORDER BY started_at DESC, run_id DESC LIMIT ?1"
            ))
            .map_err(|e| self.err(e))?;
        // SQLite reads a negative limit as none.
        let limit = i64::try_from(limit).unwrap_or(-1);
        let rows = stmt
            .query_map(
                params![limit, job, status.map(RunStatus::as_str)],
                run_of_row,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Every run, newest first (for `sluice.history.runs`). Known limit: all
    /// of them are read into memory; fine for thousands of runs, not for
    /// millions.
    pub fn all_runs(&self) -> Result<Vec<RunRecord>> {
        self.list_runs_filtered(usize::MAX, None, None)
    }

    /// The run with id `id_or_prefix`, or else the one run whose id starts
    /// with it (at least [`MIN_RUN_PREFIX`] characters). `None` when no run
    /// matches; [`StoreError::AmbiguousRun`] when several do.
    pub fn find_run(&self, id_or_prefix: &str) -> Result<Option<RunRecord>> {
        let exact = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                params![id_or_prefix],
                run_of_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if exact.is_some() || id_or_prefix.chars().count() < MIN_RUN_PREFIX {
            return Ok(exact);
        }
        let ids = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT run_id FROM runs WHERE substr(run_id, 1, length(?1)) = ?1
                     ORDER BY started_at DESC, run_id DESC",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![id_or_prefix], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        match ids.as_slice() {
            [] => Ok(None),
            [id] => self
                .conn
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
                    params![id],
                    run_of_row,
                )
                .optional()
                .map_err(|e| self.err(e)),
            _ => Err(StoreError::AmbiguousRun {
                prefix: id_or_prefix.to_string(),
                matches: ids.len(),
                candidates: ids.into_iter().take(5).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepRecord;

    fn start(store: &Store, id: &str, job: Option<&str>, trigger: &str) {
        store
            .begin_run(&RunStart {
                run_id: id,
                command: "run",
                job,
                trigger,
                parent_run_id: None,
                partition: None,
            })
            .unwrap();
    }

    #[test]
    fn a_run_keeps_what_started_it_and_its_summary() {
        let store = Store::in_memory().unwrap();
        store
            .begin_run(&RunStart {
                run_id: "r2",
                command: "run daily",
                job: Some("daily"),
                trigger: "from_failure",
                parent_run_id: Some("r1"),
                partition: Some("2026-01-02"),
            })
            .unwrap();
        let r = store.find_run("r2").unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.job.as_deref(), Some("daily"));
        assert_eq!(r.trigger, "from_failure");
        assert_eq!(r.parent_run_id.as_deref(), Some("r1"));
        assert_eq!(r.partition.as_deref(), Some("2026-01-02"));
        assert_eq!(r.summary, None);
        store
            .finish_run(
                "r2",
                RunStatus::Success,
                None,
                &serde_json::json!({"rows": 9}),
            )
            .unwrap();
        let r = store.find_run("r2").unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Success);
        assert_eq!(r.summary, Some(serde_json::json!({"rows": 9})));
        assert!(r.finished_at.is_some());
        // The old entry point: a manual run of no job.
        store.start_run("r3", "check").unwrap();
        let r = store.find_run("r3").unwrap().unwrap();
        assert_eq!((r.trigger.as_str(), r.job), ("manual", None));
    }

    #[test]
    fn statuses_parse_from_their_text_only() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(RunStatus::parse("Success"), None);
        assert_eq!(RunStatus::parse("ok"), None);
    }

    #[test]
    fn runs_are_found_by_id_or_unique_prefix() {
        let store = Store::in_memory().unwrap();
        start(&store, "0190aaaa-1111", None, "manual");
        start(&store, "0190aaaa-2222", None, "manual");
        start(&store, "0190bbbb-3333", None, "manual");
        assert_eq!(
            store.find_run("0190bbbb-3333").unwrap().unwrap().run_id,
            "0190bbbb-3333"
        );
        assert_eq!(
            store.find_run("0190b").unwrap().unwrap().run_id,
            "0190bbbb-3333"
        );
        assert_eq!(
            store.find_run("0190aaaa-2").unwrap().unwrap().run_id,
            "0190aaaa-2222"
        );
        assert!(store.find_run("0191").unwrap().is_none());
        // Too short to be a prefix (but an exact id of any length is found).
        assert!(store.find_run("019").unwrap().is_none());
        start(&store, "ab", None, "manual");
        assert_eq!(store.find_run("ab").unwrap().unwrap().run_id, "ab");
        // `%` and `_` are characters, not patterns.
        assert!(store.find_run("0190%").unwrap().is_none());
        assert!(store.find_run("0190aaaa_").unwrap().is_none());
        match store.find_run("0190a") {
            Err(e @ StoreError::AmbiguousRun { .. }) => {
                let text = e.to_string();
                assert!(text.contains("`0190a` matches 2 runs"), "{text}");
                assert!(text.contains("`0190aaaa-1111`"), "{text}");
                assert!(text.contains("`0190aaaa-2222`"), "{text}");
                let hint = sluice_core::error::Classify::hint(&e).unwrap();
                assert!(hint.contains("more characters"), "{hint}");
            }
            other => panic!("expected an ambiguous prefix, got {other:?}"),
        }
    }

    #[test]
    fn runs_are_listed_newest_first_by_job_and_status() {
        let store = Store::in_memory().unwrap();
        start(&store, "r1", Some("daily"), "schedule:nightly");
        store
            .finish_run(
                "r1",
                RunStatus::Failed,
                Some("boom"),
                &serde_json::json!({}),
            )
            .unwrap();
        start(&store, "r2", Some("hourly"), "manual");
        start(&store, "r3", Some("daily"), "manual");
        let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        // Started in the same millisecond: the id (a UUID v7 in the CLI) orders them.
        assert_eq!(ids(store.list_runs(10).unwrap()), ["r3", "r2", "r1"]);
        assert_eq!(ids(store.list_runs(2).unwrap()), ["r3", "r2"]);
        assert_eq!(
            ids(store.list_runs_filtered(10, Some("daily"), None).unwrap()),
            ["r3", "r1"]
        );
        assert_eq!(
            ids(store
                .list_runs_filtered(10, Some("daily"), Some(RunStatus::Failed))
                .unwrap()),
            ["r1"]
        );
        assert_eq!(
            ids(store
                .list_runs_filtered(10, None, Some(RunStatus::Running))
                .unwrap()),
            ["r3", "r2"]
        );
        assert_eq!(store.all_runs().unwrap().len(), 3);
        let r1 = store.find_run("r1").unwrap().unwrap();
        assert_eq!(r1.trigger, "schedule:nightly");
        assert_eq!(r1.error.as_deref(), Some("boom"));
    }

    #[test]
    fn a_killed_run_and_its_unfinished_steps_are_marked_failed() {
        let store = Store::in_memory().unwrap();
        start(&store, "done", None, "manual");
        store
            .finish_run("done", RunStatus::Success, None, &serde_json::json!({}))
            .unwrap();
        start(&store, "killed", Some("daily"), "manual");
        let step = |id: &str, status: &str| StepRecord {
            step_id: id.into(),
            kind: "materialize".into(),
            assets: vec![format!("shop.{id}")],
            status: status.into(),
            ..Default::default()
        };
        for (id, status) in [("a", "success"), ("b", "running"), ("c", "pending")] {
            store.record_step("killed", &step(id, status)).unwrap();
        }
        // A finished run's steps are left alone, whatever they say.
        store.record_step("done", &step("x", "running")).unwrap();

        assert_eq!(store.mark_abandoned().unwrap(), 1);
        let run = store.find_run("killed").unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.unwrap().contains("process ended"));
        assert!(run.finished_at.is_some());
        let steps = store.run_steps("killed").unwrap();
        let status: Vec<&str> = steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(status, ["success", "failed", "failed"]);
        assert_eq!(steps[0].error, None);
        assert!(
            steps[1]
                .error
                .as_deref()
                .unwrap()
                .contains("before the step finished")
        );
        assert!(steps[2].finished_at.is_some());
        let events = store.run_events("killed", None).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].level.as_str(), events[0].kind.as_str()),
            ("error", "run_abandoned")
        );
        assert_eq!(store.run_steps("done").unwrap()[0].status, "running");
        assert_eq!(
            store.find_run("done").unwrap().unwrap().status,
            RunStatus::Success
        );
        // Nothing left to mark.
        assert_eq!(store.mark_abandoned().unwrap(), 0);
    }
}
