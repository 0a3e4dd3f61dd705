//! Checks as written → validated [`Check`]s, with located errors.
//!
//! Everything that can be wrong without looking at data is found here: an
//! unknown option for the kind, a missing argument, an invalid regex, a
//! malformed threshold or duration. [`Check::bind`] then checks the columns
//! against the table's schema — still before any row is read.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Schema};
use indexmap::IndexMap;
use serde_json::Value;
use sluice_core::config::suggest::did_you_mean;
use sluice_core::config::{CheckArgs, CheckList, ConfigError, Severity, check_location};
use sluice_core::types::{parse_type, type_name};

use crate::threshold::Threshold;

/// An aggregate a check bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Arithmetic mean.
    Mean,
    /// Median (exact).
    Median,
    /// Sample standard deviation.
    Stddev,
    /// Sum.
    Sum,
    /// A quantile (approximate on the lake: t-digest).
    Quantile,
    /// Number of distinct non-NULL values.
    DistinctCount,
}

/// A metric an `anomaly` check follows over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Rows in the table.
    RowCount,
    /// Share of NULLs in a column.
    NullRate,
    /// Age in seconds of the newest value of a timestamp column.
    Freshness,
}

impl Metric {
    /// Its name as written.
    pub fn name(self) -> &'static str {
        match self {
            Metric::RowCount => "row_count",
            Metric::NullRate => "null_rate",
            Metric::Freshness => "freshness",
        }
    }
}

/// What a check asserts.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// No NULLs in the column.
    NotNull,
    /// No value (or combination of the columns' values) twice.
    Unique,
    /// Values are among these.
    AcceptedValues(Vec<Value>),
    /// Values exist in `to`.`field`.
    Relationships {
        /// The referenced table.
        to: String,
        /// Its column.
        field: String,
    },
    /// Values between bounds.
    Range {
        /// Lower bound.
        min: Option<Value>,
        /// Upper bound.
        max: Option<Value>,
        /// Whether the bounds pass.
        inclusive: bool,
    },
    /// Values match a regex.
    Regex(String),
    /// Values match a named format (name, regex).
    Format(String, String),
    /// Text lengths between bounds.
    Length {
        /// Shortest allowed.
        min: Option<u64>,
        /// Longest allowed.
        max: Option<u64>,
    },
    /// A SQL condition every row meets (NULL counts as met).
    Expression(String),
    /// Number of rows between bounds.
    RowCount {
        /// Fewest rows.
        min: Option<u64>,
        /// Most rows.
        max: Option<u64>,
    },
    /// The newest value of a timestamp column is at most this old (seconds).
    Freshness(i64),
    /// Required columns (with types, when given); optionally, no change
    /// from the last check.
    Schema {
        /// Required columns and their types.
        columns: IndexMap<String, Option<DataType>>,
        /// Fail on any change from the previous result.
        detect_changes: bool,
    },
    /// An aggregate between bounds.
    Aggregate {
        /// Which.
        agg: Aggregate,
        /// For `quantile`: which one.
        quantile: Option<f64>,
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Whether the bounds pass.
        inclusive: bool,
    },
    /// A query returning the failing rows; `{table}` is the checked table.
    Sql(String),
    /// A metric far outside its recent history.
    Anomaly {
        /// Which metric.
        metric: Metric,
        /// Earlier results compared with.
        window: usize,
        /// Robust z-score beyond which a value is an anomaly.
        threshold: f64,
        /// Results needed before judging.
        min_history: usize,
    },
}

/// A validated check on one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `<table>.<name>`: unique in the project.
    pub id: String,
    /// Its name (default: kind and columns, e.g. `not_null_id`).
    pub name: String,
    /// The table, as the checks are keyed (`schema.table`, or
    /// `<destination>:schema.table`).
    pub table: String,
    /// The kind as written.
    pub kind_name: String,
    /// What it asserts.
    pub kind: Kind,
    /// The columns it looks at.
    pub columns: Vec<String>,
    /// `error` or `warn`.
    pub severity: Severity,
    /// When a failing count warns.
    pub warn_if: Threshold,
    /// When a failing count fails.
    pub error_if: Threshold,
    /// Share of rows that must pass.
    pub mostly: Option<f64>,
    /// Keep the failing rows in a table.
    pub store_failures: bool,
    /// At most this many failing rows stored.
    pub limit: u64,
    /// Only rows meeting this condition are checked.
    pub filter: Option<String>,
    /// What the check is for.
    pub description: Option<String>,
    /// Where it was written.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Named formats for `format:` checks, with their regexes (matched as a
/// whole value).
pub const FORMATS: &[(&str, &str)] = &[
    (
        "email",
        r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$",
    ),
    (
        "uuid",
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    ),
    (
        "date",
        r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    ),
    (
        "datetime",
        r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$",
    ),
    (
        "time",
        r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$",
    ),
    (
        "ipv4",
        r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
    ),
    ("url", r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[^ ]*)?$"),
    ("integer", r"^[+-]?[0-9]+$"),
    (
        "number",
        r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$",
    ),
    ("phone", r"^\+?[0-9][0-9 ().-]{5,18}[0-9]$"),
    ("country_code", r"^[A-Z]{2}$"),
    ("currency_code", r"^[A-Z]{3}$"),
];

/// Which options each kind takes besides the common ones.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "not_null" | "unique" => &["column", "columns"],
        "accepted_values" => &["column", "values"],
        "relationships" => &["column", "to", "field"],
        "range" => &["column", "min", "max", "inclusive"],
        "regex" => &["column", "pattern"],
        "format" => &["column", "format"],
        "length" => &["column", "min", "max"],
        "expression" => &["query"],
        "row_count" => &["min", "max"],
        "freshness" => &["column", "max_age"],
        "schema" => &["columns", "detect_changes"],
        "mean" | "median" | "stddev" | "sum" | "distinct_count" => {
            &["column", "min", "max", "inclusive"]
        }
        "quantile" => &["column", "quantile", "min", "max", "inclusive"],
        "sql" => &["query"],
        "anomaly" => &["metric", "column", "window", "threshold", "min_history"],
        _ => &[],
    }
}

/// Kinds judged by counting failing rows (thresholds and `mostly` apply).
pub fn counts_rows(kind: &str) -> bool {
    matches!(
        kind,
        "not_null"
            | "unique"
            | "accepted_values"
            | "relationships"
            | "range"
            | "regex"
            | "format"
            | "length"
            | "expression"
            | "sql"
    )
}

/// The options set in `args`, by name.
fn set_options(a: &CheckArgs) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |set: bool, name: &'static str| {
        if set {
            out.push(name);
        }
    };
    add(a.column.is_some(), "column");
    add(a.columns.is_some(), "columns");
    add(a.values.is_some(), "values");
    add(a.min.is_some(), "min");
    add(a.max.is_some(), "max");
    add(a.inclusive.is_some(), "inclusive");
    add(a.pattern.is_some(), "pattern");
    add(a.format.is_some(), "format");
    add(a.to.is_some(), "to");
    add(a.field.is_some(), "field");
    add(a.max_age.is_some(), "max_age");
    add(a.quantile.is_some(), "quantile");
    add(a.query.is_some(), "query");
    add(a.metric.is_some(), "metric");
    add(a.window.is_some(), "window");
    add(a.threshold.is_some(), "threshold");
    add(a.min_history.is_some(), "min_history");
    add(a.detect_changes.is_some(), "detect_changes");
    out
}

/// Compile the checks of one table. `not_null` over several columns
/// becomes one check per column.
pub fn compile(table: &str, list: &CheckList, file: &Path) -> Result<Vec<Check>, ConfigError> {
    let mut out: Vec<Check> = Vec::new();
    for entry in list {
        let (line, column) = check_location(entry);
        let err = |message: String, hint: Option<String>| ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message,
            hint,
            snippet: None,
        };
        for check in compile_one(table, &entry.value.kind, &entry.value.args, &err)? {
            let mut check = check;
            check.file = file.to_path_buf();
            check.line = line;
            check.column = column;
            if let Some(prev) = out.iter().find(|c| c.id == check.id) {
                return Err(err(
                    format!(
                        "two checks on `{table}` are both named `{}` (the other is on line {})",
                        check.name, prev.line
                    ),
                    Some("give one of them a `name:`".into()),
                ));
            }
            out.push(check);
        }
    }
    Ok(out)
}

fn compile_one(
    table: &str,
    kind: &str,
    a: &CheckArgs,
    err: &dyn Fn(String, Option<String>) -> ConfigError,
) -> Result<Vec<Check>, ConfigError> {
    let allowed_here = allowed(kind);
    for opt in set_options(a) {
        if !allowed_here.contains(&opt) {
            let valid = allowed_here.join(", ");
            return Err(err(
                format!("check `{kind}` does not take `{opt}`"),
                Some(if valid.is_empty() {
                    "it takes only the common options (name, severity, where, …)".into()
                } else {
                    format!(
                        "its options are: {valid}, and the common ones (name, severity, where, …)"
                    )
                }),
            ));
        }
    }
    if !counts_rows(kind) {
        for (set, opt) in [
            (a.warn_if.is_some(), "warn_if"),
            (a.error_if.is_some(), "error_if"),
            (a.mostly.is_some(), "mostly"),
            (a.store_failures.is_some(), "store_failures"),
        ] {
            if set {
                return Err(err(
                    format!(
                        "check `{kind}` does not count failing rows, so `{opt}` does not apply"
                    ),
                    Some("bound it with `min`/`max` and choose `severity: warn` or `error`".into()),
                ));
            }
        }
    }
    // The columns: `column:`, `columns:` or the short forms.
    let mut columns: Vec<String> = Vec::new();
    let mut typed: IndexMap<String, Option<String>> = IndexMap::new();
    if let Some(c) = &a.column {
        columns.push(c.clone());
    }
    if let Some(cs) = &a.columns {
        typed = cs.0.clone();
        columns.extend(cs.0.keys().cloned());
    }
    let mut text = a.query.clone();
    if let Some(s) = &a.scalar {
        match kind {
            "sql" | "expression" => text = Some(s.clone()),
            _ if allowed_here.contains(&"column") || allowed_here.contains(&"columns") => {
                columns.push(s.clone());
                typed.insert(s.clone(), None);
            }
            _ => {
                return Err(err(
                    format!("check `{kind}` needs its options as a map"),
                    Some(format!(
                        "write `- {kind}: {{…}}`; its options are: {}",
                        allowed_here.join(", ")
                    )),
                ));
            }
        }
    }
    let one_column = |what: &str| -> Result<String, ConfigError> {
        match columns.as_slice() {
            [c] => Ok(c.clone()),
            [] => Err(err(
                format!("check `{kind}` needs a `column`"),
                Some(format!("write `- {kind}: {{column: name{what}}}`")),
            )),
            _ => Err(err(
                format!("check `{kind}` takes one column, not {}", columns.len()),
                Some("write one check per column".into()),
            )),
        }
    };
    let inclusive = a.inclusive.unwrap_or(true);
    let mut kinds: Vec<(Kind, Vec<String>)> = Vec::new();
    match kind {
        "not_null" => {
            if columns.is_empty() {
                return Err(err(
                    "check `not_null` needs a column".into(),
                    Some("write `- not_null: id` or `- not_null: [id, email]`".into()),
                ));
            }
            for c in &columns {
                kinds.push((Kind::NotNull, vec![c.clone()]));
            }
        }
        "unique" => {
            if columns.is_empty() {
                return Err(err(
                    "check `unique` needs a column".into(),
                    Some("write `- unique: id`, or `- unique: [a, b]` for a combination".into()),
                ));
            }
            kinds.push((Kind::Unique, columns.clone()));
        }
        "accepted_values" => {
            let c = one_column(", values: [a, b]")?;
            let values = a.values.clone().ok_or_else(|| {
                err(
                    "check `accepted_values` needs `values`".into(),
                    Some("add `values: [a, b]`".into()),
                )
            })?;
            if values.is_empty() {
                return Err(err("`values` is empty: no value could pass".into(), None));
            }
            for v in &values {
                if !(v.is_string() || v.is_number() || v.is_boolean()) {
                    return Err(err(
                        format!("`values` may hold texts, numbers and booleans, not `{v}`"),
                        None,
                    ));
                }
            }
            kinds.push((Kind::AcceptedValues(values), vec![c]));
        }
        "relationships" => {
            let c = one_column(", to: schema.table, field: id")?;
            let to = a.to.clone().ok_or_else(|| {
                err(
                    "check `relationships` needs `to`, the table the values must exist in".into(),
                    Some("add `to: shop.customers` (and `field: id` when the column is named differently)".into()),
                )
            })?;
            let field = a.field.clone().unwrap_or_else(|| c.clone());
            kinds.push((Kind::Relationships { to, field }, vec![c]));
        }
        "range" => {
            let c = one_column(", min: 0, max: 100")?;
            if a.min.is_none() && a.max.is_none() {
                return Err(err(
                    "check `range` needs `min`, `max` or both".into(),
                    Some("add `min: 0`".into()),
                ));
            }
            for b in [&a.min, &a.max].into_iter().flatten() {
                if !(b.is_number() || b.is_string()) {
                    return Err(err(
                        format!(
                            "a bound of `range` must be a number or a text (for dates), not `{b}`"
                        ),
                        None,
                    ));
                }
            }
            kinds.push((
                Kind::Range {
                    min: a.min.clone(),
                    max: a.max.clone(),
                    inclusive,
                },
                vec![c],
            ));
        }
        "regex" => {
            let c = one_column(", pattern: '^[A-Z]+$'")?;
            let p = a.pattern.clone().ok_or_else(|| {
                err(
                    "check `regex` needs a `pattern`".into(),
                    Some("add `pattern: '^[A-Z]{3}-[0-9]+$'`".into()),
                )
            })?;
            if let Err(e) = regex::Regex::new(&p) {
                return Err(err(
                    format!("invalid regex `{p}`: {}", one_line(&e.to_string())),
                    Some("quote the pattern in single quotes in YAML, and escape regex specials with `\\`".into()),
                ));
            }
            kinds.push((Kind::Regex(p), vec![c]));
        }
        "format" => {
            let c = one_column(", format: email")?;
            let names: Vec<&str> = FORMATS.iter().map(|(n, _)| *n).collect();
            let f = a.format.clone().ok_or_else(|| {
                err(
                    "check `format` needs a `format`".into(),
                    Some(format!("one of: {}", names.join(", "))),
                )
            })?;
            let Some((_, re)) = FORMATS.iter().find(|(n, _)| *n == f) else {
                let hint = match did_you_mean(&f, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? (one of: {})", names.join(", ")),
                    None => format!(
                        "one of: {}; or use `regex` with your own pattern",
                        names.join(", ")
                    ),
                };
                return Err(err(format!("unknown format `{f}`"), Some(hint)));
            };
            kinds.push((Kind::Format(f.clone(), (*re).to_string()), vec![c]));
        }
        "length" => {
            let c = one_column(", min: 1, max: 255")?;
            let min = count_bound(&a.min, "min", err)?;
            let max = count_bound(&a.max, "max", err)?;
            if min.is_none() && max.is_none() {
                return Err(err(
                    "check `length` needs `min`, `max` or both".into(),
                    Some("add `max: 255`".into()),
                ));
            }
            kinds.push((Kind::Length { min, max }, vec![c]));
        }
        "expression" => {
            let t = text.ok_or_else(|| {
                err(
                    "check `expression` needs a condition".into(),
                    Some("write `- expression: \"shipped_at >= ordered_at\"`".into()),
                )
            })?;
            kinds.push((Kind::Expression(t), Vec::new()));
        }
        "row_count" => {
            let min = count_bound(&a.min, "min", err)?;
            let max = count_bound(&a.max, "max", err)?;
            if min.is_none() && max.is_none() {
                return Err(err(
                    "check `row_count` needs `min`, `max` or both".into(),
                    Some("add `min: 1`".into()),
                ));
            }
            kinds.push((Kind::RowCount { min, max }, Vec::new()));
        }
        "freshness" => {
            let c = one_column(", max_age: 1d")?;
            let age = a.max_age.as_deref().ok_or_else(|| {
                err(
                    "check `freshness` needs `max_age`".into(),
                    Some("add `max_age: 1d` (s, m, h, d or w)".into()),
                )
            })?;
            let secs = parse_duration(age).map_err(|m| {
                err(
                    m,
                    Some("write a number and a unit: `30m`, `6h`, `1d`, `2w`".into()),
                )
            })?;
            kinds.push((Kind::Freshness(secs), vec![c]));
        }
        "schema" => {
            if typed.is_empty() && a.detect_changes != Some(true) {
                return Err(err(
                    "check `schema` needs `columns` or `detect_changes: true`".into(),
                    Some("write `- schema: {columns: {id: int64, email: string}}`".into()),
                ));
            }
            let mut cols = IndexMap::new();
            for (name, ty) in &typed {
                let dt = match ty {
                    Some(t) => Some(
                        parse_type(t).map_err(|m| err(format!("column `{name}`: {m}"), None))?,
                    ),
                    None => None,
                };
                cols.insert(name.clone(), dt);
            }
            kinds.push((
                Kind::Schema {
                    columns: cols,
                    detect_changes: a.detect_changes.unwrap_or(false),
                },
                typed.keys().cloned().collect(),
            ));
        }
        "mean" | "median" | "stddev" | "sum" | "quantile" | "distinct_count" => {
            let c = one_column(", min: 0, max: 100")?;
            let agg = match kind {
                "mean" => Aggregate::Mean,
                "median" => Aggregate::Median,
                "stddev" => Aggregate::Stddev,
                "sum" => Aggregate::Sum,
                "quantile" => Aggregate::Quantile,
                _ => Aggregate::DistinctCount,
            };
            let quantile = if agg == Aggregate::Quantile {
                match a.quantile {
                    Some(q) if (0.0..=1.0).contains(&q) => Some(q),
                    Some(q) => {
                        return Err(err(format!("`quantile: {q}` is not between 0 and 1"), None));
                    }
                    None => {
                        return Err(err(
                            "check `quantile` needs `quantile`".into(),
                            Some("add `quantile: 0.95`".into()),
                        ));
                    }
                }
            } else {
                None
            };
            let min = float_bound(&a.min, "min", err)?;
            let max = float_bound(&a.max, "max", err)?;
            if min.is_none() && max.is_none() {
                return Err(err(
                    format!("check `{kind}` needs `min`, `max` or both"),
                    Some("add `min: 0`".into()),
                ));
            }
            kinds.push((
                Kind::Aggregate {
                    agg,
                    quantile,
                    min,
                    max,
                    inclusive,
                },
                vec![c],
            ));
        }
        "sql" => {
            let t = text.ok_or_else(|| {
                err(
                    "check `sql` needs a query returning the failing rows".into(),
                    Some("write `- sql: \"select * from {table} where amount < 0\"`".into()),
                )
            })?;
            kinds.push((Kind::Sql(t), Vec::new()));
        }
        "anomaly" => {
            let metric = match a.metric.as_deref() {
                Some("row_count") | None => Metric::RowCount,
                Some("null_rate") => Metric::NullRate,
                Some("freshness") => Metric::Freshness,
                Some(other) => {
                    return Err(err(
                        format!("unknown metric `{other}`"),
                        Some("use `row_count`, `null_rate` or `freshness`".into()),
                    ));
                }
            };
            let cols = if metric == Metric::RowCount {
                if !columns.is_empty() {
                    return Err(err("metric `row_count` takes no column".into(), None));
                }
                Vec::new()
            } else {
                vec![one_column(&format!(", metric: {}", metric.name()))?]
            };
            let window = a.window.unwrap_or(30);
            let min_history = a.min_history.unwrap_or(5);
            let threshold = a.threshold.unwrap_or(3.0);
            if window < 2 || min_history < 2 || min_history > window {
                return Err(err(
                    format!(
                        "`window: {window}` and `min_history: {min_history}` must be at least 2, and min_history at most window"
                    ),
                    None,
                ));
            }
            if threshold.is_nan() || threshold <= 0.0 {
                return Err(err(
                    format!("`threshold: {threshold}` must be above 0"),
                    None,
                ));
            }
            kinds.push((
                Kind::Anomaly {
                    metric,
                    window,
                    threshold,
                    min_history,
                },
                cols,
            ));
        }
        other => {
            return Err(err(format!("unknown check `{other}`"), None));
        }
    }
    let parse_threshold = |t: &Option<String>, opt: &str| -> Result<Threshold, ConfigError> {
        match t {
            None => Ok(Threshold::default()),
            Some(text) => Threshold::parse(text).map_err(|m| {
                err(
                    format!("`{opt}: {text}`: {m}"),
                    Some(format!("write a comparison with the failing count, such as `{opt}: \">10\"` or `\"!=0\"`")),
                )
            }),
        }
    };
    let warn_if = parse_threshold(&a.warn_if, "warn_if")?;
    let error_if = parse_threshold(&a.error_if, "error_if")?;
    if let Some(m) = a.mostly
        && !(m > 0.0 && m <= 1.0)
    {
        return Err(err(
            format!("`mostly: {m}` must be above 0 and at most 1"),
            Some("write the share of rows that must pass, e.g. `mostly: 0.95`".into()),
        ));
    }
    if a.mostly.is_some() && (a.warn_if.is_some() || a.error_if.is_some()) {
        return Err(err(
            "`mostly` and `warn_if`/`error_if` both judge the failing rows; use one".into(),
            None,
        ));
    }
    if a.name.is_some() && kinds.len() > 1 {
        return Err(err(
            "a `name` cannot be shared by the checks of several columns".into(),
            Some("write one check per column, each with its name".into()),
        ));
    }
    Ok(kinds
        .into_iter()
        .map(|(k, cols)| {
            let name = a
                .name
                .clone()
                .unwrap_or_else(|| default_name(kind, &k, &cols));
            Check {
                id: format!("{table}.{name}"),
                name,
                table: table.to_string(),
                kind_name: kind.to_string(),
                kind: k,
                columns: cols,
                severity: a.severity.unwrap_or_default(),
                warn_if: warn_if.clone(),
                error_if: error_if.clone(),
                mostly: a.mostly,
                store_failures: a.store_failures.unwrap_or(false),
                limit: a.limit.unwrap_or(1000),
                filter: a.filter.clone(),
                description: a.description.clone(),
                file: PathBuf::new(),
                line: 0,
                column: 0,
            }
        })
        .collect())
}

fn default_name(kind: &str, k: &Kind, cols: &[String]) -> String {
    let mut name = kind.to_string();
    match k {
        Kind::Anomaly { metric, .. } => {
            name.push('_');
            name.push_str(metric.name());
        }
        Kind::Sql(q) | Kind::Expression(q) => {
            // Short, stable: a hash of the text.
            let h = q.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            name.push_str(&format!("_{:08x}", h as u32));
        }
        _ => {}
    }
    for c in cols {
        name.push('_');
        name.push_str(c);
    }
    name
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn count_bound(
    v: &Option<Value>,
    what: &str,
    err: &dyn Fn(String, Option<String>) -> ConfigError,
) -> Result<Option<u64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            err(
                format!("`{what}: {v}` must be a whole number, 0 or more"),
                None,
            )
        }),
    }
}

fn float_bound(
    v: &Option<Value>,
    what: &str,
    err: &dyn Fn(String, Option<String>) -> ConfigError,
) -> Result<Option<f64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| err(format!("`{what}: {v}` must be a number"), None)),
    }
}

/// `30s`, `15m`, `6h`, `1d`, `2w` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let mult = match unit.trim() {
        "s" | "sec" | "seconds" => 1,
        "m" | "min" | "minutes" => 60,
        "h" | "hours" => 3600,
        "d" | "days" => 86_400,
        "w" | "weeks" => 604_800,
        "" => return Err(format!("`{text}` has no unit")),
        u => return Err(format!("`{text}`: unknown unit `{u}`")),
    };
    Ok(n * mult)
}

impl Check {
    /// Whether the check judges each row on its own (so it can run on
    /// batches during a load).
    pub fn is_row_check(&self) -> bool {
        matches!(
            self.kind,
            Kind::NotNull
                | Kind::AcceptedValues(_)
                | Kind::Range { .. }
                | Kind::Regex(_)
                | Kind::Format(..)
                | Kind::Length { .. }
                | Kind::Expression(_)
        )
    }

    /// Whether its result is a count of failing rows.
    pub fn counts_rows(&self) -> bool {
        counts_rows(&self.kind_name)
    }

    /// A located error about this check.
    pub fn error(&self, message: String, hint: Option<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(self.line),
            column: Some(self.column),
            message: format!("check `{}`: {message}", self.id),
            hint,
            snippet: None,
        }
    }

    /// Check the columns against the table's schema: they exist, and their
    /// types suit the check.
    pub fn bind(&self, schema: &Schema) -> Result<(), ConfigError> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let find = |c: &str| -> Result<&DataType, ConfigError> {
            schema
                .field_with_name(c)
                .map(|f| f.data_type())
                .map_err(|_| {
                    let hint = match did_you_mean(c, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("its columns are: {}", names.join(", ")),
                    };
                    self.error(format!("no column `{c}` in `{}`", self.table), Some(hint))
                })
        };
        if let Kind::Schema { .. } = self.kind {
            // Missing columns are what this check reports, as a result.
            return Ok(());
        }
        for c in &self.columns {
            let dt = find(c)?;
            let ok = match &self.kind {
                Kind::Length { .. } => matches!(
                    dt,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ),
                Kind::Aggregate { agg, .. } if *agg != Aggregate::DistinctCount => dt.is_numeric(),
                Kind::Freshness(_)
                | Kind::Anomaly {
                    metric: Metric::Freshness,
                    ..
                } => matches!(
                    dt,
                    DataType::Timestamp(..)
                        | DataType::Date32
                        | DataType::Date64
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                ),
                _ => true,
            };
            if !ok {
                let want = match &self.kind {
                    Kind::Length { .. } => "a text column",
                    Kind::Aggregate { .. } => "a numeric column",
                    _ => "a timestamp or date column",
                };
                return Err(self.error(
                    format!("`{c}` is {}, not {want}", type_name(dt)),
                    Some("point the check at another column, or cast it in a model".into()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;

    use super::*;

    use crate::test_support::compile_text;

    #[test]
    fn every_kind_compiles_with_a_stable_name() {
        let checks = compile_text(
            "checks:
  - not_null: [id, email]
  - unique: [customer_id, day]
  - accepted_values: {column: status, values: [placed, shipped, 3]}
  - relationships: {column: customer_id, to: shop.customers, field: id}
  - range: {column: amount, min: 0, max: 100, inclusive: false}
  - regex: {column: sku, pattern: '^[A-Z]{3}-[0-9]+$'}
  - format: {column: email, format: email}
  - length: {column: sku, min: 2, max: 10}
  - expression: amount >= 0
  - row_count: {min: 1}
  - freshness: {column: at, max_age: 6h}
  - schema: {columns: {id: int64, email: }}
  - mean: {column: amount, min: 1, max: 2}
  - quantile: {column: amount, quantile: 0.9, max: 99}
  - sql: select * from {table} where amount < 0
  - anomaly: {metric: null_rate, column: email}
",
        )
        .expect("compiles");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            &names[..9],
            [
                "not_null_id",
                "not_null_email",
                "unique_customer_id_day",
                "accepted_values_status",
                "relationships_customer_id",
                "range_amount",
                "regex_sku",
                "format_email",
                "length_sku"
            ]
        );
        assert!(names[9].starts_with("expression_"));
        assert_eq!(checks[0].id, "shop.orders.not_null_id");
        assert_eq!(checks[0].line, 2);
        assert_eq!(checks[11].kind, Kind::Freshness(6 * 3600));
        assert!(checks.iter().filter(|c| c.is_row_check()).count() == 8);
    }

    #[test]
    fn bad_checks_are_located_config_errors() {
        let e = compile_text("checks:\n  - not_null: id\n  - regex: {column: a, pattern: '(['}\n")
            .expect_err("bad regex");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("invalid regex"), "{}", e.message);
        let e = compile_text("checks:\n  - unique: {column: a, warn_if: '>>1'}\n")
            .expect_err("bad threshold");
        assert!(e.message.contains("warn_if"), "{}", e.message);
        assert!(e.hint.expect("hint").contains("\">10\""));
        let e = compile_text("checks:\n  - range: {column: a, values: [1]}\n")
            .expect_err("wrong option");
        assert!(
            e.message.contains("does not take `values`"),
            "{}",
            e.message
        );
        let e =
            compile_text("checks:\n  - format: {column: a, format: emal}\n").expect_err("format");
        assert!(e.hint.expect("hint").contains("`email`"));
        let e = compile_text("checks:\n  - freshness: {column: a, max_age: 3 fortnights}\n")
            .expect_err("duration");
        assert!(e.message.contains("fortnights"), "{}", e.message);
        let e = compile_text("checks:\n  - not_null: a\n  - not_null: a\n").expect_err("dup");
        assert!(e.message.contains("both named"), "{}", e.message);
    }

    #[test]
    fn binding_finds_missing_columns_and_wrong_types() {
        let checks = compile_text("checks:\n  - not_null: idd\n  - mean: {column: name, min: 1}\n")
            .expect("compiles");
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let e = checks[0].bind(&schema).expect_err("missing");
        assert!(e.message.contains("no column `idd`"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("did you mean `id`?"));
        assert_eq!(e.line, Some(2));
        let e = checks[1].bind(&Arc::new(schema)).expect_err("type");
        assert!(e.message.contains("not a numeric column"), "{}", e.message);
    }
}
