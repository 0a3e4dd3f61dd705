//! The lake engine: models run on DataFusion and land as Delta tables.
//!
//! - **table**: the query's batches stream into new parquet files; one
//!   Delta commit removes the old files and adds the new ones (readers see
//!   the old table or the new one), replacing the schema too.
//! - **view**: the SQL is checked (planned), then stored as a lake view
//!   (`_sluice_view.json`), planned again whenever a query names it.
//! - **incremental**: append, or merge on `unique_key` (staged, then one
//!   Delta MERGE), through the same writer loads use; `on_schema_change`
//!   maps to the evolution rules.
//! - **seed**: the CSV's batches, like a table.
//!
//! Every commit records the run and the node (`transform:<unique_id>`).

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use sluice_core::TableName;
use sluice_core::config::{OnError, WriteMode};
use sluice_core::connector::{Checkpoint, Destination, StreamWriter, WriteRequest};
use sluice_core::evolution::EvolutionPolicy;
use sluice_lake::{Lake, LakeDestination, QueryEngine, RelationKind};

use super::{
    Engine, EngineError, EngineResult, Existing, Incremental, OnSchemaChange, Outcome, QueryResult,
    SnapshotSpec, TestOutcome, snapshot_sql, statement_code,
};
use crate::catalog::{CatalogColumn, CatalogRead, CatalogTable, TableStats, sql_type_name};
use crate::jinja::Relation;
use crate::seed::Seed;

/// Models on the lake.
pub struct LakeEngine {
    lake: Lake,
    destination: LakeDestination,
    query: QueryEngine,
    run_id: String,
}

impl std::fmt::Debug for LakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeEngine")
            .field("lake", &self.lake.root().as_str())
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::new(e.to_string())
}

fn table_name(r: &Relation) -> TableName {
    TableName::new(&r.schema, &r.identifier)
}

impl LakeEngine {
    /// An engine over `lake`; commits record `run_id`.
    pub async fn new(lake: Lake, run_id: &str) -> EngineResult<LakeEngine> {
        let query = QueryEngine::new(&lake).await.map_err(err)?;
        Ok(LakeEngine {
            destination: LakeDestination::new(lake.clone()),
            lake,
            query,
            run_id: run_id.to_string(),
        })
    }

    /// The SQL session (for tests and `sluice sql`-like use).
    pub fn query(&self) -> &QueryEngine {
        &self.query
    }

    async fn write(
        &self,
        relation: &Relation,
        batches: futures::stream::BoxStream<'static, EngineResult<arrow::array::RecordBatch>>,
        mode: WriteMode,
        keys: Vec<String>,
        full_refresh: bool,
        evolution: EvolutionPolicy,
    ) -> EngineResult<Outcome> {
        let name = table_name(relation);
        let request = WriteRequest {
            table: name.clone(),
            mode,
            primary_key: keys,
            full_refresh,
            run_id: self.run_id.clone(),
            stream_id: format!("transform:{name}"),
            evolution,
            on_error: OnError::Fail,
        };
        let mut writer = self.destination.open(request).await.map_err(err)?;
        let result = drive(writer.as_mut(), batches).await;
        match result {
            Ok(outcome) => {
                self.query.note(&name, RelationKind::Table);
                Ok(outcome)
            }
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }

    async fn stream(
        &self,
        sql: &str,
    ) -> EngineResult<futures::stream::BoxStream<'static, EngineResult<arrow::array::RecordBatch>>>
    {
        let df = self.query.sql(sql).await.map_err(err)?;
        let stream = df.execute_stream().await.map_err(err)?;
        Ok(stream.map(|b| b.map_err(err)).boxed())
    }
}

fn columns(schema: &arrow::datatypes::Schema) -> Vec<CatalogColumn> {
    schema
        .fields()
        .iter()
        .zip(1u32..)
        .map(|(f, index)| CatalogColumn {
            name: f.name().clone(),
            data_type: sql_type_name(f.data_type()),
            index,
            comment: None,
        })
        .collect()
}

impl LakeEngine {
    /// One relation of the catalog: a table's columns and size from its
    /// Delta log, a view's columns from its plan. `None`: gone meanwhile.
    async fn describe_relation(
        &self,
        relation: &Relation,
        kind: RelationKind,
    ) -> EngineResult<Option<CatalogTable>> {
        let entry = |kind: &str, columns, stats| CatalogTable {
            relation: relation.clone(),
            kind: kind.to_string(),
            database: None,
            owner: None,
            comment: None,
            columns,
            stats,
        };
        match kind {
            RelationKind::Table => {
                let facts = self
                    .lake
                    .table_facts(&table_name(relation))
                    .await
                    .map_err(err)?;
                Ok(facts.map(|f| {
                    entry(
                        "BASE TABLE",
                        columns(&f.schema),
                        Some(TableStats {
                            rows: f.rows,
                            bytes: f.bytes,
                        }),
                    )
                }))
            }
            RelationKind::View => {
                let name = table_name(relation);
                let sql = format!(
                    "select * from \"{}\".\"{}\"",
                    name.schema.replace('"', "\"\""),
                    name.name.replace('"', "\"\"")
                );
                let df = self.query.sql(&sql).await.map_err(err)?;
                Ok(Some(entry("VIEW", columns(df.schema().as_arrow()), None)))
            }
        }
    }
}

async fn drive(
    writer: &mut dyn StreamWriter,
    mut batches: futures::stream::BoxStream<'static, EngineResult<arrow::array::RecordBatch>>,
) -> EngineResult<Outcome> {
    while let Some(batch) = batches.next().await {
        writer.write(batch?).await.map_err(err)?;
    }
    // A checkpoint the commit carries: the time, so later runs see a newer one.
    let seq = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or_default();
    let checkpoint = Checkpoint {
        state: serde_json::Value::Null,
        position: String::new(),
    };
    let mut outcome = Outcome::default();
    for committed in [
        writer.checkpoint(seq, &checkpoint).await.map_err(err)?,
        writer.finish().await.map_err(err)?,
    ]
    .into_iter()
    .flatten()
    {
        *outcome.rows.get_or_insert(0) += committed.rows;
        outcome
            .changes
            .extend(committed.changes.iter().map(ToString::to_string));
    }
    Ok(outcome)
}

#[async_trait]
impl Engine for LakeEngine {
    async fn refresh(&self) -> EngineResult<()> {
        self.query.refresh().await.map_err(err)
    }

    fn kind(&self) -> &'static str {
        "sluice"
    }

    fn describe(&self) -> String {
        match self.lake.local_root() {
            Some(p) => p.display().to_string(),
            None => self.lake.root().to_string(),
        }
    }

    async fn existing(&self, relation: &Relation) -> EngineResult<Option<Existing>> {
        Ok(self
            .lake
            .relation_kind(&table_name(relation))
            .await
            .map_err(err)?
            .map(|k| match k {
                RelationKind::Table => Existing::Table,
                RelationKind::View => Existing::View,
            }))
    }

    async fn check(&self, sql: &str) -> EngineResult<()> {
        self.query
            .context()
            .state()
            .create_logical_plan(sql)
            .await
            .map(|_| ())
            .map_err(err)
    }

    async fn create_view(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome> {
        self.check(sql).await?;
        let name = table_name(relation);
        self.lake
            .create_view(&name, sql, Some(&self.run_id))
            .await
            .map_err(err)?;
        self.query.note(&name, RelationKind::View);
        Ok(Outcome::default())
    }

    async fn create_table(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome> {
        let batches = self.stream(sql).await?;
        let name = table_name(relation);
        if self.lake.relation_kind(&name).await.map_err(err)? == Some(RelationKind::View) {
            // The plan above already holds what the view read.
            self.lake.drop_relation(&name).await.map_err(err)?;
            self.query.forget(&name);
        }
        self.write(
            relation,
            batches,
            WriteMode::Overwrite,
            Vec::new(),
            true,
            EvolutionPolicy::default(),
        )
        .await
    }

    async fn incremental(
        &self,
        relation: &Relation,
        sql: &str,
        strategy: &Incremental,
        on_schema_change: OnSchemaChange,
    ) -> EngineResult<Outcome> {
        let name = table_name(relation);
        let current = self
            .destination
            .table_schema(&name)
            .await
            .map_err(err)?
            .ok_or_else(|| EngineError::new(format!("table {name} vanished")))?;
        let df = self.query.sql(sql).await.map_err(err)?;
        if on_schema_change == OnSchemaChange::Fail {
            let has =
                |s: &arrow::datatypes::Schema, n: &str| s.fields().iter().any(|f| f.name() == n);
            let produced = df.schema().as_arrow().clone();
            let added: Vec<&str> = produced
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| !has(&current, n))
                .collect();
            let removed: Vec<&str> = current
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| !has(&produced, n))
                .collect();
            if !added.is_empty() || !removed.is_empty() {
                return Err(EngineError::new(format!(
                    "on_schema_change is `fail` and the columns changed (added: {}; removed: {}); run with --full-refresh to rebuild the table, or set on_schema_change to append_new_columns",
                    if added.is_empty() {
                        "none".to_string()
                    } else {
                        added.join(", ")
                    },
                    if removed.is_empty() {
                        "none".to_string()
                    } else {
                        removed.join(", ")
                    },
                )));
            }
        }
        let mut batches = df
            .execute_stream()
            .await
            .map_err(err)?
            .map(|b| b.map_err(err))
            .boxed();
        if on_schema_change == OnSchemaChange::Ignore {
            // Only the table's columns are written; new ones are dropped.
            let keep: Arc<Vec<String>> =
                Arc::new(current.fields().iter().map(|f| f.name().clone()).collect());
            batches = batches
                .map(move |b| {
                    let b = b?;
                    let idx: Vec<usize> = keep
                        .iter()
                        .filter_map(|k| b.schema().index_of(k).ok())
                        .collect();
                    b.project(&idx).map_err(err)
                })
                .boxed();
        }
        let evolution = EvolutionPolicy {
            widen_to_string: false,
            frozen: on_schema_change == OnSchemaChange::Fail,
        };
        let (mode, keys) = match strategy {
            Incremental::Append => (WriteMode::Append, Vec::new()),
            Incremental::Merge(k) | Incremental::DeleteInsert(k) => (WriteMode::Merge, k.clone()),
        };
        self.write(relation, batches, mode, keys, false, evolution)
            .await
    }

    async fn snapshot(
        &self,
        relation: &Relation,
        sql: &str,
        spec: &SnapshotSpec,
    ) -> EngineResult<Outcome> {
        let name = table_name(relation);
        let source = self.query.sql(sql).await.map_err(err)?;
        let src: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let existing = self
            .destination
            .table_schema(&name)
            .await
            .map_err(err)?
            .filter(|_| true);
        let is_view =
            self.lake.relation_kind(&name).await.map_err(err)? == Some(RelationKind::View);
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f");
        let table: Option<Vec<String>> = match (existing, is_view) {
            (Some(s), false) => Some(s.fields().iter().map(|f| f.name().clone()).collect()),
            _ => None,
        };
        let full = snapshot_sql(
            sql,
            &src,
            table.as_deref(),
            &relation.to_string(),
            spec,
            &now.to_string(),
        )?;
        self.create_table(relation, &full).await
    }

    async fn load_seed(&self, relation: &Relation, seed: Seed) -> EngineResult<Outcome> {
        let name = table_name(relation);
        if self.lake.relation_kind(&name).await.map_err(err)? == Some(RelationKind::View) {
            self.lake.drop_relation(&name).await.map_err(err)?;
            self.query.forget(&name);
        }
        let batches = futures::stream::iter(seed.batches.into_iter().map(Ok)).boxed();
        self.write(
            relation,
            batches,
            WriteMode::Overwrite,
            Vec::new(),
            true,
            EvolutionPolicy::default(),
        )
        .await
    }

    async fn run_test(&self, sql: &str) -> EngineResult<TestOutcome> {
        use arrow::array::{Array, AsArray};
        let batches = self
            .query
            .sql(sql)
            .await
            .map_err(err)?
            .collect()
            .await
            .map_err(err)?;
        let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Err(EngineError::new("the test query returned no row"));
        };
        let int = |i: usize| -> EngineResult<u64> {
            let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64)
                .map_err(err)?;
            let col = col.as_primitive::<arrow::datatypes::Int64Type>();
            Ok(if col.is_null(0) {
                0
            } else {
                u64::try_from(col.value(0)).unwrap_or_default()
            })
        };
        let flag = |i: usize| -> EngineResult<bool> {
            let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Boolean)
                .map_err(err)?;
            let col = col.as_boolean();
            Ok(!col.is_null(0) && col.value(0))
        };
        if b.num_columns() < 3 {
            return Err(EngineError::new(
                "the test query must return failures, should_warn, should_error",
            ));
        }
        Ok(TestOutcome {
            failures: int(0)?,
            should_warn: flag(1)?,
            should_error: flag(2)?,
        })
    }

    async fn catalog(&self, relations: &[Relation]) -> EngineResult<CatalogRead> {
        let present: std::collections::HashMap<TableName, RelationKind> = self
            .lake
            .relations()
            .await
            .map_err(err)?
            .into_iter()
            .collect();
        type Described<'a> = std::pin::Pin<
            Box<
                dyn std::future::Future<Output = (&'a Relation, EngineResult<Option<CatalogTable>>)>
                    + Send
                    + 'a,
            >,
        >;
        let mut asked: Vec<Described<'_>> = Vec::new();
        for r in relations {
            if let Some(kind) = present.get(&table_name(r)).copied() {
                asked.push(Box::pin(async move {
                    (r, self.describe_relation(r, kind).await)
                }));
            }
        }
        // Tables are described concurrently: each is a Delta log to read.
        let described: Vec<(&Relation, EngineResult<Option<CatalogTable>>)> =
            futures::stream::iter(asked).buffered(8).collect().await;
        let mut read = CatalogRead::default();
        for (r, d) in described {
            match d {
                Ok(Some(t)) => read.tables.push(t),
                Ok(None) => {}
                Err(e) => read.errors.push(format!("{r}: {e}")),
            }
        }
        Ok(read)
    }

    async fn lint(&self, sql: &str) -> Vec<String> {
        match self.query.context().state().create_logical_plan(sql).await {
            Ok(plan) => integer_divisions(&plan, sql),
            Err(_) => Vec::new(),
        }
    }

    async fn query(&self, sql: &str) -> EngineResult<QueryResult> {
        // Writes go through models (one Delta commit each); DataFusion's own
        // DDL and DML would only change this session's in-memory catalog.
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .query
            .context()
            .sql_with_options(sql, options)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("DDL not supported")
                    || text.contains("DML not supported")
                    || text.contains("Statement not supported")
                {
                    EngineError::new(format!(
                        "the lake runs only queries (select, with, values, explain) from run_query and statement, not `{}`: it would change the lake outside a model\nhint: build the relation with a model (materialized table, view or incremental), or run the project on PostgreSQL for such statements",
                        statement_code(sql).to_ascii_lowercase()
                    ))
                } else {
                    err(text)
                }
            })?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(err)?;
        let rows: usize = batches
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum();
        Ok(QueryResult {
            schema,
            batches,
            code: "SELECT".to_string(),
            rows_affected: Some(rows as u64),
        })
    }

    async fn drop(&self, relation: &Relation) -> EngineResult<()> {
        let name = table_name(relation);
        self.lake.drop_relation(&name).await.map_err(err)?;
        self.query.forget(&name);
        Ok(())
    }
}

/// Every `integer / integer` in the plan, located in `sql` where the text
/// shows it: DataFusion (like PostgreSQL) truncates it, where DuckDB,
/// Snowflake and BigQuery give a fraction.
fn integer_divisions(plan: &datafusion::logical_expr::LogicalPlan, sql: &str) -> Vec<String> {
    use datafusion::common::DFSchema;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};
    let mut found: Vec<(String, String)> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let mut schema = match inputs.first() {
            Some(i) => i.schema().as_ref().clone(),
            None => node.schema().as_ref().clone(),
        };
        for other in inputs.iter().skip(1) {
            schema.merge(other.schema());
        }
        let schema: DFSchema = schema;
        for e in node.expressions() {
            let _ = e.apply(|x| {
                if let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Divide,
                    right,
                }) = x
                {
                    let int = |side: &Expr| side.get_type(&schema).is_ok_and(|t| t.is_integer());
                    if int(left) && int(right) {
                        let pair = (operand(left), operand(right));
                        if !found.contains(&pair) {
                            found.push(pair);
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
        .into_iter()
        .map(|(l, r)| {
            let at = sql
                .lines()
                .position(|line| {
                    line.contains('/') && contains_word(line, &r) && (l.is_empty() || contains_word(line, &l))
                })
                .map(|i| format!("line {}: ", i + 1))
                .unwrap_or_default();
            let shown = if l.is_empty() { format!("… / {r}") } else { format!("{l} / {r}") };
            format!(
                "{at}`{shown}` divides integers: the lake truncates it (7 / 2 = 3), as PostgreSQL does; DuckDB, Snowflake and BigQuery give 3.5. Write `{}` for a fraction",
                if l.is_empty() { format!("… / {r}.0") } else { format!("{l} * 1.0 / {r}") }
            )
        })
        .collect()
}

/// How an operand reads in SQL: a column's name or a literal's text.
fn operand(e: &datafusion::logical_expr::Expr) -> String {
    use datafusion::logical_expr::Expr;
    match e {
        Expr::Column(c) => c.name.clone(),
        Expr::Literal(v, _) => v.to_string(),
        Expr::Cast(c) => operand(&c.expr),
        Expr::TryCast(c) => operand(&c.expr),
        Expr::Alias(a) => operand(&a.expr),
        _ => String::new(),
    }
}

fn contains_word(line: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let lower = line.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    lower.match_indices(&word).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + word.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        edge(before) && edge(after)
    })
}
