//! Data-quality checks wired to the project: which checks `sluice.yml`
//! declares, the lake as a check backend, and results into the store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use sluice_connectors::postgres::{PgConnector, PgDestination};
use sluice_core::TableName;
use sluice_core::config::{DestinationConfig, OnError, WriteMode};
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
        let key = table_key(project, &d.table, d.destination.as_deref());
        out.extend(compile(&key, &d.checks, file)?);
    }
    for (table, list) in &config.checks {
        out.extend(compile(table, list, file)?);
    }
    // The same check on a stream and on its table in the top-level map
    // would be two results with one id.
    let mut seen: BTreeMap<&str, &Check> = BTreeMap::new();
    for c in &out {
        if let Some(first) = seen.insert(c.id.as_str(), c) {
            return Err(c
                .error(
                    format!("is declared twice (also on line {})", first.line),
                    Some("give one of them a `name:`, or remove one".to_string()),
                )
                .into());
        }
    }
    Ok(out)
}

/// How checks name a table: `schema.table` in the lake,
/// `<destination>:schema.table` elsewhere — for a PostgreSQL destination,
/// the table as it is in the database (its `schema:` applied).
pub fn table_key(project: &Project, table: &TableName, destination: Option<&str>) -> String {
    match destination {
        None | Some("lake") => table.to_string(),
        Some(d) => match project.config().destinations.0.get(d) {
            Some(DestinationConfig::Postgres(pg)) => match &pg.schema {
                Some(schema) => format!("{d}:{schema}.{}", table.name),
                None => format!("{d}:{table}"),
            },
            _ => format!("{d}:{table}"),
        },
    }
}

/// Where the checks of a table run.
#[derive(Clone)]
pub enum CheckPlace {
    /// A lake (the project's or a `type: lake` destination's).
    Lake(Lake),
    /// A `type: postgres` destination's database.
    Postgres {
        /// The destination's name.
        name: String,
        /// Its settings.
        config: sluice_core::config::PostgresDestination,
    },
}

impl CheckPlace {
    /// The place of the table keyed `key`, and the table's name there.
    pub fn of_key(project: &Project, key: &str) -> Result<(CheckPlace, String)> {
        match key.split_once(':') {
            None => Ok((CheckPlace::Lake(project.lake.clone()), key.to_string())),
            Some((dest, table)) => Ok((CheckPlace::of_destination(project, dest)?.ok_or_else(|| {
                UserError::error(
                    format!("checks on `{key}`: destination `{dest}` is neither a lake nor PostgreSQL"),
                    Some("checks run on tables in the lake or in a `type: postgres` destination".to_string()),
                )
            })?, table.to_string())),
        }
    }

    /// The place of destination `name` (`lake`: the project's), `None` when
    /// checks cannot run there (files, Singer targets).
    pub fn of_destination(project: &Project, name: &str) -> Result<Option<CheckPlace>> {
        if name == "lake" {
            return Ok(Some(CheckPlace::Lake(project.lake.clone())));
        }
        Ok(match project.config().destinations.0.get(name) {
            Some(DestinationConfig::Lake(l)) => Some(CheckPlace::Lake(Lake::from_config(
                &project.dir,
                Some(&l.url),
                l.options.clone(),
            )?)),
            Some(DestinationConfig::Postgres(pg)) => Some(CheckPlace::Postgres {
                name: name.to_string(),
                config: pg.clone(),
            }),
            None if !project.config().destinations.0.contains_key(name) => {
                return Err(UserError::error(
                    format!("checks name destination `{name}`, which is not in `destinations:`"),
                    Some("key the table as `<destination>:schema.table` with a destination of sluice.yml, or `schema.table` for the lake".to_string()),
                ));
            }
            _ => None,
        })
    }

    /// A backend over this place.
    pub async fn backend(&self, run_id: &str) -> Result<Box<dyn Backend>> {
        Ok(match self {
            CheckPlace::Lake(lake) => Box::new(LakeBackend::new(lake, run_id).await?),
            CheckPlace::Postgres { name, config } => Box::new(PgBackend::new(name, config).await?),
        })
    }
}

/// A PostgreSQL destination's database as a check backend.
pub struct PgBackend {
    name: String,
    client: tokio_postgres::Client,
    schemas: PgDestination,
}

impl PgBackend {
    /// Connect to destination `name`.
    pub async fn new(
        name: &str,
        config: &sluice_core::config::PostgresDestination,
    ) -> Result<PgBackend> {
        let connector = PgConnector::from_url(&config.url)?;
        let client = connector.connect().await?;
        // Table names in check keys are literal: no `schema:` rewriting.
        let literal = sluice_core::config::PostgresDestination {
            schema: None,
            ..config.clone()
        };
        Ok(PgBackend {
            name: name.to_string(),
            client,
            schemas: PgDestination::new(name, &literal)?,
        })
    }

    async fn json_rows(&self, sql: &str, limit: Option<usize>) -> Result<Vec<Value>, String> {
        let sql = sql.trim().trim_end_matches(';');
        let lim = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let rows = self
            .client
            .query(
                &format!("SELECT row_to_json(q)::text FROM ({sql}) AS q{lim}"),
                &[],
            )
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => e.to_string(),
            })?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get(0).map_err(|e| e.to_string())?;
                serde_json::from_str(&text).map_err(|e| e.to_string())
            })
            .collect()
    }
}

#[async_trait]
impl Backend for PgBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn table_sql(&self, table: &str) -> String {
        quote_table(table.split_once(':').map_or(table, |(_, t)| t))
    }

    async fn schema(&self, table: &str) -> Result<Option<SchemaRef>, String> {
        let table = table.split_once(':').map_or(table, |(_, t)| t);
        let name = TableName::parse(table, "public").map_err(|e| format!("`{table}`: {e}"))?;
        self.schemas
            .table_schema(&name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn query_row(&self, sql: &str) -> Result<Vec<Option<String>>, String> {
        let rows = self.json_rows(sql, Some(1)).await?;
        let Some(Value::Object(row)) = rows.into_iter().next() else {
            return Ok(Vec::new());
        };
        Ok(row
            .into_iter()
            .map(|(_, v)| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect())
    }

    async fn query_rows(&self, sql: &str) -> Result<Vec<Value>, String> {
        self.json_rows(sql, None).await
    }

    async fn store_failures(&self, check: &Check, sql: &str) -> Result<String, String> {
        let table = sluice_core::names::sanitize_identifier(&check.id.replace(['.', ':'], "__"));
        let sql = sql.trim().trim_end_matches(';');
        self.client
            .batch_execute(&format!(
                "BEGIN; CREATE SCHEMA IF NOT EXISTS {schema}; DROP TABLE IF EXISTS {schema}.\"{table}\"; CREATE TABLE {schema}.\"{table}\" AS {sql}; COMMIT;",
                schema = FAILURES_SCHEMA
            ))
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_string(),
                None => e.to_string(),
            })?;
        Ok(format!("{}:{FAILURES_SCHEMA}.{table}", self.name))
    }
}

/// The checks of one loaded stream, compiled.
pub fn stream_checks(
    project: &Project,
    spec: &sluice_core::config::StreamSpec,
    destination: Option<&str>,
) -> Result<Vec<Check>> {
    let key = table_key(project, &spec.table, destination);
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
        quote_table(table.split_once(':').map_or(table, |(_, t)| t))
    }

    async fn schema(&self, table: &str) -> Result<Option<SchemaRef>, String> {
        let table = table.split_once(':').map_or(table, |(_, t)| t);
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

/// Replace secrets in what a result shows: its message and samples.
pub fn redact_result(r: &mut CheckResult, redact: &(dyn Fn(&str) -> String + Sync)) {
    r.message = redact(&r.message);
    for s in r.samples.iter_mut() {
        *s = serde_json::from_str(&redact(&s.to_string())).unwrap_or(Value::Null);
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
            redact_result(&mut r, redact);
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
