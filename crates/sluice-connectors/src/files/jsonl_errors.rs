//! JSON Lines errors in Sluice's words.
//!
//! arrow-json says `whilst decoding field 'id': failed to parse "x" as Int64`;
//! a quarantine row or an error should say column `id`, value `x`,
//! `expected int64 (inferred from the first 10000 lines)`, as for CSV.

use arrow::datatypes::Schema;
use arrow::error::ArrowError;
use sluice_core::types::type_name;

use super::decoder::cap_value;

/// A bad line: what is wrong and, when arrow names it, the field and value.
pub(crate) struct Problem {
    pub(crate) column: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) reason: String,
}

impl Problem {
    pub(crate) fn plain(reason: String) -> Self {
        Self {
            column: None,
            value: None,
            reason,
        }
    }
}

/// Turn arrow-json's wording into ours:
/// `whilst decoding field 'id': failed to parse "x" as Int64` → column `id`,
/// value `x`, `expected int64 (inferred from the first 10000 lines)`.
pub(crate) fn problem(
    e: &ArrowError,
    schema: &Schema,
    declared: &[String],
    infer_rows: usize,
) -> Problem {
    let text = match e {
        ArrowError::JsonError(t) | ArrowError::ParseError(t) => t.as_str(),
        _ => return Problem::plain(e.to_string()),
    };
    let mut inner = text;
    let mut path = Vec::new();
    while let Some((name, rest)) = inner
        .strip_prefix("whilst decoding field '")
        .and_then(|r| r.split_once("': "))
    {
        path.push(name);
        inner = rest;
    }
    if let Some(name) = inner
        .strip_prefix("column '")
        .and_then(|r| r.strip_suffix("' missing from schema"))
    {
        path.push(name);
        return Problem {
            column: path.first().map(|c| c.to_string()),
            value: None,
            reason: format!(
                "field `{}` is not in the schema inferred from the first {infer_rows} lines",
                path.join(".")
            ),
        };
    }
    let value = inner
        .strip_prefix("failed to parse \"")
        .and_then(|r| r.rsplit_once("\" as "))
        .map(|(v, _)| v)
        .or_else(|| inner.rsplit_once(" got ").map(|(_, v)| v))
        .map(|v| cap_value(v.to_string()));
    let column = path.first().map(|c| c.to_string());
    let reason = match (&path[..], value.is_some()) {
        ([name], true) => {
            let dt = schema
                .field_with_name(name)
                .map(|f| type_name(f.data_type()));
            let origin = if declared.iter().any(|d| d == name) {
                " (declared in `columns:`)".to_string()
            } else {
                format!(" (inferred from the first {infer_rows} lines)")
            };
            match dt {
                Ok(dt) => format!("expected {dt}{origin}"),
                Err(_) => inner.to_string(),
            }
        }
        _ if inner.starts_with("expected { got ") => "expected a JSON object".to_string(),
        _ if inner.starts_with("Truncated record") => {
            "the line ends inside a JSON value (truncated record)".to_string()
        }
        _ => inner.to_string(),
    };
    Problem {
        column,
        value,
        reason,
    }
}
