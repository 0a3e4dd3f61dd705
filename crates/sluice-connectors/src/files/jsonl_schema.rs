//! The schema of a JSON Lines file, from a sample of its lines.
//!
//! `arrow_json` infers the types of the first `infer_rows` parseable lines
//! (lines that do not parse are left to the decoder, which reports them).
//! Then: top-level string fields whose sampled values are all dates or
//! timestamps become Date32 / Timestamp(µs) as for CSV, fields NULL in the
//! whole sample become strings, and declared `columns:` win (and are added
//! when the sample lacks them). With `json: {nested: json}` objects and
//! arrays are turned into their JSON text before inference, so they infer
//! as strings.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_json::reader::infer_json_schema_from_iterator;
use serde_json::{Map, Value};
use sluice_core::config::NestedMode;
use sluice_core::connector::ConnectorError;

use super::config::StreamConfig;
use super::decoder::io_error;
use super::infer::{Guess, keep_known, refine_strings};
use super::listing::FileEntry;

/// The schema of `file`; `None` when it has no non-blank line.
pub(crate) fn infer_schema(
    file: &FileEntry,
    stream: &StreamConfig,
    known: Option<&Schema>,
) -> Result<Option<SchemaRef>, ConnectorError> {
    let nested_json = stream.spec.json.nested == NestedMode::Json;
    let handle = File::open(&file.path).map_err(|e| io_error(&file.rel, &file.path, e))?;
    let mut sample = BufReader::new(handle.take(file.size));
    let mut values = Vec::new();
    let mut lines = 0;
    let mut buf = Vec::new();
    while lines < stream.spec.infer_rows {
        buf.clear();
        let n = sample
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(&file.rel, &file.path, e))?;
        if n == 0 {
            break;
        }
        if buf.trim_ascii().is_empty() {
            continue;
        }
        lines += 1;
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&buf) {
            values.push(Value::Object(if nested_json {
                flatten_nested(map)
            } else {
                map
            }));
        }
    }
    if lines == 0 {
        return Ok(None);
    }
    let inferred = infer_json_schema_from_iterator(values.iter().map(Ok)).map_err(|e| {
        ConnectorError::config(
            format!("Cannot infer the columns of `{}` from its first {} lines: {e}", file.rel, stream.spec.infer_rows),
            Some("declare the conflicting columns' types in `columns:`, or set `json: {nested: json}` to keep nested values as JSON text".to_string()),
        )
    })?;
    let refined = refine_strings(&inferred, &temporal_guesses(&inferred, &values));
    let refined = match known {
        Some(k) => Schema::new(
            refined
                .fields()
                .iter()
                .map(|f| {
                    let kt = k.field_with_name(f.name()).ok().map(|kf| kf.data_type());
                    f.as_ref()
                        .clone()
                        .with_data_type(keep_known(f.data_type().clone(), kt))
                })
                .collect::<Vec<_>>(),
        ),
        None => refined,
    };
    Ok(Some(Arc::new(with_declared(refined, stream))))
}

/// Top-level objects and arrays → their JSON text.
pub(crate) fn flatten_nested(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .map(|(k, v)| match v {
            Value::Object(_) | Value::Array(_) => (k, Value::String(v.to_string())),
            v => (k, v),
        })
        .collect()
}

/// Date/timestamp candidates of the top-level string fields.
fn temporal_guesses(schema: &Schema, values: &[Value]) -> Vec<(String, Guess)> {
    schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Utf8)
        .map(|f| {
            let mut guess = Guess::temporal_only();
            for v in values {
                match v.get(f.name()) {
                    Some(Value::String(s)) => guess.observe(s),
                    Some(Value::Null) | None => {}
                    Some(_) => guess.observe(""),
                }
            }
            (f.name().clone(), guess)
        })
        .collect()
}

/// Declared types replace inferred ones; declared columns the sample lacks
/// are added; columns NULL in the whole sample become strings.
fn with_declared(schema: Schema, stream: &StreamConfig) -> Schema {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(null_to_utf8(f.data_type()))
        })
        .collect();
    for (name, dt) in &stream.declared {
        match fields.iter_mut().find(|f| f.name() == name) {
            Some(f) => *f = f.clone().with_data_type(dt.clone()),
            None => fields.push(Field::new(name, dt.clone(), true)),
        }
    }
    Schema::new(fields)
}

/// `Null` (no non-NULL value in the sample) → `Utf8`, also inside lists and structs.
fn null_to_utf8(dt: &DataType) -> DataType {
    match dt {
        DataType::Null => DataType::Utf8,
        DataType::List(f) => DataType::List(Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(null_to_utf8(f.data_type())),
        )),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| {
                    Arc::new(
                        f.as_ref()
                            .clone()
                            .with_data_type(null_to_utf8(f.data_type())),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
