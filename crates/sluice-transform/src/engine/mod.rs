//! Where models run: the lake (DataFusion over Delta, [`lake`]) or
//! PostgreSQL ([`postgres`]). The runner decides what to do with a node (dbt's
//! materialization logic); an engine does it natively, each step atomic
//! (a Delta commit, a PostgreSQL transaction).

pub mod lake;
pub mod postgres;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::catalog::CatalogRead;
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

/// How a snapshot sees that a row changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStrategy {
    /// The row's `updated_at` column is newer than the snapshot's.
    Timestamp(String),
    /// One of these columns differs (`None`: all columns).
    Check(Option<Vec<String>>),
}

/// A snapshot's settings (dbt's snapshot configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// `unique_key` (one or more columns).
    pub unique_key: Vec<String>,
    /// `strategy` with its column(s).
    pub strategy: SnapshotStrategy,
    /// `invalidate_hard_deletes` / `hard_deletes: invalidate`: close the
    /// current version of rows gone from the source.
    pub invalidate_hard_deletes: bool,
    /// `dbt_valid_to_current`: the SQL for an open `dbt_valid_to` (else NULL).
    pub valid_to_current: Option<String>,
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

/// What a Jinja database call (`run_query`, `statement`) got back.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The columns of the rows it returned (none for a statement that
    /// returns no rows).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// dbt's response `code`: the statement's verb (`SELECT`, `INSERT`,
    /// `CREATE TABLE`).
    pub code: String,
    /// Rows returned or affected, when the engine says.
    pub rows_affected: Option<u64>,
}

impl QueryResult {
    /// dbt's response `_message`: `SELECT 3`, `CREATE TABLE`.
    pub fn message(&self) -> String {
        match self.rows_affected {
            Some(n) => format!("{} {n}", self.code),
            None => self.code.clone(),
        }
    }
}

/// The verb of `sql` (its first one or two keywords, upper case), what
/// dbt's adapters report as a response's `code`.
pub fn statement_code(sql: &str) -> String {
    let mut words = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty() && !w.starts_with("--"))
        .map(str::to_ascii_uppercase);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => match words.next() {
            Some(w) if w == "OR" || w == "TEMP" || w == "TEMPORARY" || w == "UNLOGGED" => {
                let rest: Vec<String> = words.take(2).collect();
                let object = rest
                    .iter()
                    .find(|w| !["REPLACE", "TEMP", "TEMPORARY"].contains(&w.as_str()))
                    .cloned()
                    .unwrap_or_default();
                format!("{first} {object}").trim_end().to_string()
            }
            Some(w) => format!("{first} {w}"),
            None => first,
        },
        "WITH" | "VALUES" | "TABLE" => "SELECT".to_string(),
        _ => first,
    }
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

    /// Take a snapshot of `sql` into the table `relation` (type-2 history:
    /// `dbt_scd_id`, `dbt_updated_at`, `dbt_valid_from`, `dbt_valid_to`).
    async fn snapshot(
        &self,
        relation: &Relation,
        sql: &str,
        spec: &SnapshotSpec,
    ) -> EngineResult<Outcome>;

    /// Replace the table `relation` with a seed's rows.
    async fn load_seed(&self, relation: &Relation, seed: Seed) -> EngineResult<Outcome>;

    /// Run a test query (one row: failures, should_warn, should_error).
    async fn run_test(&self, sql: &str) -> EngineResult<TestOutcome>;

    /// Drop whatever is at `relation`.
    async fn drop(&self, relation: &Relation) -> EngineResult<()>;

    /// Columns (with the engine's type names), kind, owner, comment and
    /// size of those of `relations` that exist, for `catalog.json`; the
    /// others are left out. A relation that exists but cannot be described
    /// is an entry of [`CatalogRead::errors`], not a failure.
    async fn catalog(&self, relations: &[Relation]) -> EngineResult<CatalogRead> {
        let _ = relations;
        Err(EngineError::new(format!(
            "the `{}` engine cannot describe its relations (no catalog)",
            self.kind()
        )))
    }

    /// Run `sql` for a Jinja database call (`run_query`, `statement`): the
    /// rows it returns, all of them in memory.
    async fn query(&self, sql: &str) -> EngineResult<QueryResult>;

    /// Look again at which relations exist, after something else (a load of
    /// the same run) made some. Engines that ask the database every time
    /// have nothing to do.
    async fn refresh(&self) -> EngineResult<()> {
        Ok(())
    }

    /// Where `sql` would surprise someone used to another warehouse
    /// (integer division on the lake): one warning per place, with its line.
    async fn lint(&self, sql: &str) -> Vec<String> {
        let _ = sql;
        Vec::new()
    }
}

/// Snapshot columns dbt adds.
const META: [&str; 4] = [
    "dbt_scd_id",
    "dbt_updated_at",
    "dbt_valid_from",
    "dbt_valid_to",
];

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The whole snapshot table after this run, as one query: closed history
/// as it was; current versions closed when their row changed (or vanished,
/// with `invalidate_hard_deletes`); new versions for new and changed rows.
/// `table` is the snapshot's columns, `None` on the first run.
pub fn snapshot_sql(
    source_sql: &str,
    src: &[String],
    table: Option<&[String]>,
    this: &str,
    spec: &SnapshotSpec,
    now: &str,
) -> EngineResult<String> {
    let missing = |c: &String| !src.iter().any(|s| s == c);
    if spec.unique_key.is_empty() {
        return Err(EngineError::new("a snapshot needs a `unique_key`"));
    }
    let mut needed: Vec<&String> = spec.unique_key.iter().collect();
    if let SnapshotStrategy::Timestamp(u) = &spec.strategy {
        needed.push(u);
    }
    if let SnapshotStrategy::Check(Some(cols)) = &spec.strategy {
        needed.extend(cols);
    }
    if let Some(c) = needed.into_iter().find(|c| missing(c)) {
        return Err(EngineError::new(format!(
            "the snapshot's query has no column `{c}` (named by unique_key, updated_at or check_cols); its columns: {}",
            src.join(", ")
        )));
    }
    let now = format!("cast('{now}' as timestamp)");
    let open = spec.valid_to_current.as_ref().map_or_else(
        || "cast(null as timestamp)".to_string(),
        |e| format!("cast({e} as timestamp)"),
    );
    let is_open = |alias: &str| match &spec.valid_to_current {
        None => format!("{alias}.dbt_valid_to is null"),
        Some(e) => format!(
            "({alias}.dbt_valid_to is null or {alias}.dbt_valid_to = cast({e} as timestamp))"
        ),
    };
    let key_text = |alias: &str| {
        spec.unique_key
            .iter()
            .map(|k| format!("coalesce(cast({alias}.{} as varchar), '')", q(k)))
            .collect::<Vec<_>>()
            .join(" || '|' || ")
    };
    let updated = |alias: &str| match &spec.strategy {
        SnapshotStrategy::Timestamp(u) => format!("cast({alias}.{} as timestamp)", q(u)),
        SnapshotStrategy::Check(_) => now.clone(),
    };
    let scd = |alias: &str| {
        format!(
            "md5({} || '|' || coalesce(cast({} as varchar), ''))",
            key_text(alias),
            updated(alias)
        )
    };
    let Some(table) = table else {
        let cols: Vec<String> = src.iter().map(|c| format!("s.{}", q(c))).collect();
        return Ok(format!(
            "select {}, {} as dbt_scd_id, {} as dbt_updated_at, {} as dbt_valid_from, {open} as dbt_valid_to\nfrom (\n{source_sql}\n) s",
            cols.join(", "),
            scd("s"),
            updated("s"),
            updated("s"),
        ));
    };
    // Columns: the snapshot's (without dbt's), then new ones of the source.
    let mut cols: Vec<String> = table
        .iter()
        .filter(|c| !META.contains(&c.as_str()))
        .cloned()
        .collect();
    for c in src {
        if !cols.contains(c) && !META.contains(&c.as_str()) {
            cols.push(c.clone());
        }
    }
    let from = |alias: &str, has: &dyn Fn(&String) -> bool| -> String {
        cols.iter()
            .map(|c| {
                if has(c) {
                    format!("{alias}.{}", q(c))
                } else {
                    format!("null as {}", q(c))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let in_table = |c: &String| table.contains(c);
    let in_src = |c: &String| src.contains(c);
    let join = |a: &str, b: &str| {
        spec.unique_key
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}", k = q(k)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let changed = match &spec.strategy {
        SnapshotStrategy::Timestamp(u) => {
            format!("t.dbt_valid_from < cast(s.{} as timestamp)", q(u))
        }
        SnapshotStrategy::Check(list) => {
            let checked: Vec<&String> = match list {
                Some(l) => l.iter().collect(),
                None => src
                    .iter()
                    .filter(|c| !spec.unique_key.contains(c) && in_table(c))
                    .collect(),
            };
            if checked.is_empty() {
                "false".to_string()
            } else {
                checked
                    .iter()
                    .map(|c| {
                        format!(
                            "(s.{c} <> t.{c} or (s.{c} is null) <> (t.{c} is null))",
                            c = q(c)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" or ")
            }
        }
    };
    let first_key = q(&spec.unique_key[0]);
    let deleted = if spec.invalidate_hard_deletes {
        format!("when gone.{first_key} is null then {now} ")
    } else {
        String::new()
    };
    let gone_join = if spec.invalidate_hard_deletes {
        format!("left join src gone on {}\n", join("t", "gone"))
    } else {
        String::new()
    };
    Ok(format!(
        "with src as (\n{source_sql}\n),\n\
         cur as (select * from {this} t where {open_t}),\n\
         upd as (\n  select {keys}, {new_ts} as new_ts from src s join cur t on {on} where {changed}\n)\n\
         select {hist_cols}, t.dbt_scd_id, t.dbt_updated_at, t.dbt_valid_from, t.dbt_valid_to from {this} t where not ({open_t})\n\
         union all\n\
         select {cur_cols}, t.dbt_scd_id, t.dbt_updated_at, t.dbt_valid_from,\n  case when upd.{first_key} is not null then upd.new_ts {deleted}else t.dbt_valid_to end as dbt_valid_to\n\
         from cur t left join upd on {upd_on}\n{gone_join}\
         union all\n\
         select {src_cols}, {scd} as dbt_scd_id, {upd_s} as dbt_updated_at, {upd_s} as dbt_valid_from, {open} as dbt_valid_to\n\
         from src s left join cur t on {on}\n\
         where t.{first_key} is null or ({changed})",
        open_t = is_open("t"),
        keys = spec
            .unique_key
            .iter()
            .map(|k| format!("s.{}", q(k)))
            .collect::<Vec<_>>()
            .join(", "),
        new_ts = updated("s"),
        on = join("s", "t"),
        upd_on = join("t", "upd"),
        hist_cols = from("t", &in_table),
        cur_cols = from("t", &in_table),
        src_cols = from("s", &in_src),
        scd = scd("s"),
        upd_s = updated("s"),
    ))
}
