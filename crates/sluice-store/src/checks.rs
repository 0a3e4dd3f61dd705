//! Data-quality check results: one row per check per run, queryable by
//! check, table or run, and the metric history anomaly checks learn from.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::{Result, Store, now};

/// One stored check result. The whole result (as its crate serializes it)
/// is in `result`; the other fields are columns to query by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRecord {
    /// The run that produced it.
    pub run_id: String,
    /// `<table>.<name>`.
    pub check_id: String,
    /// The table checked.
    pub table: String,
    /// The check's kind.
    pub kind: String,
    /// `load`, `table` or `dbt`.
    pub phase: String,
    /// `pass`, `warn`, `fail` or `error`.
    pub status: String,
    /// `error` or `warn`.
    pub severity: String,
    /// What was measured (JSON).
    pub observed: serde_json::Value,
    /// Failing rows, for row-counting checks.
    pub failing_rows: Option<u64>,
    /// Rows looked at.
    pub total_rows: Option<u64>,
    /// One line on what happened.
    pub message: String,
    /// Time taken.
    pub duration_ms: f64,
    /// When (RFC 3339; set by the store when empty).
    pub checked_at: String,
    /// The whole result (JSON).
    pub result: serde_json::Value,
}

/// The columns [`check_of_row`] reads, in its order.
const CHECK_COLUMNS: &str = "run_id, check_id, table_name, kind, phase, status, severity, observed, \
    failing_rows, total_rows, message, duration_ms, checked_at, result";

fn check_of_row(r: &Row<'_>) -> rusqlite::Result<CheckRecord> {
    let json = |s: Option<String>| {
        s.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    Ok(CheckRecord {
        run_id: r.get(0)?,
        check_id: r.get(1)?,
        table: r.get(2)?,
        kind: r.get(3)?,
        phase: r.get(4)?,
        status: r.get(5)?,
        severity: r.get(6)?,
        observed: json(r.get(7)?),
        failing_rows: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        total_rows: r.get::<_, Option<i64>>(9)?.map(|n| n as u64),
        message: r.get(10)?,
        duration_ms: r.get(11)?,
        checked_at: r.get(12)?,
        result: json(r.get(13)?),
    })
}

impl Store {
    /// Record check results (one transaction).
    pub fn record_checks(&mut self, records: &[CheckRecord]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| crate::StoreError::Sqlite {
            path: path.clone(),
            source: e,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO check_results (run_id, check_id, table_name, kind, phase, status, severity,
                       observed, failing_rows, total_rows, message, samples, duration_ms, checked_at, result)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(err)?;
            for r in records {
                let at = if r.checked_at.is_empty() {
                    now()
                } else {
                    r.checked_at.clone()
                };
                stmt.execute(params![
                    r.run_id,
                    r.check_id,
                    r.table,
                    r.kind,
                    r.phase,
                    r.status,
                    r.severity,
                    r.observed.to_string(),
                    r.failing_rows.map(|n| n as i64),
                    r.total_rows.map(|n| n as i64),
                    r.message,
                    r.result.get("samples").map(|s| s.to_string()),
                    r.duration_ms,
                    at,
                    r.result.to_string(),
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Results, newest first, filtered by check id or table (`None`: all).
    pub fn check_history(
        &self,
        check_or_table: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CheckRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CHECK_COLUMNS} FROM check_results
                 WHERE ?1 IS NULL OR check_id = ?1 OR table_name = ?1
                 ORDER BY checked_at DESC, rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![check_or_table, limit as i64], check_of_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The check results one run recorded, in the order recorded (typed;
    /// [`Store::check_run`] gives the whole results as JSON).
    pub fn checks_of_run(&self, run_id: &str) -> Result<Vec<CheckRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CHECK_COLUMNS} FROM check_results WHERE run_id = ?1 ORDER BY rowid"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], check_of_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The observed values of a check's last `n` results that ran (not
    /// `error`), oldest first: the history anomaly and schema-change checks
    /// compare with.
    pub fn previous_observed(&self, check_id: &str, n: usize) -> Result<Vec<serde_json::Value>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT observed FROM check_results
                 WHERE check_id = ?1 AND status != 'error' AND observed IS NOT NULL
                 ORDER BY checked_at DESC, rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![check_id, n as i64], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out: Vec<serde_json::Value> = rows
            .filter_map(|r| r.ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    /// The checks of `table` whose newest result (during or after a load,
    /// or by `sluice check`; not dbt tests) failed or could not run, as
    /// (check id, status, message).
    pub fn failing_checks(&self, table: &str) -> Result<Vec<(String, String, String)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT check_id, status, message FROM check_results AS r
                 WHERE table_name = ?1 AND phase != 'dbt' AND severity = 'error'
                   AND rowid = (SELECT rowid FROM check_results AS n WHERE n.check_id = r.check_id
                                ORDER BY checked_at DESC, rowid DESC LIMIT 1)
                   AND status IN ('fail', 'error')
                 ORDER BY check_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The run id of the newest check results (of any phase).
    pub fn last_check_run(&self) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT run_id FROM check_results ORDER BY checked_at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every result of one run, in the order recorded.
    pub fn check_run(&self, run_id: &str) -> Result<Vec<serde_json::Value>> {
        let mut stmt = self
            .conn
            .prepare("SELECT result FROM check_results WHERE run_id = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        Ok(rows
            .filter_map(|r| r.ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, id: &str, status: &str, observed: serde_json::Value) -> CheckRecord {
        CheckRecord {
            run_id: run.into(),
            check_id: id.into(),
            table: "shop.orders".into(),
            kind: "row_count".into(),
            phase: "table".into(),
            status: status.into(),
            severity: "error".into(),
            observed: observed.clone(),
            failing_rows: None,
            total_rows: Some(10),
            message: "m".into(),
            duration_ms: 1.5,
            checked_at: String::new(),
            result: serde_json::json!({"id": id, "observed": observed, "samples": []}),
        }
    }

    #[test]
    fn results_are_kept_and_queried_by_check_table_and_run() {
        let mut store = Store::in_memory().unwrap();
        for (i, run) in ["r1", "r2", "r3"].iter().enumerate() {
            store
                .record_checks(&[
                    rec(
                        run,
                        "shop.orders.anomaly_row_count",
                        "pass",
                        serde_json::json!(100 + i),
                    ),
                    rec(
                        run,
                        "shop.orders.not_null_id",
                        if i == 2 { "error" } else { "pass" },
                        serde_json::json!(0),
                    ),
                ])
                .unwrap();
        }
        let h = store
            .check_history(Some("shop.orders.anomaly_row_count"), 10)
            .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].run_id, "r3");
        assert_eq!(
            store.check_history(Some("shop.orders"), 10).unwrap().len(),
            6
        );
        assert_eq!(
            store
                .previous_observed("shop.orders.anomaly_row_count", 2)
                .unwrap(),
            vec![serde_json::json!(101), serde_json::json!(102)]
        );
        // Errors are not history to learn from.
        assert_eq!(
            store
                .previous_observed("shop.orders.not_null_id", 5)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(store.last_check_run().unwrap().as_deref(), Some("r3"));
        // Only the newest result of each check counts.
        let failing = store.failing_checks("shop.orders").unwrap();
        assert_eq!(failing.len(), 1, "{failing:?}");
        assert_eq!(failing[0].0, "shop.orders.not_null_id");
        store
            .record_checks(&[rec(
                "r4",
                "shop.orders.not_null_id",
                "pass",
                serde_json::json!(0),
            )])
            .unwrap();
        assert!(store.failing_checks("shop.orders").unwrap().is_empty());
        assert_eq!(store.check_run("r2").unwrap().len(), 2);
        let r2 = store.checks_of_run("r2").unwrap();
        let ids: Vec<&str> = r2.iter().map(|r| r.check_id.as_str()).collect();
        assert_eq!(
            ids,
            ["shop.orders.anomaly_row_count", "shop.orders.not_null_id"]
        );
        assert_eq!(r2[0].observed, serde_json::json!(101));
        assert_eq!(r2[0].total_rows, Some(10));
        assert!(store.checks_of_run("r9").unwrap().is_empty());
    }
}
