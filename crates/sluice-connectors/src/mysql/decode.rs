//! Rows from `mysql_async` decoded into Arrow builders, a batch at a time.
//!
//! Works with both protocols: the text protocol (`query_iter`) sends every
//! value as bytes of text, the binary protocol (`exec_iter`) sends numbers,
//! dates and times typed; each column's decoder accepts either. A value that
//! cannot be represented (a `time` past 24 h, a `tinyint(1)` of 7, text
//! that is not UTF-8) makes its row a bad record: the column gets a NULL,
//! the row is reported in [`Decoded::rejects`], and the caller drops it.
//! Zero dates (`0000-00-00`, or a zero month or day) become NULL, as
//! MySQL's own `IS NULL` treats them.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, SchemaRef};
use mysql_async::Value;

use super::types::MyKind;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A value the decoder could not turn into its column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Row in the batch.
    pub row: usize,
    /// 1-based row number in the result read.
    pub record: u64,
    /// Column index.
    pub column: usize,
    /// What was wrong (with the value).
    pub reason: String,
}

/// A finished batch and the rows in it to drop.
#[derive(Debug)]
pub struct Decoded {
    /// Rows; bad values are NULL.
    pub batch: RecordBatch,
    /// Bad rows.
    pub rejects: Vec<Rejected>,
}

/// Decodes the rows of one result.
pub struct RowDecoder {
    schema: SchemaRef,
    cols: Vec<Col>,
    rows: usize,
    records: u64,
    rejects: Vec<Rejected>,
    /// Bytes of values received (text lengths; 8 per typed value).
    pub bytes: u64,
}

impl RowDecoder {
    /// A decoder for columns of these kinds, producing `schema`.
    pub fn new(schema: SchemaRef, kinds: &[MyKind], capacity: usize) -> RowDecoder {
        RowDecoder {
            schema,
            cols: kinds.iter().map(|k| Col::new(*k, capacity)).collect(),
            rows: 0,
            records: 0,
            rejects: Vec::new(),
            bytes: 0,
        }
    }

    /// Rows decoded since the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Add one row (its values in column order; `None` counts as NULL).
    pub fn push(&mut self, values: &[Option<Value>]) {
        self.records += 1;
        for (i, col) in self.cols.iter_mut().enumerate() {
            let v = values
                .get(i)
                .and_then(Option::as_ref)
                .unwrap_or(&Value::NULL);
            self.bytes += match v {
                Value::Bytes(b) => b.len() as u64,
                Value::NULL => 0,
                _ => 8,
            };
            if let Err(reason) = col.push(v) {
                self.rejects.push(Rejected {
                    row: self.rows,
                    record: self.records,
                    column: i,
                    reason,
                });
            }
        }
        self.rows += 1;
    }

    /// The rows so far as a batch; the decoder starts a new one.
    pub fn finish_batch(&mut self) -> Result<Decoded, arrow::error::ArrowError> {
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.rows = 0;
        Ok(Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
        })
    }
}

/// One column's builder.
enum Col {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, u8, i8),
    Bits(Int64Builder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
    Year(Int16Builder),
}

impl Col {
    fn new(kind: MyKind, n: usize) -> Col {
        match kind {
            MyKind::Bool => Col::Bool(BooleanBuilder::with_capacity(n)),
            MyKind::Int8 => Col::I8(Int8Builder::with_capacity(n)),
            MyKind::Int16 => Col::I16(Int16Builder::with_capacity(n)),
            MyKind::Int32 => Col::I32(Int32Builder::with_capacity(n)),
            MyKind::Int64 => Col::I64(Int64Builder::with_capacity(n)),
            MyKind::UInt8 => Col::U8(UInt8Builder::with_capacity(n)),
            MyKind::UInt16 => Col::U16(UInt16Builder::with_capacity(n)),
            MyKind::UInt32 => Col::U32(UInt32Builder::with_capacity(n)),
            MyKind::UInt64 => Col::U64(UInt64Builder::with_capacity(n)),
            MyKind::Float32 => Col::F32(Float32Builder::with_capacity(n)),
            MyKind::Float64 => Col::F64(Float64Builder::with_capacity(n)),
            MyKind::Decimal { precision, scale } => {
                Col::Dec(Decimal128Builder::with_capacity(n), precision, scale)
            }
            MyKind::Bits => Col::Bits(Int64Builder::with_capacity(n)),
            MyKind::Text => Col::Text(StringBuilder::with_capacity(n, n * 16)),
            MyKind::Binary => Col::Bin(BinaryBuilder::with_capacity(n, n * 16)),
            MyKind::Date => Col::Date(Date32Builder::with_capacity(n)),
            MyKind::Time => Col::Time(Time64MicrosecondBuilder::with_capacity(n)),
            MyKind::DateTime => Col::Ts(TimestampMicrosecondBuilder::with_capacity(n)),
            MyKind::Timestamp => Col::Ts(
                TimestampMicrosecondBuilder::with_capacity(n)
                    .with_data_type(MyKind::Timestamp.data_type()),
            ),
            MyKind::Year => Col::Year(Int16Builder::with_capacity(n)),
        }
    }

    /// Append `v`; on a bad value append NULL and say why.
    fn push(&mut self, v: &Value) -> Result<(), String> {
        macro_rules! put {
            ($b:expr, $parsed:expr) => {{
                if matches!(v, Value::NULL) {
                    $b.append_null();
                    return Ok(());
                }
                match $parsed {
                    Ok(x) => {
                        $b.append_option(x);
                        Ok(())
                    }
                    Err(e) => {
                        $b.append_null();
                        Err(e)
                    }
                }
            }};
        }
        match self {
            Col::Bool(b) => put!(
                b,
                signed(v).and_then(|x| match x {
                    0 => Ok(Some(false)),
                    1 => Ok(Some(true)),
                    other => Err(format!(
                        "{other} is not a boolean (tinyint(1) holds 0 or 1); declare the column `int16` in `columns:` to read it as a number"
                    )),
                })
            ),
            Col::I8(b) => put!(b, signed(v).and_then(narrow).map(Some)),
            Col::I16(b) => put!(b, signed(v).and_then(narrow).map(Some)),
            Col::I32(b) => put!(b, signed(v).and_then(narrow).map(Some)),
            Col::I64(b) => put!(b, signed(v).map(Some)),
            Col::U8(b) => put!(b, unsigned(v).and_then(narrow).map(Some)),
            Col::U16(b) => put!(b, unsigned(v).and_then(narrow).map(Some)),
            Col::U32(b) => put!(b, unsigned(v).and_then(narrow).map(Some)),
            Col::U64(b) => put!(b, unsigned(v).map(Some)),
            Col::F32(b) => put!(b, float(v).map(|x| Some(x as f32))),
            Col::F64(b) => put!(b, float(v).map(Some)),
            Col::Dec(b, p, s) => {
                let (p, s) = (*p, *s);
                put!(b, decimal(v, p, s).map(Some))
            }
            Col::Bits(b) => put!(b, bits(v).map(Some)),
            Col::Text(b) => put!(b, text(v).map(Some)),
            Col::Bin(b) => match v {
                Value::NULL => {
                    b.append_null();
                    Ok(())
                }
                Value::Bytes(x) => {
                    b.append_value(x);
                    Ok(())
                }
                other => {
                    b.append_null();
                    Err(format!("unexpected value {other:?} for a binary column"))
                }
            },
            Col::Date(b) => put!(
                b,
                datetime(v).and_then(|d| d.map(|d| d.days()).transpose())
            ),
            Col::Ts(b) => put!(
                b,
                datetime(v).and_then(|d| d.map(|d| d.micros()).transpose())
            ),
            Col::Time(b) => put!(b, time(v).map(Some)),
            Col::Year(b) => put!(b, signed(v).and_then(narrow).map(Some)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => b.finish_array(),
            Col::I8(b) => b.finish_array(),
            Col::I16(b) | Col::Year(b) => b.finish_array(),
            Col::I32(b) => b.finish_array(),
            Col::I64(b) | Col::Bits(b) => b.finish_array(),
            Col::U8(b) => b.finish_array(),
            Col::U16(b) => b.finish_array(),
            Col::U32(b) => b.finish_array(),
            Col::U64(b) => b.finish_array(),
            Col::F32(b) => b.finish_array(),
            Col::F64(b) => b.finish_array(),
            Col::Dec(b, p, s) => {
                let dt = DataType::Decimal128(*p, *s);
                let array = b.finish();
                Arc::new(array.with_data_type(dt))
            }
            Col::Text(b) => b.finish_array(),
            Col::Bin(b) => b.finish_array(),
            Col::Date(b) => b.finish_array(),
            Col::Time(b) => b.finish_array(),
            Col::Ts(b) => b.finish_array(),
        }
    }
}

/// `finish` into an `ArrayRef`.
trait FinishArray {
    fn finish_array(&mut self) -> ArrayRef;
}

impl<T: ArrayBuilder> FinishArray for T {
    fn finish_array(&mut self) -> ArrayRef {
        ArrayBuilder::finish(self)
    }
}

/// A value for a message, as MySQL would print it.
fn show(v: &Value) -> String {
    match v {
        Value::Bytes(b) => format!("`{}`", String::from_utf8_lossy(b)),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::NULL => "NULL".into(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("`{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}`")
        }
        Value::Time(neg, days, h, m, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            let frac = if *us > 0 {
                format!(".{us:06}")
            } else {
                String::new()
            };
            format!("`{sign}{hours:02}:{m:02}:{s:02}{frac}`")
        }
    }
}

fn ascii(v: &Value) -> Result<&str, String> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| format!("{} is not text", show(v))),
        _ => Err(format!("unexpected value {}", show(v))),
    }
}

fn signed(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::UInt(u) => i64::try_from(*u).map_err(|_| format!("{u} is out of range")),
        _ => ascii(v)?
            .parse()
            .map_err(|_| format!("{} is not an integer", show(v))),
    }
}

fn unsigned(v: &Value) -> Result<u64, String> {
    match v {
        Value::UInt(u) => Ok(*u),
        Value::Int(i) => u64::try_from(*i).map_err(|_| format!("{i} is out of range")),
        _ => ascii(v)?
            .parse()
            .map_err(|_| format!("{} is not an unsigned integer", show(v))),
    }
}

fn narrow<A: Copy + std::fmt::Display, B: TryFrom<A>>(x: A) -> Result<B, String> {
    B::try_from(x).map_err(|_| format!("{x} is out of the column's range"))
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(f64::from(*f)),
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        _ => ascii(v)?
            .parse()
            .map_err(|_| format!("{} is not a number", show(v))),
    }
}

/// `-123.45` → 12345 at scale 2 (more fraction digits than the scale are
/// refused: the server sends exactly `scale` of them).
fn decimal(v: &Value, precision: u8, scale: i8) -> Result<i128, String> {
    let s = ascii(v)?;
    let bad = || format!("{} is not a decimal({precision},{scale})", show(v));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).map_err(|_| bad())?;
    if frac.len() > scale || int.len() + scale > 38 {
        return Err(bad());
    }
    let mut n: i128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return Err(bad());
        }
        n = n * 10 + i128::from(c - b'0');
    }
    for _ in frac.len()..scale {
        n *= 10;
    }
    if n >= 10i128.pow(u32::from(precision.min(38))) {
        return Err(bad());
    }
    Ok(if neg { -n } else { n })
}

/// `bit(n)`: big-endian bytes.
fn bits(v: &Value) -> Result<i64, String> {
    match v {
        Value::Bytes(b) if b.len() <= 8 => {
            Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)) as i64)
        }
        Value::Int(i) => Ok(*i),
        Value::UInt(u) => Ok(*u as i64),
        _ => Err(format!("{} is not a bit value", show(v))),
    }
}

fn text(v: &Value) -> Result<&str, String> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b)
            .map_err(|e| format!("the text is not valid UTF-8 (at byte {})", e.valid_up_to())),
        _ => Err(format!("unexpected value {} for a text column", show(v))),
    }
}

/// A date and time of day as MySQL sends it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DateTime {
    year: u16,
    month: u8,
    day: u8,
    micros: i64,
}

impl DateTime {
    fn days(self) -> Result<i32, String> {
        chrono::NaiveDate::from_ymd_opt(
            i32::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )
        .map(|d| chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_FROM_CE)
        .ok_or_else(|| {
            format!(
                "{:04}-{:02}-{:02} is not a date",
                self.year, self.month, self.day
            )
        })
    }

    fn micros(self) -> Result<i64, String> {
        Ok(i64::from(self.days()?) * MICROS_PER_DAY + self.micros)
    }
}

/// A date, datetime or timestamp; `None` for a zero date.
fn datetime(v: &Value) -> Result<Option<DateTime>, String> {
    let dt = match v {
        Value::Date(y, mo, d, h, mi, s, us) => DateTime {
            year: *y,
            month: *mo,
            day: *d,
            micros: ((i64::from(*h) * 60 + i64::from(*mi)) * 60 + i64::from(*s)) * 1_000_000
                + i64::from(*us),
        },
        _ => parse_datetime(ascii(v)?.as_bytes())
            .ok_or_else(|| format!("{} is not a date or datetime", show(v)))?,
    };
    if dt.month == 0 || dt.day == 0 {
        return Ok(None);
    }
    Ok(Some(dt))
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`.
fn parse_datetime(b: &[u8]) -> Option<DateTime> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])? as u16;
    let month = digits(&b[5..7])? as u8;
    let day = digits(&b[8..10])? as u8;
    let micros = if b.len() > 10 {
        if b[10] != b' ' && b[10] != b'T' {
            return None;
        }
        let t = clock(&b[11..])?;
        if t >= MICROS_PER_DAY {
            return None;
        }
        t
    } else {
        0
    };
    Some(DateTime {
        year,
        month,
        day,
        micros,
    })
}

/// `H+:MM:SS[.ffffff]` → microseconds (hours may exceed 24).
fn clock(b: &[u8]) -> Option<i64> {
    let colon = b.iter().position(|&c| c == b':')?;
    let hours = digits(&b[..colon])?;
    let rest = &b[colon + 1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let minutes = digits(&rest[0..2])?;
    let seconds = digits(&rest[3..5])?;
    let mut frac = 0i64;
    if rest.len() > 5 {
        let f = rest.get(6..)?;
        if rest[5] != b'.' || f.is_empty() || f.len() > 6 {
            return None;
        }
        frac = digits(f)? * 10i64.pow(6 - f.len() as u32);
    }
    Some(((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + frac)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 12 {
        return None;
    }
    let mut n = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

/// A `time` within a day.
fn time(v: &Value) -> Result<i64, String> {
    let (neg, micros) = match v {
        Value::Time(neg, days, h, m, s, us) => (
            *neg,
            (((i64::from(*days) * 24 + i64::from(*h)) * 60 + i64::from(*m)) * 60 + i64::from(*s))
                * 1_000_000
                + i64::from(*us),
        ),
        _ => {
            let b = ascii(v)?.as_bytes();
            let (neg, b) = match b.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, b),
            };
            let t = clock(b).ok_or_else(|| format!("{} is not a time", show(v)))?;
            (neg, t)
        }
    };
    if neg && micros != 0 || micros >= MICROS_PER_DAY {
        return Err(format!(
            "the time {} is outside 00:00:00–24:00:00 (MySQL's TIME is a duration of up to ±838 h); declare the column `string` in `columns:` to read it as text",
            show(v)
        ));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn text_values() {
        assert_eq!(decimal(&b("-123.45"), 12, 2), Ok(-12345));
        assert_eq!(decimal(&b("7"), 5, 2), Ok(700));
        assert!(decimal(&b("1.234"), 5, 2).is_err());
        assert_eq!(
            parse_datetime(b"2024-03-01 12:00:00.5").map(|d| d.micros),
            Some(43_200_500_000)
        );
        assert_eq!(datetime(&b("0000-00-00 00:00:00")), Ok(None));
        assert_eq!(datetime(&b("1970-01-02")).unwrap().unwrap().days(), Ok(1));
        assert_eq!(time(&b("23:59:59.999999")), Ok(MICROS_PER_DAY - 1));
        assert!(time(&b("838:59:59")).is_err());
        assert!(time(&b("-00:00:01")).is_err());
        assert_eq!(bits(&Value::Bytes(vec![1, 0])), Ok(256));
    }
}
