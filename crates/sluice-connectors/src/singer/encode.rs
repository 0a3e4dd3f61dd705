//! Arrow → Singer: a stream's Arrow schema → the JSON Schema of a SCHEMA
//! message, and record batches → RECORD lines.
//!
//! The inverse of [`schema.rs`](super::schema), one column at a time:
//!
//! ```text
//! Arrow                               JSON Schema                                 value
//! ---------------------------------   -----------------------------------------   -------------------------
//! Int8…Int64, UInt8…UInt64            "integer"                                   number
//! Float16/32/64                       "number"                                    number (NaN, ±inf → null)
//! Decimal(p, s), 0 ≤ s ≤ p            "number", format "singer.decimal",          number, exact digits
//!                                       precision p, scale s
//! Decimal with a negative scale       "number"                                    number, exact digits
//! Utf8, LargeUtf8, Utf8View           "string"                                    string
//! Boolean                             "boolean"                                   true / false
//! Timestamp with a time zone          "string", format "date-time"                RFC 3339 in UTC: "…Z"
//! Timestamp without a time zone       "string", format "date-time"                "2024-05-01T12:00:00" (no offset)
//! Date32                              "string", format "date"                     "2024-05-01"
//! Date64                              "string", format "date-time"                "2024-05-01T00:00:00"
//! Time32, Time64                      "string", format "time"                     "12:00:00.5"
//! Binary, LargeBinary, BinaryView,    "string", contentEncoding "base64"          base64 text
//!   FixedSizeBinary
//! Struct                              "object" with "properties"                  object
//! List, LargeList, FixedSizeList,     "array" with "items"                        array
//!   ListView, LargeListView
//! Dictionary(_, V)                    as V                                        as V
//! anything else (Map, Union, …)       "string"                                    Arrow's display text
//! ```
//!
//! A nullable field's type is `[T, "null"]`. `schema.rs` maps every row of
//! this table back to the same Arrow type except Binary (read back as text),
//! Date64 (as a timestamp), a naive timestamp (as a UTC one), narrower
//! integers and floats (as Int64 / Float64) and the "anything else" row.
//!
//! A decimal carries `format: singer.decimal` with its precision and scale
//! next to type `number` so that targets which know the convention (and
//! Sluice's own tap reader) keep the exact type, while every other target
//! sees a plain number; Python targets read numbers as `decimal.Decimal`, so
//! the digits written arrive exactly.
//!
//! Records are encoded by arrow-json's column encoders straight into one
//! output buffer: for each row the RECORD envelope's prefix, the row object,
//! the suffix. No JSON tree is built per row.

use std::io::Write as _;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, Field, FieldRef, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;
use arrow::temporal_conversions::as_datetime;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use serde_json::{Map, Value, json};

/// The JSON Schema of a SCHEMA message for `schema`: an object whose
/// `properties` are the columns, in order.
pub fn json_schema(schema: &Schema) -> Value {
    let mut properties = Map::with_capacity(schema.fields().len());
    for field in schema.fields() {
        properties.insert(
            field.name().clone(),
            field_schema(field.data_type(), field.is_nullable()),
        );
    }
    json!({"type": "object", "properties": properties})
}

/// The JSON Schema of one value of `data_type` (see the module table).
pub fn field_schema(data_type: &DataType, nullable: bool) -> Value {
    let mut out = Map::new();
    let kind = match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "integer",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "number",
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s >= 0 {
                out.insert("format".into(), json!("singer.decimal"));
                out.insert("precision".into(), json!(p));
                out.insert("scale".into(), json!(s));
            }
            "number"
        }
        DataType::Boolean => "boolean",
        DataType::Timestamp(..) | DataType::Date64 => {
            out.insert("format".into(), json!("date-time"));
            "string"
        }
        DataType::Date32 => {
            out.insert("format".into(), json!("date"));
            "string"
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            out.insert("format".into(), json!("time"));
            "string"
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            out.insert("contentEncoding".into(), json!("base64"));
            "string"
        }
        DataType::Struct(fields) => {
            let mut properties = Map::with_capacity(fields.len());
            for f in fields {
                properties.insert(
                    f.name().clone(),
                    field_schema(f.data_type(), f.is_nullable()),
                );
            }
            out.insert("properties".into(), Value::Object(properties));
            "object"
        }
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::FixedSizeList(item, _)
        | DataType::ListView(item)
        | DataType::LargeListView(item) => {
            out.insert(
                "items".into(),
                field_schema(item.data_type(), item.is_nullable()),
            );
            "array"
        }
        DataType::Dictionary(_, values) => return field_schema(values, nullable),
        _ => "string",
    };
    let kind = if nullable {
        json!([kind, "null"])
    } else {
        json!(kind)
    };
    let mut ordered = Map::with_capacity(out.len() + 1);
    ordered.insert("type".into(), kind);
    ordered.extend(out);
    Value::Object(ordered)
}

/// A `SCHEMA` message line (with its newline).
pub fn schema_line(
    stream: &str,
    schema: &Schema,
    key_properties: &[String],
    bookmark_properties: &[String],
) -> Vec<u8> {
    let mut message = json!({
        "type": "SCHEMA",
        "stream": stream,
        "schema": json_schema(schema),
        "key_properties": key_properties,
    });
    if !bookmark_properties.is_empty() {
        message["bookmark_properties"] = json!(bookmark_properties);
    }
    line(&message)
}

/// A `STATE` message line carrying `value`.
pub fn state_line(value: &Value) -> Vec<u8> {
    line(&json!({"type": "STATE", "value": value}))
}

/// An `ACTIVATE_VERSION` message line: the records of `version` are now the
/// whole of `stream`.
pub fn activate_version_line(stream: &str, version: i64) -> Vec<u8> {
    line(&json!({"type": "ACTIVATE_VERSION", "stream": stream, "version": version}))
}

fn line(message: &Value) -> Vec<u8> {
    let mut out = message.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// Encodes the batches of one stream as RECORD lines.
#[derive(Debug)]
pub struct RecordEncoder {
    /// `{"type":"RECORD","stream":"…","record":`
    prefix: Vec<u8>,
    /// `}` or `,"version":N}`, then a newline.
    suffix: Vec<u8>,
    options: EncoderOptions,
}

impl RecordEncoder {
    /// RECORD lines for `stream`.
    pub fn new(stream: &str) -> Self {
        let mut prefix = br#"{"type":"RECORD","stream":"#.to_vec();
        prefix.extend_from_slice(Value::from(stream).to_string().as_bytes());
        prefix.extend_from_slice(br#","record":"#);
        RecordEncoder {
            prefix,
            suffix: b"}\n".to_vec(),
            options: EncoderOptions::default()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(SingerValues)),
        }
    }

    /// Every record carries `"version": version` (ACTIVATE_VERSION).
    pub fn with_version(mut self, version: i64) -> Self {
        self.suffix = format!(",\"version\":{version}}}\n").into_bytes();
        self
    }

    /// Append one RECORD line per row of `batch` to `out`.
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = StructArray::from(batch.clone());
        let field: FieldRef = Arc::new(Field::new(
            "record",
            DataType::Struct(batch.schema().fields().clone()),
            false,
        ));
        let mut encoder = make_encoder(&field, &rows, &self.options)?;
        // A guess that saves most reallocations: envelope plus ~16 bytes a value.
        let per_row = self.prefix.len() + self.suffix.len() + 16 * batch.num_columns().max(1);
        out.reserve(per_row * batch.num_rows());
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&self.prefix);
            encoder.encode(row, out);
            out.extend_from_slice(&self.suffix);
        }
        Ok(())
    }
}

/// The encoders where Singer's conventions differ from arrow-json's
/// defaults: binary as base64 (not hex), zoned timestamps in UTC with `Z`,
/// and types without a JSON form as their display text.
#[derive(Debug)]
struct SingerValues;

impl EncoderFactory for SingerValues {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Binary => Box::new(Base64(BinaryValues::Small(array.as_binary::<i32>()))),
            DataType::LargeBinary => {
                Box::new(Base64(BinaryValues::Large(array.as_binary::<i64>())))
            }
            DataType::BinaryView => Box::new(Base64(BinaryValues::View(array.as_binary_view()))),
            DataType::FixedSizeBinary(_) => {
                Box::new(Base64(BinaryValues::Fixed(array.as_fixed_size_binary())))
            }
            DataType::Timestamp(unit, Some(_)) => utc_timestamps(*unit, array),
            DataType::Map(..) | DataType::Union(..) | DataType::RunEndEncoded(..) => {
                let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
                Box::new(DisplayText {
                    formatter,
                    scratch: String::new(),
                })
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

enum BinaryValues<'a> {
    Small(&'a arrow::array::BinaryArray),
    Large(&'a arrow::array::LargeBinaryArray),
    View(&'a arrow::array::BinaryViewArray),
    Fixed(&'a arrow::array::FixedSizeBinaryArray),
}

impl BinaryValues<'_> {
    fn value(&self, idx: usize) -> &[u8] {
        match self {
            Self::Small(a) => a.value(idx),
            Self::Large(a) => a.value(idx),
            Self::View(a) => a.value(idx),
            Self::Fixed(a) => a.value(idx),
        }
    }
}

/// Binary values as base64 strings (RFC 4648, with padding).
struct Base64<'a>(BinaryValues<'a>);

impl Encoder for Base64<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        base64_into(self.0.value(idx), out);
        out.push(b'"');
    }
}

/// Standard base64 alphabet, padded.
pub(crate) fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(bytes.len().div_ceil(3) * 4);
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

fn utc_timestamps<'a>(unit: TimeUnit, array: &'a dyn Array) -> Box<dyn Encoder + 'a> {
    match unit {
        TimeUnit::Second => Box::new(UtcTimestamps::<TimestampSecondType>(array.as_primitive())),
        TimeUnit::Millisecond => Box::new(UtcTimestamps::<TimestampMillisecondType>(
            array.as_primitive(),
        )),
        TimeUnit::Microsecond => Box::new(UtcTimestamps::<TimestampMicrosecondType>(
            array.as_primitive(),
        )),
        TimeUnit::Nanosecond => Box::new(UtcTimestamps::<TimestampNanosecondType>(
            array.as_primitive(),
        )),
    }
}

/// A zoned timestamp as RFC 3339 in UTC: `2024-05-01T10:00:00.25Z` (the
/// fraction has 0, 3, 6 or 9 digits, as needed).
struct UtcTimestamps<'a, T: ArrowTimestampType>(&'a arrow::array::PrimitiveArray<T>);

impl<T: ArrowTimestampType> Encoder for UtcTimestamps<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = self.0.value(idx);
        match as_datetime::<T>(value) {
            // chrono's Debug form of a NaiveDateTime is ISO 8601 with an
            // automatic fraction, the same text arrow writes for naive
            // timestamps; the value is UTC, so a `Z` makes it RFC 3339.
            Some(utc) => {
                let _ = write!(out, "\"{utc:?}Z\"");
            }
            // Out of chrono's range (beyond ±262,000 years): keep the number.
            None => {
                let _ = write!(out, "{value}");
            }
        }
    }
}

/// A value without a JSON form, as its display text in a JSON string.
struct DisplayText<'a> {
    formatter: ArrayFormatter<'a>,
    scratch: String,
}

impl Encoder for DisplayText<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        self.scratch.clear();
        let _ = write!(self.scratch, "{}", self.formatter.value(idx));
        let mut serializer = serde_json::Serializer::new(out);
        let _ = serde::Serializer::serialize_str(&mut serializer, &self.scratch);
    }
}

/// `batch` with only the columns in `keep` (in the batch's order); the
/// batch itself when every column is kept.
pub fn project(
    batch: &RecordBatch,
    keep: &dyn Fn(&str) -> bool,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let indices: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| keep(f.name()))
        .map(|(i, _)| i)
        .collect();
    if indices.len() == schema.fields().len() {
        return Ok(batch.clone());
    }
    batch.project(&indices)
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
