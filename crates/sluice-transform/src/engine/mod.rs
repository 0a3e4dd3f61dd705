//! Where models run: the lake (DataFusion over Delta, [`lake`]) or
//! PostgreSQL ([`postgres`]). The runner decides what to do with a node (dbt's
//! materialization logic); an engine does it natively, each step atomic
//! (a Delta commit, a PostgreSQL transaction).

pub mod lake;
pub mod postgres;

use async_trait::async_trait;

use crate::jinja::Relation;
use crate::seed::Seed;

/// What is at a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// A table.
    Table,
    /// A view.
    View,
}

/// How an incremental model adds its new rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incremental {
    /// Insert them.
    Append,
    /// Update rows whose `unique_key` matches, insert the rest.
    Merge(Vec<String>),
    /// Delete rows whose `unique_key` matches, then insert all new rows.
    DeleteInsert(Vec<String>),
}

/// `on_schema_change`: what an incremental run does when the model's
/// columns differ from the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSchemaChange {
    /// Write the table's columns only (new columns are dropped).
    Ignore,
    /// Refuse any change.
    Fail,
    /// Add the new columns.
    AppendNewColumns,
    /// Add the new columns. The lake leaves the columns the model no longer
    /// has (NULL in new rows); PostgreSQL drops them and retypes changed
    /// columns, as dbt-postgres does.
    SyncAllColumns,
}

impl OnSchemaChange {
    /// Parse dbt's value.
    pub fn parse(s: &str) -> Option<OnSchemaChange> {
        Some(match s {
            "ignore" => OnSchemaChange::Ignore,
            "fail" => OnSchemaChange::Fail,
            "append_new_columns" => OnSchemaChange::AppendNewColumns,
            "sync_all_columns" => OnSchemaChange::SyncAllColumns,
            _ => return None,
        })
    }
}

/// What a step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Rows written, when known.
    pub rows: Option<u64>,
    /// Schema changes applied, for people.
    pub changes: Vec<String>,
}

/// A test query's result row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestOutcome {
    /// `failures`.
    pub failures: u64,
    /// `should_warn`.
    pub should_warn: bool,
    /// `should_error`.
    pub should_error: bool,
}

/// An engine failure: the engine's message.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    /// What the engine said.
    pub message: String,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

impl EngineError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        EngineError {
            message: message.into(),
        }
    }
}

/// Result of an engine step.
pub type EngineResult<T> = std::result::Result<T, EngineError>;

/// Runs materializations.
#[async_trait]
pub trait Engine: Send + Sync {
    /// `sluice` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Where the engine keeps its relations, for people.
    fn describe(&self) -> String;

    /// What is at `relation`, if anything.
    async fn existing(&self, relation: &Relation) -> EngineResult<Option<Existing>>;

    /// Check that `sql` plans (names only existing relations and columns)
    /// without running it.
    async fn check(&self, sql: &str) -> EngineResult<()>;

    /// Make (or replace) the view `relation` as `sql`.
    async fn create_view(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome>;

    /// Make (or atomically replace) the table `relation` with the rows of `sql`.
    async fn create_table(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome>;

    /// Add the rows of `sql` to the existing table `relation`.
    async fn incremental(
        &self,
        relation: &Relation,
        sql: &str,
        strategy: &Incremental,
        on_schema_change: OnSchemaChange,
    ) -> EngineResult<Outcome>;

    /// Replace the table `relation` with a seed's rows.
    async fn load_seed(&self, relation: &Relation, seed: Seed) -> EngineResult<Outcome>;

    /// Run a test query (one row: failures, should_warn, should_error).
    async fn run_test(&self, sql: &str) -> EngineResult<TestOutcome>;

    /// Drop whatever is at `relation`.
    async fn drop(&self, relation: &Relation) -> EngineResult<()>;

    /// Where `sql` would surprise someone used to another warehouse
    /// (integer division on the lake): one warning per place, with its line.
    async fn lint(&self, sql: &str) -> Vec<String> {
        let _ = sql;
        Vec::new()
    }
}
