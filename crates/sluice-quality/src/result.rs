//! One result format for every check — Sluice's own, dbt tests and the
//! checks run during loads — and how a measurement becomes a status.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::config::Severity;

use crate::spec::{Check, Kind};
use crate::threshold::Threshold;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It held.
    Pass,
    /// It did not hold, at `severity: warn` (or under `warn_if`).
    Warn,
    /// It did not hold.
    Fail,
    /// It could not be run (the query failed).
    Error,
}

impl Status {
    /// As written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// Parse [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pass" => Status::Pass,
            "warn" => Status::Warn,
            "fail" => Status::Fail,
            "error" => Status::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When the check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// On each batch during a load, before commit.
    Load,
    /// On the committed table (after a load, or by `sluice check`).
    Table,
    /// A dbt data test of the transform project.
    Dbt,
}

impl Phase {
    /// As written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Table => "table",
            Phase::Dbt => "dbt",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `<table>.<name>`.
    pub id: String,
    /// The check's name.
    pub name: String,
    /// The table checked.
    pub table: String,
    /// Its kind (`not_null`, …, `dbt_test`).
    pub kind: String,
    /// The columns it looked at.
    pub columns: Vec<String>,
    /// `error` or `warn`.
    pub severity: Severity,
    /// How it came out.
    pub status: Status,
    /// When it ran.
    pub phase: Phase,
    /// What was measured: the failing count, the aggregate, the age in
    /// seconds, the columns…
    pub observed: Value,
    /// What was expected, in words.
    pub expected: String,
    /// Rows that failed (row-counting checks).
    pub failing_rows: Option<u64>,
    /// Rows looked at.
    pub total_rows: Option<u64>,
    /// One line saying what happened.
    pub message: String,
    /// A few failing rows (or duplicated values), as JSON objects.
    pub samples: Vec<Value>,
    /// The table holding the failing rows, with `store_failures`.
    pub stored_failures: Option<String>,
    /// Time taken, in milliseconds.
    pub duration_ms: f64,
    /// Where the check is written (`file:line`).
    pub defined_at: Option<String>,
    /// The check's description.
    pub description: Option<String>,
}

impl CheckResult {
    /// A result for `check`, to be filled in.
    pub fn new(check: &Check, phase: Phase) -> CheckResult {
        CheckResult {
            id: check.id.clone(),
            name: check.name.clone(),
            table: check.table.clone(),
            kind: check.kind_name.clone(),
            columns: check.columns.clone(),
            severity: check.severity,
            status: Status::Pass,
            phase,
            observed: Value::Null,
            expected: expected(check),
            failing_rows: None,
            total_rows: None,
            message: String::new(),
            samples: Vec::new(),
            stored_failures: None,
            duration_ms: 0.0,
            defined_at: (check.line > 0)
                .then(|| format!("{}:{}", check.file.display(), check.line)),
            description: check.description.clone(),
        }
    }

    /// The result of a check that could not run.
    pub fn errored(check: &Check, phase: Phase, message: String) -> CheckResult {
        let mut r = CheckResult::new(check, phase);
        r.status = Status::Error;
        r.message = message;
        r
    }

    /// Whether it blocks: a failure or an error.
    pub fn is_failure(&self) -> bool {
        matches!(self.status, Status::Fail | Status::Error)
    }
}

/// The outcome of a check that did not hold, by its severity.
pub fn failed(check: &Check) -> Status {
    match check.severity {
        Severity::Error => Status::Fail,
        Severity::Warn => Status::Warn,
    }
}

/// Judge a failing count, as dbt does (`error_if`, then `warn_if`), or by
/// `mostly`.
pub fn judge_count(check: &Check, failing: u64, total: u64, r: &mut CheckResult) {
    r.failing_rows = Some(failing);
    r.total_rows = Some(total);
    r.observed = Value::from(failing);
    let what = match &check.kind {
        Kind::Unique => "duplicated values",
        Kind::Relationships { .. } => "rows without a match",
        _ => "failing rows",
    };
    let share = if total > 0 {
        failing as f64 / total as f64
    } else {
        0.0
    };
    r.status = if let Some(mostly) = check.mostly {
        if share > 1.0 - mostly + 1e-12 {
            failed(check)
        } else {
            Status::Pass
        }
    } else {
        match check.severity {
            Severity::Error if check.error_if.matches(failing) => Status::Fail,
            _ if check.warn_if.matches(failing) => Status::Warn,
            _ => Status::Pass,
        }
    };
    r.message = if failing == 0 {
        format!("no {what} in {total} rows")
    } else if matches!(check.kind, Kind::Unique) {
        let one = if failing == 1 { "value" } else { "values" };
        let what = if check.columns.len() > 1 {
            "combination"
        } else {
            one
        };
        let what = if check.columns.len() > 1 && failing > 1 {
            "combinations"
        } else {
            what
        };
        format!("{failing} duplicated {what} in {total} rows")
    } else {
        format!("{failing} {what} of {total} ({:.2}%)", share * 100.0)
    };
}

/// Judge a number against bounds.
pub fn judge_bounds(
    check: &Check,
    value: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    inclusive: bool,
    r: &mut CheckResult,
) {
    let Some(v) = value else {
        r.status = failed(check);
        r.observed = Value::Null;
        r.message = "no value: the table or the column is empty".into();
        return;
    };
    r.observed = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
    let low = min.is_some_and(|m| if inclusive { v < m } else { v <= m });
    let high = max.is_some_and(|m| if inclusive { v > m } else { v >= m });
    r.status = if low || high {
        failed(check)
    } else {
        Status::Pass
    };
    r.message = if low || high {
        format!(
            "{} is {}, expected {}",
            check.kind_name,
            fmt_num(v),
            r.expected
        )
    } else {
        format!("{} is {}", check.kind_name, fmt_num(v))
    };
}

/// A number without needless decimals.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// What a check expects, in words.
pub fn expected(check: &Check) -> String {
    let between = |min: Option<String>, max: Option<String>, inclusive: bool| {
        let (lo, hi) = if inclusive {
            ("≥", "≤")
        } else {
            (">", "<")
        };
        match (min, max) {
            (Some(a), Some(b)) => format!("{lo} {a} and {hi} {b}"),
            (Some(a), None) => format!("{lo} {a}"),
            (None, Some(b)) => format!("{hi} {b}"),
            (None, None) => "anything".into(),
        }
    };
    let counted = |what: &str| match check.mostly {
        Some(m) => format!("{what} in at least {}% of rows", fmt_num(m * 100.0)),
        None if check.severity == Severity::Error && check.error_if != Threshold::default() => {
            format!("{what} (fail if failing rows {})", check.error_if)
        }
        None if check.severity == Severity::Warn && check.warn_if != Threshold::default() => {
            format!("{what} (warn if failing rows {})", check.warn_if)
        }
        None => what.to_string(),
    };
    match &check.kind {
        Kind::NotNull => counted("no NULLs"),
        Kind::Unique => counted("no duplicates"),
        Kind::AcceptedValues(v) => counted(&format!(
            "values in [{}]",
            v.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Kind::Relationships { to, field } => counted(&format!("values present in {to}.{field}")),
        Kind::Range {
            min,
            max,
            inclusive,
        } => counted(&format!(
            "values {}",
            between(
                min.as_ref()
                    .map(|v| v.to_string().trim_matches('"').to_string()),
                max.as_ref()
                    .map(|v| v.to_string().trim_matches('"').to_string()),
                *inclusive
            )
        )),
        Kind::Regex(p) => counted(&format!("values matching /{p}/")),
        Kind::Format(f, _) => counted(&format!("values in {f} format")),
        Kind::Length { min, max } => counted(&format!(
            "lengths {}",
            between(min.map(|v| v.to_string()), max.map(|v| v.to_string()), true)
        )),
        Kind::Expression(e) => counted(&format!("rows where {e}")),
        Kind::Sql(_) => counted("no rows returned"),
        Kind::RowCount { min, max } => format!(
            "rows {}",
            between(min.map(|v| v.to_string()), max.map(|v| v.to_string()), true)
        ),
        Kind::Freshness(secs) => format!("newest value at most {} old", fmt_age(*secs)),
        Kind::Schema {
            columns,
            detect_changes,
        } => {
            let mut parts = Vec::new();
            if !columns.is_empty() {
                parts.push(format!(
                    "columns {}",
                    columns
                        .iter()
                        .map(|(c, t)| match t {
                            Some(t) => format!("{c}: {}", sluice_core::types::type_name(t)),
                            None => c.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if *detect_changes {
                parts.push("no change since the last check".into());
            }
            parts.join("; ")
        }
        Kind::Aggregate {
            min,
            max,
            inclusive,
            ..
        } => between(min.map(fmt_num), max.map(fmt_num), *inclusive),
        Kind::Anomaly {
            threshold, window, ..
        } => format!(
            "within {} robust σ of the last {window} results",
            fmt_num(*threshold)
        ),
    }
}

/// `90061` → `1d 1h 1m`.
pub fn fmt_age(secs: i64) -> String {
    if secs < 60 {
        return format!("{secs}s");
    }
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}m"));
    }
    parts.join(" ")
}

/// Counts of a set of results, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Checks run.
    pub total: usize,
    /// Passed.
    pub pass: usize,
    /// Warned.
    pub warn: usize,
    /// Failed.
    pub fail: usize,
    /// Could not run.
    pub error: usize,
}

impl Summary {
    /// Count `results`.
    pub fn of(results: &[CheckResult]) -> Summary {
        let mut s = Summary {
            total: results.len(),
            ..Default::default()
        };
        for r in results {
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Error => s.error += 1,
            }
        }
        s
    }
}
