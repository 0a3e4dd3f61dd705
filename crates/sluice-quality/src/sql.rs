//! Checks → SQL, for DataFusion (the lake) and PostgreSQL.
//!
//! Every check that can be answered by an aggregate over the table becomes
//! one or two columns of a single `SELECT … FROM table` — one scan for all
//! of a table's checks. Row checks are written as a *pass* condition that is
//! never NULL; the same condition runs on batches during a load
//! ([`crate::rows`]). Checks that need their own query (combinations for
//! `unique`, `relationships`, `sql`) get one.

use serde_json::Value;

use crate::spec::{Aggregate, Check, Kind, Metric};

/// The SQL spoken by the engine that runs the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Apache DataFusion (the lake).
    DataFusion,
    /// PostgreSQL.
    Postgres,
}

/// A double-quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted text literal.
pub fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => text_literal(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "NULL".into(),
        other => text_literal(&other.to_string()),
    }
}

impl Dialect {
    fn as_text(self, expr: &str) -> String {
        match self {
            Dialect::DataFusion => format!("CAST({expr} AS VARCHAR)"),
            Dialect::Postgres => format!("CAST({expr} AS TEXT)"),
        }
    }

    fn regex_match(self, expr: &str, pattern: &str) -> String {
        match self {
            Dialect::DataFusion => format!(
                "regexp_like({}, {})",
                self.as_text(expr),
                text_literal(pattern)
            ),
            Dialect::Postgres => format!("({} ~ {})", self.as_text(expr), text_literal(pattern)),
        }
    }

    fn as_double(self, expr: &str) -> String {
        match self {
            Dialect::DataFusion => format!("CAST({expr} AS DOUBLE)"),
            Dialect::Postgres => format!("CAST({expr} AS DOUBLE PRECISION)"),
        }
    }

    fn aggregate(self, agg: Aggregate, col: &str, q: Option<f64>) -> String {
        let x = self.as_double(col);
        match (self, agg) {
            (_, Aggregate::Mean) => format!("avg({x})"),
            (_, Aggregate::Stddev) => format!("stddev({x})"),
            (_, Aggregate::Sum) => format!("sum({x})"),
            (_, Aggregate::DistinctCount) => format!("count(DISTINCT {col})"),
            (Dialect::DataFusion, Aggregate::Median) => format!("median({x})"),
            (Dialect::Postgres, Aggregate::Median) => {
                format!("percentile_cont(0.5) WITHIN GROUP (ORDER BY {x})")
            }
            (Dialect::DataFusion, Aggregate::Quantile) => {
                format!("approx_percentile_cont({x}, {})", q.unwrap_or(0.5))
            }
            (Dialect::Postgres, Aggregate::Quantile) => {
                format!(
                    "percentile_cont({}) WITHIN GROUP (ORDER BY {x})",
                    q.unwrap_or(0.5)
                )
            }
        }
    }
}

impl Check {
    /// For row checks: a condition true for rows that pass, never NULL.
    pub fn pass_condition(&self, d: Dialect) -> Option<String> {
        let col = self.columns.first().map(|c| ident(c));
        let c = col.as_deref().unwrap_or("NULL");
        let null_or = |cond: String| format!("({c} IS NULL OR ({cond}))");
        let pass = match &self.kind {
            Kind::NotNull => format!("({c} IS NOT NULL)"),
            Kind::AcceptedValues(values) => {
                // A list mixing texts with numbers or booleans (`[a, b, 1]`)
                // compares as text: the engines would otherwise coerce the
                // column to the numbers' type and fail on the first text.
                let mixed =
                    values.iter().any(Value::is_string) && values.iter().any(|v| !v.is_string());
                if mixed {
                    let list: Vec<String> = values
                        .iter()
                        .map(|v| {
                            text_literal(&v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        })
                        .collect();
                    null_or(format!("{} IN ({})", d.as_text(c), list.join(", ")))
                } else {
                    let list: Vec<String> = values.iter().map(literal).collect();
                    null_or(format!("{c} IN ({})", list.join(", ")))
                }
            }
            Kind::Range {
                min,
                max,
                inclusive,
            } => {
                let (lo, hi) = if *inclusive { (">=", "<=") } else { (">", "<") };
                let mut parts = Vec::new();
                if let Some(m) = min {
                    parts.push(format!("{c} {lo} {}", literal(m)));
                }
                if let Some(m) = max {
                    parts.push(format!("{c} {hi} {}", literal(m)));
                }
                null_or(parts.join(" AND "))
            }
            Kind::Regex(p) | Kind::Format(_, p) => null_or(d.regex_match(c, p)),
            Kind::Length { min, max } => {
                let len = format!("character_length({})", d.as_text(c));
                let mut parts = Vec::new();
                if let Some(m) = min {
                    parts.push(format!("{len} >= {m}"));
                }
                if let Some(m) = max {
                    parts.push(format!("{len} <= {m}"));
                }
                null_or(parts.join(" AND "))
            }
            Kind::Expression(e) => format!("(({e}) IS NOT FALSE)"),
            _ => return None,
        };
        Some(match &self.filter {
            Some(f) => format!("(NOT (CASE WHEN ({f}) THEN TRUE ELSE FALSE END) OR {pass})"),
            None => pass,
        })
    }

    /// The condition of the rows the check looks at, never NULL. A `CASE`,
    /// not `IS TRUE`: DataFusion's common-subexpression pass lifts a
    /// `where:` used twice in the fused scan (the scope count and the failing
    /// count) and then fails planning on `IS TRUE`'s nullability ("Physical
    /// input schema should be the same as the one converted from logical
    /// input schema"); and not `COALESCE`, which a physical expression
    /// planned outside a query (the row checks of a load) cannot evaluate.
    fn scope(&self) -> String {
        match &self.filter {
            Some(f) => format!("(CASE WHEN ({f}) THEN TRUE ELSE FALSE END)"),
            None => "TRUE".into(),
        }
    }
}

/// One column of the fused query and what it measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Rows in the table.
    Rows,
    /// Rows the check looks at.
    Scope(usize),
    /// Failing rows of a row check.
    Failing(usize),
    /// The check's metric (aggregate, max timestamp, null rate, rows).
    Value(usize),
}

/// The single scan answering every fused check of a table: its SQL and,
/// column by column, what each value is for (index into the checks).
#[derive(Debug, Clone)]
pub struct FusedQuery {
    /// `SELECT … FROM table`.
    pub sql: String,
    /// What each selected column measures.
    pub measures: Vec<Measure>,
}

/// Whether a check is answered by the fused scan.
pub fn is_fused(check: &Check) -> bool {
    !matches!(
        &check.kind,
        Kind::Relationships { .. } | Kind::Sql(_) | Kind::Schema { .. }
    )
}

/// Build the fused scan over `table` (already quoted) for the `checks`
/// where [`is_fused`]; its first column is always the table's row count.
pub fn fused_query(table: &str, checks: &[&Check], d: Dialect) -> FusedQuery {
    let mut cols = Vec::new();
    let mut measures = Vec::new();
    let mut push = |sql: String, m: Measure| {
        cols.push(format!("{sql} AS m{}", cols.len()));
        measures.push(m);
    };
    push("count(*)".into(), Measure::Rows);
    for (i, c) in checks.iter().enumerate() {
        if !is_fused(c) {
            continue;
        }
        let scope = c.scope();
        let col = c.columns.first().map(|x| ident(x)).unwrap_or_default();
        // Without `where:` the scope is the whole table: `count(*)` above.
        if c.filter.is_some() {
            push(
                format!("sum(CASE WHEN {scope} THEN 1 ELSE 0 END)"),
                Measure::Scope(i),
            );
        }
        if let Some(pass) = c.pass_condition(d) {
            push(
                format!("sum(CASE WHEN {pass} THEN 0 ELSE 1 END)"),
                Measure::Failing(i),
            );
            continue;
        }
        let scoped = |e: &str| match &c.filter {
            Some(_) => format!("CASE WHEN {scope} THEN {e} END"),
            None => e.to_string(),
        };
        match &c.kind {
            Kind::RowCount { .. }
            | Kind::Anomaly {
                metric: Metric::RowCount,
                ..
            } => {
                // The scope count is the value.
            }
            Kind::Freshness(_)
            | Kind::Anomaly {
                metric: Metric::Freshness,
                ..
            } => {
                push(
                    d.as_text(&format!("max({})", scoped(&col))),
                    Measure::Value(i),
                );
            }
            Kind::Anomaly {
                metric: Metric::NullRate,
                ..
            } => push(
                format!(
                    "{} / NULLIF({}, 0)",
                    d.as_double(&format!(
                        "sum(CASE WHEN {scope} AND {col} IS NULL THEN 1 ELSE 0 END)"
                    )),
                    d.as_double(&format!("sum(CASE WHEN {scope} THEN 1 ELSE 0 END)"))
                ),
                Measure::Value(i),
            ),
            Kind::Aggregate { agg, quantile, .. } => {
                let inner = scoped(&col);
                push(d.aggregate(*agg, &inner, *quantile), Measure::Value(i));
            }
            _ => {}
        }
    }
    FusedQuery {
        sql: format!("SELECT {} FROM {table}", cols.join(", ")),
        measures,
    }
}

/// For a check counted by a query of its own: the query, whose one value
/// is the failing count. For `unique`, as dbt counts: the duplicated values
/// (or combinations), not the rows holding them.
pub fn count_query(table: &str, check: &Check, d: Dialect) -> Option<String> {
    match &check.kind {
        Kind::Unique | Kind::Relationships { .. } | Kind::Sql(_) => Some(format!(
            "SELECT count(*) FROM ({}) AS failing",
            failing_rows_query(table, check, d, None)?
        )),
        _ => None,
    }
}

/// A query returning the failing rows (or, for `unique`, the duplicated
/// values with their counts), at most `limit` of them.
pub fn failing_rows_query(
    table: &str,
    check: &Check,
    d: Dialect,
    limit: Option<u64>,
) -> Option<String> {
    let scope = check.scope();
    let lim = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let q = match &check.kind {
        Kind::Unique => {
            let cols: Vec<String> = check.columns.iter().map(|c| ident(c)).collect();
            let cols = cols.join(", ");
            let not_null = if check.columns.len() == 1 {
                format!(" AND {cols} IS NOT NULL")
            } else {
                String::new()
            };
            format!(
                "SELECT {cols}, count(*) AS n_records FROM {table} WHERE {scope}{not_null} GROUP BY {cols} HAVING count(*) > 1 ORDER BY count(*) DESC{lim}"
            )
        }
        Kind::Relationships { to, field } => {
            let col = ident(&check.columns[0]);
            let to = quote_table(to);
            format!(
                "SELECT * FROM {table} AS child WHERE {scope} AND child.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {to} AS parent WHERE parent.{} = child.{col}){lim}",
                ident(field)
            )
        }
        Kind::Sql(q) => {
            // The query is wrapped in a subquery: a trailing `;` (as people
            // end statements) would break it.
            let q = q
                .trim()
                .trim_end_matches(';')
                .trim_end()
                .replace("{table}", table);
            format!("SELECT * FROM ({q}) AS failing{lim}")
        }
        _ => {
            let pass = check.pass_condition(d)?;
            format!("SELECT * FROM {table} WHERE NOT {pass}{lim}")
        }
    };
    Some(q)
}

/// For a check carrying SQL of its own (an `expression`, a `sql:` query, a
/// `where:`): a query that plans it without reading rows (`LIMIT 0`), so a
/// misspelt column is found before any data is checked.
pub fn probe_query(table: &str, check: &Check, d: Dialect) -> Option<String> {
    match &check.kind {
        Kind::Expression(_) | Kind::Sql(_) => failing_rows_query(table, check, d, Some(0)),
        _ if check.filter.is_some() => Some(format!(
            "SELECT count(*) FROM {table} WHERE {} LIMIT 0",
            check.scope()
        )),
        _ => None,
    }
}

/// `schema.table` → `"schema"."table"`.
pub fn quote_table(name: &str) -> String {
    name.split('.').map(ident).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {

    use super::*;

    fn checks(text: &str) -> Vec<Check> {
        crate::test_support::compile_text(text).expect("compiles")
    }

    #[test]
    fn row_checks_are_null_safe_pass_conditions() {
        let c = checks(
            "checks:\n  - range: {column: amount, min: 0, inclusive: false, where: \"status = 'x'\"}\n  - accepted_values: {column: s, values: [a, \"o'k\", 1]}\n  - format: {column: e, format: integer}\n",
        );
        assert_eq!(
            c[0].pass_condition(Dialect::DataFusion).expect("row check"),
            "(NOT (CASE WHEN (status = 'x') THEN TRUE ELSE FALSE END) OR (\"amount\" IS NULL OR (\"amount\" > 0)))"
        );
        assert_eq!(
            c[1].pass_condition(Dialect::Postgres).expect("row check"),
            "(\"s\" IS NULL OR (CAST(\"s\" AS TEXT) IN ('a', 'o''k', '1')))"
        );
        assert!(
            c[2].pass_condition(Dialect::Postgres)
                .expect("row check")
                .contains("CAST(\"e\" AS TEXT) ~ '^[+-]?[0-9]+$'")
        );
    }

    #[test]
    fn one_scan_answers_the_fused_checks() {
        let c = checks(
            "checks:\n  - not_null: id\n  - unique: id\n  - unique: [a, b]\n  - row_count: {min: 1}\n  - median: {column: x, max: 3}\n",
        );
        let refs: Vec<&Check> = c.iter().collect();
        let q = fused_query("\"shop\".\"orders\"", &refs, Dialect::DataFusion);
        assert_eq!(
            q.sql,
            "SELECT count(*) AS m0, sum(CASE WHEN (\"id\" IS NOT NULL) THEN 0 ELSE 1 END) AS m1, median(CAST(\"x\" AS DOUBLE)) AS m2 FROM \"shop\".\"orders\""
        );
        // `unique` counts duplicated values as dbt does: a query of its own.
        assert!(
            count_query("t", &c[1], Dialect::DataFusion)
                .expect("own query")
                .contains("GROUP BY \"id\" HAVING count(*) > 1")
        );
        assert!(
            count_query("t", &c[2], Dialect::DataFusion)
                .expect("own query")
                .contains("GROUP BY \"a\", \"b\"")
        );
    }
}
