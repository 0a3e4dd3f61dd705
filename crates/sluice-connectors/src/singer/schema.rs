//! A Singer SCHEMA message's JSON Schema → the stream's Arrow schema.
//!
//! Taps emit a small, loose subset of JSON Schema (see the Singer research
//! notes, § 1.6). The mapping, one property at a time:
//!
//! ```text
//! JSON Schema                                        Arrow
//! ------------------------------------------------   ---------------------------------
//! "integer"                                          Int64
//! "number"                                           Float64
//! ["integer","number"] (integer ⊂ number)            Float64
//! format "singer.decimal" | "x-singer.decimal"
//!   with precision p ≤ 38 (scale s, default 0)       Decimal128(p, s)
//!   with precision p > 38                            Utf8, exact text   (noted)
//!   without precision                                Utf8, exact text   (noted)
//! "string" + format "date-time"                      Timestamp(µs, "UTC")
//! "string" + format "date"                           Date32
//! "string" + format "time"                           Time64(µs)
//! "string" (any other format)                        Utf8
//! "boolean"                                          Boolean
//! "object" with non-empty properties                 Struct (recursively)
//! "object" without properties / additionalProperties Utf8, JSON text    (noted)
//! "array" with an items schema                       List(item)
//! "array" without items, or tuple items              Utf8, JSON text    (noted)
//! {} / no "type" / true                              Utf8, JSON text    (noted)
//! type "null" alone                                  Utf8               (noted)
//! [T, "null"], anyOf/oneOf [T, {"type":"null"}]      T
//! several non-null types (list or anyOf/oneOf)       Utf8, JSON text    (noted)
//!   … unless every alternative maps to one type      that type
//! $ref "#/definitions/X" or "#/$defs/X"              the referenced schema
//! any other $ref                                     error
//! ```
//!
//! Every field is nullable, key columns included, as in
//! [`TableInfo::schema`](crate::db::TableInfo::schema): a value that cannot be
//! read becomes a bad record and its row is dropped after the batch is built,
//! and a NULL key is the engine's check to make, not the schema's. "null" in a
//! type list therefore changes nothing but is accepted everywhere.
//!
//! A decimal without a precision is kept as its exact text rather than given a
//! guessed `Decimal128(38, s)`: the SDK reads numbers with
//! `parse_float=decimal.Decimal`, so such a value may have any number of
//! digits, and a guessed scale would silently round it.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};
use sluice_core::connector::ConnectorError;

/// The widest decimal Arrow's `Decimal128` holds.
const MAX_DECIMAL_PRECISION: u64 = 38;

/// How many `$ref`s may be followed in a row before the schema is taken to
/// be recursive.
const MAX_REF_DEPTH: usize = 32;

/// The formats that mark a decimal: the pipelinewise spelling (also the SDK's
/// `SingerDecimalType`) and the SDK SQL taps' `use_singer_decimal` spelling.
const DECIMAL_FORMATS: [&str; 2] = ["singer.decimal", "x-singer.decimal"];

/// A result whose error is a [`SchemaError`].
pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

/// A stream's Arrow schema, mapped from its SCHEMA message.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSchema {
    /// The stream.
    pub stream: String,
    /// The columns, in the order of the schema's `properties`; all nullable.
    pub schema: SchemaRef,
    /// The SCHEMA message's `key_properties`, each checked to be a column.
    pub key_properties: Vec<String>,
    /// Why a column, or a field inside one, is kept as text.
    pub notes: Vec<ColumnNote>,
}

impl StreamSchema {
    /// The notes about `column` joined into one line (for `discover`), or
    /// `None` when it has none.
    pub fn note(&self, column: &str) -> Option<String> {
        let lines: Vec<String> = self
            .notes
            .iter()
            .filter(|n| n.column == column)
            .map(|n| format!("`{}`: {}", n.path, n.reason))
            .collect();
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

/// Why one value is kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnNote {
    /// The top-level column it belongs to.
    pub column: String,
    /// Its JSON path in the schema (`properties.address.properties.extra`).
    pub path: String,
    /// Why.
    pub reason: TextReason,
}

/// Why a value is kept as text instead of a typed Arrow value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextReason {
    /// `{}`, `true` or a schema without `type`: any JSON value (JSON text).
    AnyValue,
    /// `type: "null"` and nothing else: always null.
    OnlyNull,
    /// Several non-null types that map to different Arrow types (JSON text).
    Union(Vec<String>),
    /// An object without `properties` (JSON text).
    FreeformObject,
    /// An array without an `items` schema, or with tuple `items` (JSON text).
    UntypedArray,
    /// A decimal without `precision` (exact decimal text).
    DecimalWithoutPrecision,
    /// A decimal wider than `Decimal128` holds (exact decimal text).
    DecimalTooWide {
        /// The declared precision.
        precision: u64,
    },
}

impl fmt::Display for TextReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AnyValue => f.write_str("no `type`: any JSON value, kept as JSON text"),
            Self::OnlyNull => f.write_str("type `null` only: always null"),
            Self::Union(types) => write!(
                f,
                "several types ({}), kept as JSON text",
                types
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::FreeformObject => f.write_str("object without `properties`, kept as JSON text"),
            Self::UntypedArray => f.write_str("array without an `items` schema, kept as JSON text"),
            Self::DecimalWithoutPrecision => {
                f.write_str("decimal without `precision`, kept as exact text")
            }
            Self::DecimalTooWide { precision } => write!(
                f,
                "decimal precision {precision} is over {MAX_DECIMAL_PRECISION}, kept as exact text"
            ),
        }
    }
}

/// A SCHEMA message Sluice cannot map. Every variant names the stream, and
/// the JSON path where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The top-level schema is not an object with `properties`.
    #[error("Stream `{stream}`: the SCHEMA message's `schema` is not an object with `properties`")]
    NotARecordSchema {
        /// The stream.
        stream: String,
    },
    /// A (sub)schema is neither an object nor a boolean.
    #[error("Stream `{stream}`: `{path}` is not a JSON Schema (found {found})")]
    NotASchema {
        /// The stream.
        stream: String,
        /// JSON path of the value.
        path: String,
        /// What kind of JSON value it is.
        found: String,
    },
    /// `type` is not a JSON Schema type name or a list of them.
    #[error("Stream `{stream}`: `{path}` has `type` {found}, which is not a JSON Schema type")]
    BadType {
        /// The stream.
        stream: String,
        /// JSON path of the schema holding the `type`.
        path: String,
        /// The `type` value, as JSON.
        found: String,
    },
    /// A `$ref` that is not a local definition, or one that is missing or recursive.
    #[error("Stream `{stream}`: `{path}` has `$ref` `{reference}`, which cannot be resolved")]
    UnresolvedRef {
        /// The stream.
        stream: String,
        /// JSON path of the schema holding the `$ref`.
        path: String,
        /// The reference.
        reference: String,
    },
    /// A decimal whose `precision` or `scale` is not usable.
    #[error(
        "Stream `{stream}`: `{path}` is a decimal with precision {precision} and scale {scale}; \
         precision must be a positive integer and scale an integer from 0 to the precision"
    )]
    BadDecimal {
        /// The stream.
        stream: String,
        /// JSON path of the decimal.
        path: String,
        /// `precision`, as JSON.
        precision: String,
        /// `scale`, as JSON (`null` when absent).
        scale: String,
    },
    /// A key property that is not a top-level property.
    #[error("Stream `{stream}`: key property `{key}` is not one of the schema's `properties`")]
    MissingKey {
        /// The stream.
        stream: String,
        /// The key property.
        key: String,
    },
}

impl SchemaError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UnresolvedRef { .. } => Some(
                "Singer taps must resolve `$ref` before emitting a SCHEMA; Sluice resolves only \
                 local `#/definitions/…` and `#/$defs/…` references. Report it to the tap."
                    .into(),
            ),
            Self::MissingKey { .. } => Some(
                "`key_properties` must name top-level `properties`; this is a bug in the tap, \
                 or a catalog selection that deselected a key column."
                    .into(),
            ),
            Self::NotARecordSchema { .. }
            | Self::NotASchema { .. }
            | Self::BadType { .. }
            | Self::BadDecimal { .. } => None,
        }
    }
}

impl From<SchemaError> for ConnectorError {
    fn from(e: SchemaError) -> Self {
        let hint = e.hint();
        ConnectorError::config(e.to_string(), hint)
    }
}

/// Maps the `schema` and `key_properties` of a SCHEMA message for `stream`.
pub fn stream_schema(
    stream: &str,
    schema: &Value,
    key_properties: &[String],
) -> Result<StreamSchema> {
    let not_record = || SchemaError::NotARecordSchema {
        stream: stream.to_string(),
    };
    let root = schema.as_object().ok_or_else(not_record)?;
    if let Some(t) = root.get("type") {
        let is_object = match t {
            Value::String(s) => s == "object",
            Value::Array(list) => list.iter().any(|v| v == "object"),
            _ => false,
        };
        if !is_object {
            return Err(not_record());
        }
    }
    let properties = root
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(not_record)?;
    let mut mapper = Mapper {
        stream,
        root: schema,
        column: String::new(),
        notes: Vec::new(),
    };
    let mut fields = Vec::with_capacity(properties.len());
    for (name, property) in properties {
        mapper.column.clone_from(name);
        let data_type = mapper.map(property, &format!("properties.{name}"), 0)?;
        fields.push(Field::new(name, data_type, true));
    }
    if let Some(key) = key_properties
        .iter()
        .find(|k| !properties.contains_key(k.as_str()))
    {
        return Err(SchemaError::MissingKey {
            stream: stream.to_string(),
            key: key.clone(),
        });
    }
    Ok(StreamSchema {
        stream: stream.to_string(),
        schema: Arc::new(Schema::new(fields)),
        key_properties: key_properties.to_vec(),
        notes: mapper.notes,
    })
}

/// Walks one column's schema, collecting notes.
struct Mapper<'a> {
    stream: &'a str,
    /// The whole schema, for `$ref`s.
    root: &'a Value,
    /// The top-level column being mapped.
    column: String,
    notes: Vec<ColumnNote>,
}

impl<'a> Mapper<'a> {
    fn map(&mut self, schema: &'a Value, path: &str, depth: usize) -> Result<DataType> {
        let obj = match schema {
            Value::Object(obj) => obj,
            Value::Bool(true) => return Ok(self.text(path, TextReason::AnyValue)),
            other => {
                return Err(SchemaError::NotASchema {
                    stream: self.stream.to_string(),
                    path: path.to_string(),
                    found: json_kind(other).to_string(),
                });
            }
        };
        if let Some(reference) = obj.get("$ref") {
            let target = self.resolve(reference, path, depth)?;
            return self.map(target, path, depth + 1);
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(alternatives) = obj.get(keyword) {
                return self.alternatives(alternatives, &format!("{path}.{keyword}"), depth);
            }
        }
        let Some(types) = self.types(obj, path)? else {
            return Ok(self.text(path, TextReason::AnyValue));
        };
        let mut non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        non_null.dedup();
        if non_null.len() == 2 && non_null.contains(&"integer") && non_null.contains(&"number") {
            non_null = vec!["number"];
        }
        match non_null.as_slice() {
            [] => Ok(self.text(path, TextReason::OnlyNull)),
            [one] => self.single(one, obj, path, depth),
            several => {
                let reason = TextReason::Union(several.iter().map(|t| t.to_string()).collect());
                Ok(self.text(path, reason))
            }
        }
    }

    /// One non-null JSON type with the keywords beside it.
    fn single(
        &mut self,
        json_type: &str,
        obj: &'a Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<DataType> {
        let format = obj.get("format").and_then(Value::as_str);
        if format.is_some_and(|f| DECIMAL_FORMATS.contains(&f))
            && matches!(json_type, "string" | "number" | "integer")
        {
            return self.decimal(obj, path);
        }
        Ok(match json_type {
            "integer" => DataType::Int64,
            "number" => DataType::Float64,
            "boolean" => DataType::Boolean,
            "string" => match format {
                Some("date-time") => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Some("date") => DataType::Date32,
                Some("time") => DataType::Time64(TimeUnit::Microsecond),
                _ => DataType::Utf8,
            },
            "object" => match obj.get("properties").and_then(Value::as_object) {
                Some(properties) if !properties.is_empty() => {
                    let mut fields = Vec::with_capacity(properties.len());
                    for (name, property) in properties {
                        let child = format!("{path}.properties.{name}");
                        fields.push(Field::new(name, self.map(property, &child, depth)?, true));
                    }
                    DataType::Struct(Fields::from(fields))
                }
                _ => self.text(path, TextReason::FreeformObject),
            },
            "array" => match obj.get("items") {
                Some(items @ (Value::Object(_) | Value::Bool(true))) => {
                    let item = self.map(items, &format!("{path}.items"), depth)?;
                    DataType::List(Arc::new(Field::new_list_field(item, true)))
                }
                _ => self.text(path, TextReason::UntypedArray),
            },
            other => {
                return Err(SchemaError::BadType {
                    stream: self.stream.to_string(),
                    path: path.to_string(),
                    found: format!("\"{other}\""),
                });
            }
        })
    }

    /// `anyOf` / `oneOf`: null alternatives make it nullable; the rest must
    /// agree on one Arrow type (or be integer and number) or it is JSON text.
    fn alternatives(&mut self, value: &'a Value, path: &str, depth: usize) -> Result<DataType> {
        let Some(alternatives) = value.as_array() else {
            return Err(SchemaError::NotASchema {
                stream: self.stream.to_string(),
                path: path.to_string(),
                found: json_kind(value).to_string(),
            });
        };
        let notes_before = self.notes.len();
        let mut mapped: Vec<DataType> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, alternative) in alternatives.iter().enumerate() {
            if is_null_only(alternative) {
                continue;
            }
            let data_type = self.map(alternative, &format!("{path}[{i}]"), depth)?;
            names.push(describe(alternative));
            if !mapped.contains(&data_type) {
                mapped.push(data_type);
            }
        }
        if mapped.len() == 2
            && mapped.contains(&DataType::Int64)
            && mapped.contains(&DataType::Float64)
        {
            mapped = vec![DataType::Float64];
        }
        match mapped.len() {
            0 => Ok(self.text(path, TextReason::OnlyNull)),
            1 => Ok(mapped.remove(0)),
            _ => {
                self.notes.truncate(notes_before);
                Ok(self.text(path, TextReason::Union(names)))
            }
        }
    }

    fn decimal(&mut self, obj: &Map<String, Value>, path: &str) -> Result<DataType> {
        let Some(precision) = obj.get("precision") else {
            return Ok(self.text(path, TextReason::DecimalWithoutPrecision));
        };
        let scale = obj.get("scale");
        let bad = || SchemaError::BadDecimal {
            stream: self.stream.to_string(),
            path: path.to_string(),
            precision: precision.to_string(),
            scale: scale.map_or_else(|| "null".to_string(), Value::to_string),
        };
        let p = precision.as_u64().filter(|p| *p > 0).ok_or_else(bad)?;
        let s = match scale {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().filter(|s| *s <= p).ok_or_else(bad)?,
        };
        if p > MAX_DECIMAL_PRECISION {
            return Ok(self.text(path, TextReason::DecimalTooWide { precision: p }));
        }
        let p = u8::try_from(p).map_err(|_| bad())?;
        let s = i8::try_from(s).map_err(|_| bad())?;
        Ok(DataType::Decimal128(p, s))
    }

    /// `type` as a list of names; `None` when absent.
    fn types(&self, obj: &'a Map<String, Value>, path: &str) -> Result<Option<Vec<&'a str>>> {
        let bad = |t: &Value| SchemaError::BadType {
            stream: self.stream.to_string(),
            path: path.to_string(),
            found: t.to_string(),
        };
        match obj.get("type") {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
            Some(t @ Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().ok_or_else(|| bad(t)))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(t) => Err(bad(t)),
        }
    }

    /// Follows a local `#/definitions/NAME` or `#/$defs/NAME`.
    fn resolve(&self, reference: &Value, path: &str, depth: usize) -> Result<&'a Value> {
        let text = reference.as_str().unwrap_or_default();
        let target = (depth < MAX_REF_DEPTH)
            .then(|| {
                ["#/definitions/", "#/$defs/"].iter().find_map(|prefix| {
                    let name = text.strip_prefix(prefix)?;
                    let section = &prefix[2..prefix.len() - 1];
                    self.root.get(section)?.get(name)
                })
            })
            .flatten();
        target.ok_or_else(|| SchemaError::UnresolvedRef {
            stream: self.stream.to_string(),
            path: path.to_string(),
            reference: if text.is_empty() {
                reference.to_string()
            } else {
                text.to_string()
            },
        })
    }

    /// Records why `path` is text and returns `Utf8`.
    fn text(&mut self, path: &str, reason: TextReason) -> DataType {
        self.notes.push(ColumnNote {
            column: self.column.clone(),
            path: path.to_string(),
            reason,
        });
        DataType::Utf8
    }
}

/// True for `{"type": "null"}` and `{"type": ["null"]}`.
fn is_null_only(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(s)) => s == "null",
        Some(Value::Array(list)) => !list.is_empty() && list.iter().all(|t| t == "null"),
        _ => false,
    }
}

/// A short name for an `anyOf` alternative: its non-null types and format.
fn describe(schema: &Value) -> String {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    let name = if types.is_empty() {
        "any".to_string()
    } else {
        types.join("|")
    };
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{name} ({format})"),
        None => name,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
