//! The PostgreSQL `Destination` (`type: postgres` under `destinations:`):
//! tables created from Arrow schemas, rows sent by binary COPY, the
//! checkpoint committed in the same transaction as the data (exactly-once).
//!
//! ```text
//!  engine ─► committed_state(table) ◄── <schema>._sluice_checkpoints (seq, state, run_id, table_oid)
//!         ─► table_schema(table)    ◄── pg_attribute → stored Arrow types (ddl.rs)
//!         ─► open ─► PgStreamWriter (writer.rs)
//!               write: evolution rules → conform → copy_in.rs encoder → COPY in a transaction
//!               commit: insert / upsert / swap + checkpoint row, COMMIT
//! ```
//!
//! - `ddl.rs`: Arrow ↔ PostgreSQL types, CREATE / ALTER statements.
//! - `copy_in.rs`: the binary COPY encoder.
//! - `writer.rs`: the `StreamWriter` (append, overwrite by swap, merge by upsert).
//!
//! The checkpoint row names the table's OID: a table dropped and recreated
//! outside Sluice no longer matches it, and reports no checkpoint.

pub mod copy_in;
pub mod ddl;
pub mod writer;

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use sluice_core::TableName;
use sluice_core::config::{PostgresDestination, WriteMode};
use sluice_core::connector::{
    CommittedState, ConnectorError, Destination, StreamState, StreamWriter, WriteRequest,
};
use tokio_postgres::Client;

use self::ddl::{PG_TYPE_KEY, Qualified, stored_field};
use self::writer::PgStreamWriter;
use super::catalog::ident;
use super::connect::PgConnector;
use super::types::{PgTypeInfo, kind_of};
use crate::db::quote_literal;

/// The table holding each stream's committed checkpoint, in every schema
/// Sluice writes to.
pub const CHECKPOINTS: &str = "_sluice_checkpoints";

/// A `type: postgres` destination.
#[derive(Debug, Clone)]
pub struct PgDestination {
    name: String,
    connector: PgConnector,
    schema: Option<String>,
}

impl PgDestination {
    /// The destination `name` from its configuration (no connection yet).
    pub fn new(name: &str, config: &PostgresDestination) -> Result<PgDestination, ConnectorError> {
        if let Some(s) = &config.schema {
            sluice_core::names::validate_identifier(s).map_err(|e| {
                ConnectorError::config(
                    format!("Destination `{name}`: `schema`: {e}"),
                    Some("write a plain schema name such as `analytics`".to_string()),
                )
            })?;
        }
        Ok(PgDestination {
            name: name.to_string(),
            connector: PgConnector::from_url(&config.url)?,
            schema: config.schema.clone(),
        })
    }

    /// Where a stream's table lands: the configured schema, else the table's own.
    pub fn qualified(&self, table: &TableName) -> Qualified {
        Qualified {
            schema: self.schema.clone().unwrap_or_else(|| table.schema.clone()),
            name: table.name.clone(),
        }
    }

    /// The connector (URL without password, connections).
    pub fn connector(&self) -> &PgConnector {
        &self.connector
    }

    async fn connect(&self) -> Result<Client, ConnectorError> {
        self.connector.connect().await
    }
}

#[async_trait]
impl Destination for PgDestination {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self, table: &TableName) -> String {
        format!(
            "{} table {}",
            self.connector.describe(),
            self.qualified(table)
        )
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let client = self.connect().await?;
        let schema = self.schema.clone().unwrap_or_else(|| "public".into());
        let q = |e: tokio_postgres::Error| {
            ConnectorError::external(
                format!(
                    "Destination `{}`: checking {} failed: {}",
                    self.name,
                    self.connector.describe(),
                    super::connect::error_text(&e)
                ),
                e,
            )
        };
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), has_database_privilege(current_database(), 'CREATE'), \
                 (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')), to_regnamespace($1) IS NOT NULL",
                &[&schema],
            )
            .await
            .map_err(q)?;
        let version: String = row.try_get(0).map_err(q)?;
        let create_db: bool = row.try_get(1).map_err(q)?;
        let tables: i64 = row.try_get(2).map_err(q)?;
        let schema_exists: bool = row.try_get(3).map_err(q)?;
        let create_schema = if schema_exists {
            client
                .query_one("SELECT has_schema_privilege($1, 'CREATE')", &[&schema])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(q)?
        } else {
            create_db
        };
        if !create_db && self.schema.is_none() {
            return Err(ConnectorError::config(
                format!(
                    "Destination `{}`: the user may not create schemas in {}",
                    self.name,
                    self.connector.describe()
                ),
                Some("GRANT CREATE ON DATABASE … TO the user, or set `schema:` to a schema it may write".to_string()),
            ));
        }
        if !create_schema {
            return Err(ConnectorError::config(
                format!(
                    "Destination `{}`: the user may not create tables in schema `{}`",
                    self.name,
                    self.schema.as_deref().unwrap_or("public")
                ),
                Some("GRANT CREATE ON SCHEMA … TO the user".to_string()),
            ));
        }
        Ok(match &self.schema {
            Some(s) => format!(
                "PostgreSQL {version} at {} (schema `{s}`: {tables} tables)",
                self.connector.describe()
            ),
            None => format!(
                "PostgreSQL {version} at {} (tables land in a schema per source)",
                self.connector.describe()
            ),
        })
    }

    fn supports(&self, _mode: WriteMode) -> bool {
        true
    }

    async fn committed_state(
        &self,
        table: &TableName,
        stream_id: &str,
    ) -> Result<CommittedState, ConnectorError> {
        let target = self.qualified(table);
        let client = self.connect().await?;
        let q = |e| ddl::sql_error(&target, "reading the committed checkpoint", e);
        let row = client
            .query_one(
                "SELECT to_regclass($1)::oid, to_regclass($2) IS NOT NULL",
                &[
                    &target.sql(),
                    &format!("{}.{CHECKPOINTS}", ident(&target.schema)),
                ],
            )
            .await
            .map_err(q)?;
        let oid: Option<u32> = row.try_get(0).map_err(q)?;
        let has_checkpoints: bool = row.try_get(1).map_err(q)?;
        let Some(oid) = oid else {
            return Ok(CommittedState::NoTable);
        };
        if !has_checkpoints {
            return Ok(CommittedState::Table(None));
        }
        let sql = format!(
            "SELECT seq, state::text, run_id, table_oid FROM {}.{CHECKPOINTS} WHERE table_name = $1 AND stream = $2",
            ident(&target.schema)
        );
        let Some(row) = client
            .query_opt(&sql, &[&target.name, &stream_id])
            .await
            .map_err(q)?
        else {
            return Ok(CommittedState::Table(None));
        };
        let table_oid: Option<u32> = row.try_get(3).map_err(q)?;
        if table_oid != Some(oid) {
            tracing::warn!(
                "{stream_id}: table `{target}` was replaced outside Sluice since its last checkpoint"
            );
            return Ok(CommittedState::Table(None));
        }
        let seq: i64 = row.try_get(0).map_err(q)?;
        let state: Option<String> = row.try_get(1).map_err(q)?;
        let value = match state {
            Some(s) => serde_json::from_str(&s).map_err(|e| {
                ConnectorError::Internal(format!("checkpoint of `{stream_id}` in `{target}`: {e}"))
            })?,
            None => serde_json::Value::Null,
        };
        Ok(CommittedState::Table(Some(StreamState {
            seq: seq as u64,
            value,
            run_id: row.try_get(2).map_err(q)?,
        })))
    }

    async fn table_schema(&self, table: &TableName) -> Result<Option<SchemaRef>, ConnectorError> {
        let client = self.connect().await?;
        table_columns(&client, &self.qualified(table)).await
    }

    async fn open(&self, request: WriteRequest) -> Result<Box<dyn StreamWriter>, ConnectorError> {
        if request.mode == WriteMode::Merge && request.primary_key.is_empty() {
            return Err(ConnectorError::config(
                format!(
                    "Stream `{}`: `write_mode: merge` into PostgreSQL needs a primary key",
                    request.stream_id
                ),
                Some("set `primary_key: [column, …]` on the stream, or use `write_mode: append` or `overwrite`".to_string()),
            ));
        }
        let target = self.qualified(&request.table);
        let client = self.connect().await?;
        prepare_schema(&client, &target).await?;
        Ok(Box::new(
            PgStreamWriter::open(client, request, target).await?,
        ))
    }
}

/// Create the schema and the checkpoint table once (serialised between
/// concurrent streams by an advisory lock on the schema name).
async fn prepare_schema(client: &Client, target: &Qualified) -> Result<(), ConnectorError> {
    let s = ident(&target.schema);
    let sql = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock(hashtext({lit}));
         CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.{CHECKPOINTS} (
           table_name text NOT NULL,
           stream text NOT NULL,
           seq bigint NOT NULL,
           run_id text,
           state jsonb,
           position text,
           rows bigint,
           committed_at timestamptz NOT NULL DEFAULT now(),
           table_oid oid,
           PRIMARY KEY (table_name, stream));
         COMMIT;",
        lit = quote_literal(&format!("sluice:{}", target.schema))
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(ddl::sql_error(target, "creating the schema", e));
    }
    Ok(())
}

const TABLE_COLUMNS_SQL: &str = "
SELECT a.attname::text, bt.typname::text, bt.typtype::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       et.typname::text, et.typtype::text
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// The stored Arrow schema of a table, `None` when it does not exist.
/// Columns of types Sluice cannot write are marked (see [`is_other`]).
pub async fn table_columns(
    client: &Client,
    table: &Qualified,
) -> Result<Option<SchemaRef>, ConnectorError> {
    let q = |e| ddl::sql_error(table, "reading the table's columns", e);
    let rows = client
        .query(TABLE_COLUMNS_SQL, &[&table.sql()])
        .await
        .map_err(q)?;
    if rows.is_empty() {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table.sql()])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(q)?;
        return Ok(exists.then(|| Arc::new(Schema::empty())));
    }
    let mut fields = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.try_get(0).map_err(q)?;
        let element: Option<String> = r.try_get(4).map_err(q)?;
        let element_typtype: Option<String> = r.try_get(5).map_err(q)?;
        let info = PgTypeInfo {
            name: r.try_get(1).map_err(q)?,
            typtype: r.try_get(2).map_err(q)?,
            element: element.map(|e| (e, element_typtype.unwrap_or_default())),
            typmod: r.try_get(3).map_err(q)?,
        };
        fields.push(match kind_of(&info) {
            Ok(kind) => stored_field(&name, &kind),
            Err(_) => Arc::new(
                Field::new(&name, arrow::datatypes::DataType::Utf8, true).with_metadata(
                    [(PG_TYPE_KEY.to_string(), format!("other:{}", info.name))].into(),
                ),
            ),
        });
    }
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// For a column of a type Sluice cannot write (`inet`, unconstrained
/// `numeric`, …): that type's name.
pub fn is_other(field: &Field) -> Option<&str> {
    field
        .metadata()
        .get(PG_TYPE_KEY)
        .and_then(|v| v.strip_prefix("other:"))
}

#[cfg(test)]
mod tests;
