//! PostgreSQL's binary COPY format decoded straight into Arrow builders.
//!
//! ```text
//!  "PGCOPY\n\xff\r\n\0" · flags i32 · ext-len i32 · ext
//!  per row:   field-count i16 · per field: length i32 (-1 = NULL) · bytes (big-endian)
//!  trailer:   -1 i16
//! ```
//!
//! Chunks arrive in any size (PostgreSQL sends one row per message, but
//! nothing depends on it); a row that is not complete waits for the next
//! chunk. A value that cannot be represented (±infinity dates, NaN or too
//! many digits for the column's decimal) makes its row a bad record: the
//! column gets a NULL, the row is reported in [`Decoded::rejects`], and the
//! caller drops it from the batch.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListArray, RecordBatch, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, SchemaRef};

use super::types::PgKind;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A value the decoder could not turn into its column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Row in the batch.
    pub row: usize,
    /// 1-based row number in the table read.
    pub record: u64,
    /// Column index.
    pub column: usize,
    /// What was wrong (includes the value when it helps).
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

/// Decodes one COPY stream.
pub struct CopyDecoder {
    schema: SchemaRef,
    cols: Vec<Col>,
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
    rows: usize,
    records: u64,
    rejects: Vec<Rejected>,
    /// Bytes of COPY data received.
    pub bytes: u64,
}

impl CopyDecoder {
    /// A decoder for columns of these kinds, producing `schema`.
    pub fn new(schema: SchemaRef, kinds: &[PgKind]) -> CopyDecoder {
        CopyDecoder {
            schema,
            cols: kinds.iter().map(Col::new).collect(),
            pending: Vec::new(),
            header_done: false,
            ended: false,
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

    /// Whether the trailer was seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Feed a chunk of the COPY stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.bytes += chunk.len() as u64;
        if self.pending.is_empty() {
            let used = self.parse(chunk)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            self.pending.extend_from_slice(chunk);
            let data = std::mem::take(&mut self.pending);
            let used = self.parse(&data)?;
            self.pending = data[used..].to_vec();
        }
        Ok(())
    }

    /// Decode every complete row of `data`; returns the bytes used.
    fn parse(&mut self, data: &[u8]) -> Result<usize, String> {
        let mut pos = 0;
        if !self.header_done {
            if data.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err("the server did not send binary COPY data".into());
            }
            let ext = be_i32(&data[SIGNATURE.len() + 4..]) as usize;
            let start = SIGNATURE.len() + 8 + ext;
            if data.len() < start {
                return Ok(0);
            }
            pos = start;
            self.header_done = true;
        }
        while !self.ended {
            let Some(end) = row_end(&data[pos..], self.cols.len())? else {
                break;
            };
            if end == 2 {
                // The trailer: field count -1.
                self.ended = true;
                pos += 2;
                break;
            }
            self.decode_row(&data[pos..pos + end]);
            pos += end;
        }
        Ok(pos)
    }

    fn decode_row(&mut self, row: &[u8]) {
        self.records += 1;
        let mut p = 2;
        for (c, col) in self.cols.iter_mut().enumerate() {
            let len = be_i32(&row[p..]);
            p += 4;
            if len < 0 {
                col.append_null();
                continue;
            }
            let value = &row[p..p + len as usize];
            p += len as usize;
            if let Err(reason) = col.append(value) {
                col.append_null();
                self.rejects.push(Rejected {
                    row: self.rows,
                    record: self.records,
                    column: c,
                    reason,
                });
            }
        }
        self.rows += 1;
    }

    /// The rows decoded so far as a batch (and start a new one).
    pub fn finish_batch(&mut self) -> Result<Decoded, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.rows = 0;
        Ok(Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
        })
    }
}

/// Length of the row at the start of `data`, `None` if incomplete; 2 for the trailer.
fn row_end(data: &[u8], ncols: usize) -> Result<Option<usize>, String> {
    if data.len() < 2 {
        return Ok(None);
    }
    let n = i16::from_be_bytes([data[0], data[1]]);
    if n == -1 {
        return Ok(Some(2));
    }
    if n as usize != ncols {
        return Err(format!("a COPY row has {n} fields, {ncols} were selected"));
    }
    let mut p = 2;
    for _ in 0..ncols {
        if data.len() < p + 4 {
            return Ok(None);
        }
        let len = be_i32(&data[p..]);
        p += 4;
        if len > 0 {
            p += len as usize;
        }
    }
    Ok((data.len() >= p).then_some(p))
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("a {what} value of {} bytes (expected {N})", v.len()))
}

/// One column's builder.
enum Col {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Oid(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    Uuid(StringBuilder),
    List {
        child: Box<Col>,
        item: DataType,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
}

impl Col {
    fn new(kind: &PgKind) -> Col {
        match kind {
            PgKind::Bool => Col::Bool(BooleanBuilder::new()),
            PgKind::Int2 => Col::I16(Int16Builder::new()),
            PgKind::Int4 => Col::I32(Int32Builder::new()),
            PgKind::Int8 => Col::I64(Int64Builder::new()),
            PgKind::Oid => Col::Oid(Int64Builder::new()),
            PgKind::Float4 => Col::F32(Float32Builder::new()),
            PgKind::Float8 => Col::F64(Float64Builder::new()),
            PgKind::Numeric { precision, scale } => Col::Numeric(
                Decimal128Builder::new().with_data_type(DataType::Decimal128(*precision, *scale)),
                *precision,
                *scale,
            ),
            PgKind::Text => Col::Text(StringBuilder::new()),
            PgKind::Jsonb => Col::Jsonb(StringBuilder::new()),
            PgKind::Bytea => Col::Bytea(BinaryBuilder::new()),
            PgKind::Date => Col::Date(Date32Builder::new()),
            PgKind::Time => Col::Time(Time64MicrosecondBuilder::new()),
            PgKind::Timestamp => Col::Timestamp(TimestampMicrosecondBuilder::new()),
            PgKind::Timestamptz => {
                Col::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            PgKind::Interval => Col::Interval(IntervalMonthDayNanoBuilder::new()),
            PgKind::Uuid => Col::Uuid(StringBuilder::new()),
            PgKind::Array(inner) => Col::List {
                child: Box::new(Col::new(inner)),
                item: inner.data_type(),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
            },
        }
    }

    fn append_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::I16(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::I64(b) | Col::Oid(b) => b.append_null(),
            Col::F32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Numeric(b, ..) => b.append_null(),
            Col::Text(b) | Col::Jsonb(b) | Col::Uuid(b) => b.append_null(),
            Col::Bytea(b) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Timestamp(b) => b.append_null(),
            Col::Interval(b) => b.append_null(),
            Col::List {
                child,
                offsets,
                nulls,
                ..
            } => {
                // Elements a failed row left in the child fall under this NULL.
                offsets.push(child.len() as i32);
                nulls.append_null();
            }
        }
    }

    fn append(&mut self, v: &[u8]) -> Result<(), String> {
        match self {
            Col::Bool(b) => b.append_value(fixed::<1>(v, "boolean")?[0] != 0),
            Col::I16(b) => b.append_value(i16::from_be_bytes(fixed(v, "smallint")?)),
            Col::I32(b) => b.append_value(i32::from_be_bytes(fixed(v, "integer")?)),
            Col::I64(b) => b.append_value(i64::from_be_bytes(fixed(v, "bigint")?)),
            Col::Oid(b) => b.append_value(i64::from(u32::from_be_bytes(fixed(v, "oid")?))),
            Col::F32(b) => b.append_value(f32::from_be_bytes(fixed(v, "real")?)),
            Col::F64(b) => b.append_value(f64::from_be_bytes(fixed(v, "double")?)),
            Col::Numeric(b, precision, scale) => b.append_value(numeric(v, *precision, *scale)?),
            Col::Text(b) => b.append_value(utf8(v)?),
            Col::Jsonb(b) => match v.split_first() {
                Some((1, text)) => b.append_value(utf8(text)?),
                _ => return Err("an unknown jsonb format version".into()),
            },
            Col::Bytea(b) => b.append_value(v),
            Col::Date(b) => {
                let days = i32::from_be_bytes(fixed(v, "date")?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(format!(
                        "the date is {}infinity, which has no Arrow value",
                        if days < 0 { "-" } else { "" }
                    ));
                }
                b.append_value(
                    days.checked_add(PG_EPOCH_DAYS)
                        .ok_or("a date out of range")?,
                )
            }
            Col::Time(b) => b.append_value(i64::from_be_bytes(fixed(v, "time")?)),
            Col::Timestamp(b) => {
                let us = i64::from_be_bytes(fixed(v, "timestamp")?);
                if us == i64::MAX || us == i64::MIN {
                    return Err(format!(
                        "the timestamp is {}infinity, which has no Arrow value",
                        if us < 0 { "-" } else { "" }
                    ));
                }
                b.append_value(
                    us.checked_add(PG_EPOCH_MICROS)
                        .ok_or("a timestamp out of range")?,
                )
            }
            Col::Interval(b) => {
                let raw: [u8; 16] = fixed(v, "interval")?;
                let us = be_i64(&raw[0..8]);
                let days = be_i32(&raw[8..12]);
                let months = be_i32(&raw[12..16]);
                let nanos = us.checked_mul(1000).ok_or("an interval out of range")?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos))
            }
            Col::Uuid(b) => {
                let raw: [u8; 16] = fixed(v, "uuid")?;
                let mut text = [0u8; 36];
                let mut j = 0;
                for (i, byte) in raw.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        text[j] = b'-';
                        j += 1;
                    }
                    text[j] = HEX[(byte >> 4) as usize];
                    text[j + 1] = HEX[(byte & 0xf) as usize];
                    j += 2;
                }
                b.append_value(std::str::from_utf8(&text).map_err(|e| e.to_string())?)
            }
            Col::List {
                child,
                offsets,
                nulls,
                ..
            } => {
                array(v, child)?;
                offsets.push(child.len() as i32);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        match self {
            Col::Bool(b) => b.len(),
            Col::I16(b) => b.len(),
            Col::I32(b) => b.len(),
            Col::I64(b) | Col::Oid(b) => b.len(),
            Col::F32(b) => b.len(),
            Col::F64(b) => b.len(),
            Col::Numeric(b, ..) => b.len(),
            Col::Text(b) | Col::Jsonb(b) | Col::Uuid(b) => b.len(),
            Col::Bytea(b) => b.len(),
            Col::Date(b) => b.len(),
            Col::Time(b) => b.len(),
            Col::Timestamp(b) => b.len(),
            Col::Interval(b) => b.len(),
            Col::List { offsets, .. } => offsets.len() - 1,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::I16(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::I64(b) | Col::Oid(b) => Arc::new(b.finish()),
            Col::F32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Numeric(b, ..) => Arc::new(b.finish()),
            Col::Text(b) | Col::Jsonb(b) | Col::Uuid(b) => Arc::new(b.finish()),
            Col::Bytea(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Timestamp(b) => Arc::new(b.finish()),
            Col::Interval(b) => Arc::new(b.finish()),
            Col::List {
                child,
                item,
                offsets,
                nulls,
            } => {
                let values = child.finish();
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let field = Arc::new(Field::new("item", item.clone(), true));
                Arc::new(ListArray::new(field, offsets, values, nulls.finish()))
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn utf8(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "invalid UTF-8 text".to_string())
}

/// A one-dimensional array's elements into `child`.
fn array(v: &[u8], child: &mut Col) -> Result<(), String> {
    if v.len() < 12 {
        return Err("a truncated array".into());
    }
    let ndim = be_i32(v);
    if ndim == 0 {
        return Ok(());
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array (only one dimension is supported; declare the column as `string` to read it as text)"
        ));
    }
    let n = be_i32(&v[12..]);
    let mut p = 20; // ndim, flags, elemtype, then one (size, lower bound) pair
    for _ in 0..n {
        let len = be_i32(v.get(p..).ok_or("a truncated array")?);
        p += 4;
        if len < 0 {
            child.append_null();
            continue;
        }
        let item = v.get(p..p + len as usize).ok_or("a truncated array")?;
        p += len as usize;
        child
            .append(item)
            .map_err(|e| format!("an array element: {e}"))?;
    }
    Ok(())
}

/// PostgreSQL's binary numeric into a Decimal128 value of `scale`, exactly.
fn numeric(v: &[u8], precision: u8, scale: i8) -> Result<i128, String> {
    if v.len() < 8 {
        return Err("a truncated numeric".into());
    }
    let ndigits = i16::from_be_bytes([v[0], v[1]]) as i32;
    let weight = i16::from_be_bytes([v[2], v[3]]) as i32;
    let sign = u16::from_be_bytes([v[4], v[5]]);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("the numeric is NaN, which has no decimal value".into()),
        0xD000 | 0xF000 => return Err("the numeric is infinite, which has no decimal value".into()),
        other => return Err(format!("an unknown numeric sign {other:#x}")),
    }
    if ndigits == 0 {
        // Zero: no digits (and a weight that must not scale anything).
        return Ok(0);
    }
    if v.len() < 8 + 2 * ndigits as usize {
        return Err("a truncated numeric".into());
    }
    let too_big = || format!("the value does not fit decimal({precision},{scale})");
    let mut acc: i128 = 0;
    for i in 0..ndigits as usize {
        let d = i16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]) as i128;
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(too_big)?;
    }
    // `acc` is the value times 10^frac, frac = 4 × (digits after the point).
    let frac = 4 * (ndigits - 1 - weight);
    let shift = scale as i32 - frac;
    if shift >= 0 {
        acc = acc
            .checked_mul(10i128.checked_pow(shift as u32).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
    } else {
        let div = 10i128.checked_pow((-shift) as u32).ok_or_else(too_big)?;
        if acc % div != 0 {
            return Err(format!(
                "the value has more than {scale} decimal places (the column is read as decimal({precision},{scale}); declare it in `columns:` with a larger scale)"
            ));
        }
        acc /= div;
    }
    if acc.abs() >= 10i128.pow(precision as u32) {
        return Err(too_big());
    }
    Ok(if sign == 0x4000 { -acc } else { acc })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary numeric of digits (base 10000).
    fn num(digits: &[i16], weight: i16, neg: bool, dscale: i16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend((if neg { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_are_exact() {
        // 12345.67 = [1, 2345, 6700], weight 1
        assert_eq!(
            numeric(&num(&[1, 2345, 6700], 1, false, 2), 12, 2).unwrap(),
            1_234_567
        );
        // -0.5
        assert_eq!(numeric(&num(&[5000], -1, true, 1), 12, 2).unwrap(), -50);
        // 10000 = [1], weight 1 (trailing zero groups stripped)
        assert_eq!(numeric(&num(&[1], 1, false, 0), 12, 2).unwrap(), 1_000_000);
        // 0, also where 10^(scale + 4) would overflow
        assert_eq!(numeric(&num(&[], 0, false, 0), 12, 2).unwrap(), 0);
        assert_eq!(numeric(&num(&[], 0, false, 36), 38, 36).unwrap(), 0);
        // 1.005 does not fit scale 2
        assert!(
            numeric(&num(&[1, 50], 0, false, 3), 12, 2)
                .unwrap_err()
                .contains("decimal places")
        );
        // 10^12 does not fit precision 12
        assert!(
            numeric(&num(&[1], 3, false, 0), 12, 0)
                .unwrap_err()
                .contains("does not fit")
        );
        let mut nan = num(&[], 0, false, 0);
        nan[4] = 0xC0;
        assert!(numeric(&nan, 12, 2).unwrap_err().contains("NaN"));
    }

    #[test]
    fn rows_split_across_chunks_decode_once() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let mut data = SIGNATURE.to_vec();
        data.extend(0i32.to_be_bytes());
        data.extend(0i32.to_be_bytes());
        for (a, b) in [(1i32, Some("x")), (2, None), (3, Some("zz"))] {
            data.extend(2i16.to_be_bytes());
            data.extend(4i32.to_be_bytes());
            data.extend(a.to_be_bytes());
            match b {
                Some(s) => {
                    data.extend((s.len() as i32).to_be_bytes());
                    data.extend(s.as_bytes());
                }
                None => data.extend((-1i32).to_be_bytes()),
            }
        }
        data.extend((-1i16).to_be_bytes());
        for step in [1, 3, 7, data.len()] {
            let mut d = CopyDecoder::new(schema.clone(), &[PgKind::Int4, PgKind::Text]);
            for chunk in data.chunks(step) {
                d.push(chunk).unwrap();
            }
            assert!(d.ended());
            let out = d.finish_batch().unwrap();
            assert_eq!(out.batch.num_rows(), 3, "chunk size {step}");
            assert_eq!(out.batch.column(1).null_count(), 1);
        }
    }
}
