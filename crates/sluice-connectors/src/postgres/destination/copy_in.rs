//! Arrow arrays → PostgreSQL binary `COPY … FROM STDIN (FORMAT binary)`.
//!
//! ```text
//!  RecordBatch (columns already in their stored types, see ddl.rs)
//!    ─► one Col per column (typed array reference, chosen once per batch)
//!    ─► per row: i16 field count, per field i32 length (-1 = NULL) + value
//!    ─► one reused BytesMut; chunks of ~1 MiB are split off and sent
//! ```
//!
//! Values are written in the server's binary input formats: big-endian
//! integers and floats, `numeric` as base-10000 digits, dates and timestamps
//! relative to 2000-01-01, intervals as (µs, days, months), 1-D arrays with
//! their element OID, `jsonb` as a version byte and the JSON text. Nothing is
//! allocated per row (nested values go through `arrow_json`'s encoders).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray,
    ListArray, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, FieldRef};
use arrow_json::writer::{EncoderOptions, NullableEncoder, make_encoder};
use bytes::{BufMut, BytesMut};

use crate::postgres::types::PgKind;

use super::ddl::type_oid;

/// Bytes of encoded rows after which a chunk is handed to the connection.
pub const CHUNK_BYTES: usize = 1 << 20;

/// µs between 1970-01-01 and 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The binary COPY signature, flags and header extension length.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
}

/// The end-of-data marker.
pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// One column of a batch, ready to encode.
pub enum Col<'a> {
    /// Every value NULL.
    Null,
    /// `boolean`.
    Bool(&'a BooleanArray),
    /// `smallint`.
    I16(&'a Int16Array),
    /// `integer`.
    I32(&'a Int32Array),
    /// `bigint`.
    I64(&'a Int64Array),
    /// `real`.
    F32(&'a Float32Array),
    /// `double precision`.
    F64(&'a Float64Array),
    /// `numeric` with the array's scale.
    Numeric(&'a Decimal128Array, u8),
    /// `text`.
    Text(&'a StringArray),
    /// `jsonb` from JSON text.
    Jsonb(&'a StringArray),
    /// Nested values as JSON (`jsonb` with the version byte, or `text`),
    /// with a scratch buffer reused for every row.
    Json(NullableEncoder<'a>, bool, Vec<u8>),
    /// `bytea`.
    Bytea(&'a BinaryArray),
    /// `date`.
    Date(&'a Date32Array),
    /// `time`.
    Time(&'a Time64MicrosecondArray),
    /// `timestamp` / `timestamptz`.
    Timestamp(&'a TimestampMicrosecondArray),
    /// `interval`.
    Interval(&'a IntervalMonthDayNanoArray),
    /// `uuid` from its text form.
    Uuid(&'a StringArray),
    /// `oid`.
    Oid(&'a Int64Array),
    /// A 1-D array: list, its elements, element OID.
    Array(&'a ListArray, Box<Col<'a>>, u32),
}

/// Options for nested values as JSON (explicit nulls keep the shape).
pub fn json_options() -> EncoderOptions {
    EncoderOptions::default().with_explicit_nulls(true)
}

impl<'a> Col<'a> {
    /// The encoder for `array` (already in the stored type of `kind`);
    /// `field` and `options` are only used for nested values.
    pub fn new(
        kind: &PgKind,
        array: &'a ArrayRef,
        field: &'a FieldRef,
        options: &'a EncoderOptions,
    ) -> Result<Col<'a>, String> {
        if array.null_count() == array.len() {
            return Ok(Col::Null);
        }
        let wrong = || {
            format!(
                "a {} array cannot be written to a {kind:?} column",
                array.data_type()
            )
        };
        let nested = matches!(
            array.data_type(),
            DataType::Struct(_)
                | DataType::Map(..)
                | DataType::List(_)
                | DataType::LargeList(_)
                | DataType::FixedSizeList(..)
                | DataType::Union(..)
        );
        Ok(match kind {
            PgKind::Jsonb | PgKind::Text if nested => Col::Json(
                make_encoder(field, array.as_ref(), options).map_err(|e| e.to_string())?,
                *kind == PgKind::Jsonb,
                Vec::with_capacity(256),
            ),
            PgKind::Bool => Col::Bool(array.as_boolean_opt().ok_or_else(wrong)?),
            PgKind::Int2 => Col::I16(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Int4 => Col::I32(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Int8 => Col::I64(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Oid => Col::Oid(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Float4 => Col::F32(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Float8 => Col::F64(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Numeric { .. } => {
                let a: &Decimal128Array = array.as_primitive_opt().ok_or_else(wrong)?;
                Col::Numeric(a, a.scale().max(0) as u8)
            }
            PgKind::Text => Col::Text(array.as_string_opt().ok_or_else(wrong)?),
            PgKind::Jsonb => Col::Jsonb(array.as_string_opt().ok_or_else(wrong)?),
            PgKind::Uuid => Col::Uuid(array.as_string_opt().ok_or_else(wrong)?),
            PgKind::Bytea => Col::Bytea(array.as_binary_opt().ok_or_else(wrong)?),
            PgKind::Date => Col::Date(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Time => Col::Time(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Timestamp | PgKind::Timestamptz => {
                Col::Timestamp(array.as_primitive_opt().ok_or_else(wrong)?)
            }
            PgKind::Interval => Col::Interval(array.as_primitive_opt().ok_or_else(wrong)?),
            PgKind::Array(inner) => {
                let list = array.as_list_opt::<i32>().ok_or_else(wrong)?;
                let DataType::List(item) = array.data_type() else {
                    return Err(wrong());
                };
                let element = Col::new(inner, list.values(), item, options)?;
                Col::Array(list, Box::new(element), type_oid(inner))
            }
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Null => true,
            Col::Bool(a) => a.is_null(i),
            Col::I16(a) => a.is_null(i),
            Col::I32(a) => a.is_null(i),
            Col::I64(a) | Col::Oid(a) => a.is_null(i),
            Col::F32(a) => a.is_null(i),
            Col::F64(a) => a.is_null(i),
            Col::Numeric(a, _) => a.is_null(i),
            Col::Text(a) | Col::Jsonb(a) | Col::Uuid(a) => a.is_null(i),
            Col::Json(e, _, _) => e.is_null(i),
            Col::Bytea(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::Time(a) => a.is_null(i),
            Col::Timestamp(a) => a.is_null(i),
            Col::Interval(a) => a.is_null(i),
            Col::Array(a, _, _) => a.is_null(i),
        }
    }

    /// Write value `i` (length prefix included).
    pub fn write(&mut self, i: usize, buf: &mut BytesMut) -> Result<(), String> {
        if self.is_null(i) {
            buf.put_i32(-1);
            return Ok(());
        }
        match self {
            Col::Null => buf.put_i32(-1),
            Col::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(a.value(i) as u8);
            }
            Col::I16(a) => {
                buf.put_i32(2);
                buf.put_i16(a.value(i));
            }
            Col::I32(a) => {
                buf.put_i32(4);
                buf.put_i32(a.value(i));
            }
            Col::I64(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(i));
            }
            Col::Oid(a) => {
                let v = u32::try_from(a.value(i))
                    .map_err(|_| format!("`{}` is not a valid oid", a.value(i)))?;
                buf.put_i32(4);
                buf.put_u32(v);
            }
            Col::F32(a) => {
                buf.put_i32(4);
                buf.put_f32(a.value(i));
            }
            Col::F64(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(i));
            }
            Col::Numeric(a, scale) => numeric(a.value(i), *scale, buf),
            Col::Text(a) => {
                let v = a.value(i).as_bytes();
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Col::Jsonb(a) => {
                let v = a.value(i).as_bytes();
                buf.put_i32(v.len() as i32 + 1);
                buf.put_u8(1);
                buf.put_slice(v);
            }
            Col::Json(e, jsonb, scratch) => {
                scratch.clear();
                e.encode(i, scratch);
                buf.put_i32(scratch.len() as i32 + *jsonb as i32);
                if *jsonb {
                    buf.put_u8(1);
                }
                buf.put_slice(scratch);
            }
            Col::Uuid(a) => {
                let bytes = parse_uuid(a.value(i))?;
                buf.put_i32(16);
                buf.put_slice(&bytes);
            }
            Col::Bytea(a) => {
                let v = a.value(i);
                buf.put_i32(v.len() as i32);
                buf.put_slice(v);
            }
            Col::Date(a) => {
                buf.put_i32(4);
                buf.put_i32(a.value(i).saturating_sub(PG_EPOCH_DAYS));
            }
            Col::Time(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(i));
            }
            Col::Timestamp(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(i).saturating_sub(PG_EPOCH_MICROS));
            }
            Col::Interval(a) => {
                let v = a.value(i);
                buf.put_i32(16);
                buf.put_i64(v.nanoseconds / 1000);
                buf.put_i32(v.days);
                buf.put_i32(v.months);
            }
            Col::Array(list, element, oid) => {
                let at = buf.len();
                buf.put_i32(0);
                let offsets = list.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let n = end - start;
                if n == 0 {
                    buf.put_i32(0);
                    buf.put_i32(0);
                    buf.put_u32(*oid);
                } else {
                    let has_null = (start..end).any(|j| element.is_null(j));
                    buf.put_i32(1);
                    buf.put_i32(has_null as i32);
                    buf.put_u32(*oid);
                    buf.put_i32(n as i32);
                    buf.put_i32(1);
                    for j in start..end {
                        element.write(j, buf)?;
                    }
                }
                let len = (buf.len() - at - 4) as i32;
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }
}

/// Encode rows from `start` until the buffer holds about [`CHUNK_BYTES`];
/// `seq` appends an arrival-order column (merge staging). Returns the next
/// row, or the row and message of a value that cannot be written.
pub fn encode_rows(
    cols: &mut [Col<'_>],
    start: usize,
    rows: usize,
    seq: Option<i64>,
    buf: &mut BytesMut,
) -> Result<usize, (usize, usize, String)> {
    let fields = cols.len() as i16 + seq.is_some() as i16;
    let mut i = start;
    while i < rows && buf.len() < CHUNK_BYTES {
        buf.put_i16(fields);
        for (c, col) in cols.iter_mut().enumerate() {
            col.write(i, buf).map_err(|e| (i, c, e))?;
        }
        if let Some(first) = seq {
            buf.put_i32(8);
            buf.put_i64(first + i as i64);
        }
        i += 1;
    }
    Ok(i)
}

/// `numeric` binary form of `value × 10^-scale`: digit count, weight, sign,
/// display scale, then base-10000 digits (no allocation: stack buffers).
fn numeric(value: i128, scale: u8, buf: &mut BytesMut) {
    let negative = value < 0;
    let mut abs = value.unsigned_abs();
    // Decimal digits, least significant first.
    let mut dec = [0u8; 80];
    let mut n = 0;
    while abs > 0 {
        dec[n] = (abs % 10) as u8;
        abs /= 10;
        n += 1;
    }
    let scale = scale as usize;
    // Pad the fraction to whole groups of 4 digits: positions below 0 are zeros.
    let frac_groups = scale.div_ceil(4);
    let pad = frac_groups * 4 - scale;
    let int_digits = n.saturating_sub(scale);
    let int_groups = int_digits.div_ceil(4);
    let total = int_groups + frac_groups;
    // Group g (0 = most significant) covers padded positions.
    let mut groups = [0i16; 24];
    for (g, slot) in groups.iter_mut().enumerate().take(total) {
        // Padded digit index of the least significant digit of group g.
        let low = (total - 1 - g) * 4;
        let mut v = 0i16;
        for k in (0..4).rev() {
            let padded = low + k;
            let d = if padded < pad {
                0
            } else {
                dec.get(padded - pad).copied().unwrap_or(0)
            };
            v = v * 10 + d as i16;
        }
        *slot = v;
    }
    let mut first = 0;
    while first < total && groups[first] == 0 {
        first += 1;
    }
    let mut last = total;
    while last > first && groups[last - 1] == 0 {
        last -= 1;
    }
    let ndigits = last - first;
    let weight = if ndigits == 0 {
        0
    } else {
        int_groups as i16 - 1 - first as i16
    };
    buf.put_i32(8 + 2 * ndigits as i32);
    buf.put_i16(ndigits as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative && ndigits > 0 { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for g in &groups[first..last] {
        buf.put_i16(*g);
    }
}

fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut high: Option<u8> = None;
    for c in text.bytes() {
        if c == b'-' || c == b'{' || c == b'}' {
            continue;
        }
        let v = (c as char)
            .to_digit(16)
            .ok_or_else(|| format!("`{text}` is not a UUID"))? as u8;
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                if n == 16 {
                    return Err(format!("`{text}` is not a UUID"));
                }
                out[n] = (h << 4) | v;
                n += 1;
            }
        }
    }
    if n != 16 || high.is_some() {
        return Err(format!("`{text}` is not a UUID"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: i128, s: u8) -> Vec<i16> {
        let mut b = BytesMut::new();
        numeric(v, s, &mut b);
        b[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_digits() {
        // 12345.678 → digits 1, 2345, 6780; weight 1; dscale 3.
        assert_eq!(num(12_345_678, 3), [3, 1, 0, 3, 1, 2345, 6780]);
        // -0.05 → digit 500 at weight -1.
        assert_eq!(num(-5, 2), [1, -1, 0x4000, 2, 500]);
        assert_eq!(num(0, 2), [0, 0, 0, 2]);
        // 10000 → one digit 1 at weight 1.
        assert_eq!(num(10_000, 0), [1, 1, 0, 0, 1]);
        // 38 digits.
        let big = 99_999_999_999_999_999_999_999_999_999_999_999_999i128;
        assert_eq!(num(big, 0)[0], 10);
    }

    #[test]
    fn uuids() {
        let u = parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(u[0], 0xa0);
        assert_eq!(u[15], 0x11);
        assert!(parse_uuid("nope").is_err());
    }
}
