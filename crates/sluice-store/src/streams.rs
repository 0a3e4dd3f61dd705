//! Stream loads: one row per stream of a run (rows, bytes, files, commits).

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::{Result, RunStatus, Store, now};

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

/// A stored stream load with its run, status and times (for
/// `sluice.history.stream_runs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredStreamRun {
    /// The run.
    pub run_id: String,
    /// How the stream ended.
    pub status: RunStatus,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// What it did.
    #[serde(flatten)]
    pub stream: StreamRunRecord,
}

/// The columns [`stream_of_row`] reads, in its order.
const STREAM_COLUMNS: &str = "run_id, status, started_at, finished_at, stream_id, target, \
    rows_read, rows_written, rows_quarantined, rows_skipped, bytes_read, files, commits, error";

fn stream_of_row(r: &Row<'_>) -> rusqlite::Result<StoredStreamRun> {
    let n = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(StoredStreamRun {
        run_id: r.get(0)?,
        status: RunStatus::stored(&r.get::<_, String>(1)?),
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        stream: StreamRunRecord {
            stream_id: r.get(4)?,
            target: r.get(5)?,
            rows_read: n(6)?,
            rows_written: n(7)?,
            rows_quarantined: n(8)?,
            rows_skipped: n(9)?,
            bytes_read: n(10)?,
            files: n(11)?,
            commits: n(12)?,
            error: r.get(13)?,
        },
    })
}

impl Store {
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

    /// The streams a run loaded, in the order they started, with how each ended.
    pub fn stream_runs(&self, run_id: &str) -> Result<Vec<(RunStatus, StreamRunRecord)>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STREAM_COLUMNS} FROM stream_runs WHERE run_id = ?1 ORDER BY started_at, rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                stream_of_row(r).map(|s| (s.status, s.stream))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Every stream load of every run, oldest first (for
    /// `sluice.history.stream_runs`). Known limit: all of them are read into
    /// memory.
    pub fn all_stream_runs(&self) -> Result<Vec<StoredStreamRun>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STREAM_COLUMNS} FROM stream_runs ORDER BY started_at, rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], stream_of_row).map_err(|e| self.err(e))?;
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
        let failed = StreamRunRecord {
            stream_id: "shop.items".into(),
            target: "shop.items".into(),
            error: Some("boom".into()),
            ..Default::default()
        };
        store
            .record_stream("r1", RunStatus::Failed, "2026-01-01T00:00:01Z", &failed)
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
        assert_eq!(
            store.stream_runs("r1").unwrap(),
            vec![
                (RunStatus::Success, rec.clone()),
                (RunStatus::Failed, failed.clone())
            ]
        );
        assert!(store.stream_runs("r2").unwrap().is_empty());
        let all = store.all_stream_runs().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].run_id, "r1");
        assert_eq!(all[0].started_at, "2026-01-01T00:00:00Z");
        assert!(all[0].finished_at.is_some());
        assert_eq!(all[1].stream, failed);
        // Flattened in JSON: one object per load.
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["rows_written"], 9);
        assert_eq!(json["status"], "success");
        store.start_run("r2", "run").unwrap();
        assert_eq!(store.mark_abandoned().unwrap(), 1);
        assert_eq!(store.list_runs(1).unwrap()[0].status, RunStatus::Failed);
    }
}
