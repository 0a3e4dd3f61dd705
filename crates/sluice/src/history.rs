//! The run history as SQL tables: `sluice.history.*` in `sluice sql`, next
//! to the lake's tables.
//!
//! ```text
//!  store (SQLite)                    sluice.history.<table> (DataFusion MemTable)
//!  runs           ── all_runs         ─► runs
//!  run_steps      ── all_steps        ─► steps
//!  run_events     ── all_events       ─► events
//!  stream_runs    ── all_stream_runs  ─► stream_runs
//!  check_results  ── check_history    ─► check_results
//! ```
//!
//! Times are UTC timestamps (microseconds), counts `Int64` (`UInt64` in
//! `check_results`, as it always was), durations `Float64` milliseconds, JSON
//! as text. Known limit: every table is read whole into memory when a query
//! names `sluice.history.`; fine for the thousands of runs a project keeps,
//! not for millions.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::datatypes::{Field, Schema};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use sluice_store::Store;

/// Register the store's history as `sluice.history.{runs, steps, events,
/// stream_runs, check_results}` in `ctx`.
pub fn register_history(ctx: &SessionContext, store: &Store) -> Result<()> {
    let history = MemorySchemaProvider::new();
    let tables = [
        ("runs", runs(store)?),
        ("steps", steps(store)?),
        ("events", events(store)?),
        ("stream_runs", stream_runs(store)?),
        ("check_results", check_results(store)?),
    ];
    for (name, batch) in tables {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        history.register_table(name.into(), Arc::new(table))?;
    }
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("history", Arc::new(history))?;
    ctx.register_catalog("sluice", Arc::new(catalog));
    Ok(())
}

/// A batch built column by column from rows of `T`.
struct Columns<'a, T> {
    rows: &'a [T],
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl<'a, T> Columns<'a, T> {
    fn of(rows: &'a [T]) -> Self {
        Columns {
            rows,
            fields: Vec::new(),
            arrays: Vec::new(),
        }
    }

    fn push(mut self, name: &str, nullable: bool, array: ArrayRef) -> Self {
        self.fields
            .push(Field::new(name, array.data_type().clone(), nullable));
        self.arrays.push(array);
        self
    }

    /// A text column that is never NULL.
    fn text(self, name: &str, f: impl Fn(&T) -> String) -> Self {
        let a = StringArray::from_iter_values(self.rows.iter().map(f));
        self.push(name, false, Arc::new(a))
    }

    /// A text column that may be NULL.
    fn text_or_null(self, name: &str, f: impl Fn(&T) -> Option<String>) -> Self {
        let a = StringArray::from_iter(self.rows.iter().map(f));
        self.push(name, true, Arc::new(a))
    }

    /// A UTC timestamp from RFC 3339 text (NULL when absent or unreadable).
    fn time(self, name: &str, f: impl Fn(&T) -> Option<&str>) -> Self {
        let a = TimestampMicrosecondArray::from_iter(self.rows.iter().map(|r| micros(f(r))))
            .with_timezone("UTC");
        self.push(name, true, Arc::new(a))
    }

    fn int(self, name: &str, f: impl Fn(&T) -> i64) -> Self {
        let a = Int64Array::from_iter_values(self.rows.iter().map(f));
        self.push(name, false, Arc::new(a))
    }

    fn float_or_null(self, name: &str, f: impl Fn(&T) -> Option<f64>) -> Self {
        let a = Float64Array::from_iter(self.rows.iter().map(f));
        self.push(name, true, Arc::new(a))
    }

    fn batch(self) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(self.fields));
        Ok(RecordBatch::try_new(schema, self.arrays)?)
    }
}

fn micros(t: Option<&str>) -> Option<i64> {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros())
}

/// Milliseconds from `start` to `end`, when both are known.
pub fn millis_between(start: &str, end: Option<&str>) -> Option<f64> {
    let (a, b) = (micros(Some(start))?, micros(end)?);
    Some((b - a) as f64 / 1000.0)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn runs(store: &Store) -> Result<RecordBatch> {
    let rows = store.all_runs()?;
    Columns::of(&rows)
        .text("run_id", |r| r.run_id.clone())
        .text("command", |r| r.command.clone())
        .text_or_null("job", |r| r.job.clone())
        .text("trigger", |r| r.trigger.clone())
        .text("status", |r| r.status.as_str().to_string())
        .time("started_at", |r| Some(&r.started_at))
        .time("finished_at", |r| r.finished_at.as_deref())
        .float_or_null("duration_ms", |r| {
            millis_between(&r.started_at, r.finished_at.as_deref())
        })
        .text_or_null("parent_run_id", |r| r.parent_run_id.clone())
        .text_or_null("partition_key", |r| r.partition.clone())
        .text_or_null("error", |r| r.error.clone())
        .text_or_null("summary", |r| r.summary.as_ref().map(|s| s.to_string()))
        .batch()
}

fn steps(store: &Store) -> Result<RecordBatch> {
    let rows = store.all_steps()?;
    Columns::of(&rows)
        .text("run_id", |(run, _)| run.clone())
        .text("step_id", |(_, s)| s.step_id.clone())
        .text("kind", |(_, s)| s.kind.clone())
        .text("assets", |(_, s)| {
            serde_json::Value::from(s.assets.clone()).to_string()
        })
        .text("status", |(_, s)| s.status.clone())
        .int("attempts", |(_, s)| i64::from(s.attempts))
        .time("started_at", |(_, s)| s.started_at.as_deref())
        .time("finished_at", |(_, s)| s.finished_at.as_deref())
        .float_or_null("duration_ms", |(_, s)| s.duration_ms)
        .int("rows", |(_, s)| count(s.rows))
        .int("bytes", |(_, s)| count(s.bytes))
        .text_or_null("message", |(_, s)| s.message.clone())
        .text_or_null("error", |(_, s)| s.error.clone())
        .batch()
}

fn events(store: &Store) -> Result<RecordBatch> {
    let rows = store.all_events()?;
    Columns::of(&rows)
        .text("run_id", |(run, _)| run.clone())
        .int("seq", |(_, e)| e.seq)
        .time("at", |(_, e)| Some(&e.at))
        .text_or_null("step_id", |(_, e)| e.step_id.clone())
        .text("level", |(_, e)| e.level.clone())
        .text("kind", |(_, e)| e.kind.clone())
        .text("message", |(_, e)| e.message.clone())
        .batch()
}

fn stream_runs(store: &Store) -> Result<RecordBatch> {
    let rows = store.all_stream_runs()?;
    Columns::of(&rows)
        .text("run_id", |r| r.run_id.clone())
        .text("stream_id", |r| r.stream.stream_id.clone())
        .text("target", |r| r.stream.target.clone())
        .text("status", |r| r.status.as_str().to_string())
        .int("rows_read", |r| count(r.stream.rows_read))
        .int("rows_written", |r| count(r.stream.rows_written))
        .int("rows_quarantined", |r| count(r.stream.rows_quarantined))
        .int("rows_skipped", |r| count(r.stream.rows_skipped))
        .int("bytes_read", |r| count(r.stream.bytes_read))
        .int("files", |r| count(r.stream.files))
        .int("commits", |r| count(r.stream.commits))
        .time("started_at", |r| Some(&r.started_at))
        .time("finished_at", |r| r.finished_at.as_deref())
        .float_or_null("duration_ms", |r| {
            millis_between(&r.started_at, r.finished_at.as_deref())
        })
        .text_or_null("error", |r| r.stream.error.clone())
        .batch()
}

fn check_results(store: &Store) -> Result<RecordBatch> {
    let rows = store.check_history(None, usize::MAX >> 1)?;
    let c = Columns::of(&rows)
        .time("checked_at", |r| Some(&r.checked_at))
        .text("run_id", |r| r.run_id.clone())
        .text("check_id", |r| r.check_id.clone())
        .text("table_name", |r| r.table.clone())
        .text("kind", |r| r.kind.clone())
        .text("phase", |r| r.phase.clone())
        .text("status", |r| r.status.clone())
        .text("severity", |r| r.severity.clone())
        .text("observed", |r| r.observed.to_string());
    let failing = UInt64Array::from_iter(rows.iter().map(|r| r.failing_rows));
    let total = UInt64Array::from_iter(rows.iter().map(|r| r.total_rows));
    let durations = Float64Array::from_iter_values(rows.iter().map(|r| r.duration_ms));
    c.push("failing_rows", true, Arc::new(failing))
        .push("total_rows", true, Arc::new(total))
        .text("message", |r| r.message.clone())
        .push("duration_ms", false, Arc::new(durations))
        .text("result", |r| r.result.to_string())
        .batch()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, TimeUnit};
    use sluice_store::{RunStatus, StepRecord, StreamRunRecord};

    use super::*;

    /// The schema of a table and its rows, through SQL.
    async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    #[tokio::test]
    async fn the_history_is_queryable_with_typed_columns() {
        let store = Store::in_memory().unwrap();
        store.start_run("r1", "run").unwrap();
        store
            .record_step(
                "r1",
                &StepRecord {
                    step_id: "shop.orders".into(),
                    kind: "materialize".into(),
                    assets: vec!["shop.orders".into()],
                    status: "success".into(),
                    attempts: 1,
                    rows: 42,
                    duration_ms: Some(12.5),
                    ..Default::default()
                },
            )
            .unwrap();
        store
            .append_event("r1", Some("shop.orders"), "info", "step_started", "go")
            .unwrap();
        store
            .record_stream(
                "r1",
                RunStatus::Success,
                "2026-01-01T00:00:00.000Z",
                &StreamRunRecord {
                    stream_id: "shop.orders".into(),
                    target: "shop.orders".into(),
                    rows_written: 42,
                    ..Default::default()
                },
            )
            .unwrap();
        store
            .finish_run("r1", RunStatus::Success, None, &serde_json::json!({}))
            .unwrap();
        let ctx = SessionContext::new();
        register_history(&ctx, &store).unwrap();

        let b = query(
            &ctx,
            "SELECT r.status, r.duration_ms >= 0 AS timed, s.rows, s.assets, e.seq, l.rows_written
             FROM sluice.history.runs r
             JOIN sluice.history.steps s ON s.run_id = r.run_id
             JOIN sluice.history.events e ON e.run_id = r.run_id
             JOIN sluice.history.stream_runs l ON l.run_id = r.run_id",
        )
        .await;
        let text = arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string();
        assert!(
            text.contains("| success | true  | 42   | [\"shop.orders\"] | 1   | 42"),
            "{text}"
        );
        let schema = b[0].schema();
        assert_eq!(schema.field(2).data_type(), &DataType::Int64);
        let types = |table: &str| {
            let ctx = &ctx;
            let sql = format!("SELECT * FROM sluice.history.{table}");
            async move {
                let b = query(ctx, &sql).await;
                let schema = b[0].schema();
                schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect::<Vec<_>>()
            }
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let runs = types("runs").await;
        assert!(
            runs.contains(&("started_at".into(), utc.clone())),
            "{runs:?}"
        );
        assert!(
            runs.contains(&("duration_ms".into(), DataType::Float64)),
            "{runs:?}"
        );
        let events = types("events").await;
        assert!(events.contains(&("at".into(), utc)), "{events:?}");
        assert!(
            events.contains(&("seq".into(), DataType::Int64)),
            "{events:?}"
        );
        // An empty table still has its columns.
        let b = query(&ctx, "SELECT count(*) FROM sluice.history.check_results").await;
        assert_eq!(b[0].num_rows(), 1);
    }
}
