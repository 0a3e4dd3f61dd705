//! File destinations: `type: parquet | csv | jsonl`.
//!
//! Each table is a folder `<path>/<schema>/<table>/` of part files:
//!
//! ```text
//!  write(batch) ─► part-<run>-<n>.<ext>.tmp   (streamed, bounded memory)
//!  commit       ─► rename *.tmp → part-<run>-<n>.<ext>; _schema.json updated
//!  overwrite    ─► at the end, also delete the parts of earlier runs
//! ```
//!
//! A part becomes visible by an atomic rename, so readers never see half a
//! file. Delivery is at-least-once: the state store is written after the
//! rename, so a crash between the two re-writes the last commit's rows on the
//! next run (the lake destination is the exactly-once one). Merge is not
//! supported: files cannot be updated in place.

mod writer;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sluice_core::TableName;
use sluice_core::config::{FileDestination as FileDestinationConfig, FileFormat, WriteMode};
use sluice_core::connector::{ConnectorError, Destination, StreamWriter, WriteRequest};

pub use writer::FileStreamWriter;
pub(crate) use writer::{evolved_schema, read_schema, write_schema};

/// Writes tables as folders of Parquet, CSV or JSON Lines files.
#[derive(Debug, Clone)]
pub struct FileDestination {
    root: PathBuf,
    format: FileFormat,
    compression: parquet::basic::Compression,
}

impl FileDestination {
    /// A destination from its config; relative paths are relative to `project_dir`.
    pub fn new(config: &FileDestinationConfig, project_dir: &Path) -> Result<Self, ConnectorError> {
        let root = if Path::new(&config.path).is_absolute() {
            PathBuf::from(&config.path)
        } else {
            project_dir.join(&config.path)
        };
        if config.compression.is_some() && config.format() != FileFormat::Parquet {
            return Err(ConnectorError::config(
                format!(
                    "`compression` applies to `type: parquet` destinations only, not `type: {}`",
                    config.kind
                ),
                Some("remove `compression`".to_string()),
            ));
        }
        let compression = match config.compression.as_deref().unwrap_or("snappy") {
            "snappy" => parquet::basic::Compression::SNAPPY,
            "zstd" => parquet::basic::Compression::ZSTD(Default::default()),
            "none" | "uncompressed" => parquet::basic::Compression::UNCOMPRESSED,
            other => {
                return Err(ConnectorError::config(
                    format!("unknown parquet compression `{other}`"),
                    Some("use `snappy` (default), `zstd` or `none`".to_string()),
                ));
            }
        };
        Ok(FileDestination {
            root,
            format: config.format(),
            compression,
        })
    }

    /// The folder of a table.
    pub fn table_dir(&self, table: &TableName) -> PathBuf {
        self.root.join(&table.schema).join(&table.name)
    }
}

#[async_trait]
impl Destination for FileDestination {
    fn kind(&self) -> &'static str {
        match self.format {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }

    fn describe(&self, table: &TableName) -> String {
        self.table_dir(table).display().to_string()
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        std::fs::create_dir_all(&self.root).map_err(|e| {
            ConnectorError::external(format!("Cannot create `{}`", self.root.display()), e)
        })?;
        let probe = self.root.join(".sluice-write-check");
        std::fs::write(&probe, b"ok").map_err(|e| {
            ConnectorError::external(format!("`{}` is not writable", self.root.display()), e)
        })?;
        let _ = std::fs::remove_file(probe);
        Ok(format!(
            "{} files under {}",
            self.kind(),
            self.root.display()
        ))
    }

    fn supports(&self, mode: WriteMode) -> bool {
        mode != WriteMode::Merge
    }

    async fn table_schema(
        &self,
        table: &TableName,
    ) -> Result<Option<arrow::datatypes::SchemaRef>, ConnectorError> {
        writer::read_schema(&self.table_dir(table))
    }

    async fn open(&self, request: WriteRequest) -> Result<Box<dyn StreamWriter>, ConnectorError> {
        if request.mode == WriteMode::Merge {
            return Err(ConnectorError::Unsupported {
                connector: self.kind(),
                what: "`write_mode: merge`".into(),
                hint: Some("files cannot be updated in place; load into the lake (the default destination) to merge, or use `write_mode: append` / `overwrite`".into()),
            });
        }
        let dir = self.table_dir(&request.table);
        Ok(Box::new(FileStreamWriter::open(
            dir,
            self.format,
            self.compression,
            request,
        )?))
    }
}

#[cfg(test)]
mod tests;
