//! YAML unit tests (dbt 1.8+ `unit_tests:`), run in-process: each `given`
//! input becomes an in-memory table under the relation name the model's
//! compiled SQL uses, the model's SQL runs on a private DataFusion session,
//! and its rows are compared with `expect` — no warehouse, no lake.
//!
//! Column types come from the given values (integers, numbers, booleans,
//! text), or, for a seed input, from the seed file as dbt would load it.
//! Only the columns `expect` names are compared, in any row order.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::{Map, Value};

use crate::jinja::Relation;
use crate::manifest::{Manifest, Node, NodeKind};
use crate::properties::{UnitRows, UnitTestSpec};
use crate::seed::{SeedOptions, read_seed};

/// A unit test's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitOutcome {
    /// Whether the model returned the expected rows.
    pub passed: bool,
    /// What differed (rows missing and unexpected), or `PASS`.
    pub message: String,
    /// Rows that differ (missing + unexpected).
    pub failures: u64,
}

fn quoted_args(inner: &str) -> Vec<String> {
    inner
        .split(',')
        .map(|a| a.trim().trim_matches(['\'', '"']).to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

/// Where a `given` input lives in the compiled SQL.
fn input_relation<'a>(
    m: &'a Manifest,
    model: &Node,
    input: &str,
) -> Result<(Relation, Option<&'a Node>), String> {
    let t = input.trim();
    if t == "this" {
        return Ok((model.relation.clone(), None));
    }
    let args = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(')'))
            .map(quoted_args)
    };
    if let Some(a) = args("ref(") {
        let name = a.last().cloned().unwrap_or_default();
        let node = m
            .nodes
            .get(&name)
            .ok_or_else(|| format!("given `{t}` names no model, seed or snapshot"))?;
        if node.materialized() == "ephemeral" {
            return Err(format!(
                "given `{t}` is an ephemeral model; give its inputs instead"
            ));
        }
        return Ok((node.relation.clone(), Some(node)));
    }
    if let Some(a) = args("source(")
        && let [s, tb] = a.as_slice()
    {
        let src = m
            .sources
            .get(&(s.clone(), tb.clone()))
            .ok_or_else(|| format!("given `{t}` is not a declared source"))?;
        return Ok((src.relation.clone(), None));
    }
    Err(format!(
        "given input `{t}` is not `ref('…')`, `source('…', '…')` or `this`"
    ))
}

/// Rows as JSON objects, from dict rows or CSV text.
fn json_rows(rows: &UnitRows, what: &str) -> Result<Vec<Map<String, Value>>, String> {
    if rows.fixture.is_some() {
        return Err(format!(
            "{what}: `fixture:` files are not supported yet; write the rows inline"
        ));
    }
    match rows.format.as_deref().unwrap_or("dict") {
        "dict" => match &rows.rows {
            Value::Array(items) => items
                .iter()
                .map(|r| match r {
                    Value::Object(m) => Ok(m.clone()),
                    other => Err(format!("{what}: a row must be a mapping, not `{other}`")),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            other => Err(format!(
                "{what}: `rows` must be a list of mappings, not `{other}`"
            )),
        },
        "csv" => {
            let text = rows
                .rows
                .as_str()
                .ok_or_else(|| format!("{what}: csv `rows` must be text"))?;
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let header: Vec<String> = lines
                .next()
                .map(|h| h.split(',').map(|c| c.trim().to_string()).collect())
                .unwrap_or_default();
            Ok(lines
                .map(|l| {
                    header
                        .iter()
                        .cloned()
                        .zip(l.split(',').map(|v| csv_value(v.trim())))
                        .collect()
                })
                .collect())
        }
        other => Err(format!(
            "{what}: format `{other}` is not supported (dict or csv)"
        )),
    }
}

fn csv_value(v: &str) -> Value {
    if v.is_empty() || v.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return Value::from(f);
    }
    match v {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => Value::from(v),
    }
}

/// The Arrow type for a column's given values.
fn infer(values: &[&Value]) -> DataType {
    let present: Vec<&&Value> = values.iter().filter(|v| !v.is_null()).collect();
    if present.is_empty() {
        DataType::Utf8
    } else if present.iter().all(|v| v.is_i64() || v.is_u64()) {
        DataType::Int64
    } else if present.iter().all(|v| v.is_number()) {
        DataType::Float64
    } else if present.iter().all(|v| v.is_boolean()) {
        DataType::Boolean
    } else {
        DataType::Utf8
    }
}

fn batch_of(
    rows: &[Map<String, Value>],
    known: Option<&SchemaRef>,
    what: &str,
) -> Result<RecordBatch, String> {
    let mut columns: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let t = known
                .and_then(|s| s.field_with_name(c).ok().map(|f| f.data_type().clone()))
                .unwrap_or_else(|| {
                    let vals: Vec<&Value> = rows.iter().filter_map(|r| r.get(c)).collect();
                    infer(&vals)
                });
            Field::new(c, t, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut text = Vec::new();
    for r in rows {
        // Values for text columns are written as text (a YAML `2024-01-01` stays a date string).
        let mut row = Map::new();
        for f in schema.fields() {
            let v = r.get(f.name()).cloned().unwrap_or(Value::Null);
            let v = match (f.data_type(), v) {
                (DataType::Utf8, Value::Number(n)) => Value::from(n.to_string()),
                (DataType::Utf8, Value::Bool(b)) => Value::from(b.to_string()),
                (_, v) => v,
            };
            row.insert(f.name().clone(), v);
        }
        serde_json::to_writer(&mut text, &Value::Object(row)).map_err(|e| e.to_string())?;
        text.push(b'\n');
    }
    let mut reader = arrow::json::ReaderBuilder::new(schema.clone())
        .build(std::io::Cursor::new(text))
        .map_err(|e| format!("{what}: {e}"))?;
    match reader.next() {
        Some(b) => b.map_err(|e| format!("{what}: {e}")),
        None => Ok(RecordBatch::new_empty(schema)),
    }
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.0}")
            } else {
                format!("{f:.9}")
            }
        }
        Value::String(s) => csv_value(s)
            .as_f64()
            .map_or_else(|| s.clone(), |_| canonical(&csv_value(s))),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn row_key(r: &Map<String, Value>, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{c}={}", canonical(r.get(c).unwrap_or(&Value::Null))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run one unit test.
pub async fn run(
    m: &Manifest,
    project_dir: &Path,
    spec: &UnitTestSpec,
) -> Result<UnitOutcome, String> {
    let model = m
        .nodes
        .get(&spec.model)
        .filter(|n| n.kind == NodeKind::Model)
        .ok_or_else(|| format!("unit test `{}`: no model `{}`", spec.name, spec.model))?;
    let mut incremental = false;
    for (k, v) in &spec.overrides {
        match (k.as_str(), v) {
            ("macros", Value::Object(macros)) => {
                for (name, value) in macros {
                    match (name.as_str(), value.as_bool()) {
                        ("is_incremental", Some(b)) => incremental = b,
                        _ => {
                            return Err(format!(
                                "unit test `{}`: overriding macro `{name}` is not supported (only is_incremental)",
                                spec.name
                            ));
                        }
                    }
                }
            }
            (_, Value::Object(o)) if o.is_empty() => {}
            (other, _) => {
                return Err(format!(
                    "unit test `{}`: `overrides.{other}` is not supported yet (only macros.is_incremental)",
                    spec.name
                ));
            }
        }
    }
    if m.needs_database(&model.name) {
        return Err(format!(
            "unit test `{}`: model `{}` runs database calls (run_query, statement) while it renders; unit tests run without a database, so this is not supported yet",
            spec.name, model.name
        ));
    }
    let sql = if incremental {
        m.incremental_sql(&model.name).map_err(|e| e.to_string())?
    } else {
        model
            .sql
            .clone()
            .ok_or_else(|| format!("model `{}` has no SQL", model.name))?
    };
    let config = SessionConfig::new().with_default_catalog_and_schema("lake", "public");
    let ctx = SessionContext::new_with_config(config);
    let catalog = Arc::new(MemoryCatalogProvider::new());
    ctx.register_catalog("lake", catalog.clone());
    for g in &spec.given {
        let what = format!("unit test `{}`, given `{}`", spec.name, g.input);
        let (relation, node) = input_relation(m, model, &g.input)
            .map_err(|e| format!("unit test `{}`: {e}", spec.name))?;
        let rows = json_rows(&g.rows, &what)?;
        let known = match node {
            Some(n) if n.kind == NodeKind::Seed => {
                read_seed(&project_dir.join(&n.path), &SeedOptions::default())
                    .ok()
                    .map(|s| s.schema)
            }
            _ => None,
        };
        let batch = batch_of(&rows, known.as_ref(), &what)?;
        let schema = match catalog.schema(&relation.schema) {
            Some(s) => s,
            None => {
                let s = Arc::new(MemorySchemaProvider::new());
                catalog
                    .register_schema(&relation.schema, s.clone())
                    .map_err(|e| e.to_string())?;
                s
            }
        };
        let table =
            MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| e.to_string())?;
        schema
            .register_table(relation.identifier.clone(), Arc::new(table))
            .map_err(|e| e.to_string())?;
    }
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| format!("unit test `{}`: model `{}`: {e}", spec.name, model.name))?
        .collect()
        .await
        .map_err(|e| format!("unit test `{}`: model `{}`: {e}", spec.name, model.name))?;
    let mut out = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut out);
        for b in &batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
    }
    let actual: Vec<Map<String, Value>> = if out.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&out).map_err(|e| e.to_string())?
    };
    let expected = json_rows(&spec.expect, &format!("unit test `{}`, expect", spec.name))?;
    let mut cols: Vec<String> = Vec::new();
    for r in &expected {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let produced: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = cols
        .iter()
        .find(|c| !produced.is_empty() && !produced.contains(c))
    {
        return Err(format!(
            "unit test `{}`: expect names column `{c}`, which model `{}` does not return (it returns {})",
            spec.name,
            model.name,
            produced.join(", ")
        ));
    }
    let mut want: Vec<String> = expected.iter().map(|r| row_key(r, &cols)).collect();
    let mut got: Vec<String> = actual.iter().map(|r| row_key(r, &cols)).collect();
    want.sort();
    got.sort();
    if want == got {
        return Ok(UnitOutcome {
            passed: true,
            message: "PASS".into(),
            failures: 0,
        });
    }
    let mut missing = want.clone();
    for g in &got {
        if let Some(i) = missing.iter().position(|w| w == g) {
            missing.remove(i);
        }
    }
    let mut extra = got.clone();
    for w in &want {
        if let Some(i) = extra.iter().position(|g| g == w) {
            extra.remove(i);
        }
    }
    let mut message = format!(
        "the model returned {} rows, {} expected",
        got.len(),
        want.len()
    );
    for r in missing.iter().take(10) {
        message.push_str(&format!("\n- expected, not returned: {r}"));
    }
    for r in extra.iter().take(10) {
        message.push_str(&format!("\n+ returned, not expected: {r}"));
    }
    Ok(UnitOutcome {
        passed: false,
        failures: (missing.len() + extra.len()) as u64,
        message,
    })
}
