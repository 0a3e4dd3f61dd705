//! Run history: one row per run, one per stream of a run.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Result, Store, now};

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
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> RunStatus {
        match s {
            "success" => RunStatus::Success,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => RunStatus::Running,
        }
    }
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
}

/// What one stream of a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamRunRecord {
    /// `<source>.<stream>`.
    pub stream_id: String,
    /// Table or path written.
    pub target: String,
    /// Rows read from the source (written + quarantined).
    pub rows_read: u64,
    /// Rows committed to the destination.
    pub rows_written: u64,
    /// Rows sent to quarantine.
    pub rows_quarantined: u64,
    /// Rows skipped as already loaded.
    pub rows_skipped: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Files read.
    pub files: u64,
    /// Commits made.
    pub commits: u64,
    /// Error text (redacted), if the stream failed.
    pub error: Option<String>,
}

impl Store {
    /// Record the start of a run.
    pub fn start_run(&self, run_id: &str, command: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (run_id, command, status, started_at) VALUES (?1, ?2, 'running', ?3)",
                params![run_id, command, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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

    /// Record what one stream of a run did.
    pub fn record_stream(
        &self,
        run_id: &str,
        status: RunStatus,
        started_at: &str,
        r: &StreamRunRecord,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO stream_runs (run_id, stream_id, target, status, rows_read, rows_written,
                   rows_quarantined, rows_skipped, bytes_read, files, commits, started_at, finished_at, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    run_id,
                    r.stream_id,
                    r.target,
                    status.as_str(),
                    r.rows_read as i64,
                    r.rows_written as i64,
                    r.rows_quarantined as i64,
                    r.rows_skipped as i64,
                    r.bytes_read as i64,
                    r.files as i64,
                    r.commits as i64,
                    started_at,
                    now(),
                    r.error,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Runs still marked `running` belong to processes that died: mark them
    /// failed. Returns how many were marked. Call only when no other process
    /// of the project is running (the CLI holds the project lock then).
    pub fn mark_abandoned(&self) -> Result<usize> {
        let n = self
            .conn
            .execute(
                "UPDATE runs SET status = 'failed', finished_at = ?1,
                   error = 'The process ended before the run finished (killed or crashed)'
                 WHERE status = 'running'",
                params![now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The newest runs first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, command, status, started_at, finished_at, error FROM runs
                 ORDER BY started_at DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(RunRecord {
                    run_id: r.get(0)?,
                    command: r.get(1)?,
                    status: RunStatus::parse(&r.get::<_, String>(2)?),
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    error: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The last successful load into `target`: (run id, finished at, rows written).
    pub fn last_load(&self, target: &str) -> Result<Option<(String, String, u64)>> {
        self.conn
            .query_row(
                "SELECT run_id, finished_at, rows_written FROM stream_runs
                 WHERE target = ?1 AND status = 'success' ORDER BY finished_at DESC LIMIT 1",
                params![target],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lifecycle_and_last_load() {
        let store = Store::in_memory().unwrap();
        store.start_run("r1", "run").unwrap();
        let rec = StreamRunRecord {
            stream_id: "shop.orders".into(),
            target: "shop.orders".into(),
            rows_read: 10,
            rows_written: 9,
            rows_quarantined: 1,
            ..Default::default()
        };
        store
            .record_stream("r1", RunStatus::Success, "2026-01-01T00:00:00Z", &rec)
            .unwrap();
        store
            .finish_run(
                "r1",
                RunStatus::Success,
                None,
                &serde_json::json!({"rows": 9}),
            )
            .unwrap();
        let runs = store.list_runs(10).unwrap();
        assert_eq!(runs[0].status, RunStatus::Success);
        let (run, _, rows) = store.last_load("shop.orders").unwrap().unwrap();
        assert_eq!((run.as_str(), rows), ("r1", 9));
        store.start_run("r2", "run").unwrap();
        assert_eq!(store.mark_abandoned().unwrap(), 1);
        assert_eq!(store.list_runs(1).unwrap()[0].status, RunStatus::Failed);
    }
}
