//! Rendering a model's Jinja with dbt's context (minijinja).
//!
//! The context a model sees: `ref` (one or two arguments), `source`,
//! `config(...)` (recorded), `var` (project `vars:` and overrides, with a
//! default), `env_var`, `is_incremental()`, `this`, `target`, and every
//! macro of the project (generic `{% test %}` blocks become `test_<name>`
//! macros, as in dbt). What a render used — refs, sources, configs — is
//! recorded for the graph.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use crate::error::{Result, TransformError};

/// Name of the template that holds every project macro.
const MACROS: &str = "__sluice_macros__";

/// A table or view: what `ref`, `source` and `this` return. Renders as
/// `"schema"."identifier"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Database (catalog), when there is one.
    pub database: Option<String>,
    /// Schema.
    pub schema: String,
    /// Table or view name.
    pub identifier: String,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        if self.schema.is_empty() {
            // An ephemeral model: a CTE name, not a relation.
            return f.write_str(&self.identifier);
        }
        if let Some(db) = &self.database {
            write!(f, "{}.", quote(db))?;
        }
        write!(f, "{}.{}", quote(&self.schema), quote(&self.identifier))
    }
}

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "database" => Some(Value::from(self.database.clone())),
            "schema" => Some(Value::from(self.schema.clone())),
            "identifier" | "name" | "table" => Some(Value::from(self.identifier.clone())),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

/// Where every `ref` and `source` points.
#[derive(Debug, Clone, Default)]
pub struct Relations {
    /// Model, seed and snapshot names → their relation.
    pub nodes: HashMap<String, Relation>,
    /// `(source, table)` → its relation.
    pub sources: HashMap<(String, String), Relation>,
}

/// What one render used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compiled {
    /// The SQL.
    pub sql: String,
    /// Names passed to `ref`, in order of first use.
    pub refs: Vec<String>,
    /// `(source, table)` pairs passed to `source`.
    pub sources: Vec<(String, String)>,
    /// What `config(...)` set.
    pub config: IndexMap<String, serde_json::Value>,
}

/// The per-render state functions record into (found in the context).
#[derive(Debug, Default)]
struct Capture {
    relations: Arc<Relations>,
    vars: Arc<IndexMap<String, serde_json::Value>>,
    is_incremental: bool,
    used: Mutex<Compiled>,
}

impl Object for Capture {}

const CAPTURE: &str = "__sluice_capture__";

fn capture(state: &State) -> Result<Arc<Capture>, Error> {
    state
        .lookup(CAPTURE)
        .and_then(|v| v.downcast_object::<Capture>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not inside a model render"))
}

fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = distance(name, k);
        if d <= 2.max(name.len() / 3) && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn ref_fn(state: &State, args: Rest<String>) -> Result<Value, Error> {
    let name = match args.as_slice() {
        [name] | [_, name] => name.clone(),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "ref takes a model name, or a package and a model name",
            ));
        }
    };
    let cap = capture(state)?;
    let relation = cap.relations.nodes.get(&name).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "ref('{name}') names no model, seed or snapshot{}",
                did_you_mean(&name, cap.relations.nodes.keys())
            ),
        )
    })?;
    if let Ok(mut used) = cap.used.lock()
        && !used.refs.contains(&name)
    {
        used.refs.push(name);
    }
    Ok(Value::from_object(relation))
}

fn source_fn(state: &State, source: String, table: String) -> Result<Value, Error> {
    let cap = capture(state)?;
    let key = (source.clone(), table.clone());
    let relation = cap.relations.sources.get(&key).cloned().ok_or_else(|| {
        let known: Vec<String> = cap
            .relations
            .sources
            .keys()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "source('{source}', '{table}') is not declared in a properties file{}",
                did_you_mean(&format!("{source}.{table}"), known.iter())
            ),
        )
    })?;
    if let Ok(mut used) = cap.used.lock()
        && !used.sources.contains(&key)
    {
        used.sources.push(key);
    }
    Ok(Value::from_object(relation))
}

fn config_fn(state: &State, kwargs: Kwargs) -> Result<String, Error> {
    let cap = capture(state)?;
    let mut used = cap
        .used
        .lock()
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "config lock"))?;
    for key in kwargs.args() {
        let value: Value = kwargs.get(key)?;
        let json = serde_json::to_value(&value)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        crate::config::merge_config(&mut used.config, key, json);
    }
    Ok(String::new())
}

fn var_fn(state: &State, name: String, default: Option<Value>) -> Result<Value, Error> {
    let cap = capture(state)?;
    match cap.vars.get(&name) {
        Some(v) => Ok(Value::from(minijinja::value::Serde(v))),
        None => default.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "var('{name}') is not set: add it under `vars:` in dbt_project.yml, pass --vars '{{{name}: …}}', or give a default: var('{name}', …)"
                ),
            )
        }),
    }
}

fn env_var_fn(name: String, default: Option<String>) -> Result<String, Error> {
    match std::env::var(&name) {
        Ok(v) => Ok(v),
        Err(_) => default.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("env_var('{name}') is not set and has no default"),
            )
        }),
    }
}

fn is_incremental_fn(state: &State) -> Result<bool, Error> {
    Ok(capture(state)?.is_incremental)
}

/// Turn dbt-only block tags minijinja does not know into plain macros:
/// `{% test name(args) %}…{% endtest %}` → `{% macro test_name(args) %}…{% endmacro %}`.
pub fn dbt_blocks_to_macros(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{%") {
        out.push_str(&rest[..i]);
        let tag = &rest[i..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (lead, body) = match inner.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", inner),
        };
        let trimmed = body.trim_start();
        let replaced = if let Some(after) = trimmed.strip_prefix("test ") {
            Some(format!("{{%{lead} macro test_{}%}}", after.trim_start()))
        } else if trimmed.trim_end().trim_end_matches('-').trim_end() == "endtest" {
            let trail = if body.trim_end().ends_with('-') {
                "-"
            } else {
                ""
            };
            Some(format!("{{%{lead} endmacro {trail}%}}"))
        } else {
            None
        };
        match replaced {
            Some(r) => out.push_str(&r),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// dbt's four generic tests, as macros a project may override by defining
/// a macro of the same name. Their SQL returns the failing rows.
const BUILTIN_TESTS: &[(&str, &str)] = &[
    (
        "test_not_null",
        "{% macro test_not_null(model, column_name) %}select {{ column_name }}\nfrom {{ model }}\nwhere {{ column_name }} is null{% endmacro %}",
    ),
    (
        "test_unique",
        "{% macro test_unique(model, column_name) %}select {{ column_name }} as unique_field, count(*) as n_records\nfrom {{ model }}\nwhere {{ column_name }} is not null\ngroup by {{ column_name }}\nhaving count(*) > 1{% endmacro %}",
    ),
    (
        "test_accepted_values",
        "{% macro test_accepted_values(model, column_name, values, quote=true) %}with all_values as (\n    select {{ column_name }} as value_field, count(*) as n_records\n    from {{ model }}\n    group by {{ column_name }}\n)\nselect * from all_values\nwhere value_field not in ({% for v in values %}{% if quote %}'{{ v | replace(\"'\", \"''\") }}'{% else %}{{ v }}{% endif %}{% if not loop.last %}, {% endif %}{% endfor %}){% endmacro %}",
    ),
    (
        "test_relationships",
        "{% macro test_relationships(model, column_name, to, field) %}with child as (\n    select {{ column_name }} as from_field from {{ model }} where {{ column_name }} is not null\n),\nparent as (\n    select {{ field }} as to_field from {{ to }}\n)\nselect from_field\nfrom child left join parent on child.from_field = parent.to_field\nwhere parent.to_field is null{% endmacro %}",
    ),
];

/// Macro names defined in `text` (`{% macro name(` …).
fn macro_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("macro ") {
        let before = rest[..i].trim_end();
        let after = &rest[i + "macro ".len()..];
        if before.ends_with("{%") || before.ends_with("{%-") {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        rest = after;
    }
    names
}

/// Renders the models of one project.
pub struct Renderer {
    env: Environment<'static>,
    macro_names: Vec<String>,
    relations: Arc<Relations>,
    vars: Arc<IndexMap<String, serde_json::Value>>,
    target: Value,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("macros", &self.macro_names.len())
            .finish_non_exhaustive()
    }
}

/// The `target` a render sees (from the profile's output).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// Output name (`dev`).
    pub name: String,
    /// Adapter type (`sluice`, `postgres`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Default schema.
    pub schema: String,
    /// Database, when there is one.
    pub database: Option<String>,
    /// Threads.
    pub threads: u32,
}

fn jinja_error(path: &Path, e: &Error) -> TransformError {
    let mut message = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    if e.kind() == ErrorKind::SyntaxError {
        message = format!("Jinja syntax error: {message}");
    }
    TransformError::Template {
        path: path.to_path_buf(),
        line: e.line(),
        message,
    }
}

impl Renderer {
    /// A renderer with the project's macro files (`(path, text)`), where
    /// every ref and source points, the project's `vars` (overrides
    /// already applied) and the target.
    pub fn new(
        macro_files: &[(PathBuf, String)],
        relations: Relations,
        vars: IndexMap<String, serde_json::Value>,
        target: &Target,
    ) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // SQL is never escaped (minijinja would JSON-escape templates named
        // `*.yml`, as generic tests from properties files are).
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_function("ref", ref_fn);
        env.add_function("source", source_fn);
        env.add_function("config", config_fn);
        env.add_function("var", var_fn);
        env.add_function("env_var", env_var_fn);
        env.add_function("is_incremental", is_incremental_fn);
        let mut all = String::new();
        let mut names = Vec::new();
        let defined: Vec<String> = macro_files
            .iter()
            .flat_map(|(_, t)| macro_names(&dbt_blocks_to_macros(t)))
            .collect();
        for (name, text) in BUILTIN_TESTS {
            if !defined.iter().any(|d| d == name) {
                names.push((*name).to_string());
                all.push_str(text);
                all.push('\n');
            }
        }
        for (path, text) in macro_files {
            let text = dbt_blocks_to_macros(text);
            // Checked one file at a time so that errors name the file and line.
            let mut probe = Environment::new();
            probe
                .add_template_owned(path.display().to_string(), text.clone())
                .map_err(|e| jinja_error(path, &e))?;
            for n in macro_names(&text) {
                if names.contains(&n) {
                    return Err(TransformError::Project {
                        message: format!(
                            "macro `{n}` is defined twice (again in `{}`)",
                            path.display()
                        ),
                        hint: Some("rename one of them".into()),
                    });
                }
                names.push(n);
            }
            all.push_str(&text);
            all.push('\n');
        }
        env.add_template_owned(MACROS, all)
            .map_err(|e| jinja_error(Path::new("macros"), &e))?;
        Ok(Renderer {
            env,
            macro_names: names,
            relations: Arc::new(relations),
            vars: Arc::new(vars),
            target: Value::from(minijinja::value::Serde(target)),
        })
    }

    /// Render `sql` (the text of `path`) as the node `this`.
    pub fn render(
        &self,
        path: &Path,
        sql: &str,
        this: &Relation,
        is_incremental: bool,
    ) -> Result<Compiled> {
        // The import goes on the first line, before the model's own text,
        // so line numbers in errors are the file's.
        let source = if self.macro_names.is_empty() {
            sql.to_string()
        } else {
            format!(
                "{{% from \"{MACROS}\" import {} %}}{sql}",
                self.macro_names.join(", ")
            )
        };
        let capture = Arc::new(Capture {
            relations: self.relations.clone(),
            vars: self.vars.clone(),
            is_incremental,
            used: Mutex::new(Compiled::default()),
        });
        let name = path.display().to_string();
        let tmpl = self
            .env
            .template_from_named_str(&name, &source)
            .map_err(|e| jinja_error(path, &e))?;
        let ctx = minijinja::context! {
            __sluice_capture__ => Value::from_dyn_object(capture.clone()),
            this => Value::from_object(this.clone()),
            target => self.target.clone(),
        };
        let sql = tmpl.render(ctx).map_err(|e| jinja_error(path, &e))?;
        let mut used = capture.used.lock().map(|u| u.clone()).unwrap_or_default();
        used.sql = sql;
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rel(schema: &str, name: &str) -> Relation {
        Relation {
            database: None,
            schema: schema.into(),
            identifier: name.into(),
        }
    }

    fn renderer(macros: &[(&str, &str)]) -> Renderer {
        let mut relations = Relations::default();
        relations
            .nodes
            .insert("stg_orders".into(), rel("main", "stg_orders"));
        relations
            .sources
            .insert(("raw".into(), "orders".into()), rel("raw", "orders"));
        let files: Vec<(PathBuf, String)> = macros
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        let mut vars = IndexMap::new();
        vars.insert("start".to_string(), json!("2024-01-01"));
        Renderer::new(
            &files,
            relations,
            vars,
            &Target {
                name: "dev".into(),
                kind: "sluice".into(),
                schema: "main".into(),
                database: None,
                threads: 4,
            },
        )
        .unwrap()
    }

    #[test]
    fn refs_sources_config_vars_macros_and_this() {
        let r = renderer(&[
            (
                "macros/cents.sql",
                "{% macro cents(col) %}({{ col }} / 100.0){% endmacro %}",
            ),
            (
                "tests/generic/is_even.sql",
                "{% test is_even(model, column_name) %}select * from {{ model }} where {{ column_name }} % 2 = 1{% endtest %}",
            ),
        ]);
        let sql = "{{ config(materialized='table', tags=['a']) }}\nselect {{ cents('amount') }} as usd\nfrom {{ ref('stg_orders') }} join {{ source('raw', 'orders') }} using (id)\nwhere day >= '{{ var('start') }}' and t = '{{ var('missing', 'x') }}' -- {{ this }} {{ this.name }} {{ target.type }}\n{% if is_incremental() %}and 1=1{% endif %}";
        let c = r
            .render(
                Path::new("models/orders.sql"),
                sql,
                &rel("main", "orders"),
                false,
            )
            .unwrap();
        assert_eq!(
            c.sql,
            "\nselect (amount / 100.0) as usd\nfrom \"main\".\"stg_orders\" join \"raw\".\"orders\" using (id)\nwhere day >= '2024-01-01' and t = 'x' -- \"main\".\"orders\" orders sluice\n"
        );
        assert_eq!(c.refs, vec!["stg_orders"]);
        assert_eq!(c.sources, vec![("raw".to_string(), "orders".to_string())]);
        assert_eq!(c.config["materialized"], "table");
        assert_eq!(c.config["tags"], json!(["a"]));
        let c = r
            .render(
                Path::new("m.sql"),
                "{{ test_is_even('t', 'x') }}",
                &rel("main", "m"),
                true,
            )
            .unwrap();
        assert_eq!(c.sql, "select * from t where x % 2 = 1");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let r = renderer(&[]);
        let e = r
            .render(
                Path::new("models/a.sql"),
                "select 1\nfrom {{ ref('stg_order') }}",
                &rel("main", "a"),
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("models/a.sql:2"), "{e}");
        assert!(e.contains("did you mean `stg_orders`?"), "{e}");
        let e = r
            .render(
                Path::new("models/b.sql"),
                "select\n{{ ref('x' }}",
                &rel("main", "b"),
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("models/b.sql:2") && e.contains("syntax error"),
            "{e}"
        );
        let e = r
            .render(
                Path::new("models/c.sql"),
                "{{ var('nope') }}",
                &rel("main", "c"),
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("var('nope') is not set"), "{e}");
        let e = Renderer::new(
            &[(PathBuf::from("macros/bad.sql"), "\n{% macro x( %}".into())],
            Relations::default(),
            IndexMap::new(),
            &Target {
                name: "dev".into(),
                kind: "sluice".into(),
                schema: "main".into(),
                database: None,
                threads: 1,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("macros/bad.sql:2"), "{e}");
    }

    #[test]
    fn test_blocks_become_macros() {
        assert_eq!(
            dbt_blocks_to_macros("{%- test t(model) -%}x{%- endtest -%} {% set a = 1 %}"),
            "{%- macro test_t(model) -%}x{%- endmacro -%} {% set a = 1 %}"
        );
    }
}
