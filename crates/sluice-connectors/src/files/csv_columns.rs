//! CSV records → Arrow columns, with every bad value located.
//!
//! ```text
//!  Records ──utf-8 check (whole buffer, once)──► text view
//!     │
//!     └─ per column, one pass over that column's field slices:
//!          NULL text? → null · parse → value · fails → null + BadCell
//!  BadCells ──► Rejects (file, line, column, value, reason, raw record)
//! ```
//!
//! The happy path allocates nothing per row: each column is built straight
//! from slices of the batch buffer. Rows with the wrong number of fields, a
//! value that does not parse, or invalid UTF-8 become NULL rows here and
//! are dropped (or fail the stream) in the stream loop; [`BadCell`]s say
//! which and why.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, PrimitiveArray, RecordBatch,
    RecordBatchOptions, StringBuilder,
};
use arrow::datatypes::*;
use arrow_cast::parse::{Parser, parse_decimal};
use sluice_core::connector::ConnectorError;
use sluice_core::types::type_name;

use super::config::NullSet;
use super::csv::Records;
use super::values::{parse_bool, parse_date, parse_timestamp_micros};

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadKind {
    /// A quoted field runs to the end of the file.
    Unterminated,
    /// Not as many fields as columns.
    FieldCount(usize),
    /// A field is not UTF-8 text.
    Utf8,
    /// A value does not parse as its column's type.
    Value,
}

/// One bad record, at its first bad field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadCell {
    pub(crate) row: usize,
    pub(crate) col: Option<usize>,
    pub(crate) kind: BadKind,
}

/// The batch's text: the whole buffer when it is valid UTF-8 (the common
/// case, checked once), else field by field.
enum Text<'a> {
    Whole(&'a str),
    Fields(&'a [u8]),
}

impl<'a> Text<'a> {
    #[inline]
    fn get(&self, start: usize, end: usize) -> Option<&'a str> {
        match self {
            Text::Whole(s) => s.get(start..end),
            Text::Fields(d) => std::str::from_utf8(&d[start..end]).ok(),
        }
    }
}

/// Everything a column builder reads.
struct Cells<'a> {
    recs: &'a Records,
    text: Text<'a>,
    nulls: &'a NullSet,
    ncols: usize,
}

impl<'a> Cells<'a> {
    /// The text of field `c` of record `r`; `None` for NULL, a missing field
    /// or invalid UTF-8 (reported separately).
    #[inline]
    fn get(&self, r: usize, c: usize) -> Option<&'a str> {
        let starts = self.recs.rec_start();
        let i = starts[r] + c;
        if i >= starts[r + 1] {
            return None;
        }
        let bounds = self.recs.bounds();
        let (start, end) = (bounds[i], bounds[i + 1]);
        if self.nulls.is_null(&self.recs.data()[start..end]) {
            return None;
        }
        self.text.get(start, end)
    }
}

/// Build the batch for every record in `recs`; bad records are NULL rows
/// listed in `bad` (sorted by row, one per row).
pub(crate) fn build_batch(
    recs: &Records,
    schema: &SchemaRef,
    nulls: &NullSet,
    bad: &mut Vec<BadCell>,
) -> Result<RecordBatch, ConnectorError> {
    let n = recs.len();
    let ncols = schema.fields().len();
    for r in 0..n {
        let found = recs.field_count(r);
        if found != ncols {
            bad.push(BadCell {
                row: r,
                col: None,
                kind: BadKind::FieldCount(found),
            });
        }
    }
    if let Some(u) = recs.unterminated {
        bad.push(BadCell {
            row: u.record,
            col: Some(u.field),
            kind: BadKind::Unterminated,
        });
    }
    let binary: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type() == &DataType::Binary)
        .collect();
    let text = text_view(recs, &binary, bad);
    let cells = Cells {
        recs,
        text,
        nulls,
        ncols,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(ncols);
    for (c, field) in schema.fields().iter().enumerate() {
        columns.push(build_column(&cells, c, field.data_type(), bad)?);
    }
    bad.sort_by_key(|b| (b.row, rank(b.kind), b.col));
    bad.dedup_by_key(|b| b.row);
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| ConnectorError::Internal(format!("CSV batch does not match its schema: {e}")))
}

fn rank(kind: BadKind) -> u8 {
    match kind {
        BadKind::Unterminated => 0,
        BadKind::FieldCount(_) => 1,
        BadKind::Utf8 | BadKind::Value => 2,
    }
}

/// Validate UTF-8 once for the whole buffer; only when that fails (or a
/// binary column may hold any bytes) check field by field, reporting the
/// invalid ones.
fn text_view<'a>(recs: &'a Records, binary: &[bool], bad: &mut Vec<BadCell>) -> Text<'a> {
    let data = recs.data();
    if !binary.contains(&true)
        && let Ok(whole) = std::str::from_utf8(data)
        && recs.bounds().iter().all(|&b| whole.is_char_boundary(b))
    {
        return Text::Whole(whole);
    }
    for r in 0..recs.len() {
        for c in 0..recs.field_count(r) {
            if binary.get(c) != Some(&true) && std::str::from_utf8(recs.field(r, c)).is_err() {
                bad.push(BadCell {
                    row: r,
                    col: Some(c),
                    kind: BadKind::Utf8,
                });
            }
        }
    }
    Text::Fields(data)
}

fn build_column(
    cells: &Cells<'_>,
    c: usize,
    dt: &DataType,
    bad: &mut Vec<BadCell>,
) -> Result<ArrayRef, ConnectorError> {
    Ok(match dt {
        DataType::Utf8 => strings(cells, c),
        DataType::Binary => binaries(cells, c),
        DataType::Boolean => booleans(cells, c, bad),
        DataType::Int8 => prim::<Int8Type>(cells, c, bad, Int8Type::parse),
        DataType::Int16 => prim::<Int16Type>(cells, c, bad, Int16Type::parse),
        DataType::Int32 => prim::<Int32Type>(cells, c, bad, Int32Type::parse),
        DataType::Int64 => prim::<Int64Type>(cells, c, bad, Int64Type::parse),
        DataType::UInt8 => prim::<UInt8Type>(cells, c, bad, UInt8Type::parse),
        DataType::UInt16 => prim::<UInt16Type>(cells, c, bad, UInt16Type::parse),
        DataType::UInt32 => prim::<UInt32Type>(cells, c, bad, UInt32Type::parse),
        DataType::UInt64 => prim::<UInt64Type>(cells, c, bad, UInt64Type::parse),
        DataType::Float32 => prim::<Float32Type>(cells, c, bad, Float32Type::parse),
        DataType::Float64 => prim::<Float64Type>(cells, c, bad, Float64Type::parse),
        DataType::Date32 => prim::<Date32Type>(cells, c, bad, parse_date),
        DataType::Time64(TimeUnit::Microsecond) => {
            prim::<Time64MicrosecondType>(cells, c, bad, Time64MicrosecondType::parse)
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
            prim_array::<TimestampMicrosecondType>(cells, c, bad, parse_timestamp_micros)
                .with_timezone_opt(tz.clone()),
        ),
        DataType::Decimal128(p, s) => {
            let (p, s) = (*p, *s);
            let parse = |v: &str| parse_decimal::<Decimal128Type>(v.trim(), p, s).ok();
            let array = prim_array::<Decimal128Type>(cells, c, bad, parse)
                .with_precision_and_scale(p, s)
                .map_err(|e| {
                    ConnectorError::config(format!("Type `{}`: {e}", type_name(dt)), None)
                })?;
            Arc::new(array)
        }
        other => {
            return Err(ConnectorError::config(
                format!("Columns of type {} cannot be read from CSV", type_name(other)),
                Some("declare the column as string, bool, an integer or float type, decimal(p,s), date, time, timestamp, timestamptz or binary".to_string()),
            ));
        }
    })
}

fn prim<T: ArrowPrimitiveType>(
    cells: &Cells<'_>,
    c: usize,
    bad: &mut Vec<BadCell>,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> ArrayRef {
    Arc::new(prim_array::<T>(cells, c, bad, parse))
}

fn prim_array<T: ArrowPrimitiveType>(
    cells: &Cells<'_>,
    c: usize,
    bad: &mut Vec<BadCell>,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> PrimitiveArray<T> {
    let n = cells.recs.len();
    let mut values: Vec<T::Native> = Vec::with_capacity(n);
    let mut valid = NullBufferBuilder::new(n);
    for r in 0..n {
        let parsed = cells.get(r, c).map(|s| {
            let v = parse(s);
            if v.is_none() {
                bad.push(BadCell {
                    row: r,
                    col: Some(c),
                    kind: BadKind::Value,
                });
            }
            v
        });
        match parsed.flatten() {
            Some(v) => {
                values.push(v);
                valid.append_non_null();
            }
            None => {
                values.push(T::Native::default());
                valid.append_null();
            }
        }
    }
    PrimitiveArray::new(values.into(), valid.finish())
}

fn strings(cells: &Cells<'_>, c: usize) -> ArrayRef {
    let n = cells.recs.len();
    let mut b = StringBuilder::with_capacity(n, cells.recs.data().len() / cells.ncols.max(1) + 64);
    for r in 0..n {
        b.append_option(cells.get(r, c));
    }
    Arc::new(b.finish())
}

fn binaries(cells: &Cells<'_>, c: usize) -> ArrayRef {
    let recs = cells.recs;
    let mut b = BinaryBuilder::with_capacity(recs.len(), 1024);
    for r in 0..recs.len() {
        if c < recs.field_count(r) && !cells.nulls.is_null(recs.field(r, c)) {
            b.append_value(recs.field(r, c));
        } else {
            b.append_null();
        }
    }
    Arc::new(b.finish())
}

fn booleans(cells: &Cells<'_>, c: usize, bad: &mut Vec<BadCell>) -> ArrayRef {
    let n = cells.recs.len();
    let mut b = BooleanBuilder::with_capacity(n);
    for r in 0..n {
        match cells.get(r, c).map(|s| (s, parse_bool(s))) {
            None => b.append_null(),
            Some((_, Some(v))) => b.append_value(v),
            Some((_, None)) => {
                bad.push(BadCell {
                    row: r,
                    col: Some(c),
                    kind: BadKind::Value,
                });
                b.append_null();
            }
        }
    }
    Arc::new(b.finish())
}
