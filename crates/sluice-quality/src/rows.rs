//! Row checks on batches, during a load.
//!
//! Each row check's pass condition ([`Check::pass_condition`]) is planned
//! once against the stream's schema into a DataFusion physical expression
//! and evaluated on every batch, vectorised: no per-row work unless a row
//! fails. Checks with `severity: error` and the default threshold are
//! *enforced*: their failing rows are handed back to the engine, which stops
//! the stream, quarantines them or loads them, per the stream's `on_fail`.
//! The others (warnings, `mostly`, `warn_if`/`error_if`) only count, and are
//! judged once the load is over.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, not, or};
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use serde_json::Value;
use sluice_core::config::{ConfigError, Severity};

use crate::result::{CheckResult, Phase, judge_count};
use crate::spec::{Check, Kind};
use crate::sql::Dialect;
use crate::threshold::Threshold;

/// Failing rows kept as samples per check.
pub const SAMPLES: usize = 5;

struct Planned {
    check: Check,
    expr: Eval,
    enforced: bool,
    failing: u64,
    total: u64,
    samples: Vec<Value>,
    nanos: u128,
    /// Set when the check could not be evaluated on the data; it is not
    /// evaluated again.
    error: Option<String>,
}

/// The row checks of one stream, planned against its schema.
pub struct RowChecker {
    planned: Vec<Planned>,
    schema: SchemaRef,
}

type PlannedExpr = (Check, Eval);

/// How a row check is evaluated on a batch.
enum Eval {
    /// Its pass condition as a DataFusion physical expression.
    Expr(Arc<dyn PhysicalExpr>),
    /// `regex`/`format` on a text column, without `where:`: the regex run
    /// straight over the values (DataFusion's `regexp_like` costs several
    /// times more per row).
    Regex(usize, regex_automata::meta::Regex),
    /// `length` on a text column, without `where:`: lengths from the
    /// offsets when the values are ASCII.
    Length(usize, Option<u64>, Option<u64>),
    /// `accepted_values` on a text column, without `where:`: the values
    /// compared as text, as the SQL does.
    InSet(usize, Vec<String>),
}

impl Eval {
    fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        match self {
            Eval::Expr(e) => {
                let v = e
                    .evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|e| first_line(&e.to_string()))?;
                v.as_boolean_opt()
                    .cloned()
                    .ok_or_else(|| "its condition is not true/false".to_string())
            }
            Eval::Regex(i, re) => {
                // One cache for the batch: `is_match` would take one from a
                // shared pool for every value.
                let mut cache = re.create_cache();
                Ok(text_pass(batch.column(*i).as_ref(), |s| {
                    re.is_match_with(&mut cache, &regex_automata::Input::new(s).earliest(true))
                }))
            }
            Eval::InSet(i, values) => Ok(text_pass(batch.column(*i).as_ref(), |s| {
                values.iter().any(|v| v == s)
            })),
            Eval::Length(i, min, max) => {
                let (min, max) = (min.unwrap_or(0), max.unwrap_or(u64::MAX));
                let col = batch.column(*i).as_ref();
                if let Some(a) = col.as_string_opt::<i32>()
                    && a.values().is_ascii()
                {
                    let offsets = a.value_offsets();
                    let n = a.len();
                    let pass = arrow::buffer::BooleanBuffer::collect_bool(n, |r| {
                        let len = (offsets[r + 1] - offsets[r]) as u64;
                        a.is_null(r) || (len >= min && len <= max)
                    });
                    return Ok(BooleanArray::new(pass, None));
                }
                Ok(text_pass(col, |s| {
                    let len = s.chars().count() as u64;
                    len >= min && len <= max
                }))
            }
        }
    }
}

/// True where the value is NULL or `ok` holds, for a text column of any
/// of Arrow's three string layouts.
fn text_pass(col: &dyn arrow::array::Array, mut ok: impl FnMut(&str) -> bool) -> BooleanArray {
    let n = col.len();
    let buf = if let Some(a) = col.as_string_opt::<i32>() {
        arrow::buffer::BooleanBuffer::collect_bool(n, |r| a.is_null(r) || ok(a.value(r)))
    } else if let Some(a) = col.as_string_opt::<i64>() {
        arrow::buffer::BooleanBuffer::collect_bool(n, |r| a.is_null(r) || ok(a.value(r)))
    } else if let Some(a) = col.as_string_view_opt() {
        arrow::buffer::BooleanBuffer::collect_bool(n, |r| a.is_null(r) || ok(a.value(r)))
    } else {
        arrow::buffer::BooleanBuffer::new_set(n)
    };
    BooleanArray::new(buf, None)
}

/// The native evaluation of `check`, when it has one.
fn native(check: &Check, schema: &SchemaRef) -> Option<Eval> {
    if check.filter.is_some() {
        return None;
    }
    let col = check.columns.first()?;
    let (i, field) = schema.column_with_name(col)?;
    if !matches!(
        field.data_type(),
        arrow::datatypes::DataType::Utf8
            | arrow::datatypes::DataType::LargeUtf8
            | arrow::datatypes::DataType::Utf8View
    ) {
        return None;
    }
    match &check.kind {
        Kind::Regex(p) | Kind::Format(_, p) => regex_automata::meta::Regex::new(p)
            .ok()
            .map(|re| Eval::Regex(i, re)),
        Kind::Length { min, max } => Some(Eval::Length(i, *min, *max)),
        Kind::AcceptedValues(values) if values.len() <= 32 => Some(Eval::InSet(
            i,
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Each row check's pass condition as a physical expression over `schema`.
fn plan(checks: &[Check], schema: &SchemaRef) -> Result<Vec<PlannedExpr>, ConfigError> {
    let ctx = SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| ConfigError {
        file: Default::default(),
        line: None,
        column: None,
        message: format!("the stream's schema cannot be checked: {e}"),
        hint: None,
        snippet: None,
    })?;
    let mut out = Vec::new();
    for check in checks.iter().filter(|c| c.is_row_check()) {
        check.bind(schema)?;
        if let Some(eval) = native(check, schema) {
            out.push((check.clone(), eval));
            continue;
        }
        let Some(pass) = check.pass_condition(Dialect::DataFusion) else {
            continue;
        };
        let plan_err = |e: datafusion::error::DataFusionError| {
            check.error(
                format!("its condition does not plan: {}", first_line(&e.to_string())),
                Some("conditions are SQL expressions over the stream's columns (DataFusion's dialect)".into()),
            )
        };
        let expr = ctx.parse_sql_expr(&pass, &df_schema).map_err(plan_err)?;
        let expr = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(plan_err)?;
        out.push((check.clone(), Eval::Expr(expr)));
    }
    Ok(out)
}

/// The rows of a batch that failed enforced checks.
pub struct BatchFailures {
    /// True for each row that failed at least one enforced check.
    pub mask: BooleanArray,
    /// For each failing row, in order: the first failed check's column and
    /// the row's value there, and the reason naming every failed check.
    pub rows: Vec<FailedRow>,
}

/// Why one row failed.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedRow {
    /// The column of the first failed check (none for `expression`).
    pub column: Option<String>,
    /// Its value, as text.
    pub value: Option<String>,
    /// `check `a` failed (expected …); check `b` failed …`.
    pub reason: String,
}

impl RowChecker {
    /// Plan the row checks among `checks` against `schema`. A column that
    /// is missing, or a condition that does not plan, is a located config
    /// error.
    pub fn new(checks: &[Check], schema: &SchemaRef) -> Result<RowChecker, ConfigError> {
        let mut planned = Vec::new();
        for (check, expr) in plan(checks, schema)? {
            let enforced = check.severity == Severity::Error
                && check.mostly.is_none()
                && check.error_if == Threshold::default();
            planned.push(Planned {
                check,
                expr,
                enforced,
                failing: 0,
                total: 0,
                samples: Vec::new(),
                nanos: 0,
                error: None,
            });
        }
        Ok(RowChecker {
            planned,
            schema: schema.clone(),
        })
    }

    /// Plan the checks again for a new schema (the stream's schema evolved),
    /// keeping what was counted.
    pub fn rebind(&mut self, schema: &SchemaRef) -> Result<(), ConfigError> {
        if Arc::ptr_eq(schema, &self.schema) || schema == &self.schema {
            return Ok(());
        }
        let checks: Vec<Check> = self.planned.iter().map(|p| p.check.clone()).collect();
        for (p, (_, expr)) in self.planned.iter_mut().zip(plan(&checks, schema)?) {
            p.expr = expr;
        }
        self.schema = schema.clone();
        Ok(())
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// Evaluate every row check on `batch`, counting failures; returns the
    /// rows that failed enforced checks, if any.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Result<Option<BatchFailures>, String> {
        if batch.num_rows() == 0 || self.planned.is_empty() {
            return Ok(None);
        }
        let schema = batch.schema();
        self.rebind(&schema).map_err(|e| e.message)?;
        let mut enforced_fails: Vec<(usize, BooleanArray)> = Vec::new();
        let mut mask: Option<BooleanArray> = None;
        for (i, p) in self.planned.iter_mut().enumerate() {
            if p.error.is_some() {
                continue;
            }
            let start = Instant::now();
            // A check that fails on the data itself (a cast of a text that
            // is no number) errors alone: it is not evaluated again.
            let pass = match p.expr.evaluate(batch) {
                Ok(v) => v,
                Err(e) => {
                    p.error = Some(format!("it cannot be evaluated on the data: {e}"));
                    continue;
                }
            };
            let pass = &pass;
            let passed = pass.true_count();
            let failing = batch.num_rows() - passed;
            p.total += batch.num_rows() as u64;
            p.failing += failing as u64;
            if failing > 0 {
                let fails = not(pass).map_err(|e| e.to_string())?;
                if p.samples.len() < SAMPLES {
                    let bad = filter_record_batch(batch, &fails).map_err(|e| e.to_string())?;
                    let take = (SAMPLES - p.samples.len()).min(bad.num_rows());
                    p.samples.extend(rows_json(&bad.slice(0, take))?);
                }
                if p.enforced {
                    mask = Some(match mask {
                        None => fails.clone(),
                        Some(m) => or(&m, &fails).map_err(|e| e.to_string())?,
                    });
                    enforced_fails.push((i, fails));
                }
            }
            p.nanos += start.elapsed().as_nanos();
        }
        let Some(mask) = mask else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        let opts = FormatOptions::default().with_null("NULL");
        for row in (0..batch.num_rows()).filter(|&r| mask.value(r)) {
            let mut first: Option<(Option<String>, Option<String>)> = None;
            let mut reasons = Vec::new();
            for (i, fails) in &enforced_fails {
                if !fails.value(row) {
                    continue;
                }
                let c = &self.planned[*i].check;
                let col = c.columns.first().cloned();
                let value = match &col {
                    Some(name) => match batch.column_by_name(name) {
                        Some(a) => ArrayFormatter::try_new(a.as_ref(), &opts)
                            .map(|f| f.value(row).to_string())
                            .ok(),
                        None => None,
                    },
                    None => None,
                };
                let shown = match (&col, &value) {
                    (Some(c), Some(v)) => format!(": `{c}` is {v}"),
                    _ => String::new(),
                };
                reasons.push(format!(
                    "check `{}` failed{shown} (expected {})",
                    c.id,
                    crate::result::expected(c)
                ));
                if first.is_none() {
                    first = Some((col, value));
                }
            }
            let (column, value) = first.unwrap_or((None, None));
            rows.push(FailedRow {
                column,
                value,
                reason: reasons.join("; "),
            });
        }
        Ok(Some(BatchFailures { mask, rows }))
    }

    /// The first enforced check that could not be evaluated on the data:
    /// (check id, why).
    pub fn enforced_error(&self) -> Option<(&str, &str)> {
        self.planned
            .iter()
            .filter(|p| p.enforced)
            .find_map(|p| p.error.as_deref().map(|e| (p.check.id.as_str(), e)))
    }

    /// The results once the load is over.
    pub fn results(&self) -> Vec<CheckResult> {
        self.planned
            .iter()
            .map(|p| {
                if let Some(e) = &p.error {
                    let mut r = CheckResult::errored(&p.check, Phase::Load, e.clone());
                    r.total_rows = Some(p.total);
                    return r;
                }
                let mut r = CheckResult::new(&p.check, Phase::Load);
                judge_count(&p.check, p.failing, p.total, &mut r);
                r.samples = p.samples.clone();
                r.duration_ms = p.nanos as f64 / 1e6;
                r
            })
            .collect()
    }
}

/// Rows as JSON objects.
pub fn rows_json(batch: &RecordBatch) -> Result<Vec<Value>, String> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::writer::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(batch).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::result::Status;

    fn checks(text: &str) -> Vec<Check> {
        crate::test_support::compile_text(text).expect("compiles")
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("email", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(-3), Some(4)])),
                Arc::new(StringArray::from(vec![
                    Some("a@b.io"),
                    Some("x@y.org"),
                    Some("nope"),
                    None,
                ])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn enforced_checks_hand_back_failing_rows_with_reasons() {
        let b = batch();
        let cs = checks(
            "checks:\n  - not_null: id\n  - range: {column: id, min: 0}\n  - format: {column: email, format: email, severity: warn}\n",
        );
        let mut rc = RowChecker::new(&cs, &b.schema()).expect("plans");
        let f = rc.evaluate(&b).expect("evaluates").expect("failures");
        assert_eq!(f.mask.true_count(), 2);
        assert_eq!(f.rows[0].column.as_deref(), Some("id"));
        assert_eq!(f.rows[0].value.as_deref(), Some("NULL"));
        assert!(
            f.rows[1]
                .reason
                .contains("shop.orders.range_id` failed: `id` is -3"),
            "{}",
            f.rows[1].reason
        );
        let results = rc.results();
        assert_eq!(results[0].failing_rows, Some(1));
        assert_eq!(results[0].status, Status::Fail);
        // The warning counted its row but did not enforce it.
        assert_eq!(results[2].failing_rows, Some(1));
        assert_eq!(results[2].status, Status::Warn);
        assert_eq!(results[2].samples[0]["email"], "nope");
    }

    #[test]
    fn mostly_only_counts_and_a_missing_column_is_a_config_error() {
        let b = batch();
        let cs = checks("checks:\n  - not_null: {column: email, mostly: 0.7}\n");
        let mut rc = RowChecker::new(&cs, &b.schema()).expect("plans");
        assert!(rc.evaluate(&b).expect("evaluates").is_none());
        assert_eq!(rc.results()[0].status, Status::Pass);
        let cs = checks("checks:\n  - not_null: mail\n");
        let e = RowChecker::new(&cs, &b.schema()).err().expect("refused");
        assert!(e.message.contains("no column `mail`"), "{}", e.message);
        let cs = checks("checks:\n  - expression: id > nothing\n");
        let e = RowChecker::new(&cs, &b.schema()).err().expect("refused");
        assert!(e.message.contains("does not plan"), "{}", e.message);
    }

    #[test]
    fn native_text_kernels_agree_with_the_sql_conditions() {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Utf8, true)]));
        let values = vec![
            Some("abc"),
            Some("éé"),
            Some("abcd"),
            None,
            Some("ééé é"),
            Some("1"),
        ];
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values))])
            .expect("batch");
        // The same checks with a `where:` that keeps every row take the
        // DataFusion path: both must count the same failures.
        for (check, failing) in [
            ("length: {column: t, max: 3}", 2),
            ("regex: {column: t, pattern: '^[a-z]+$'}", 3),
            ("accepted_values: {column: t, values: [abc, 1]}", 3),
        ] {
            for filter in ["", ", where: 'true'"] {
                let text = format!("checks:\n  - {}{filter}}}\n", check.trim_end_matches('}'));
                let cs = checks(&text);
                let mut rc = RowChecker::new(&cs, &schema).expect("plans");
                rc.evaluate(&batch).expect("evaluates");
                let r = &rc.results()[0];
                assert_eq!(r.failing_rows, Some(failing), "{text}: {}", r.message);
            }
        }
        // ASCII offsets fast path: a sliced array keeps its answers.
        let cs = checks("checks:\n  - length: {column: t, min: 2, max: 3}\n");
        let mut rc = RowChecker::new(&cs, &schema).expect("plans");
        rc.evaluate(&batch.slice(2, 4)).expect("evaluates");
        assert_eq!(rc.results()[0].failing_rows, Some(3), "abcd, ééé é, 1");
    }
}
