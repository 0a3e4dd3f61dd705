//! `type: files` sources: CSV, JSON Lines and Parquet files on local disk.
//!
//! ```text
//!  FileSource::new(name, FilesSource, project_dir)      config.rs: streams resolved
//!     │                                                 (core's `file_streams` + `defaults:`)
//!     ▼
//!  Source::read(ReadRequest)                            source.rs
//!     │  blocking thread, one ReadJob                   read.rs
//!     │   listing.rs  glob → files sorted by path, with size + mtime
//!     │   state.rs    incremental: skip files whose size + mtime match the state
//!     │   per file, decoder.rs opens:
//!     │     csv_decode.rs   csv.rs tokens → csv_columns.rs typed columns (infer.rs, values.rs)
//!     │     jsonl.rs        arrow_json; bad chunks again line by line (jsonl_schema.rs, jsonl_errors.rs)
//!     │     parquet.rs      parquet's Arrow reader, timestamps → µs
//!     │   per batch: rejects + crate::cursor filter → fail (located error) | Quarantine rows
//!     │   sends Schema (when it changes) · Batch … · Progress · Checkpoint (after each file)
//!     ▼
//!  bounded channel (3 messages) ─► MessageStream for the engine
//! ```
//!
//! Each checkpoint carries the whole state: every file loaded and still
//! present (from earlier runs too) and the cursor bookmark, so a run that
//! stops after file *k* resumes at file *k + 1*. A stream that finds nothing
//! new still ends with one checkpoint, and sends no schema. `replication:
//! full` reads every file every time; a changed file is read whole.
//!
//! # State
//!
//! ```json
//! {"version": 1,
//!  "files": {"data/orders1.csv": {"size": 123, "mtime_ns": 1700000000000000000, "rows": 1000}},
//!  "cursor": {"column": "updated_at", "type": "Timestamp(µs, \"UTC\")",
//!             "value": "2024-03-01T12:00:00Z", "at_value": ["…"], "at_value_complete": true}}
//! ```

mod config;
mod csv;
mod csv_columns;
mod csv_decode;
mod decoder;
mod infer;
mod jsonl;
mod jsonl_errors;
mod jsonl_schema;
mod listing;
mod parquet;
mod read;
mod source;
mod state;
mod values;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::config::{FilesSource, StreamOptions};
use sluice_core::connector::ConnectorError;

pub use source::CHANNEL_CAPACITY;

use config::StreamConfig;

/// A `files` source: every stream of one `type: files` entry of `sources:`.
///
/// Stream options resolve in the order of the rest of Sluice: built-in
/// defaults < `defaults:` ([`FileSource::with_defaults`]) < source-level keys
/// < `streams.<name>:` keys. What the engine decides per run (`on_error`,
/// the batch size, the state) comes in the [`ReadRequest`](sluice_core::connector::ReadRequest).
#[derive(Debug, Clone)]
pub struct FileSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    project_dir: PathBuf,
    streams: Vec<StreamConfig>,
}

impl FileSource {
    /// The source named `source_name`, with paths relative to `project_dir`.
    /// Checks the settings (stream names, CSV characters, declared types);
    /// touches no file.
    pub fn new(
        source_name: &str,
        config: &FilesSource,
        project_dir: &Path,
    ) -> Result<FileSource, ConnectorError> {
        let streams = config::resolve(source_name, config, &StreamOptions::default())?;
        Ok(FileSource {
            inner: Arc::new(Inner {
                name: source_name.to_string(),
                project_dir: project_dir.to_path_buf(),
                streams,
            }),
        })
    }

    /// Apply the project's `defaults:` layer (`ProjectConfig::defaults.stream_options()`)
    /// under the source's own keys, e.g. a project-wide `replication: full`.
    pub fn with_defaults(self, defaults: &StreamOptions) -> Result<FileSource, ConnectorError> {
        let streams = self
            .inner
            .streams
            .iter()
            .map(|s| config::with_defaults(&self.inner.name, s, defaults))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileSource {
            inner: Arc::new(Inner {
                name: self.inner.name.clone(),
                project_dir: self.inner.project_dir.clone(),
                streams,
            }),
        })
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The stream names, in configuration order.
    pub fn stream_names(&self) -> Vec<&str> {
        self.inner.streams.iter().map(|s| s.name.as_str()).collect()
    }
}

impl Inner {
    fn stream(&self, name: &str) -> Result<&StreamConfig, ConnectorError> {
        self.streams.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.streams.iter().map(|s| s.name.as_str()).collect();
            let suggestion =
                sluice_core::config::suggest::did_you_mean(name, names.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
            ConnectorError::config(
                format!("Source `{}` has no stream `{name}`{suggestion}", self.name),
                Some(format!("its streams are `{}`", names.join("`, `"))),
            )
        })
    }
}
