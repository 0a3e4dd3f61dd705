//! Data-quality checks wired to the project: which checks `sluice.yml`
//! declares, the lake as a check backend, and results into the store.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use sluice_core::TableName;
use sluice_core::config::{OnError, WriteMode};
use sluice_core::connector::{Checkpoint, Destination, WriteRequest};
use sluice_lake::{Lake, LakeDestination, QueryEngine};
use sluice_quality::sql::quote_table;
use sluice_quality::{Backend, Check, CheckResult, Dialect, compile};
use sluice_store::{CheckRecord, Store};

use crate::output::UserError;
use crate::project::Project;

/// Schema of the lake tables holding stored failures.
pub const FAILURES_SCHEMA: &str = "checks";

/// Every check the project declares: the streams' (on their tables) and the
/// top-level `checks:` map's, compiled and validated without data.
pub fn project_checks(project: &Project) -> Result<Vec<Check>> {
    let config = project.config();
    let file = &project.loaded.file;
    let mut out: Vec<Check> = Vec::new();
    let declared = config
        .stream_checks()
        .map_err(|m| UserError::error(format!("{}: {m}", file.display()), None))?;
    for d in declared {
        let key = table_key(&d.table, d.destination.as_deref());
        out.extend(compile(&key, &d.checks, file)?);
    }
    for (table, list) in &config.checks {
        out.extend(compile(table, list, file)?);
    }
    // The same check declared on a stream and on its table: keep the first.
    let mut seen = BTreeSet::new();
    out.retain(|c| seen.insert(c.id.clone()));
    Ok(out)
}

/// How checks name a table: `schema.table` in the lake,
/// `<destination>:schema.table` elsewhere.
pub fn table_key(table: &TableName, destination: Option<&str>) -> String {
    match destination {
        None | Some("lake") => table.to_string(),
        Some(d) => format!("{d}:{table}"),
    }
}

/// The checks of one loaded stream, compiled.
pub fn stream_checks(
    project: &Project,
    spec: &sluice_core::config::StreamSpec,
    destination: Option<&str>,
) -> Result<Vec<Check>> {
    let key = table_key(&spec.table, destination);
    Ok(compile(&key, &spec.checks, &project.loaded.file)?)
}

/// The lake as a check backend (DataFusion).
pub struct LakeBackend {
    lake: Lake,
    engine: QueryEngine,
    run_id: String,
}

impl LakeBackend {
    /// A backend over `lake`; stored failures record `run_id`.
    pub async fn new(lake: &Lake, run_id: &str) -> Result<LakeBackend> {
        Ok(LakeBackend {
            lake: lake.clone(),
            engine: QueryEngine::new(lake).await?,
            run_id: run_id.to_string(),
        })
    }

    async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>, String> {
        let df = self.engine.sql(sql).await.map_err(|e| e.to_string())?;
        df.collect().await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Backend for LakeBackend {
    fn dialect(&self) -> Dialect {
        Dialect::DataFusion
    }

    fn table_sql(&self, table: &str) -> String {
        quote_table(table)
    }

    async fn schema(&self, table: &str) -> Result<Option<SchemaRef>, String> {
        if table.contains(':') {
            return Err(format!(
                "`{table}` is in a destination other than the lake; checks on PostgreSQL tables run during loads (row checks) only, for now"
            ));
        }
        let reference = datafusion::common::TableReference::from(table);
        match self.engine.context().table_provider(reference).await {
            Ok(p) => Ok(Some(p.schema())),
            Err(e) => {
                let text = e.to_string();
                if text.contains("not found")
                    || text.contains("No table named")
                    || text.contains("doesn't exist")
                    || text.contains("failed to resolve schema")
                {
                    Ok(None)
                } else {
                    Err(text)
                }
            }
        }
    }

    async fn query_row(&self, sql: &str) -> Result<Vec<Option<String>>, String> {
        let batches = self.collect(sql).await?;
        let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(Vec::new());
        };
        let opts = FormatOptions::default();
        b.columns()
            .iter()
            .map(|c| {
                if c.is_null(0) {
                    return Ok(None);
                }
                ArrayFormatter::try_new(c.as_ref(), &opts)
                    .map(|f| Some(f.value(0).to_string()))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    async fn query_rows(&self, sql: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for b in self.collect(sql).await? {
            out.extend(sluice_quality::rows::rows_json(&b)?);
        }
        Ok(out)
    }

    async fn store_failures(&self, check: &Check, sql: &str) -> Result<String, String> {
        let name = TableName::new(
            FAILURES_SCHEMA,
            sluice_core::names::sanitize_identifier(&check.id.replace('.', "__")),
        );
        let df = self.engine.sql(sql).await.map_err(|e| e.to_string())?;
        let mut stream = df.execute_stream().await.map_err(|e| e.to_string())?;
        let destination = LakeDestination::new(self.lake.clone());
        let mut writer = destination
            .open(WriteRequest {
                table: name.clone(),
                mode: WriteMode::Overwrite,
                primary_key: Vec::new(),
                full_refresh: true,
                run_id: self.run_id.clone(),
                stream_id: format!("check:{}", check.id),
                evolution: Default::default(),
                on_error: OnError::Fail,
            })
            .await
            .map_err(|e| e.to_string())?;
        let result: Result<(), String> = async {
            while let Some(b) = stream.next().await {
                writer
                    .write(b.map_err(|e| e.to_string())?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let seq = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or_default();
            let cp = Checkpoint {
                state: Value::Null,
                position: String::new(),
            };
            writer
                .checkpoint(seq, &cp)
                .await
                .map_err(|e| e.to_string())?;
            writer.finish().await.map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            writer.abort().await;
            return Err(e);
        }
        Ok(name.to_string())
    }
}

/// Store results (samples and messages redacted).
pub fn record(
    store: &Mutex<Store>,
    run_id: &str,
    results: &[CheckResult],
    redact: &(dyn Fn(&str) -> String + Sync),
) {
    let records: Vec<CheckRecord> = results
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.message = redact(&r.message);
            r.samples = r
                .samples
                .iter()
                .map(|s| serde_json::from_str(&redact(&s.to_string())).unwrap_or(Value::Null))
                .collect();
            CheckRecord {
                run_id: run_id.to_string(),
                check_id: r.id.clone(),
                table: r.table.clone(),
                kind: r.kind.clone(),
                phase: r.phase.as_str().to_string(),
                status: r.status.as_str().to_string(),
                severity: r.severity.to_string(),
                observed: r.observed.clone(),
                failing_rows: r.failing_rows,
                total_rows: r.total_rows,
                message: r.message.clone(),
                duration_ms: r.duration_ms,
                checked_at: String::new(),
                result: serde_json::to_value(&r).unwrap_or(Value::Null),
            }
        })
        .collect();
    if records.is_empty() {
        return;
    }
    match store.lock() {
        Ok(mut s) => {
            if let Err(e) = s.record_checks(&records) {
                tracing::warn!("could not record check results: {e}");
            }
        }
        Err(_) => tracing::warn!("could not record check results: store lock poisoned"),
    }
}

/// Earlier observed values of a check, from the store.
pub fn history(store: &Mutex<Store>, check_id: &str, n: usize) -> Vec<Value> {
    store
        .lock()
        .ok()
        .and_then(|s| s.previous_observed(check_id, n).ok())
        .unwrap_or_default()
}
