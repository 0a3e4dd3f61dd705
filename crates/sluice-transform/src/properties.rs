//! Properties (schema) YAML files, version 2: models, seeds, snapshots and
//! sources with their columns, descriptions, configs and data tests.
//!
//! ```yaml
//! version: 2
//! models:
//!   - name: orders
//!     config: { materialized: table }
//!     columns:
//!       - name: order_id
//!         data_tests: [unique, not_null]
//!       - name: status
//!         tests:
//!           - accepted_values: { values: [placed, shipped], config: { severity: warn } }
//! sources:
//!   - name: raw
//!     schema: raw
//!     tables: [{ name: orders }]
//! ```

use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, TransformError};

/// One properties file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertiesFile {
    /// Models described.
    pub models: Vec<NodeProperties>,
    /// Seeds described.
    pub seeds: Vec<NodeProperties>,
    /// Snapshots described.
    pub snapshots: Vec<NodeProperties>,
    /// Sources declared.
    pub sources: Vec<Source>,
    /// Unit tests (`unit_tests:`): a model run on given rows, compared to expected rows.
    pub unit_tests: Vec<UnitTestSpec>,
}

/// One `unit_tests:` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UnitTestSpec {
    /// Its name.
    pub name: String,
    /// The model under test.
    pub model: String,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// The inputs: `ref('x')`, `source('s', 't')` or `this`, with rows.
    #[serde(default)]
    pub given: Vec<UnitGiven>,
    /// The rows the model must return.
    pub expect: UnitRows,
    /// `overrides:` (`macros: {is_incremental: true}`, `vars:`).
    #[serde(default)]
    pub overrides: IndexMap<String, Value>,
    /// `config:` (`enabled`, `tags`).
    #[serde(default)]
    pub config: IndexMap<String, Value>,
}

/// An input of a unit test.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UnitGiven {
    /// `ref('x')`, `source('s', 't')` or `this`.
    pub input: String,
    /// The rows.
    #[serde(flatten)]
    pub rows: UnitRows,
}

/// Rows of a unit test: a list of mappings (`format: dict`, the default)
/// or CSV text (`format: csv`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UnitRows {
    /// `dict` (default), `csv` (or `sql`, refused).
    #[serde(default)]
    pub format: Option<String>,
    /// The rows themselves.
    #[serde(default)]
    pub rows: Value,
    /// `fixture:` (a file under `tests/fixtures/`).
    #[serde(default)]
    pub fixture: Option<String>,
}

/// A model's (or seed's, snapshot's) properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeProperties {
    /// The node's name.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `config:`.
    pub config: IndexMap<String, Value>,
    /// `columns:`.
    pub columns: Vec<Column>,
    /// Node-level data tests.
    pub tests: Vec<TestSpec>,
}

/// A column's properties.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `data_type`, when declared.
    pub data_type: Option<String>,
    /// Column-level data tests.
    pub tests: Vec<TestSpec>,
}

/// A data test use: `unique`, `accepted_values: {values: […]}`,
/// `dbt_utils.expression_is_true: {…}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestSpec {
    /// The test (macro) name, with its package prefix when written so.
    pub test: String,
    /// A custom name for this use (`name:`), when given.
    pub name: Option<String>,
    /// The test's arguments (`values`, `to`, `field`, …; also `arguments:`).
    pub args: IndexMap<String, Value>,
    /// Its configuration (`severity`, `where`, `store_failures`, …).
    pub config: IndexMap<String, Value>,
}

/// A source: a schema of tables loaded outside the transform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// `source(name, …)`'s first argument.
    pub name: String,
    /// The schema the tables are in (default: the source's name).
    pub schema: String,
    /// `database`, when given.
    pub database: Option<String>,
    /// `description`.
    pub description: String,
    /// The tables.
    pub tables: Vec<SourceTable>,
}

/// A table of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceTable {
    /// `source(…, name)`'s second argument.
    pub name: String,
    /// The table's name in the schema (default: `name`).
    pub identifier: String,
    /// `description`.
    pub description: String,
    /// `columns:`.
    pub columns: Vec<Column>,
    /// Table-level data tests.
    pub tests: Vec<TestSpec>,
}

/// Configs a test use may carry next to its arguments.
const TEST_CONFIGS: &[&str] = &[
    "severity",
    "warn_if",
    "error_if",
    "fail_calc",
    "limit",
    "where",
    "store_failures",
    "store_failures_as",
    "tags",
    "enabled",
    "meta",
];

#[derive(Deserialize)]
struct FileYaml {
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    models: Vec<NodeYaml>,
    #[serde(default)]
    seeds: Vec<NodeYaml>,
    #[serde(default)]
    snapshots: Vec<NodeYaml>,
    #[serde(default)]
    sources: Vec<SourceYaml>,
    #[serde(default)]
    unit_tests: Vec<UnitTestSpec>,
    #[serde(flatten)]
    _other: IndexMap<String, Value>,
}

#[derive(Deserialize)]
struct NodeYaml {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    config: IndexMap<String, Value>,
    #[serde(default)]
    columns: Vec<ColumnYaml>,
    #[serde(default)]
    tests: Vec<Value>,
    #[serde(default)]
    data_tests: Vec<Value>,
    #[serde(flatten)]
    _other: IndexMap<String, Value>,
}

#[derive(Deserialize)]
struct ColumnYaml {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    data_type: Option<String>,
    #[serde(default)]
    tests: Vec<Value>,
    #[serde(default)]
    data_tests: Vec<Value>,
    #[serde(flatten)]
    _other: IndexMap<String, Value>,
}

#[derive(Deserialize)]
struct SourceYaml {
    name: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tables: Vec<SourceTableYaml>,
    #[serde(flatten)]
    _other: IndexMap<String, Value>,
}

#[derive(Deserialize)]
struct SourceTableYaml {
    name: String,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    columns: Vec<ColumnYaml>,
    #[serde(default)]
    tests: Vec<Value>,
    #[serde(default)]
    data_tests: Vec<Value>,
    #[serde(flatten)]
    _other: IndexMap<String, Value>,
}

/// Read one properties file.
pub fn load(path: &Path) -> Result<PropertiesFile> {
    let text = std::fs::read_to_string(path).map_err(|source| TransformError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parse the text of a properties file (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<PropertiesFile> {
    if text.trim().is_empty() {
        return Ok(PropertiesFile::default());
    }
    let yaml: FileYaml = serde_saphyr::from_str(text).map_err(|e| {
        let mut err = TransformError::yaml(path, &e);
        if let TransformError::Yaml { hint, .. } = &mut err {
            *hint = Some("dbt properties files are `version: 2` with lists under `models:`, `sources:`, `seeds:`, `snapshots:`".into());
        }
        err
    })?;
    if let Some(v) = &yaml.version
        && v != &Value::from(2)
        && v != &Value::from("2")
    {
        return Err(TransformError::Project {
            message: format!("{}: `version: {v}` is not supported", path.display()),
            hint: Some("properties files are `version: 2`".into()),
        });
    }
    let tests = |node: &str, list: Vec<Value>| -> Result<Vec<TestSpec>> {
        list.into_iter()
            .map(|t| test_spec(t).map_err(|m| project_error(path, node, m)))
            .collect()
    };
    let columns = |node: &str, cols: Vec<ColumnYaml>| -> Result<Vec<Column>> {
        cols.into_iter()
            .map(|c| {
                let mut all = c.tests;
                all.extend(c.data_tests);
                Ok(Column {
                    tests: tests(&format!("{node}.{}", c.name), all)?,
                    name: c.name,
                    description: c.description.unwrap_or_default(),
                    data_type: c.data_type,
                })
            })
            .collect()
    };
    let nodes = |list: Vec<NodeYaml>| -> Result<Vec<NodeProperties>> {
        list.into_iter()
            .map(|n| {
                let mut all = n.tests;
                all.extend(n.data_tests);
                Ok(NodeProperties {
                    columns: columns(&n.name, n.columns)?,
                    tests: tests(&n.name, all)?,
                    description: n.description.unwrap_or_default(),
                    config: n.config,
                    name: n.name,
                })
            })
            .collect()
    };
    let sources = yaml
        .sources
        .into_iter()
        .map(|s| {
            let tables = s
                .tables
                .into_iter()
                .map(|t| {
                    let id = format!("{}.{}", s.name, t.name);
                    let mut all = t.tests;
                    all.extend(t.data_tests);
                    Ok(SourceTable {
                        columns: columns(&id, t.columns)?,
                        tests: tests(&id, all)?,
                        identifier: t.identifier.unwrap_or_else(|| t.name.clone()),
                        description: t.description.unwrap_or_default(),
                        name: t.name,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Source {
                schema: s.schema.unwrap_or_else(|| s.name.clone()),
                database: s.database,
                description: s.description.unwrap_or_default(),
                name: s.name,
                tables,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PropertiesFile {
        models: nodes(yaml.models)?,
        seeds: nodes(yaml.seeds)?,
        snapshots: nodes(yaml.snapshots)?,
        sources,
        unit_tests: yaml.unit_tests,
    })
}

fn project_error(path: &Path, node: &str, message: String) -> TransformError {
    TransformError::Project {
        message: format!("{}: `{node}`: {message}", path.display()),
        hint: Some(
            "write a test as `- unique` or `- accepted_values: {values: [a, b]}`".to_string(),
        ),
    }
}

/// One entry of a `tests:` / `data_tests:` list.
fn test_spec(entry: Value) -> std::result::Result<TestSpec, String> {
    match entry {
        Value::String(test) => Ok(TestSpec {
            test,
            ..Default::default()
        }),
        Value::Object(map) if map.len() == 1 => {
            let Some((test, body)) = map.into_iter().next() else {
                return Err("an empty test".into());
            };
            let mut spec = TestSpec {
                test,
                ..Default::default()
            };
            match body {
                Value::Object(body) => fill(&mut spec, body)?,
                Value::Null => {}
                other => {
                    return Err(format!(
                        "test `{}` takes a mapping, not `{other}`",
                        spec.test
                    ));
                }
            }
            Ok(spec)
        }
        Value::Object(map) if map.contains_key("test_name") => {
            let mut body = map;
            let test = match body.remove("test_name") {
                Some(Value::String(s)) => s,
                _ => return Err("`test_name` must be a string".into()),
            };
            let mut spec = TestSpec {
                test,
                ..Default::default()
            };
            fill(&mut spec, body)?;
            Ok(spec)
        }
        other => Err(format!("`{other}` is not a test")),
    }
}

fn fill(
    spec: &mut TestSpec,
    body: serde_json::Map<String, Value>,
) -> std::result::Result<(), String> {
    for (key, value) in body {
        match key.as_str() {
            "name" => {
                spec.name = Some(
                    value
                        .as_str()
                        .ok_or("a test's `name` must be a string")?
                        .to_string(),
                );
            }
            "config" => match value {
                Value::Object(c) => spec.config.extend(c),
                _ => return Err("a test's `config` must be a mapping".into()),
            },
            "arguments" => match value {
                Value::Object(a) => spec.args.extend(a),
                _ => return Err("a test's `arguments` must be a mapping".into()),
            },
            k if TEST_CONFIGS.contains(&k) => {
                spec.config.insert(key, value);
            }
            _ => {
                spec.args.insert(key, value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn models_columns_tests_and_sources() {
        let text = r#"
version: 2
models:
  - name: orders
    description: One row per order
    config: { materialized: table }
    data_tests:
      - dbt_utils.expression_is_true: { expression: "amount >= 0" }
    columns:
      - name: order_id
        tests: [unique, not_null]
      - name: status
        data_tests:
          - accepted_values:
              values: [placed, shipped]
              config: { severity: warn }
      - name: customer_id
        tests:
          - relationships: { to: "ref('customers')", field: customer_id, where: "status != 'x'" }
          - name: custom_name
            test_name: not_null
sources:
  - name: raw
    tables:
      - name: orders
        identifier: raw_orders
        columns: [{ name: id, tests: [unique] }]
"#;
        let f = parse(text, Path::new("models/schema.yml")).unwrap();
        let m = &f.models[0];
        assert_eq!(m.config["materialized"], "table");
        assert_eq!(m.tests[0].test, "dbt_utils.expression_is_true");
        assert_eq!(m.tests[0].args["expression"], "amount >= 0");
        assert_eq!(m.columns[0].tests.len(), 2);
        let av = &m.columns[1].tests[0];
        assert_eq!(av.args["values"], json!(["placed", "shipped"]));
        assert_eq!(av.config["severity"], "warn");
        let rel = &m.columns[2].tests[0];
        assert_eq!(rel.args["to"], "ref('customers')");
        assert_eq!(rel.config["where"], "status != 'x'");
        let named = &m.columns[2].tests[1];
        assert_eq!(
            (named.test.as_str(), named.name.as_deref()),
            ("not_null", Some("custom_name"))
        );
        let s = &f.sources[0];
        assert_eq!((s.name.as_str(), s.schema.as_str()), ("raw", "raw"));
        assert_eq!(s.tables[0].identifier, "raw_orders");
        assert_eq!(s.tables[0].columns[0].tests[0].test, "unique");
    }

    #[test]
    fn errors_name_the_file_line_and_node() {
        let e = parse(
            "version: 2\nmodels:\n  - description: x\n",
            Path::new("models/a.yml"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("models/a.yml:3"), "{text}");
        assert!(text.contains("name"), "{text}");
        let e = parse(
            "version: 2\nmodels:\n  - name: m\n    tests: [{unique: 3}]\n",
            Path::new("models/b.yml"),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("`m`: test `unique` takes a mapping"),
            "{e}"
        );
        let e = parse("version: 1\n", Path::new("x.yml")).unwrap_err();
        assert!(e.to_string().contains("version: 1"), "{e}");
    }
}
