//! What every format decoder hands to the stream loop.
//!
//! A decoder turns one file into batches in one schema. Records it cannot
//! turn into a row come back as [`Reject`]s next to the batch: either the
//! record is not in the batch at all (a JSON line that does not parse), or
//! it is, as a row to drop (`row`: CSV builds the columns first and drops
//! bad rows with one filter). The stream loop decides, per `on_error`,
//! whether a reject stops the stream or becomes a quarantine row.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sluice_core::config::FileFormat;
use sluice_core::connector::{ConnectorError, RecordLocation};
use sluice_core::quarantine::QuarantinedRow;

use super::config::StreamConfig;
use super::listing::FileEntry;
use super::{csv_decode, jsonl, parquet};

/// Longest raw value kept in a location or a quarantine row.
const MAX_VALUE_CHARS: usize = 4096;

/// One record a decoder refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reject {
    /// The batch row holding the record (as NULLs), when it is in the batch.
    pub(crate) row: Option<usize>,
    /// 1-based line where the record starts.
    pub(crate) line: Option<u64>,
    /// 1-based record number, for formats without lines.
    pub(crate) record: Option<u64>,
    /// The column at fault.
    pub(crate) column: Option<String>,
    /// The offending raw value.
    pub(crate) value: Option<String>,
    /// What is wrong, e.g. `expected int64`.
    pub(crate) reason: String,
    /// The whole raw record as JSON text.
    pub(crate) raw: Option<String>,
}

impl Reject {
    /// Position in the file, for "first bad record" ordering.
    pub(crate) fn position(&self) -> (u64, usize) {
        (
            self.line.or(self.record).unwrap_or(0),
            self.row.unwrap_or(0),
        )
    }

    /// The error that stops the stream (`on_error: fail`).
    pub(crate) fn into_error(self, file: &str) -> ConnectorError {
        ConnectorError::bad_record(
            RecordLocation {
                file: Some(file.to_string()),
                line: self.line,
                column: self.column,
                record: self.record,
                value: self.value,
            },
            self.reason,
        )
    }

    /// The quarantine row (`on_error: quarantine`).
    pub(crate) fn quarantined(&self, file: &str) -> QuarantinedRow {
        QuarantinedRow {
            file: Some(file.to_string()),
            line: self.line,
            column: self.column.clone(),
            value: self.value.clone(),
            reason: self.reason.clone(),
            record: self.raw.clone(),
        }
    }
}

/// Cap a raw value's length (an unterminated quote can swallow a file).
pub(crate) fn cap_value(text: String) -> String {
    if text.len() <= MAX_VALUE_CHARS {
        text
    } else {
        sluice_core::connector::truncate(&text, MAX_VALUE_CHARS)
    }
}

/// One decoded batch.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Rows in the decoder's schema, rejected rows included as NULLs.
    pub(crate) batch: RecordBatch,
    /// Refused records.
    pub(crate) rejects: Vec<Reject>,
    /// File bytes consumed since the previous batch.
    pub(crate) bytes: u64,
}

/// Where a row of the last batch comes from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// 1-based line.
    pub(crate) line: Option<u64>,
    /// 1-based record number.
    pub(crate) record: Option<u64>,
    /// The raw record as JSON text.
    pub(crate) raw: Option<String>,
}

/// A format decoder over one file.
pub(crate) trait FileDecoder: Send {
    /// The schema of every batch.
    fn schema(&self) -> SchemaRef;

    /// The next batch, `None` at the end of the file.
    fn next_batch(&mut self) -> Result<Option<Decoded>, ConnectorError>;

    /// Where row `row` of the last batch comes from (for records refused
    /// after decoding, such as a NULL cursor).
    fn origin(&self, row: usize) -> Origin;
}

/// Open `file` in the stream's format. `None` for an empty file (nothing to
/// read, no schema). `known` holds the types the stream already has (see
/// [`super::infer::keep_known`]).
pub(crate) fn open(
    file: &FileEntry,
    stream: &StreamConfig,
    batch_size: usize,
    known: Option<&arrow::datatypes::Schema>,
) -> Result<Option<Box<dyn FileDecoder>>, ConnectorError> {
    if file.size == 0 {
        tracing::info!(file = %file.rel, "`{}` is empty: nothing to read", file.rel);
        return Ok(None);
    }
    let batch_size = batch_size.max(1);
    let decoder: Option<Box<dyn FileDecoder>> = match stream.spec.format {
        FileFormat::Csv => csv_decode::CsvDecoder::open(file, stream, batch_size, known)?
            .map(|d| Box::new(d) as Box<dyn FileDecoder>),
        FileFormat::Jsonl => jsonl::JsonlDecoder::open(file, stream, batch_size, known)?
            .map(|d| Box::new(d) as Box<dyn FileDecoder>),
        FileFormat::Parquet => Some(Box::new(parquet::ParquetDecoder::open(
            file, stream, batch_size,
        )?)),
    };
    if decoder.is_none() {
        tracing::info!(file = %file.rel, "`{}` has no records: nothing to read", file.rel);
    }
    Ok(decoder)
}

/// An I/O failure on `file`.
pub(crate) fn io_error(file: &str, path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::external(format!("Cannot read `{file}` ({}): {e}", path.display()), e)
}
