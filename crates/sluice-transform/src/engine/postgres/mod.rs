//! The PostgreSQL engine: a dbt profile output with `type: postgres`
//! (dbt-postgres's keys, see [`profile`]) runs the models as SQL inside
//! PostgreSQL, each step in one transaction, as dbt-postgres does them:
//!
//! ```text
//!  view / table:  BEGIN; CREATE VIEW|TABLE <name>__dbt_tmp AS (<sql>);
//!                 ALTER … <name> RENAME TO <name>__dbt_backup; ALTER … <name>__dbt_tmp RENAME TO <name>;
//!                 DROP … <name>__dbt_backup CASCADE; COMMIT
//!  incremental:   BEGIN; CREATE TEMP TABLE <name>__dbt_tmp<time> ON COMMIT DROP AS (<sql>);
//!                 on_schema_change (ALTER TABLE); INSERT | DELETE … USING + INSERT | MERGE; COMMIT
//!  seed:          same columns: BEGIN; TRUNCATE; COPY (binary); COMMIT
//!                 else the table swap above, the new table filled by COPY
//! ```
//!
//! - Schemas are created when missing (`CREATE SCHEMA IF NOT EXISTS`).
//! - Replacing a relation drops the old one with `CASCADE`, as dbt-postgres
//!   does: views built on it are dropped too, and come back when they are
//!   run again (a `build` rebuilds them right after).
//! - `merge` uses `MERGE` on PostgreSQL 15 and later; before 15 it runs as
//!   delete+insert (same result unless the new rows repeat a key).
//! - A seed whose table already has the seed's columns is truncated and
//!   refilled, so views on it stay (dbt's seed does the same); otherwise the
//!   table is replaced.
//! - Relations named `"db"."schema"."name"` must be in the connected
//!   database (PostgreSQL cannot write across databases).
//! - Errors carry PostgreSQL's message, SQLSTATE, detail and hint; an error
//!   position inside the model's SQL becomes `Line: N, Column: C` of it.

pub mod profile;
pub mod sql;

mod catalog;
mod incremental;
mod query;
mod seed;

use async_trait::async_trait;
use sluice_connectors::postgres::PgConnector;
use sluice_connectors::postgres::catalog::ident;
use sluice_core::error::Classify;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, SimpleQueryMessage, Transaction};

use self::profile::PgProfile;
use self::sql::{Name, RelKind, db_error, drop_any, kind_at, not_ours, rename_sql, wrap};
use super::{
    Engine, EngineError, EngineResult, Existing, Incremental, OnSchemaChange, Outcome, QueryResult,
    SnapshotSpec, TestOutcome, snapshot_sql,
};
use crate::catalog::CatalogRead;
use crate::error::TransformError;
use crate::jinja::Relation;
use crate::profiles::Output;
use crate::seed::Seed;

/// Models in a PostgreSQL database.
pub struct PgEngine {
    connector: PgConnector,
    role: Option<String>,
    database: String,
    version: u32,
    /// Whether `merge` runs as `MERGE` (PostgreSQL ≥ 15).
    merge: bool,
    client: Mutex<Client>,
}

impl std::fmt::Debug for PgEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEngine")
            .field("url", &self.connector.describe())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn tx_error(doing: &str) -> impl Fn(tokio_postgres::Error) -> EngineError + '_ {
    move |e| db_error(doing, &e, None)
}

impl PgEngine {
    /// Connect as the profile output says (dbt-postgres keys).
    pub async fn connect(output: &Output) -> Result<PgEngine, TransformError> {
        let place = match &output.file {
            Some(f) => format!("{}: output `{}`", f.display(), output.target.name),
            None => format!("output `{}`", output.target.name),
        };
        let profile =
            PgProfile::from_settings(&output.settings).map_err(|e| TransformError::Project {
                message: format!("{place}: {}", e.message),
                hint: Some(e.hint),
            })?;
        Self::from_profile(&profile).await.map_err(|e| {
            let (message, hint) = match e.message.split_once("\nhint: ") {
                Some((m, h)) => (m.to_string(), Some(h.to_string())),
                None => (e.message, None),
            };
            TransformError::Project {
                message: format!("{place}: {message}"),
                hint,
            }
        })
    }

    /// Connect to `profile`'s database.
    pub async fn from_profile(profile: &PgProfile) -> EngineResult<PgEngine> {
        let connector = PgConnector::from_url(&profile.url).map_err(connector_error)?;
        let client = open(&connector, profile.role.as_deref()).await?;
        let row = client
            .query_one(
                "SELECT current_database()::text, current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(tx_error("reading the server's version"))?;
        let database: String = row.try_get(0).map_err(tx_error("reading the database"))?;
        let version: i32 = row.try_get(1).map_err(tx_error("reading the version"))?;
        let version = u32::try_from(version).unwrap_or_default();
        Ok(PgEngine {
            connector,
            role: profile.role.clone(),
            database,
            version,
            merge: version >= 150_000,
            client: Mutex::new(client),
        })
    }

    /// Run `merge` as delete+insert even when the server has `MERGE` (how
    /// servers before 15 run it; for tests).
    pub fn without_merge(mut self) -> Self {
        self.merge = false;
        self
    }

    /// `server_version_num` (`150004` for 15.4).
    pub fn server_version(&self) -> u32 {
        self.version
    }

    /// The connection, opened again if it was lost.
    async fn session(&self) -> EngineResult<MutexGuard<'_, Client>> {
        let mut guard = self.client.lock().await;
        if guard.is_closed() {
            *guard = open(&self.connector, self.role.as_deref()).await?;
        }
        Ok(guard)
    }

    /// Where `relation` is, refused when it names another database.
    fn name(&self, relation: &Relation) -> EngineResult<Name> {
        if let Some(db) = &relation.database
            && db != &self.database
        {
            return Err(EngineError::new(format!(
                "{relation} is in database `{db}`, but the profile connects to `{}`; PostgreSQL cannot write across databases\nhint: set the model's `database` to `{}`, or point the profile's `dbname` at `{db}`",
                self.database, self.database
            )));
        }
        if relation.schema.is_empty() {
            return Err(EngineError::new(format!(
                "`{}` has no schema (an ephemeral model is not a relation)",
                relation.identifier
            )));
        }
        Ok(Name {
            schema: relation.schema.clone(),
            name: relation.identifier.clone(),
        })
    }

    /// Make (or replace) `relation` by `create` inside one transaction: the
    /// new relation is built as `<name>__dbt_tmp`, then swapped in.
    async fn replace(&self, relation: &Relation, create: Create<'_>) -> EngineResult<u64> {
        let name = self.name(relation)?;
        let mut client = self.session().await?;
        ensure_schema(&client, &name.schema).await?;
        let tx = client
            .transaction()
            .await
            .map_err(tx_error("starting a transaction"))?;
        let tmp = begin_swap(&tx, &name).await?;
        let (rows, kind) = match create {
            Create::View(sql) => {
                let w = wrap(&format!("CREATE VIEW {} AS (\n", tmp.sql()), sql, "\n)");
                w.run(&tx, &format!("creating view `{name}`")).await?;
                (0, RelKind::View)
            }
            Create::Table(sql) => {
                let w = wrap(&format!("CREATE TABLE {} AS (\n", tmp.sql()), sql, "\n)");
                let rows = w.run(&tx, &format!("creating table `{name}`")).await?;
                (rows, RelKind::Table)
            }
            Create::Seed(seed) => (seed::create(&tx, &tmp, seed).await?, RelKind::Table),
        };
        finish_swap(&tx, &name, &tmp, kind).await?;
        tx.commit()
            .await
            .map_err(tx_error(&format!("committing `{name}`")))?;
        Ok(rows)
    }
}

/// What [`PgEngine::replace`] builds.
enum Create<'a> {
    View(&'a str),
    Table(&'a str),
    Seed(Seed),
}

fn connector_error(e: sluice_core::connector::ConnectorError) -> EngineError {
    match e.hint() {
        Some(h) if !e.to_string().contains("hint:") => EngineError::new(format!("{e}\nhint: {h}")),
        _ => EngineError::new(e.to_string()),
    }
}

async fn open(connector: &PgConnector, role: Option<&str>) -> EngineResult<Client> {
    let client = connector.connect().await.map_err(connector_error)?;
    if let Some(role) = role {
        client
            .batch_execute(&format!("SET ROLE {}", ident(role)))
            .await
            .map_err(|e| {
                let mut e = db_error(&format!("setting the profile's `role: {role}`"), &e, None);
                e.message.push_str(
                    "\nhint: GRANT the role to the profile's user, or remove `role:` from the output",
                );
                e
            })?;
    }
    Ok(client)
}

/// `CREATE SCHEMA IF NOT EXISTS`, in its own statement (a concurrent
/// creation of the same schema is not an error).
async fn ensure_schema(client: &Client, schema: &str) -> EngineResult<()> {
    let doing = format!("creating schema `{schema}`");
    let exists: bool = client
        .query_one("SELECT to_regnamespace($1) IS NOT NULL", &[&ident(schema)])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(tx_error(&doing))?;
    if exists {
        return Ok(());
    }
    match client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => Ok(()),
        Err(e) => Err(db_error(&doing, &e, None)),
    }
}

/// Drop what an interrupted run may have left at `<name>__dbt_tmp` and
/// `<name>__dbt_backup`; the tmp name.
async fn begin_swap(tx: &Transaction<'_>, name: &Name) -> EngineResult<Name> {
    let tmp = name.suffixed("__dbt_tmp");
    drop_any(tx, &tmp).await?;
    drop_any(tx, &name.suffixed("__dbt_backup")).await?;
    Ok(tmp)
}

/// Put `tmp` (a `kind`) in place of whatever is at `name`, dropping the
/// old relation with `CASCADE`.
async fn finish_swap(
    tx: &Transaction<'_>,
    name: &Name,
    tmp: &Name,
    kind: RelKind,
) -> EngineResult<()> {
    let doing = format!("swapping the new `{name}` in");
    let old = kind_at(tx, name).await?;
    let backup = name.suffixed("__dbt_backup");
    let mut statements = Vec::new();
    if let Some(old) = old {
        statements.push(rename_sql(name, old, &backup.name)?);
    }
    statements.push(rename_sql(tmp, kind, &name.name)?);
    if let Some(old) = old {
        statements.push(sql::drop_sql(&backup, old)?);
    }
    for s in statements {
        tx.batch_execute(&s).await.map_err(tx_error(&doing))?;
    }
    Ok(())
}

fn parse_count(text: Option<&str>) -> u64 {
    let t = text.unwrap_or("0").trim();
    t.parse::<u64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

fn parse_flag(text: Option<&str>) -> bool {
    matches!(text.map(str::trim), Some("t" | "true" | "1"))
}

#[async_trait]
impl Engine for PgEngine {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        self.connector.describe().to_string()
    }

    async fn existing(&self, relation: &Relation) -> EngineResult<Option<Existing>> {
        let name = self.name(relation)?;
        let client = self.session().await?;
        Ok(match kind_at(&*client, &name).await? {
            None => None,
            Some(RelKind::Table | RelKind::ForeignTable) => Some(Existing::Table),
            Some(RelKind::View | RelKind::MaterializedView) => Some(Existing::View),
            Some(k @ RelKind::Other(_)) => return Err(not_ours(&name, k)),
        })
    }

    async fn check(&self, sql: &str) -> EngineResult<()> {
        let client = self.session().await?;
        wrap("EXPLAIN\n", sql, "\n")
            .run(&*client, "checking the SQL")
            .await
            .map(|_| ())
    }

    async fn create_view(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome> {
        self.replace(relation, Create::View(sql)).await?;
        Ok(Outcome::default())
    }

    async fn create_table(&self, relation: &Relation, sql: &str) -> EngineResult<Outcome> {
        let rows = self.replace(relation, Create::Table(sql)).await?;
        Ok(Outcome {
            rows: Some(rows),
            changes: Vec::new(),
        })
    }

    async fn incremental(
        &self,
        relation: &Relation,
        sql: &str,
        strategy: &Incremental,
        on_schema_change: OnSchemaChange,
    ) -> EngineResult<Outcome> {
        let name = self.name(relation)?;
        let mut client = self.session().await?;
        let tx = client
            .transaction()
            .await
            .map_err(tx_error("starting a transaction"))?;
        let outcome =
            incremental::run(&tx, &name, sql, strategy, on_schema_change, self.merge).await?;
        tx.commit()
            .await
            .map_err(tx_error(&format!("committing `{name}`")))?;
        Ok(outcome)
    }

    async fn load_seed(&self, relation: &Relation, seed: Seed) -> EngineResult<Outcome> {
        let name = self.name(relation)?;
        let kept = {
            let mut client = self.session().await?;
            let tx = client
                .transaction()
                .await
                .map_err(tx_error("starting a transaction"))?;
            match seed::refill(&tx, &name, &seed).await? {
                Some(rows) => {
                    tx.commit()
                        .await
                        .map_err(tx_error(&format!("committing `{name}`")))?;
                    Some(rows)
                }
                None => None,
            }
        };
        let rows = match kept {
            Some(rows) => rows,
            None => self.replace(relation, Create::Seed(seed)).await?,
        };
        Ok(Outcome {
            rows: Some(rows),
            changes: Vec::new(),
        })
    }

    async fn snapshot(
        &self,
        relation: &Relation,
        sql: &str,
        spec: &SnapshotSpec,
    ) -> EngineResult<Outcome> {
        let name = self.name(relation)?;
        let columns = |stmt: tokio_postgres::Statement| -> Vec<String> {
            stmt.columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect()
        };
        let (src, table) = {
            let client = self.session().await?;
            let src = client
                .prepare(&format!("select * from (\n{sql}\n) s limit 0"))
                .await
                .map_err(|e| db_error("planning the snapshot's query", &e, None))
                .map(columns)?;
            let table = match kind_at(&*client, &name).await? {
                Some(RelKind::Table) => Some(
                    client
                        .prepare(&format!("select * from {relation} limit 0"))
                        .await
                        .map_err(|e| db_error("reading the snapshot's columns", &e, None))
                        .map(columns)?,
                ),
                _ => None,
            };
            (src, table)
        };
        let now = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
        let full = snapshot_sql(
            sql,
            &src,
            table.as_deref(),
            &relation.to_string(),
            spec,
            &now,
        )?;
        self.create_table(relation, &full).await
    }

    async fn run_test(&self, sql: &str) -> EngineResult<TestOutcome> {
        let client = self.session().await?;
        let w = wrap("", sql, "");
        let messages = sql::simple(&*client, &w.statement)
            .await
            .map_err(|e| db_error("running the test", &e, Some(&w)))?;
        let Some(row) = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        }) else {
            return Err(EngineError::new("the test query returned no row"));
        };
        if row.len() < 3 {
            return Err(EngineError::new(
                "the test query must return failures, should_warn, should_error",
            ));
        }
        Ok(TestOutcome {
            failures: parse_count(row.get(0)),
            should_warn: parse_flag(row.get(1)),
            should_error: parse_flag(row.get(2)),
        })
    }

    async fn catalog(&self, relations: &[Relation]) -> EngineResult<CatalogRead> {
        let client = self.session().await?;
        catalog::read(&client, &self.database, relations).await
    }

    async fn query(&self, sql: &str) -> EngineResult<QueryResult> {
        let client = self.session().await?;
        query::run(&client, sql).await
    }

    async fn drop(&self, relation: &Relation) -> EngineResult<()> {
        let name = self.name(relation)?;
        let client = self.session().await?;
        drop_any(&*client, &name).await
    }
}

#[cfg(test)]
mod tests;
