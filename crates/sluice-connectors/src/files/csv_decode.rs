//! A CSV file as a [`FileDecoder`]: schema inference, then batches.
//!
//! ```text
//!  open:  header ─► names (made unique) · first `infer_rows` records ─► Guess per column
//!         declared `columns:` win ─► schema;  reopen at the top, past the header
//!  next:  CsvReader ─► Records (batch_size) ─► csv_columns::build_batch ─► batch + BadCells
//!         BadCell ─► Reject (line, column, value, reason, raw record as JSON)
//! ```

use std::fs::File;
use std::io::{Read, Take};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sluice_core::connector::ConnectorError;
use sluice_core::quarantine::record_json;
use sluice_core::types::type_name;

use super::config::{NullSet, StreamConfig};
use super::csv::{CsvReader, Records};
use super::csv_columns::{BadCell, BadKind, build_batch};
use super::decoder::{Decoded, FileDecoder, Origin, Reject, cap_value, io_error};
use super::infer::{Guess, default_names, keep_known, schema_with_declared, unique_names};
use super::listing::FileEntry;

/// How each column got its type, for messages.
#[derive(Debug, Clone, Copy)]
enum TypeOrigin {
    Declared,
    Inferred,
    /// Kept from the destination table or an earlier file of the stream.
    Known,
}

/// A CSV file being decoded batch by batch.
pub(crate) struct CsvDecoder {
    rel: String,
    reader: CsvReader<Take<File>>,
    records: Records,
    schema: SchemaRef,
    origins: Vec<TypeOrigin>,
    nulls: NullSet,
    /// Records the types were inferred from.
    sampled: usize,
    batch_size: usize,
    reported: u64,
}

impl CsvDecoder {
    /// Infer the schema from the first `infer_rows` records, then start
    /// decoding from the top. `None` for a file without any record.
    pub(crate) fn open(
        file: &FileEntry,
        stream: &StreamConfig,
        batch_size: usize,
        known: Option<&arrow::datatypes::Schema>,
    ) -> Result<Option<Self>, ConnectorError> {
        let dialect = &stream.dialect;
        let mut sample = Records::default();
        let mut reader = CsvReader::new(open_file(file)?, dialect);
        let read = |reader: &mut CsvReader<_>, recs: &mut Records, n| {
            reader
                .read(recs, n)
                .map_err(|e| io_error(&file.rel, &file.path, e))
        };
        if read(&mut reader, &mut sample, 1)? == 0 {
            return Ok(None);
        }
        let names = if dialect.header {
            let names = unique_names(sample.texts(0), &file.rel);
            sample.clear();
            names
        } else {
            default_names(sample.field_count(0))
        };
        let target = stream.spec.infer_rows.saturating_sub(sample.len());
        read(&mut reader, &mut sample, target)?;
        let origins: Vec<TypeOrigin> = names
            .iter()
            .map(|n| match stream.declared.iter().any(|(d, _)| d == n) {
                true => TypeOrigin::Declared,
                false => TypeOrigin::Inferred,
            })
            .collect();
        let mut guesses = vec![Guess::default(); names.len()];
        for r in (0..sample.len()).filter(|&r| sample.field_count(r) == names.len()) {
            for (c, guess) in guesses.iter_mut().enumerate() {
                let field = sample.field(r, c);
                if matches!(origins[c], TypeOrigin::Inferred) && !dialect.nulls.is_null(field) {
                    guess.observe(&String::from_utf8_lossy(field));
                }
            }
        }
        let mut origins = origins;
        let schema = schema_with_declared(
            &names,
            |i| {
                let known = known.and_then(|k| k.field_with_name(&names[i]).ok());
                keep_known(guesses[i].data_type(), known.map(|f| f.data_type()))
            },
            &stream.declared,
            &file.rel,
        )?;
        for (c, field) in schema.fields().iter().enumerate() {
            if matches!(origins[c], TypeOrigin::Inferred)
                && field.data_type() != &guesses[c].data_type()
            {
                origins[c] = TypeOrigin::Known;
            }
        }
        // Decode from the top, past the header.
        let mut reader = CsvReader::new(open_file(file)?, dialect);
        let mut records = Records::default();
        if dialect.header {
            read(&mut reader, &mut records, 1)?;
        }
        Ok(Some(Self {
            rel: file.rel.clone(),
            reader,
            records,
            schema: Arc::new(schema),
            origins,
            nulls: dialect.nulls.clone(),
            sampled: sample.len(),
            batch_size,
            reported: 0,
        }))
    }

    fn column_name(&self, c: usize) -> String {
        match self.schema.fields().get(c) {
            Some(f) => f.name().clone(),
            None => format!("column_{}", c + 1),
        }
    }

    fn raw_record(&self, r: usize) -> String {
        let texts = self.records.texts(r);
        let names: Vec<String> = (0..texts.len()).map(|c| self.column_name(c)).collect();
        record_json(
            names
                .iter()
                .zip(&texts)
                .map(|(n, t)| (n.as_str(), Some(t.as_str()))),
        )
    }

    fn reject(&self, b: BadCell) -> Reject {
        let recs = &self.records;
        let ncols = self.schema.fields().len();
        let value = b
            .col
            .filter(|&c| c < recs.field_count(b.row))
            .map(|c| cap_value(String::from_utf8_lossy(recs.field(b.row, c)).into_owned()));
        let (reason, line) = match b.kind {
            BadKind::Unterminated => (
                "unterminated quoted field: the closing quote is missing, so the field runs to the end of the file".to_string(),
                recs.unterminated.map_or(recs.line(b.row), |u| u.line),
            ),
            BadKind::FieldCount(found) => (format!("expected {ncols} fields, found {found}"), recs.line(b.row)),
            BadKind::Utf8 => ("invalid UTF-8 (expected UTF-8 text)".to_string(), recs.line(b.row)),
            BadKind::Value => {
                let c = b.col.unwrap_or(0);
                let dt = self.schema.fields().get(c).map(|f| type_name(f.data_type())).unwrap_or_default();
                let origin = match self.origins.get(c) {
                    Some(TypeOrigin::Declared) => " (declared in `columns:`)".to_string(),
                    Some(TypeOrigin::Known) => " (the column's type in the table and earlier files)".to_string(),
                    _ => format!(" (inferred from the first {} rows)", self.sampled),
                };
                (format!("expected {dt}{origin}"), recs.line(b.row))
            }
        };
        Reject {
            row: Some(b.row),
            line: Some(line),
            record: None,
            column: b.col.map(|c| self.column_name(c)),
            value,
            reason,
            raw: Some(cap_value(self.raw_record(b.row))),
        }
    }
}

impl FileDecoder for CsvDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<Decoded>, ConnectorError> {
        self.records.clear();
        let n = self
            .reader
            .read(&mut self.records, self.batch_size)
            .map_err(|e| ConnectorError::external(format!("Cannot read `{}`: {e}", self.rel), e))?;
        if n == 0 {
            return Ok(None);
        }
        let mut bad = Vec::new();
        let batch = build_batch(&self.records, &self.schema, &self.nulls, &mut bad)?;
        let rejects = bad.into_iter().map(|b| self.reject(b)).collect();
        let read = self.reader.bytes_read();
        let bytes = read - self.reported;
        self.reported = read;
        Ok(Some(Decoded {
            batch,
            rejects,
            bytes,
        }))
    }

    fn origin(&self, row: usize) -> Origin {
        Origin {
            line: Some(self.records.line(row)),
            record: None,
            raw: Some(cap_value(self.raw_record(row))),
        }
    }
}

fn open_file(file: &FileEntry) -> Result<Take<File>, ConnectorError> {
    File::open(&file.path)
        .map(|f| f.take(file.size))
        .map_err(|e| io_error(&file.rel, &file.path, e))
}
