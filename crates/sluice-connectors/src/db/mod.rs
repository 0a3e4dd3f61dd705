//! What every database source shares.
//!
//! ```text
//!  sluice.yml include/exclude ─► select.rs ─► the tables to read ─► stream names
//!  catalog query (per database) ─► TableInfo {columns → Arrow types, primary key}
//!  read: connect (retry.rs, backoff) ─► [split.rs: key ranges in parallel]
//!        ─► rows → Arrow batches ─► cursor filter (crate::cursor) ─► messages
//! ```
//!
//! Each database module (`postgres`, `mysql`, `sqlite`) owns its catalog
//! queries, type mapping and row decoding; the pieces here are the same for
//! all of them.

pub mod deliver;
pub mod retry;
pub mod select;
pub mod settings;
pub mod split;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_core::connector::{ColumnDetail, StreamInfo};

/// A table in the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteTable {
    /// Schema (PostgreSQL), database (MySQL) or `main` (SQLite).
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl RemoteTable {
    /// `schema.table`, for messages.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One column as discovered.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The database's own type name (`numeric(12,2)`, `varchar(40)`).
    pub db_type: String,
    /// The Arrow type it is read as.
    pub data_type: DataType,
    /// False when the column is declared NOT NULL.
    pub nullable: bool,
    /// Read as text because the type has no Arrow mapping (or `columns:`
    /// asked for a string); says why.
    pub as_text: Option<String>,
}

/// One table as discovered: what a stream reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// The table.
    pub table: RemoteTable,
    /// Stream name (see [`select::stream_names`]).
    pub stream: String,
    /// Columns in table order.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns, in key order (empty: none).
    pub primary_key: Vec<String>,
    /// The database's row estimate, when it has one.
    pub rows_estimate: Option<u64>,
}

impl TableInfo {
    /// The Arrow schema of the stream. Every field is nullable: a value
    /// that cannot be read is set aside as a bad record, and its row is
    /// dropped from the batch only after the batch is built.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// What `discover` reports.
    pub fn stream_info(&self) -> StreamInfo {
        let mut details = vec![("table".to_string(), self.table.display())];
        if let Some(n) = self.rows_estimate {
            details.push(("rows (estimate)".into(), n.to_string()));
        }
        StreamInfo {
            name: self.stream.clone(),
            schema: Some(self.schema()),
            primary_key: self.primary_key.clone(),
            cursor: None,
            details,
            columns: self
                .columns
                .iter()
                .map(|c| ColumnDetail {
                    name: c.name.clone(),
                    source_type: c.db_type.clone(),
                    nullable: c.nullable,
                    note: c.as_text.clone(),
                })
                .collect(),
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A connection URL for messages: user, host, port and database, never the password.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "<a URL that does not parse>".to_string(),
    }
}

/// Each row of `batch` as a JSON object (NULLs written out): the `record`
/// of a quarantine row when the raw text of the source row is not at hand.
pub fn rows_as_json(
    batch: &arrow::array::RecordBatch,
) -> Result<Vec<String>, sluice_core::connector::ConnectorError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::writer::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(batch).and_then(|()| w.finish()).map_err(|e| {
            sluice_core::connector::ConnectorError::Internal(format!("Rendering rows as JSON: {e}"))
        })?;
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .map(str::to_string)
        .collect())
}

/// SQL string literal: `'it''s'`.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The table a stream of database source `source` reads; a config error
/// (with the source's streams) when it has no such stream.
pub fn table_of<T: Clone>(
    source: &str,
    tables: &[T],
    stream: &str,
    info: impl Fn(&T) -> &TableInfo,
) -> Result<T, sluice_core::connector::ConnectorError> {
    tables
        .iter()
        .find(|t| info(t).stream == stream)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = tables.iter().map(|t| info(t).stream.as_str()).collect();
            sluice_core::connector::ConnectorError::config(
                format!("Source `{source}` has no stream `{stream}`"),
                Some(format!("its streams: {}", known.join(", "))),
            )
        })
}

/// The cursor of a read of `table`: `None` unless the stream is
/// incremental with a `cursor:`. The column must exist (with "did you
/// mean"), have an order, and pass the database's own check `refusal`
/// (why its SQL order differs from Arrow's, if it does).
pub fn read_cursor(
    source: &str,
    table: &TableInfo,
    settings: &settings::StreamSettings,
    state: Option<&serde_json::Value>,
    refusal: impl Fn(&ColumnInfo) -> Option<String>,
) -> Result<Option<crate::cursor::CursorTracker>, sluice_core::connector::ConnectorError> {
    use sluice_core::connector::ConnectorError;
    // A cursor filters only incremental reads; `replication: full` reads
    // everything, whatever an earlier bookmark says.
    let Some(column) = settings
        .cursor
        .as_ref()
        .filter(|_| settings.replication == sluice_core::config::Replication::Incremental)
    else {
        return Ok(None);
    };
    let stream = &table.stream;
    let col = table.column(column).ok_or_else(|| {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        ConnectorError::config(
            format!(
                "Stream `{source}.{stream}`: the cursor column `{column}` is not a column of `{}`",
                table.table.display()
            ),
            Some(
                sluice_core::config::suggest::did_you_mean(column, names.iter().copied())
                    .map_or_else(
                        || format!("the table's columns: {}", names.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    ),
            ),
        )
    })?;
    crate::cursor::check_orderable(column, &col.data_type)?;
    if let Some(why) = refusal(col) {
        return Err(ConnectorError::config(
            format!(
                "Stream `{source}.{stream}`: the cursor column `{column}` ({}) cannot be a cursor: {why}",
                col.db_type
            ),
            Some("choose a column of type integer, decimal, date, timestamp or text as `cursor:` (an `updated_at` timestamp is the usual choice)".to_string()),
        ));
    }
    Ok(Some(crate::cursor::CursorTracker::new(
        column,
        state.and_then(|s| s.get("cursor")),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db.local:5432/app?sslmode=require"),
            "postgres://app@db.local:5432/app"
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
