//! A bookmark value, the fingerprints of the rows at it, and their JSON form.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value, json};

/// One cursor value and the rows seen at it.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    pub(super) value: ArrayRef,
    pub(super) seen: HashSet<u64>,
    pub(super) complete: bool,
}

impl PartialEq for Mark {
    fn eq(&self, other: &Self) -> bool {
        self.value.as_ref() == other.value.as_ref()
            && self.seen == other.seen
            && self.complete == other.complete
    }
}

impl Mark {
    pub(super) fn from_json(obj: &Map<String, Value>) -> Result<Option<Mark>, String> {
        let (Some(ty), Some(value)) = (obj.get("type"), obj.get("value")) else {
            return Ok(None);
        };
        let ty = ty.as_str().ok_or("`type` is not a string")?;
        let value = value.as_str().ok_or("`value` is not a string")?;
        let dt = DataType::from_str(ty).map_err(|e| format!("unknown type `{ty}`: {e}"))?;
        let text: ArrayRef = Arc::new(StringArray::from(vec![value]));
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let value = cast_with_options(&text, &dt, &options)
            .map_err(|e| format!("`{value}` is not a {ty}: {e}"))?;
        let mut seen = HashSet::new();
        for fp in obj
            .get("at_value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let fp = fp.as_str().and_then(|s| u64::from_str_radix(s, 16).ok());
            seen.insert(fp.ok_or("`at_value` holds something else than hex fingerprints")?);
        }
        let complete = obj
            .get("at_value_complete")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        Ok(Some(Mark {
            value,
            seen,
            complete,
        }))
    }

    pub(super) fn write_json(&self, obj: &mut Map<String, Value>) {
        let mut seen: Vec<String> = self.seen.iter().map(|f| format!("{f:016x}")).collect();
        seen.sort_unstable();
        obj.insert("type".into(), json!(self.value.data_type().to_string()));
        obj.insert("value".into(), json!(render(&self.value)));
        obj.insert("at_value".into(), json!(seen));
        obj.insert("at_value_complete".into(), json!(self.complete));
    }
}

/// FNV-1a 64 of a row's values rendered as text.
pub(super) struct Fingerprinter<'a> {
    formatters: Vec<ArrayFormatter<'a>>,
}

const NULL_MARK: &str = "\u{0}";

impl<'a> Fingerprinter<'a> {
    pub(super) fn new(batch: &'a RecordBatch) -> Self {
        static OPTIONS: std::sync::LazyLock<FormatOptions<'static>> =
            std::sync::LazyLock::new(|| FormatOptions::default().with_null(NULL_MARK));
        let formatters = batch
            .columns()
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &OPTIONS).ok())
            .collect();
        Self { formatters }
    }

    pub(super) fn row(&self, i: usize) -> u64 {
        let mut text = String::new();
        for (k, f) in self.formatters.iter().enumerate() {
            if k > 0 {
                text.push('\u{1F}');
            }
            use std::fmt::Write;
            let _ = write!(text, "{}", f.value(i));
        }
        fnv1a(text.as_bytes())
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The text of a one-value array (Arrow's display format, which the cast
/// from text reads back exactly for every orderable type).
fn render(value: &ArrayRef) -> String {
    ArrayFormatter::try_new(value.as_ref(), &FormatOptions::default())
        .map(|f| f.value(0).to_string())
        .unwrap_or_default()
}
