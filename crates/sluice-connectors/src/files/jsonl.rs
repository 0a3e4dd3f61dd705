//! JSON Lines: one JSON object per line, decoded with `arrow_json`.
//!
//! ```text
//!  file ─lines (numbered, blank ones skipped)─► chunk of batch_size lines
//!    struct mode: chunk ─arrow_json tape decoder─► batch
//!    json mode:   line ─serde_json, nested values → JSON text─► rows ─decoder.serialize─► batch
//!  a chunk that fails ─► decoded again line by line: the bad lines become Rejects
//! ```
//!
//! The schema comes from a sample (`jsonl_schema.rs`). The decoder runs in
//! strict mode: a field that is not in the schema is a bad record, not
//! silently dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Take};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow_json::reader::{Decoder, ReaderBuilder};
use serde_json::Value;
use sluice_core::config::NestedMode;
use sluice_core::connector::ConnectorError;

use super::config::StreamConfig;
use super::decoder::{Decoded, FileDecoder, Origin, Reject, cap_value, io_error};
use super::jsonl_errors::{Problem, problem};
use super::jsonl_schema::{flatten_nested, infer_schema};
use super::listing::FileEntry;

/// A JSON Lines file being decoded.
pub(crate) struct JsonlDecoder {
    rel: String,
    reader: BufReader<Take<File>>,
    schema: SchemaRef,
    decoder: Decoder,
    nested_json: bool,
    declared: Vec<String>,
    infer_rows: usize,
    batch_size: usize,
    /// Lines of the current chunk, back to back; line `i` is `chunk[starts[i]..starts[i + 1]]`.
    chunk: Vec<u8>,
    starts: Vec<usize>,
    numbers: Vec<u64>,
    /// For each row of the last batch, its line index in the chunk.
    rows: Vec<usize>,
    line_no: u64,
    bytes: u64,
}

impl JsonlDecoder {
    /// Infer the schema, then decode from the top. `None` when the file has
    /// no non-blank line.
    pub(crate) fn open(
        file: &FileEntry,
        stream: &StreamConfig,
        batch_size: usize,
        known: Option<&arrow::datatypes::Schema>,
    ) -> Result<Option<Self>, ConnectorError> {
        let nested_json = stream.spec.json.nested == NestedMode::Json;
        let Some(schema) = infer_schema(file, stream, known)? else {
            return Ok(None);
        };
        let decoder =
            build_decoder(&schema, batch_size).map_err(|e| decoder_error(&file.rel, e))?;
        Ok(Some(Self {
            rel: file.rel.clone(),
            reader: BufReader::with_capacity(1 << 20, open_file(file)?),
            schema,
            decoder,
            nested_json,
            declared: stream.declared.iter().map(|(n, _)| n.clone()).collect(),
            infer_rows: stream.spec.infer_rows,
            batch_size,
            chunk: Vec::new(),
            starts: Vec::new(),
            numbers: Vec::new(),
            rows: Vec::new(),
            line_no: 0,
            bytes: 0,
        }))
    }

    fn line(&self, i: usize) -> &[u8] {
        &self.chunk[self.starts[i]..self.starts[i + 1]]
    }

    /// Read the next chunk of up to `batch_size` non-blank lines.
    fn read_chunk(&mut self) -> Result<usize, ConnectorError> {
        self.chunk.clear();
        self.starts.clear();
        self.starts.push(0);
        self.numbers.clear();
        while self.numbers.len() < self.batch_size {
            let start = self.chunk.len();
            let n = self
                .reader
                .read_until(b'\n', &mut self.chunk)
                .map_err(|e| {
                    ConnectorError::external(format!("Cannot read `{}`: {e}", self.rel), e)
                })?;
            if n == 0 {
                break;
            }
            self.line_no += 1;
            self.bytes += n as u64;
            if self.chunk[start..].trim_ascii().is_empty() {
                self.chunk.truncate(start);
                continue;
            }
            self.starts.push(self.chunk.len());
            self.numbers.push(self.line_no);
        }
        Ok(self.numbers.len())
    }

    /// Decode the whole chunk at once; `None` when any line is bad.
    fn decode_chunk(&mut self) -> Option<RecordBatch> {
        let expected = self.numbers.len();
        let result = if self.nested_json {
            let mut rows = Vec::with_capacity(expected);
            for i in 0..expected {
                rows.push(json_row(self.line(i)).ok()?);
            }
            self.decoder
                .serialize(&rows)
                .and_then(|_| self.decoder.flush())
        } else {
            feed(&mut self.decoder, &self.chunk).and_then(|_| self.decoder.flush())
        };
        match result {
            Ok(Some(batch)) if batch.num_rows() == expected => Some(batch),
            _ => {
                self.reset();
                None
            }
        }
    }

    /// Decode line by line, collecting the bad lines.
    fn decode_lines(&mut self, rejects: &mut Vec<Reject>) -> Result<RecordBatch, ConnectorError> {
        let mut good = Vec::new();
        for i in 0..self.numbers.len() {
            let line = self.line(i).to_vec();
            let outcome = if self.nested_json {
                json_row(&line).and_then(|row| {
                    self.decoder
                        .serialize(&[row])
                        .and_then(|_| self.decoder.flush())
                        .map_err(|e| self.problem(&e))
                })
            } else {
                feed(&mut self.decoder, &line)
                    .and_then(|_| self.decoder.flush())
                    .map_err(|e| self.problem(&e))
            };
            match outcome {
                Ok(Some(batch)) if batch.num_rows() == 1 => {
                    good.push(batch);
                    self.rows.push(i);
                }
                Ok(other) => {
                    let found = other.map_or(0, |b| b.num_rows());
                    rejects.push(self.reject(
                        i,
                        Problem::plain(format!(
                            "expected one JSON object on the line, found {found}"
                        )),
                    ));
                    self.reset();
                }
                Err(problem) => {
                    rejects.push(self.reject(i, problem));
                    self.reset();
                }
            }
        }
        concat_batches(&self.schema, &good).map_err(|e| decoder_error(&self.rel, e))
    }

    fn problem(&self, e: &ArrowError) -> Problem {
        problem(e, &self.schema, &self.declared, self.infer_rows)
    }

    fn reject(&self, i: usize, problem: Problem) -> Reject {
        let raw = String::from_utf8_lossy(self.line(i)).trim_end().to_string();
        Reject {
            row: None,
            line: Some(self.numbers[i]),
            record: None,
            column: problem.column,
            value: problem.value,
            reason: problem.reason,
            raw: Some(cap_value(raw)),
        }
    }

    fn reset(&mut self) {
        if let Ok(decoder) = build_decoder(&self.schema, self.batch_size) {
            self.decoder = decoder;
        }
    }
}

impl FileDecoder for JsonlDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<Decoded>, ConnectorError> {
        if self.read_chunk()? == 0 {
            return Ok(None);
        }
        self.rows.clear();
        let mut rejects = Vec::new();
        let batch = match self.decode_chunk() {
            Some(batch) => {
                self.rows.extend(0..batch.num_rows());
                batch
            }
            None => self.decode_lines(&mut rejects)?,
        };
        let bytes = std::mem::take(&mut self.bytes);
        Ok(Some(Decoded {
            batch,
            rejects,
            bytes,
        }))
    }

    fn origin(&self, row: usize) -> Origin {
        let i = self.rows.get(row).copied().unwrap_or(0);
        Origin {
            line: self.numbers.get(i).copied(),
            record: None,
            raw: Some(cap_value(
                String::from_utf8_lossy(self.line(i)).trim_end().to_string(),
            )),
        }
    }
}

/// One line for json mode: an object whose nested values are JSON text.
fn json_row(line: &[u8]) -> Result<Value, Problem> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Ok(Value::Object(flatten_nested(map))),
        Ok(_) => Err(Problem::plain("expected a JSON object".to_string())),
        Err(e) => Err(Problem::plain(format!("invalid JSON: {e}"))),
    }
}

/// Strict (unknown fields are errors), numbers and booleans accepted into
/// string columns. Room for one more row than a chunk has lines: a full
/// chunk never fills the decoder, so a line holding two objects shows as a
/// row count mismatch.
fn build_decoder(schema: &SchemaRef, batch_size: usize) -> Result<Decoder, ArrowError> {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(batch_size + 1)
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        .build_decoder()
}

fn feed(decoder: &mut Decoder, bytes: &[u8]) -> Result<(), ArrowError> {
    let mut pos = 0;
    while pos < bytes.len() {
        let n = decoder.decode(&bytes[pos..])?;
        if n == 0 {
            return Err(ArrowError::JsonError(
                "more JSON values than lines".to_string(),
            ));
        }
        pos += n;
    }
    Ok(())
}

fn open_file(file: &FileEntry) -> Result<Take<File>, ConnectorError> {
    File::open(&file.path)
        .map(|f| f.take(file.size))
        .map_err(|e| io_error(&file.rel, &file.path, e))
}

fn decoder_error(file: &str, e: ArrowError) -> ConnectorError {
    ConnectorError::config(
        format!("Cannot decode `{file}` with its inferred schema: {e}"),
        Some("declare the columns' types in `columns:`".to_string()),
    )
}
