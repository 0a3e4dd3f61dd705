//! SQLite rows into Arrow builders.
//!
//! Each value arrives with its own storage class; [`Decoder::push_row`]
//! turns it into the column's Arrow type or, when it does not fit, appends a
//! NULL and records the row as [`Rejected`] (the caller drops the row and
//! quarantines it or fails, per `on_error`).

use std::fmt::Write as _;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float64Builder, Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use rusqlite::types::ValueRef;

use super::types::SqlKind;
use super::values;

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Row in the batch.
    pub row: usize,
    /// The row's `rowid` (or its 1-based position when the table has none).
    pub record: u64,
    /// Column index.
    pub column: usize,
    /// The value as SQLite holds it, as text.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// A finished batch and the rows in it to drop.
#[derive(Debug)]
pub struct Decoded {
    /// Rows; bad values are NULL.
    pub batch: RecordBatch,
    /// Bad rows.
    pub rejects: Vec<Rejected>,
    /// Each row's rowid (or position), for locating bad rows.
    pub records: Vec<u64>,
}

/// Builds batches of one table's rows.
pub struct Decoder {
    schema: SchemaRef,
    cols: Vec<Col>,
    rows: usize,
    rejects: Vec<Rejected>,
    records: Vec<u64>,
    /// Bytes of values read (text and blob lengths, 8 per number).
    pub bytes: u64,
}

impl Decoder {
    /// A decoder for columns of these kinds, producing `schema`.
    pub fn new(schema: SchemaRef, kinds: &[SqlKind], capacity: usize) -> Decoder {
        Decoder {
            schema,
            cols: kinds.iter().map(|k| Col::new(k, capacity)).collect(),
            rows: 0,
            rejects: Vec::new(),
            records: Vec::with_capacity(capacity),
            bytes: 0,
        }
    }

    /// Rows since the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append one row; `record` is its rowid for error messages. Values come
    /// from `value(i)` for column `i`.
    pub fn push_row<'a>(
        &mut self,
        record: u64,
        mut value: impl FnMut(usize) -> rusqlite::Result<ValueRef<'a>>,
    ) -> rusqlite::Result<()> {
        for (c, col) in self.cols.iter_mut().enumerate() {
            let v = value(c)?;
            self.bytes += match v {
                ValueRef::Text(b) | ValueRef::Blob(b) => b.len() as u64,
                ValueRef::Null => 0,
                _ => 8,
            };
            if let Err(reason) = col.append(v) {
                col.append_null();
                self.rejects.push(Rejected {
                    row: self.rows,
                    record,
                    column: c,
                    value: show(v),
                    reason,
                });
            }
        }
        self.records.push(record);
        self.rows += 1;
        Ok(())
    }

    fn rows_hint(&self) -> usize {
        self.records.capacity()
    }

    /// The rows so far as a batch (and start a new one).
    pub fn finish_batch(&mut self) -> Result<Decoded, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.rows = 0;
        let capacity = self.rows_hint();
        Ok(Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
            records: std::mem::replace(&mut self.records, Vec::with_capacity(capacity)),
        })
    }
}

/// A value as text, for quarantine rows and errors.
fn show(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Blob(b) => {
            let mut s = String::from("x'");
            for byte in b.iter().take(64) {
                let _ = write!(s, "{byte:02x}");
            }
            s.push_str(if b.len() > 64 { "…'" } else { "'" });
            s
        }
    }
}

fn class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "a text",
        ValueRef::Blob(_) => "a blob",
    }
}

enum Col {
    Int(Int64Builder),
    Real(Float64Builder),
    Text(StringBuilder, String),
    Blob(BinaryBuilder),
    Bool(BooleanBuilder),
    Decimal(Decimal128Builder, u8, i8),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
}

impl Col {
    fn new(kind: &SqlKind, n: usize) -> Col {
        match kind {
            SqlKind::Int => Col::Int(Int64Builder::with_capacity(n)),
            SqlKind::Real => Col::Real(Float64Builder::with_capacity(n)),
            SqlKind::Text => Col::Text(StringBuilder::with_capacity(n, n * 16), String::new()),
            SqlKind::Blob => Col::Blob(BinaryBuilder::with_capacity(n, n * 16)),
            SqlKind::Bool => Col::Bool(BooleanBuilder::with_capacity(n)),
            SqlKind::Decimal { precision, scale } => Col::Decimal(
                Decimal128Builder::with_capacity(n)
                    .with_precision_and_scale(*precision, *scale)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(n)),
                *precision,
                *scale,
            ),
            SqlKind::Date => Col::Date(Date32Builder::with_capacity(n)),
            SqlKind::Timestamp(tz) => Col::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone_opt(tz.clone()),
            ),
            SqlKind::Time => Col::Time(Time64MicrosecondBuilder::with_capacity(n)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Col::Int(b) => b.append_null(),
            Col::Real(b) => b.append_null(),
            Col::Text(b, _) => b.append_null(),
            Col::Blob(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Decimal(b, ..) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Timestamp(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
        }
    }

    /// Append `v`, or say why it does not fit.
    fn append(&mut self, v: ValueRef<'_>) -> Result<(), String> {
        if v == ValueRef::Null {
            self.append_null();
            return Ok(());
        }
        let misfit = |what: &str| format!("{} is not {what}", class(v));
        match self {
            Col::Int(b) => match v {
                ValueRef::Integer(i) => b.append_value(i),
                ValueRef::Text(t) => {
                    let i = std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.trim().parse::<i64>().ok())
                        .ok_or_else(|| misfit("an integer"))?;
                    b.append_value(i);
                }
                _ => return Err(misfit("an integer")),
            },
            Col::Real(b) => match v {
                ValueRef::Real(f) => b.append_value(f),
                ValueRef::Integer(i) => b.append_value(i as f64),
                ValueRef::Text(t) => {
                    let f = std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .ok_or_else(|| misfit("a number"))?;
                    b.append_value(f);
                }
                _ => return Err(misfit("a number")),
            },
            Col::Text(b, buf) => match v {
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    let s = std::str::from_utf8(t).map_err(|_| misfit("UTF-8 text"))?;
                    b.append_value(s);
                }
                ValueRef::Integer(i) => {
                    buf.clear();
                    let _ = write!(buf, "{i}");
                    b.append_value(buf.as_str());
                }
                ValueRef::Real(f) => {
                    buf.clear();
                    // Like SQLite's own text form: a whole real keeps its `.0`.
                    if f.fract() == 0.0 && f.abs() < 1e15 {
                        let _ = write!(buf, "{f:.1}");
                    } else {
                        let _ = write!(buf, "{f}");
                    }
                    b.append_value(buf.as_str());
                }
                ValueRef::Null => b.append_null(),
            },
            Col::Blob(b) => match v {
                ValueRef::Blob(x) | ValueRef::Text(x) => b.append_value(x),
                _ => return Err(misfit("a blob or text")),
            },
            Col::Bool(b) => match v {
                ValueRef::Integer(0) => b.append_value(false),
                ValueRef::Integer(1) => b.append_value(true),
                ValueRef::Text(t) => {
                    b.append_value(values::parse_bool(t).ok_or_else(|| misfit("a boolean"))?)
                }
                _ => return Err(format!("{} is not a boolean (0 or 1)", class(v))),
            },
            Col::Decimal(b, p, s) => {
                let n = match v {
                    ValueRef::Integer(i) => {
                        let n = i128::from(i) * values::pow10((*s).max(0) as u32);
                        if n.abs() >= values::pow10(u32::from(*p)) {
                            return Err(format!("has more than {p} digits"));
                        }
                        n
                    }
                    ValueRef::Real(f) => values::real_to_decimal(f, *p, *s)?,
                    ValueRef::Text(t) => values::parse_decimal(t.trim_ascii(), *p, *s)
                        .map_err(|e| format!("a text that {e}"))?,
                    _ => return Err(misfit("a decimal number")),
                };
                b.append_value(n);
            }
            Col::Date(b) => {
                let days = match v {
                    ValueRef::Text(t) => values::parse_timestamp(t)
                        .ok_or_else(|| misfit("an ISO date (YYYY-MM-DD)"))
                        .and_then(|m| {
                            values::midnight_days(m)
                                .ok_or_else(|| "a date with a time of day".to_string())
                        })?,
                    ValueRef::Integer(i) => values::unix_days(i)
                        .ok_or_else(|| "unix seconds out of range".to_string())?,
                    ValueRef::Real(f) => values::julian_day(f)
                        .and_then(|m| i32::try_from(m.div_euclid(86_400_000_000)).ok())
                        .ok_or_else(|| "a julian day out of range".to_string())?,
                    _ => return Err(misfit("a date")),
                };
                b.append_value(days);
            }
            Col::Timestamp(b) => {
                let micros = match v {
                    ValueRef::Text(t) => {
                        values::parse_timestamp(t).ok_or_else(|| misfit("an ISO-8601 date-time"))?
                    }
                    ValueRef::Integer(i) => values::unix_seconds(i)
                        .ok_or_else(|| "unix seconds out of range".to_string())?,
                    ValueRef::Real(f) => values::julian_day(f)
                        .ok_or_else(|| "a julian day out of range".to_string())?,
                    _ => return Err(misfit("a date-time")),
                };
                b.append_value(micros);
            }
            Col::Time(b) => match v {
                ValueRef::Text(t) => b.append_value(
                    values::parse_time(t).ok_or_else(|| misfit("a time (HH:MM:SS)"))?,
                ),
                _ => return Err(misfit("a time (HH:MM:SS text)")),
            },
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Int(b) => ArrayBuilder::finish(b),
            Col::Real(b) => ArrayBuilder::finish(b),
            Col::Text(b, _) => ArrayBuilder::finish(b),
            Col::Blob(b) => ArrayBuilder::finish(b),
            Col::Bool(b) => ArrayBuilder::finish(b),
            Col::Decimal(b, ..) => ArrayBuilder::finish(b),
            Col::Date(b) => ArrayBuilder::finish(b),
            Col::Timestamp(b) => ArrayBuilder::finish(b),
            Col::Time(b) => ArrayBuilder::finish(b),
        }
    }
}
