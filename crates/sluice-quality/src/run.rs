//! Running the checks of a table on an engine: one fused scan for every
//! aggregate-shaped check, a query of their own for the rest, samples and
//! stored failures only for checks that failed.

use std::time::Instant;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use sluice_core::config::ConfigError;
use sluice_core::types::type_name;

use crate::anomaly;
use crate::result::{
    CheckResult, Phase, Status, failed, fmt_age, fmt_num, judge_bounds, judge_count,
};
use crate::rows::SAMPLES;
use crate::spec::{Check, Kind, Metric};
use crate::sql::{
    Dialect, Measure, count_query, failing_rows_query, fused_query, is_fused, probe_query,
};

/// An engine that can answer check queries: the lake (DataFusion) or a
/// PostgreSQL database.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Its SQL dialect.
    fn dialect(&self) -> Dialect;
    /// The table a check is keyed by, as SQL.
    fn table_sql(&self, table: &str) -> String;
    /// The table's schema, `None` when it does not exist. Reads metadata
    /// only.
    async fn schema(&self, table: &str) -> Result<Option<SchemaRef>, String>;
    /// The first row of a query, each value as text (`None` for NULL).
    async fn query_row(&self, sql: &str) -> Result<Vec<Option<String>>, String>;
    /// The rows of a query, as JSON objects.
    async fn query_rows(&self, sql: &str) -> Result<Vec<Value>, String>;
    /// Keep the rows of `sql` as the failures of `check`, replacing the
    /// last ones; returns the table holding them.
    async fn store_failures(&self, check: &Check, sql: &str) -> Result<String, String>;
}

/// Earlier observed values of a check, oldest first (for `anomaly` and
/// `schema` change detection).
pub type History<'a> = &'a (dyn Fn(&str, usize) -> Vec<Value> + Sync);

/// Check every check of the project against the tables' schemas before any
/// data is read: columns exist and suit the check, `relationships` targets
/// exist. Tables not there yet are skipped (their checks report it when
/// they run).
pub async fn validate(backend: &dyn Backend, checks: &[Check]) -> Result<(), ConfigError> {
    let mut tables: Vec<&str> = Vec::new();
    for c in checks {
        if !tables.contains(&c.table.as_str()) {
            tables.push(&c.table);
        }
    }
    for table in tables {
        let Ok(Some(schema)) = backend.schema(table).await else {
            continue;
        };
        let table_sql = backend.table_sql(table);
        for c in checks.iter().filter(|c| c.table == table) {
            c.bind(&schema)?;
            if let Some(q) = probe_query(&table_sql, c, backend.dialect())
                && let Err(e) = backend.query_rows(&q).await
            {
                let what = match (&c.kind, &c.filter) {
                    (Kind::Expression(_), _) => "its expression",
                    (Kind::Sql(_), _) => "its query",
                    _ => "its `where:`",
                };
                let columns: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(c.error(
                    format!(
                        "{what} does not run on `{table}`: {}",
                        e.lines().next().unwrap_or_default()
                    ),
                    Some(format!(
                        "fix the SQL; the columns of `{table}` are: {}",
                        columns.join(", ")
                    )),
                ));
            }
            if let Kind::Relationships { to, field } = &c.kind
                && let Ok(Some(target)) = backend.schema(to).await
                && target.field_with_name(field).is_err()
            {
                return Err(c.error(
                    format!("`{to}` has no column `{field}`"),
                    Some("set `field:` to the referenced column".into()),
                ));
            }
        }
    }
    Ok(())
}

/// Run the checks of one table. Never fails as a whole: a check that
/// cannot run gets `status: error`.
pub async fn run_table(
    backend: &dyn Backend,
    table: &str,
    checks: &[&Check],
    history: History<'_>,
    now: DateTime<Utc>,
) -> Vec<CheckResult> {
    let schema = match backend.schema(table).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return checks
                .iter()
                .map(|c| {
                    CheckResult::errored(
                        c,
                        Phase::Table,
                        format!("table `{table}` does not exist (load it first: `sluice run`)"),
                    )
                })
                .collect();
        }
        Err(e) => {
            return checks
                .iter()
                .map(|c| CheckResult::errored(c, Phase::Table, e.clone()))
                .collect();
        }
    };
    let mut bound: Vec<&Check> = Vec::new();
    let mut results: Vec<Option<CheckResult>> = vec![None; checks.len()];
    for (i, c) in checks.iter().enumerate() {
        match c.bind(&schema) {
            Ok(()) => bound.push(c),
            Err(e) => {
                results[i] = Some(CheckResult::errored(
                    c,
                    Phase::Table,
                    format!(
                        "{}{}",
                        e.message,
                        e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
                    ),
                ))
            }
        }
    }
    let d = backend.dialect();
    let table_sql = backend.table_sql(table);
    // One scan for every fused check.
    let fused = fused_query(&table_sql, &bound, d);
    let started = Instant::now();
    let row = backend.query_row(&fused.sql).await;
    let scan_ms = started.elapsed().as_secs_f64() * 1e3;
    let n_fused = bound.iter().filter(|c| is_fused(c)).count().max(1);
    let mut values: Vec<Vec<(Measure, Option<String>)>> = vec![Vec::new(); bound.len()];
    let mut rows_total: Option<u64> = None;
    let mut scan_errors: Vec<Option<String>> = vec![None; bound.len()];
    match row {
        Ok(row) => {
            for (m, v) in fused.measures.iter().zip(row) {
                match m {
                    Measure::Rows => rows_total = v.as_deref().and_then(parse_u64),
                    Measure::Scope(i) | Measure::Failing(i) | Measure::Value(i) => {
                        values[*i].push((m.clone(), v))
                    }
                }
            }
        }
        Err(e) => {
            // One check's SQL (an expression, a `where:`, a list of values
            // the engine cannot compare) fails the whole scan: scan again
            // check by check, so that only the broken ones are errors.
            let fused_checks: Vec<usize> =
                (0..bound.len()).filter(|&i| is_fused(bound[i])).collect();
            if fused_checks.len() <= 1 {
                for i in fused_checks {
                    scan_errors[i] = Some(e.clone());
                }
            } else {
                for i in fused_checks {
                    let one = fused_query(&table_sql, &[bound[i]], d);
                    match backend.query_row(&one.sql).await {
                        Ok(row) => {
                            for (m, v) in one.measures.iter().zip(row) {
                                match m {
                                    Measure::Rows => {
                                        rows_total = v.as_deref().and_then(parse_u64);
                                    }
                                    // Indexed 0 in its own query; `get` below
                                    // matches by kind of measure only.
                                    _ => values[i].push((m.clone(), v)),
                                }
                            }
                        }
                        Err(e) => scan_errors[i] = Some(e),
                    }
                }
            }
        }
    }
    for (bi, c) in bound.iter().enumerate() {
        let slot = checks
            .iter()
            .position(|x| std::ptr::eq(*x, *c))
            .unwrap_or(bi);
        let mut r = CheckResult::new(c, Phase::Table);
        let t0 = Instant::now();
        if let Some(e) = &scan_errors[bi] {
            results[slot] = Some(CheckResult::errored(c, Phase::Table, e.clone()));
            continue;
        }
        let get = |want: fn(&Measure) -> bool| -> Option<String> {
            values[bi]
                .iter()
                .find(|(m, _)| want(m))
                .and_then(|(_, v)| v.clone())
        };
        let scope = get(|m| matches!(m, Measure::Scope(_)))
            .as_deref()
            .and_then(parse_u64);
        let outcome: Result<(), String> = async {
            match &c.kind {
                Kind::Schema {
                    columns,
                    detect_changes,
                } => {
                    judge_schema(c, &schema, columns, *detect_changes, history, &mut r);
                }
                Kind::RowCount { min, max } => {
                    let n = scope.or(rows_total).unwrap_or(0);
                    judge_bounds(
                        c,
                        Some(n as f64),
                        min.map(|v| v as f64),
                        max.map(|v| v as f64),
                        true,
                        &mut r,
                    );
                    r.message = if r.status == Status::Pass {
                        format!("{n} rows")
                    } else {
                        format!("{n} rows, expected {}", r.expected)
                    };
                    r.observed = Value::from(n);
                }
                Kind::Freshness(max_age) => {
                    let newest = get(|m| matches!(m, Measure::Value(_)));
                    match newest.as_deref().map(parse_time) {
                        None => {
                            r.status = failed(c);
                            r.message = "no value: the column is empty".into();
                        }
                        Some(Err(e)) => return Err(e),
                        Some(Ok(ts)) => {
                            let age = (now - ts).num_seconds();
                            r.observed = json!({"newest": ts.to_rfc3339(), "age_seconds": age});
                            let stale = age > *max_age;
                            r.status = if !stale {
                                Status::Pass
                            } else { failed(c) };
                            r.message = format!(
                                "newest value is {} old ({})",
                                fmt_age(age.max(0)),
                                ts.to_rfc3339()
                            );
                        }
                    }
                }
                Kind::Aggregate {
                    min,
                    max,
                    inclusive,
                    ..
                } => {
                    let v = get(|m| matches!(m, Measure::Value(_)));
                    let v = match v.as_deref().map(|s| s.parse::<f64>()) {
                        None => None,
                        Some(Ok(x)) => Some(x),
                        Some(Err(_)) => {
                            return Err(format!(
                                "the engine returned `{}` for {}",
                                v.unwrap_or_default(),
                                c.kind_name
                            ));
                        }
                    };
                    judge_bounds(c, v, *min, *max, *inclusive, &mut r);
                }
                Kind::Anomaly {
                    metric,
                    window,
                    threshold,
                    min_history,
                } => {
                    let value = match metric {
                        Metric::RowCount => scope.or(rows_total).map(|n| n as f64),
                        Metric::NullRate => {
                            get(|m| matches!(m, Measure::Value(_))).and_then(|s| s.parse().ok())
                        }
                        Metric::Freshness => match get(|m| matches!(m, Measure::Value(_))) {
                            Some(s) => Some((now - parse_time(&s)?).num_seconds() as f64),
                            None => None,
                        },
                    };
                    judge_anomaly(
                        c,
                        *metric,
                        value,
                        *window,
                        *threshold,
                        *min_history,
                        history,
                        &mut r,
                    );
                }
                _ if c.counts_rows() => {
                    if let Kind::Relationships { to, .. } = &c.kind
                        && backend.schema(to).await?.is_none()
                    {
                        return Err(format!(
                            "the table it refers to, `{to}`, does not exist (load it first: `sluice run`)"
                        ));
                    }
                    let failing = if let Some(q) = count_query(&table_sql, c, d) {
                        let row = backend.query_row(&q).await?;
                        row.first()
                            .cloned()
                            .flatten()
                            .as_deref()
                            .and_then(parse_u64)
                            .unwrap_or(0)
                    } else {
                        get(|m| matches!(m, Measure::Failing(_)))
                            .as_deref()
                            .and_then(parse_u64)
                            .unwrap_or(0)
                    };
                    let total = scope.or(rows_total).unwrap_or(0);
                    judge_count(c, failing, total, &mut r);
                    if failing > 0 {
                        if let Some(q) = failing_rows_query(&table_sql, c, d, Some(SAMPLES as u64))
                        {
                            r.samples = backend.query_rows(&q).await.unwrap_or_default();
                        }
                        if c.store_failures
                            && let Some(q) = failing_rows_query(&table_sql, c, d, Some(c.limit))
                        {
                            r.stored_failures = Some(backend.store_failures(c, &q).await?);
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "check kind `{}` cannot run on a table",
                        c.kind_name
                    ));
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            r = CheckResult::errored(c, Phase::Table, e);
        }
        r.duration_ms = t0.elapsed().as_secs_f64() * 1e3
            + if is_fused(c) {
                scan_ms / n_fused as f64
            } else {
                0.0
            };
        results[slot] = Some(r);
    }
    results
        .into_iter()
        .zip(checks)
        .map(|(r, c)| r.unwrap_or_else(|| CheckResult::errored(c, Phase::Table, "not run".into())))
        .collect()
}

fn judge_schema(
    c: &Check,
    schema: &SchemaRef,
    required: &indexmap::IndexMap<String, Option<DataType>>,
    detect_changes: bool,
    history: History<'_>,
    r: &mut CheckResult,
) {
    let current: serde_json::Map<String, Value> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), Value::from(type_name(f.data_type()))))
        .collect();
    let mut problems = Vec::new();
    for (name, ty) in required {
        match schema.field_with_name(name) {
            Err(_) => problems.push(format!("column `{name}` is missing")),
            Ok(f) => {
                if let Some(t) = ty
                    && !same_type(f.data_type(), t)
                {
                    problems.push(format!(
                        "column `{name}` is {}, expected {}",
                        type_name(f.data_type()),
                        type_name(t)
                    ));
                }
            }
        }
    }
    if detect_changes && let Some(Value::Object(prev)) = history(&c.id, 1).pop() {
        for (name, ty) in &prev {
            match current.get(name) {
                None => problems.push(format!("column `{name}` was removed")),
                Some(t) if t != ty => problems.push(format!(
                    "column `{name}` changed from {} to {}",
                    ty.as_str().unwrap_or("?"),
                    t.as_str().unwrap_or("?")
                )),
                _ => {}
            }
        }
        for name in current.keys().filter(|n| !prev.contains_key(*n)) {
            problems.push(format!("column `{name}` was added"));
        }
    }
    r.observed = Value::Object(current);
    if problems.is_empty() {
        r.status = Status::Pass;
        r.message = format!("{} columns as expected", schema.fields().len());
    } else {
        r.status = failed(c);
        r.failing_rows = None;
        r.message = problems.join("; ");
    }
}

/// Types compare by family where the lake stores a wider one (an `int32`
/// declared, an `int64` stored is fine).
fn same_type(actual: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    actual == expected
        || (actual.is_integer() && expected.is_integer())
        || (actual.is_floating() && expected.is_floating())
        || (matches!(actual, Utf8 | LargeUtf8 | Utf8View)
            && matches!(expected, Utf8 | LargeUtf8 | Utf8View))
        || (matches!(actual, Timestamp(_, a) if a.is_some())
            && matches!(expected, Timestamp(_, e) if e.is_some()))
        || (matches!(actual, Timestamp(_, None)) && matches!(expected, Timestamp(_, None)))
        || (matches!(actual, Decimal128(..) | Decimal256(..))
            && matches!(expected, Decimal128(..) | Decimal256(..)))
}

#[allow(clippy::too_many_arguments)]
fn judge_anomaly(
    c: &Check,
    metric: Metric,
    value: Option<f64>,
    window: usize,
    threshold: f64,
    min_history: usize,
    history: History<'_>,
    r: &mut CheckResult,
) {
    let Some(v) = value else {
        r.status = Status::Pass;
        r.message = format!("no {} to judge (empty table)", metric.name());
        return;
    };
    r.observed = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
    let past: Vec<f64> = history(&c.id, window)
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    match anomaly::judge(&past, v, threshold, min_history) {
        None => {
            r.status = Status::Pass;
            r.message = format!(
                "{} is {}; learning ({} of {min_history} results needed)",
                metric.name(),
                fmt_num(v),
                past.len()
            );
        }
        Some(verdict) => {
            r.status = if !verdict.anomalous {
                Status::Pass
            } else {
                failed(c)
            };
            r.message = format!(
                "{} is {} (median of the last {} results {}, {:.1} robust σ away{})",
                metric.name(),
                fmt_num(v),
                past.len(),
                fmt_num(verdict.median),
                verdict.score,
                if verdict.anomalous { ": anomaly" } else { "" }
            );
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    s.trim()
        .parse::<u64>()
        .ok()
        .or_else(|| s.trim().parse::<f64>().ok().map(|f| f.max(0.0) as u64))
}

/// A timestamp as engines print it: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][+zz]`,
/// or a date (midnight). Without a zone, UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Ok(d.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|x| x.and_utc())
            .unwrap_or_default());
    }
    Err(format!("`{t}` is not a timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_parse() {
        for s in [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00",
            "2026-11-25 10:00:00.123456",
            "2026-11-25 11:00:00+01",
            "2026-11-25T10:00:00.000+00:00",
        ] {
            let t = parse_time(s).expect(s);
            assert_eq!(t.format("%Y-%m-%d %H").to_string(), "2026-11-25 10", "{s}");
        }
        assert_eq!(
            parse_time("2026-11-25").expect("date").to_rfc3339(),
            "2026-11-25T00:00:00+00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
