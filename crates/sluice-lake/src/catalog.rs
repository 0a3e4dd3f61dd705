//! What the lake holds: tables, their size, versions and last load.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_core::TableName;

use crate::commit::last_sluice_commit;
use crate::error::{LakeError, Result};
use crate::location::Lake;
use crate::writer::table_schema;

/// Facts about one lake table.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// `schema.table`.
    pub name: String,
    /// Where it lives.
    pub location: String,
    /// Rows (from file statistics).
    pub rows: u64,
    /// Data files.
    pub files: usize,
    /// Bytes of data files.
    pub bytes: u64,
    /// Current version (the number of commits minus one).
    pub version: u64,
    /// Columns.
    pub columns: usize,
    /// Time of the last commit Sluice made.
    pub last_load: Option<DateTime<Utc>>,
    /// Run of the last commit Sluice made.
    pub last_run_id: Option<String>,
    /// The stream of the last commit Sluice made (`<source>.<stream>`, or
    /// `transform:<model>` for a model `sluice transform` built).
    pub last_stream: Option<String>,
}

/// A table's columns and size, read from one load of its Delta log
/// (what a data catalog shows; [`Lake::info`] adds the history).
#[derive(Debug, Clone)]
pub struct TableFacts {
    /// Its columns, as Arrow sees them.
    pub schema: arrow::datatypes::SchemaRef,
    /// Rows (from file statistics).
    pub rows: u64,
    /// Bytes of data files.
    pub bytes: u64,
}

impl Lake {
    /// Columns, rows and bytes of a table; `None` if it does not exist.
    pub async fn table_facts(&self, name: &TableName) -> Result<Option<TableFacts>> {
        let Some(table) = self.open(name).await? else {
            return Ok(None);
        };
        let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        for f in snapshot.log_data().iter() {
            rows += f.num_records().unwrap_or(0) as u64;
            bytes += f.size().max(0) as u64;
        }
        Ok(Some(TableFacts {
            schema: table_schema(&table, name)?,
            rows,
            bytes,
        }))
    }

    /// Every table of the lake, sorted by name (views: [`Lake::relations`]).
    pub async fn list(&self) -> Result<Vec<TableName>> {
        Ok(self
            .relations()
            .await?
            .into_iter()
            .filter(|(_, k)| *k == crate::views::RelationKind::Table)
            .map(|(n, _)| n)
            .collect())
    }

    /// Facts about one table.
    pub async fn info(&self, name: &TableName) -> Result<TableInfo> {
        let table = self.open_existing(name).await?;
        let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
        let (mut rows, mut files, mut bytes) = (0u64, 0usize, 0u64);
        for f in snapshot.log_data().iter() {
            rows += f.num_records().unwrap_or(0) as u64;
            files += 1;
            bytes += f.size().max(0) as u64;
        }
        let columns = table_schema(&table, name)?.fields().len();
        let last = last_sluice_commit(&table).await?;
        Ok(TableInfo {
            name: name.to_string(),
            location: self.describe(name),
            rows,
            files,
            bytes,
            version: table.version().unwrap_or_default(),
            columns,
            last_load: last
                .as_ref()
                .and_then(|(_, ts)| *ts)
                .and_then(DateTime::from_timestamp_millis),
            last_stream: last.as_ref().map(|(m, _)| m.stream.clone()),
            last_run_id: last.map(|(m, _)| m.run_id),
        })
    }
}
