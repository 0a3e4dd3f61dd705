//! Data-quality checks as written in `sluice.yml`.
//!
//! A check is a one-key map, the key its kind and the value its arguments —
//! a column, a list of columns, or a map of options:
//!
//! ```yaml
//! checks:
//!   - not_null: id
//!   - unique: [customer_id, order_date]
//!   - accepted_values: {column: status, values: [placed, shipped]}
//!   - range: {column: amount, min: 0, max: 10000, severity: warn}
//! ```
//!
//! This module only reads them, keeping each entry's location; what the
//! arguments mean, and whether they fit the table, is decided by
//! `sluice-quality`, which reports errors at the entry's line.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// Every check kind, in the order the docs list them.
pub const CHECK_KINDS: &[&str] = &[
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "range",
    "regex",
    "format",
    "length",
    "expression",
    "row_count",
    "freshness",
    "schema",
    "mean",
    "median",
    "stddev",
    "sum",
    "quantile",
    "distinct_count",
    "sql",
    "anomaly",
];

/// A list of checks, each with where it was written.
pub type CheckList = Vec<Spanned<CheckConfig>>;

/// What a stream does with rows that fail its row checks during a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Stop the stream before the batch is written, naming the check and row.
    #[default]
    Stop,
    /// Write failing rows, with the check's name, to `<table>__quarantine`.
    Quarantine,
    /// Load the rows and report the failures.
    Warn,
}

impl fmt::Display for OnFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFail::Stop => "stop",
            OnFail::Quarantine => "quarantine",
            OnFail::Warn => "warn",
        })
    }
}

/// How bad a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A failure fails the run (exit code 1).
    #[default]
    Error,
    /// A failure is reported; the run goes on.
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        })
    }
}

/// One check as written: its kind and arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckConfig {
    /// The kind, one of [`CHECK_KINDS`].
    pub kind: String,
    /// Its arguments.
    pub args: CheckArgs,
}

/// `columns:` either names columns or maps them to types (`schema` checks).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ColumnsArg(pub IndexMap<String, Option<String>>);

/// The arguments of a check. The short forms `- not_null: id` and
/// `- unique: [a, b]` set `columns`; `- sql: "select …"` and
/// `- expression: "a < b"` set `scalar`.
#[derive(Debug, Clone, PartialEq, Serialize, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckArgs {
    /// The value of a short form given as one text.
    #[serde(skip)]
    pub scalar: Option<String>,
    /// Name of the check (default: from its kind and columns).
    #[serde(default)]
    pub name: Option<String>,
    /// What the check is for, shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// The column checked.
    #[serde(default)]
    pub column: Option<String>,
    /// The columns checked (a list), or for `schema` the required columns
    /// with their types (a map; a type may be left empty).
    #[serde(default)]
    pub columns: Option<ColumnsArg>,
    /// `accepted_values`: the allowed values.
    #[serde(default)]
    pub values: Option<Vec<serde_json::Value>>,
    /// Lower bound (`range`, `length`, `row_count`, aggregates).
    #[serde(default)]
    pub min: Option<serde_json::Value>,
    /// Upper bound.
    #[serde(default)]
    pub max: Option<serde_json::Value>,
    /// Whether the bounds themselves pass (default true).
    #[serde(default)]
    pub inclusive: Option<bool>,
    /// `regex`: the pattern values must match (anywhere; anchor with `^…$`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// `format`: a named format (`email`, `uuid`, `date`, …).
    #[serde(default)]
    pub format: Option<String>,
    /// `relationships`: the table the values must exist in.
    #[serde(default)]
    pub to: Option<String>,
    /// `relationships`: the column of `to` (default: the same name).
    #[serde(default)]
    pub field: Option<String>,
    /// `freshness`: the largest allowed age, as `30m`, `6h`, `1d`.
    #[serde(default)]
    pub max_age: Option<String>,
    /// `quantile`: which one, between 0 and 1.
    #[serde(default)]
    pub quantile: Option<f64>,
    /// `sql`: a query returning the failing rows; `expression`: a condition
    /// every row must meet.
    #[serde(default)]
    pub query: Option<String>,
    /// `anomaly`: `row_count`, `null_rate` or `freshness`.
    #[serde(default)]
    pub metric: Option<String>,
    /// `anomaly`: how many earlier results to compare with (default 30).
    #[serde(default)]
    pub window: Option<usize>,
    /// `anomaly`: how far from the recent values counts as an anomaly, in
    /// robust standard deviations (default 3).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `anomaly`: results needed before it judges (default 5).
    #[serde(default)]
    pub min_history: Option<usize>,
    /// `schema`: fail when the columns differ from the last check's.
    #[serde(default)]
    pub detect_changes: Option<bool>,
    /// `warn` or `error` (default).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Warn when the failing count meets this (`">10"`, `"!=0"`).
    #[serde(default)]
    pub warn_if: Option<String>,
    /// Fail when the failing count meets this (default `"!=0"`).
    #[serde(default)]
    pub error_if: Option<String>,
    /// The share of rows that must pass (0–1) for row checks.
    #[serde(default)]
    pub mostly: Option<f64>,
    /// Keep the failing rows in a lake table `checks.<name>`.
    #[serde(default)]
    pub store_failures: Option<bool>,
    /// At most this many failing rows are stored (default 1000).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Only rows meeting this SQL condition are checked.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
}

impl<'de> Deserialize<'de> for ColumnsArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ColumnsArg;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column, a list of columns, or a map of columns to types")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ColumnsArg, E> {
                Ok(ColumnsArg(IndexMap::from([(v.to_string(), None)])))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ColumnsArg, A::Error> {
                let mut out = IndexMap::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.insert(s, None);
                }
                Ok(ColumnsArg(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ColumnsArg, A::Error> {
                let mut out = IndexMap::new();
                while let Some((k, v)) = map.next_entry::<String, Option<String>>()? {
                    out.insert(k, v);
                }
                Ok(ColumnsArg(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value of a check entry: a text, a list of columns or a map.
struct ArgsSeed;

impl<'de> de::DeserializeSeed<'de> for ArgsSeed {
    type Value = CheckArgs;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<CheckArgs, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckArgs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a column, a list of columns, or a map of the check's options")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CheckArgs, E> {
                Ok(CheckArgs {
                    scalar: Some(v.to_string()),
                    ..Default::default()
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<CheckArgs, A::Error> {
                let columns = ColumnsArg::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(CheckArgs {
                    columns: Some(columns),
                    ..Default::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CheckArgs, A::Error> {
                CheckArgs::deserialize(de::value::MapAccessDeserializer::new(map))
            }
            fn visit_unit<E: de::Error>(self) -> Result<CheckArgs, E> {
                Ok(CheckArgs::default())
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CheckConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a check such as `not_null: id` or `range: {column: amount, min: 0}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CheckConfig, E> {
                if !CHECK_KINDS.contains(&v) {
                    return Err(E::unknown_variant(v, CHECK_KINDS));
                }
                Ok(CheckConfig {
                    kind: v.to_string(),
                    args: CheckArgs::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckConfig, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty check; write it as `- not_null: id` (kind: arguments)",
                    ));
                };
                if !CHECK_KINDS.contains(&kind.as_str()) {
                    return Err(de::Error::unknown_variant(&kind, CHECK_KINDS));
                }
                let args = map.next_value_seed(ArgsSeed)?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "check `{kind}` has a second key `{extra}`; options go inside it: `- {kind}: {{column: x, {extra}: …}}`"
                    )));
                }
                Ok(CheckConfig { kind, args })
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a check was written: 1-based line and column.
pub fn check_location(check: &Spanned<CheckConfig>) -> (usize, usize) {
    (
        check.referenced.line() as usize,
        check.referenced.column() as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        checks: CheckList,
    }

    #[test]
    fn short_and_long_forms_parse_with_their_lines() {
        let text = "checks:\n  - not_null: id\n  - unique: [a, b]\n  - sql: select 1\n  - range:\n      column: amount\n      min: 0\n      severity: warn\n  - schema: {columns: {id: int64, name: }}\n";
        let h: Holder = serde_saphyr::from_str(text).expect("parses");
        let c = &h.checks;
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].value.kind, "not_null");
        assert_eq!(c[0].value.args.scalar.as_deref(), Some("id"));
        assert_eq!(check_location(&c[0]).0, 2);
        let cols = c[1].value.args.columns.as_ref().expect("columns");
        assert_eq!(cols.0.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c[2].value.args.scalar.as_deref(), Some("select 1"));
        assert_eq!(c[3].value.args.severity, Some(Severity::Warn));
        assert_eq!(check_location(&c[3]).0, 5);
        let schema = c[4].value.args.columns.as_ref().expect("columns");
        assert_eq!(schema.0["id"].as_deref(), Some("int64"));
        assert_eq!(schema.0["name"], None);
    }

    #[test]
    fn unknown_kinds_and_options_are_refused() {
        let e = serde_saphyr::from_str::<Holder>("checks:\n  - nul_null: id\n")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("unknown variant `nul_null`"), "{e}");
        let e = serde_saphyr::from_str::<Holder>("checks:\n  - range: {column: a, mn: 1}\n")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("unknown field `mn`"), "{e}");
    }
}
