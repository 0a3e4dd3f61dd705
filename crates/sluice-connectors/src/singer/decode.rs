//! RECORD objects of one stream → Arrow batches.
//!
//! Records are appended as raw JSON text (one memcpy each) and decoded a
//! batch at a time by arrow-json straight into the stream's Arrow schema —
//! no `serde_json::Value` per record. Only streams with columns kept as
//! JSON text (free-form objects, unions) take a detour through `Value`, to
//! turn those values into text. When a batch does not decode, its records
//! are decoded one by one to find the bad ones, which stop the stream with
//! their line number or go to quarantine.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Builder, RecordBatch};
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::error::ArrowError;
use arrow_json::ReaderBuilder;
use serde_json::Value;
use sluice_core::config::OnError;
use sluice_core::connector::{ConnectorError, Message, RecordLocation, Result};
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

use super::schema::{StreamSchema, TextReason};

/// A batch is decoded once it holds this many bytes, whatever its rows.
const MAX_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// Buffered RECORDs of one stream.
pub struct RecordBuffer {
    stream: String,
    schema: SchemaRef,
    /// `schema` with its integer columns as text: arrow-json would truncate
    /// `1.9` into an integer column, so integers are parsed here, strictly.
    decode_schema: SchemaRef,
    ints: Vec<usize>,
    json_text: bool,
    /// Top-level columns whose object/array values become JSON text by
    /// rewriting the record's bytes (no JSON tree); `None` when a JSON-text
    /// field sits inside a struct, which takes the `serde_json::Value` path.
    text_columns: Option<std::collections::HashSet<String>>,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    lines: Vec<u64>,
    origin: String,
    batch_size: usize,
    on_error: OnError,
}

impl std::fmt::Debug for RecordBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBuffer")
            .field("stream", &self.stream)
            .field("rows", &self.ends.len())
            .finish_non_exhaustive()
    }
}

impl RecordBuffer {
    /// A buffer for `schema`'s records; `origin` names where lines come
    /// from in errors (the tap's output, a BATCH file).
    pub fn new(schema: &StreamSchema, origin: &str, batch_size: usize, on_error: OnError) -> Self {
        let json_text = schema.notes.iter().any(|n| {
            matches!(
                n.reason,
                TextReason::AnyValue
                    | TextReason::Union(_)
                    | TextReason::FreeformObject
                    | TextReason::UntypedArray
            )
        });
        let text_columns = json_text.then(|| {
            schema
                .notes
                .iter()
                .map(|n| {
                    (
                        n.column.clone(),
                        n.path == format!("properties.{}", n.column),
                    )
                })
                .collect::<Vec<_>>()
        });
        let text_columns = text_columns.and_then(|notes| {
            notes
                .iter()
                .all(|(_, top)| *top)
                .then(|| notes.into_iter().map(|(c, _)| c).collect())
        });
        let ints: Vec<usize> = schema
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.data_type() == &DataType::Int64)
            .map(|(i, _)| i)
            .collect();
        let decode_schema = if ints.is_empty() {
            schema.schema.clone()
        } else {
            let fields: Vec<arrow::datatypes::FieldRef> = schema
                .schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if ints.contains(&i) {
                        Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
                    } else {
                        f.clone()
                    }
                })
                .collect();
            Arc::new(arrow::datatypes::Schema::new(fields))
        };
        Self {
            stream: schema.stream.clone(),
            schema: schema.schema.clone(),
            decode_schema,
            ints,
            text_columns,
            json_text,
            bytes: Vec::with_capacity(1 << 20),
            ends: Vec::with_capacity(batch_size.min(1 << 16)),
            lines: Vec::with_capacity(batch_size.min(1 << 16)),
            origin: origin.to_string(),
            batch_size: batch_size.max(1),
            on_error,
        }
    }

    /// The Arrow schema batches are decoded into.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Where the buffered lines come from (for errors); decode the
    /// buffered records before changing it.
    pub fn set_origin(&mut self, origin: &str) {
        origin.clone_into(&mut self.origin);
    }

    /// Records buffered.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Nothing buffered.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Time to decode: a batch's worth of rows or bytes is buffered.
    pub fn is_full(&self) -> bool {
        self.ends.len() >= self.batch_size || self.bytes.len() >= MAX_BUFFER_BYTES
    }

    /// Append one RECORD's `record` object, read at `line`.
    pub fn push(&mut self, record: &[u8], line: u64) -> Result<()> {
        if let Some(columns) = &self.text_columns {
            text_in_place(record, columns, &mut self.bytes)
                .map_err(|e| self.bad(line, None, format!("`record` is not valid JSON: {e}")))?;
        } else if self.json_text {
            let mut value: Value = serde_json::from_slice(record)
                .map_err(|e| self.bad(line, None, format!("`record` is not valid JSON: {e}")))?;
            text_for_json_columns(&mut value, self.schema.fields());
            serde_json::to_writer(&mut self.bytes, &value)
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        } else {
            self.bytes.extend_from_slice(record);
        }
        self.bytes.push(b'\n');
        self.ends.push(self.bytes.len());
        self.lines.push(line);
        Ok(())
    }

    /// Decode what is buffered: a `Batch` of the good rows and, with
    /// `on_error: quarantine`, a `Quarantine` of the bad ones. With `fail`, a
    /// bad record is an error naming its line, column and stream.
    pub fn take(&mut self) -> Result<Vec<Message>> {
        if self.ends.is_empty() {
            return Ok(Vec::new());
        }
        let result = match self.decode(&self.bytes, self.ends.len()) {
            Ok(batch) => vec![Message::Batch(batch)],
            Err(_) => self.decode_one_by_one()?,
        };
        self.bytes.clear();
        self.ends.clear();
        self.lines.clear();
        Ok(result)
    }

    fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i] - 1]
    }

    /// The slow path: find the records that do not decode.
    fn decode_one_by_one(&self) -> Result<Vec<Message>> {
        let mut good = Vec::with_capacity(self.bytes.len());
        let mut good_rows = 0usize;
        let mut quarantine = QuarantineBuilder::default();
        let mut bad_rows = 0usize;
        for i in 0..self.ends.len() {
            let record = self.record(i);
            match self.decode(record, 1) {
                Ok(_) => {
                    good.extend_from_slice(record);
                    good.push(b'\n');
                    good_rows += 1;
                }
                Err((column, reason)) => {
                    if self.on_error == OnError::Fail {
                        return Err(self.bad(self.lines[i], column, reason));
                    }
                    quarantine.push(&QuarantinedRow {
                        file: Some(self.origin.clone()),
                        line: Some(self.lines[i]),
                        column,
                        value: None,
                        reason: format!("stream `{}`: {reason}", self.stream),
                        record: Some(String::from_utf8_lossy(record).into_owned()),
                    });
                    bad_rows += 1;
                }
            }
        }
        let mut out = Vec::new();
        if good_rows > 0 {
            let batch = self.decode(&good, good_rows).map_err(|(_, e)| {
                ConnectorError::Internal(format!(
                    "stream `{}`: records that decode alone fail together: {e}",
                    self.stream
                ))
            })?;
            out.push(Message::Batch(batch));
        }
        if bad_rows > 0 {
            out.push(Message::Quarantine(
                quarantine
                    .finish()
                    .map_err(|e| ConnectorError::Internal(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    /// `rows` records into a batch of the stream's schema; on failure the
    /// column at fault (when known) and why.
    fn decode(
        &self,
        bytes: &[u8],
        rows: usize,
    ) -> std::result::Result<RecordBatch, (Option<String>, String)> {
        let raw = decode_all(&self.decode_schema, bytes, rows).map_err(|e| {
            let text = e.to_string();
            (column_of(&text), clean(&text))
        })?;
        if self.ints.is_empty() {
            return Ok(raw);
        }
        let mut columns = raw.columns().to_vec();
        for &i in &self.ints {
            let name = self.schema.field(i).name();
            let text = columns[i]
                .as_string_opt::<i32>()
                .ok_or_else(|| (Some(name.clone()), "not decoded as text".to_string()))?;
            let mut ints = Int64Builder::with_capacity(text.len());
            for v in text.iter() {
                match v {
                    None => ints.append_null(),
                    Some(s) => match strict_i64(s) {
                        Some(n) => ints.append_value(n),
                        None => {
                            return Err((
                                Some(name.clone()),
                                format!(
                                    "`{}` is not an integer",
                                    sluice_core::connector::truncate(s, 60)
                                ),
                            ));
                        }
                    },
                }
            }
            columns[i] = Arc::new(ints.finish());
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| (None, e.to_string()))
    }

    fn bad(&self, line: u64, column: Option<String>, reason: String) -> ConnectorError {
        ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(self.origin.clone()),
                line: Some(line),
                column,
                ..Default::default()
            },
            message: format!("stream `{}`: the record does not match its SCHEMA: {reason}", self.stream),
            hint: Some("the tap sent a value its own SCHEMA does not allow; fix the tap or its config, set `columns:` to leave the column out, or set `on_error: quarantine` to set such records aside and load the rest".into()),
        }
    }
}

fn decode_all(
    schema: &SchemaRef,
    bytes: &[u8],
    rows: usize,
) -> std::result::Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows + 1)
        .with_coerce_primitive(true)
        .build_decoder()?;
    let used = decoder.decode(bytes)?;
    if used != bytes.len() {
        return Err(ArrowError::JsonError("the decoder stopped early".into()));
    }
    let batch = decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    if batch.num_rows() != rows {
        return Err(ArrowError::JsonError(format!(
            "{} records decoded into {} rows",
            rows,
            batch.num_rows()
        )));
    }
    Ok(batch)
}

/// An integer's text as `i64`: digits, or a number with no fraction
/// (`1.0`, `1e3`) within ±2^53; anything else (`1.9`, `"abc"`) is `None`.
fn strict_i64(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let f: f64 = s.parse().ok()?;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// `whilst decoding field 'amount': …` → `amount`.
fn column_of(error: &str) -> Option<String> {
    let start = error.find("field '")? + "field '".len();
    let end = error[start..].find('\'')?;
    Some(error[start..start + end].to_string())
}

fn clean(error: &str) -> String {
    error
        .trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .to_string()
}

/// Copy `record` to `out`, turning the object and array values of the
/// top-level `columns` into JSON strings holding their text (as the tap
/// wrote it: numbers keep every digit).
fn text_in_place(
    record: &[u8],
    columns: &std::collections::HashSet<String>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    use super::message::{skip_string, skip_value, skip_ws, string_at};
    let err = |e: super::message::MessageError| e.message;
    let start_len = out.len();
    let fail = |out: &mut Vec<u8>, m: String| {
        out.truncate(start_len);
        Err(m)
    };
    let mut i = skip_ws(record, 0);
    if record.get(i) != Some(&b'{') {
        return fail(out, "not an object".into());
    }
    let mut copied = 0;
    i = skip_ws(record, i + 1);
    if record.get(i) == Some(&b'}') {
        out.extend_from_slice(record);
        return Ok(());
    }
    loop {
        if record.get(i) != Some(&b'"') {
            return fail(out, format!("expected a key at column {}", i + 1));
        }
        let key_end = match skip_string(record, i) {
            Ok(e) => e,
            Err(e) => return fail(out, err(e)),
        };
        let wanted = match string_at(&record[i..key_end]) {
            Ok(k) => columns.contains(k.as_ref()),
            Err(e) => return fail(out, err(e)),
        };
        i = skip_ws(record, key_end);
        if record.get(i) != Some(&b':') {
            return fail(out, format!("expected `:` at column {}", i + 1));
        }
        i = skip_ws(record, i + 1);
        let end = match skip_value(record, i) {
            Ok(e) => e,
            Err(e) => return fail(out, err(e)),
        };
        if wanted && matches!(record[i], b'{' | b'[') {
            // Checked to be JSON (without building it), as it is kept as JSON.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&record[i..end]) {
                return fail(out, e.to_string());
            }
            out.extend_from_slice(&record[copied..i]);
            let text = match std::str::from_utf8(&record[i..end]) {
                Ok(t) => t,
                Err(_) => return fail(out, "not UTF-8".into()),
            };
            if let Err(e) = serde_json::to_writer(&mut *out, text) {
                return fail(out, e.to_string());
            }
            copied = end;
        }
        i = skip_ws(record, end);
        match record.get(i) {
            Some(b',') => i = skip_ws(record, i + 1),
            Some(b'}') => break,
            _ => return fail(out, format!("expected `,` or `}}` at column {}", i + 1)),
        }
    }
    out.extend_from_slice(&record[copied..]);
    Ok(())
}

/// Values of columns kept as JSON text become their JSON text (strings stay
/// as they are), inside structs and lists too.
fn text_for_json_columns(value: &mut Value, fields: &Fields) {
    let Value::Object(map) = value else { return };
    for field in fields {
        if let Some(v) = map.get_mut(field.name()) {
            fix(v, field.data_type());
        }
    }
}

fn fix(v: &mut Value, data_type: &DataType) {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => {
            if matches!(v, Value::Object(_) | Value::Array(_)) {
                *v = Value::String(v.to_string());
            }
        }
        DataType::Struct(children) => text_for_json_columns(v, children),
        DataType::List(item) | DataType::LargeList(item) => {
            if let Value::Array(items) = v {
                for i in items {
                    fix(i, item.data_type());
                }
            }
        }
        _ => {}
    }
}

/// A stream's schema from a SCHEMA message, for a [`RecordBuffer`].
pub fn same_schema(a: &StreamSchema, b: &StreamSchema) -> bool {
    Arc::ptr_eq(&a.schema, &b.schema) || a.schema == b.schema
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Int64Type;
    use serde_json::json;

    use super::*;
    use crate::singer::stream_schema;

    fn schema() -> StreamSchema {
        stream_schema(
            "orders",
            &json!({"properties": {
                "id": {"type": "integer"},
                "amount": {"type": ["number", "null"]},
                "at": {"type": "string", "format": "date-time"},
                "extra": {"type": "object"},
                "tags": {"type": "array", "items": {"type": "string"}}
            }}),
            &["id".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn decodes_records_with_json_text_columns() {
        let s = schema();
        let mut b = RecordBuffer::new(&s, "tap output", 10, OnError::Fail);
        b.push(
            br#"{"id": 1, "amount": 2.5, "at": "2024-01-02T03:04:05Z", "extra": {"a": [1]}, "tags": ["x"]}"#,
            1,
        )
        .unwrap();
        b.push(br#"{"id": "2", "extra": "plain", "unknown": true}"#, 2)
            .unwrap();
        let out = b.take().unwrap();
        let [Message::Batch(batch)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(batch.num_rows(), 2);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1)), (1, 2));
        let extra = batch.column(3).as_string::<i32>();
        assert_eq!(extra.value(0), r#"{"a": [1]}"#);
        assert_eq!(extra.value(1), "plain");
        assert!(batch.column(2).is_valid(0) && batch.column(2).is_null(1));
        assert!(b.is_empty());
    }

    #[test]
    fn json_text_streams_keep_every_digit() {
        let s = stream_schema(
            "t",
            &json!({"properties": {
                "extra": {"type": "object"},
                "qty": {"type": "string", "format": "singer.decimal"}
            }}),
            &[],
        )
        .unwrap();
        let mut b = RecordBuffer::new(&s, "o", 10, OnError::Fail);
        b.push(
            br#"{"extra": {"k": "a \"q\"", "n": 12345678901234567.8901}, "qty": 12345678901234567.8901}"#,
            1,
        )
        .unwrap();
        let out = b.take().unwrap();
        let [Message::Batch(batch)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            batch.column(0).as_string::<i32>().value(0),
            r#"{"k": "a \"q\"", "n": 12345678901234567.8901}"#
        );
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "12345678901234567.8901"
        );
    }

    #[test]
    fn a_bad_record_is_located_or_quarantined() {
        let s = schema();
        let mut b = RecordBuffer::new(&s, "tap `t` output", 10, OnError::Fail);
        b.push(br#"{"id": 1}"#, 7).unwrap();
        b.push(br#"{"id": "abc"}"#, 8).unwrap();
        let e = b.take().unwrap_err().to_string();
        assert!(e.contains("line 8"), "{e}");
        assert!(e.contains("stream `orders`"), "{e}");
        assert!(e.contains("column `id`"), "{e}");

        // A fraction in an integer column is a bad record, never truncated.
        let mut b = RecordBuffer::new(&s, "tap `t` output", 10, OnError::Fail);
        b.push(br#"{"id": 1.0}"#, 1).unwrap();
        b.push(br#"{"id": 1.9}"#, 2).unwrap();
        let e = b.take().unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("`1.9` is not an integer"),
            "{e}"
        );

        let mut b = RecordBuffer::new(&s, "tap `t` output", 10, OnError::Quarantine);
        b.push(br#"{"id": 1}"#, 7).unwrap();
        b.push(br#"{"id": "abc"}"#, 8).unwrap();
        b.push(br#"{"id": 3}"#, 9).unwrap();
        let out = b.take().unwrap();
        let [Message::Batch(good), Message::Quarantine(bad)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(good.num_rows(), 2);
        assert_eq!(bad.num_rows(), 1);
        let lines = bad
            .column_by_name("line")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>();
        assert_eq!(lines.value(0), 8);
    }
}
