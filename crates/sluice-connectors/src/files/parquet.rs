//! Parquet files, read with the `parquet` crate's Arrow reader.
//!
//! Timestamps in seconds, milliseconds or nanoseconds become microseconds
//! (Delta stores µs; the time zone is kept, sub-µs digits are cut).
//! Declared `columns:` are casts: a value that does not fit its declared
//! type is a bad record located by its record number.

use std::fs::File;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use sluice_core::connector::ConnectorError;
use sluice_core::types::type_name;

use super::config::StreamConfig;
use super::decoder::{Decoded, FileDecoder, Origin, Reject, cap_value, io_error};
use super::infer::schema_with_declared;
use super::listing::FileEntry;

/// A Parquet file being read.
pub(crate) struct ParquetDecoder {
    rel: String,
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    /// Per column: the type to cast to, when it differs from the file's.
    casts: Vec<Option<DataType>>,
    declared: Vec<bool>,
    size: u64,
    total_rows: u64,
    rows_before: u64,
    reported: u64,
    last: Option<RecordBatch>,
}

impl ParquetDecoder {
    /// Open `file` and work out its output schema.
    pub(crate) fn open(
        file: &FileEntry,
        stream: &StreamConfig,
        batch_size: usize,
    ) -> Result<Self, ConnectorError> {
        let handle = File::open(&file.path).map_err(|e| io_error(&file.rel, &file.path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| corrupt(&file.rel, e))?;
        let file_schema = builder.schema().clone();
        let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let names: Vec<String> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let wanted = schema_with_declared(
            &names,
            |i| micros(file_schema.field(i).data_type()),
            &stream.declared,
            &file.rel,
        )?;
        let fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .zip(wanted.fields())
            .map(|(f, w)| f.as_ref().clone().with_data_type(w.data_type().clone()))
            .collect();
        let casts = file_schema
            .fields()
            .iter()
            .zip(&fields)
            .map(|(f, w)| (f.data_type() != w.data_type()).then(|| w.data_type().clone()))
            .collect();
        let declared = names
            .iter()
            .map(|n| stream.declared.iter().any(|(d, _)| d == n))
            .collect();
        let reader = builder
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| corrupt(&file.rel, e))?;
        Ok(Self {
            rel: file.rel.clone(),
            reader,
            schema: Arc::new(Schema::new_with_metadata(
                fields,
                file_schema.metadata().clone(),
            )),
            casts,
            declared,
            size: file.size,
            total_rows,
            rows_before: 0,
            reported: 0,
            last: None,
        })
    }

    /// Cast a column; values that do not fit become NULL rows and rejects.
    fn cast_column(
        &self,
        c: usize,
        array: &ArrayRef,
        to: &DataType,
        rejects: &mut Vec<Reject>,
    ) -> Result<ArrayRef, ConnectorError> {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        if let Ok(cast) = cast_with_options(array, to, &strict) {
            return Ok(cast);
        }
        let lenient = CastOptions {
            safe: true,
            ..Default::default()
        };
        let cast = cast_with_options(array, to, &lenient).map_err(|e| {
            ConnectorError::config(
                format!(
                    "Column `{}` of `{}` cannot become {}: {e}",
                    self.schema.field(c).name(),
                    self.rel,
                    type_name(to)
                ),
                Some("declare a type the column's values can be cast to in `columns:`".to_string()),
            )
        })?;
        let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).ok();
        let origin = if self.declared[c] {
            " (declared in `columns:`)"
        } else {
            ""
        };
        for row in (0..array.len()).filter(|&r| array.is_valid(r) && cast.is_null(r)) {
            rejects.push(Reject {
                row: Some(row),
                line: None,
                record: Some(self.rows_before + row as u64 + 1),
                column: Some(self.schema.field(c).name().clone()),
                value: formatter
                    .as_ref()
                    .map(|f| cap_value(f.value(row).to_string())),
                reason: format!("expected {}{origin}", type_name(to)),
                raw: None,
            });
        }
        Ok(cast)
    }
}

impl FileDecoder for ParquetDecoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<Decoded>, ConnectorError> {
        let Some(original) = self.reader.next() else {
            self.last = None;
            return Ok(None);
        };
        let original = original.map_err(|e| corrupt(&self.rel, e))?;
        let mut rejects = Vec::new();
        let mut columns = Vec::with_capacity(original.num_columns());
        for (c, column) in original.columns().iter().enumerate() {
            columns.push(match &self.casts[c] {
                Some(to) => self.cast_column(c, column, to, &mut rejects)?,
                None => column.clone(),
            });
        }
        for r in &mut rejects {
            r.raw = r.row.map(|row| cap_value(row_json(&original, row)));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            ConnectorError::Internal(format!("Parquet batch does not match its schema: {e}"))
        })?;
        self.rows_before += batch.num_rows() as u64;
        // Bytes in proportion to rows (the stream loop reports the rest at the end).
        let done = (u128::from(self.size) * u128::from(self.rows_before)
            / u128::from(self.total_rows.max(1))) as u64;
        let bytes = done.min(self.size).saturating_sub(self.reported);
        self.reported += bytes;
        self.last = Some(batch.clone());
        Ok(Some(Decoded {
            batch,
            rejects,
            bytes,
        }))
    }

    fn origin(&self, row: usize) -> Origin {
        let rows = self.last.as_ref().map_or(0, |b| b.num_rows() as u64);
        Origin {
            line: None,
            record: Some(self.rows_before - rows + row as u64 + 1),
            raw: self.last.as_ref().map(|b| cap_value(row_json(b, row))),
        }
    }
}

/// Timestamps to microseconds, keeping the zone.
fn micros(dt: &DataType) -> DataType {
    match dt {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        other => other.clone(),
    }
}

/// One row as a JSON object (for quarantine rows).
fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut out = Vec::new();
    let mut writer = arrow_json::LineDelimitedWriter::new(&mut out);
    let _ = writer.write(&batch.slice(row.min(batch.num_rows().saturating_sub(1)), 1));
    let _ = writer.finish();
    String::from_utf8_lossy(&out).trim_end().to_string()
}

fn corrupt(file: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::config(
        format!("`{file}` is not a readable Parquet file: {e}"),
        Some("check that the file is complete (not still being written) and is Parquet, or leave it out of `path`".to_string()),
    )
}
