//! Tests of the `files` source, on real files in temporary project folders.
//!
//! - `tokenizer`: the CSV tokenizer and column decoding, in isolation.
//! - `csv_source`: CSV through the whole `Source` (schema, errors, quarantine).
//! - `incremental`: state, checkpoints, changed files, the cursor.
//! - `formats`: JSON Lines and Parquet.
//! - `contract`: the conformance check on every format.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod contract;
mod csv_source;
mod formats;
mod incremental;
mod tokenizer;

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use serde_json::Value;
use sluice_core::config::{FilesSource, OnError};
use sluice_core::connector::{Checkpoint, ConnectorError, Message, Progress, ReadRequest};
use tempfile::TempDir;

use crate::FileSource;
use crate::conformance::read_all;

/// The bytes of a fixture under `tests/fixtures/files/`.
pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/files")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A project folder holding `files` (relative path → bytes).
pub(super) fn project(files: &[(&str, &[u8])]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in files {
        write(dir.path(), rel, bytes);
    }
    dir
}

/// Write (or overwrite) a file of a project.
pub(super) fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A source from its `sluice.yml` entry, written as JSON.
pub(super) fn source(dir: &Path, config: Value) -> FileSource {
    try_source(dir, config).unwrap()
}

pub(super) fn try_source(dir: &Path, mut config: Value) -> Result<FileSource, ConnectorError> {
    config["type"] = "files".into();
    let config: FilesSource = serde_json::from_value(config).unwrap();
    FileSource::new("src", &config, dir)
}

/// Everything one read sent, sorted by kind.
#[derive(Debug, Default)]
pub(super) struct Run {
    pub(super) messages: Vec<Message>,
    pub(super) schemas: Vec<SchemaRef>,
    pub(super) batches: Vec<RecordBatch>,
    pub(super) quarantined: Vec<RecordBatch>,
    pub(super) checkpoints: Vec<Checkpoint>,
    pub(super) progress: Progress,
}

impl Run {
    pub(super) fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// All batches as one (in the last schema).
    pub(super) fn data(&self) -> RecordBatch {
        let schema = self.schemas.last().expect("a schema").clone();
        concat_batches(&schema, &self.batches).unwrap()
    }

    /// Column `name` of all rows, rendered as text.
    pub(super) fn column(&self, name: &str) -> Vec<String> {
        let data = self.data();
        let col = data
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        render(col.as_ref())
    }

    /// The final state.
    pub(super) fn state(&self) -> Value {
        self.checkpoints.last().expect("a checkpoint").state.clone()
    }

    /// Quarantine rows as (line, column, value, reason, record).
    pub(super) fn quarantine(&self) -> Vec<QRow> {
        let mut out = Vec::new();
        for b in &self.quarantined {
            let text = |name: &str, i: usize| {
                let c = b.column_by_name(name).unwrap().as_string::<i32>();
                c.is_valid(i).then(|| c.value(i).to_string())
            };
            let lines = b
                .column_by_name("line")
                .unwrap()
                .as_primitive::<arrow::datatypes::UInt64Type>();
            for i in 0..b.num_rows() {
                out.push(QRow {
                    file: text("file", i),
                    line: lines.is_valid(i).then(|| lines.value(i)),
                    column: text("column", i),
                    value: text("value", i),
                    reason: text("reason", i).unwrap_or_default(),
                    record: text("record", i),
                });
            }
        }
        out
    }
}

/// One quarantine row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QRow {
    pub(super) file: Option<String>,
    pub(super) line: Option<u64>,
    pub(super) column: Option<String>,
    pub(super) value: Option<String>,
    pub(super) reason: String,
    pub(super) record: Option<String>,
}

pub(super) fn render(col: &dyn Array) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    let f = arrow::util::display::ArrayFormatter::try_new(col, &options).unwrap();
    (0..col.len()).map(|i| f.value(i).to_string()).collect()
}

/// Read `stream` to its end.
pub(super) async fn read(
    src: &FileSource,
    stream: &str,
    state: Option<Value>,
    on_error: OnError,
) -> Result<Run, ConnectorError> {
    read_batched(src, stream, state, on_error, 1024).await
}

pub(super) async fn read_batched(
    src: &FileSource,
    stream: &str,
    state: Option<Value>,
    on_error: OnError,
    batch_size: usize,
) -> Result<Run, ConnectorError> {
    let request = ReadRequest {
        stream: stream.to_string(),
        state,
        on_error,
        batch_size,
        known_schema: None,
    };
    let messages = read_all(src, request).await?;
    let mut run = Run::default();
    for m in &messages {
        match m {
            Message::Schema(s) => run.schemas.push(s.clone()),
            Message::Batch(b) => run.batches.push(b.clone()),
            Message::Quarantine(b) => run.quarantined.push(b.clone()),
            Message::Checkpoint(c) => run.checkpoints.push(c.clone()),
            Message::Progress(p) => {
                run.progress.bytes += p.bytes;
                run.progress.files += p.files;
                run.progress.rows_skipped += p.rows_skipped;
                if p.total_bytes.is_some() {
                    run.progress.total_bytes = p.total_bytes;
                }
            }
        }
    }
    run.messages = messages;
    Ok(run)
}

/// The located error of a failed read.
pub(super) fn bad_record(
    result: Result<Run, ConnectorError>,
) -> (sluice_core::connector::RecordLocation, String) {
    match result {
        Err(ConnectorError::BadRecord {
            location, message, ..
        }) => (location, message),
        Err(other) => panic!("expected a bad record, got {other}"),
        Ok(run) => panic!("expected a bad record, read {} rows", run.rows()),
    }
}
