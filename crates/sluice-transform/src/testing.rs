//! Data tests as nodes: generic tests from properties files (`unique`,
//! `not_null`, `accepted_values`, `relationships`, project `{% test %}`
//! macros) and singular tests (`tests/**/*.sql`).
//!
//! A generic test use renders as a call of its `test_<name>` macro with
//! `model` (the tested relation, narrowed by the `where` config),
//! `column_name` and the use's arguments (`to: ref('x')` stays a ref).
//! The query returns the failing rows; [`wrap`] turns it into dbt's
//! `failures / should_warn / should_error` row.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use md5::{Digest, Md5};
use serde_json::Value;

use crate::error::{Result, TransformError};
use crate::properties::TestSpec;

/// What a test checks (for the manifest's `test_metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct TestInfo {
    /// The generic test's name (`unique`, `accepted_values`, a project
    /// macro's), `None` for a singular test.
    pub generic: Option<String>,
    /// Its arguments other than `model` and `column_name`.
    pub kwargs: IndexMap<String, Value>,
    /// The column tested, for column tests.
    pub column_name: Option<String>,
    /// The node the test is attached to (a model or seed name, or
    /// `source.table`).
    pub attached: Option<String>,
}

/// What is tested: a node (`ref`) or a source table.
#[derive(Debug, Clone, PartialEq)]
pub enum Tested {
    /// A model, seed or snapshot.
    Node(String),
    /// A source table `(source, table)`.
    Source(String, String),
}

impl Tested {
    fn jinja(&self) -> String {
        match self {
            Tested::Node(n) => format!("ref({})", literal(&Value::from(n.as_str()))),
            Tested::Source(s, t) => format!(
                "source({}, {})",
                literal(&Value::from(s.as_str())),
                literal(&Value::from(t.as_str()))
            ),
        }
    }

    fn label(&self) -> String {
        match self {
            Tested::Node(n) => n.clone(),
            Tested::Source(s, t) => format!("{s}_{t}"),
        }
    }
}

/// A generic test use, ready to render.
#[derive(Debug, Clone)]
pub struct GenericTest {
    /// The test's node name (dbt's: `not_null_orders_order_id`).
    pub name: String,
    /// The Jinja that renders its failing-rows query.
    pub template: String,
    /// Its config as written with the use.
    pub config: IndexMap<String, Value>,
    /// What it checks.
    pub info: TestInfo,
    /// The properties file it comes from.
    pub path: PathBuf,
}

/// A Jinja literal for a JSON value (`none`, `true`, `'text'`, lists, dicts).
pub fn literal(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", literal(&Value::from(k.as_str())), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An argument as Jinja: `ref(...)`/`source(...)` strings are calls (as in
/// dbt, where test arguments are rendered), `{{ expr }}` is `expr`, the rest
/// are literals.
fn argument(v: &Value) -> String {
    if let Value::String(s) = v {
        let t = s.trim();
        if (t.starts_with("ref(") || t.starts_with("source(")) && t.ends_with(')') {
            return t.to_string();
        }
        if let Some(inner) = t.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")) {
            return inner.trim().to_string();
        }
    }
    literal(v)
}

/// dbt's name for a generic test use: `<test>_<target>_<args>`, the
/// arguments (sorted by name) flattened and cleaned to `[0-9a-zA-Z_]`; a
/// package's test (`mini_utils.is_positive`) is `mini_utils_is_positive`.
pub fn test_name(test: &str, tested: &Tested, args: &IndexMap<String, Value>) -> String {
    let mut keys: Vec<&String> = args.keys().filter(|k| *k != "model").collect();
    keys.sort();
    let mut flat = Vec::new();
    for k in keys {
        match &args[k] {
            Value::Object(m) => flat.extend(m.values().map(plain)),
            Value::Array(items) => flat.extend(items.iter().map(plain)),
            other => flat.push(plain(other)),
        }
    }
    let clean: Vec<String> = flat.iter().map(|a| clean_arg(a)).collect();
    let short = test.replace('.', "_");
    let prefix = match tested {
        Tested::Source(..) => format!("source_{short}"),
        Tested::Node(_) => short.to_string(),
    };
    format!("{prefix}_{}_{}", tested.label(), clean.join("__"))
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn clean_arg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The first ten hex digits of the md5 of `text` (dbt's unique-id suffix).
pub fn short_hash(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// A generic test use on `tested` (and `column`), from a properties file.
pub fn generic(
    spec: &TestSpec,
    tested: Tested,
    column: Option<&str>,
    path: &Path,
) -> Result<GenericTest> {
    let macro_name = spec.test.rsplit('.').next().unwrap_or(&spec.test);
    if macro_name.is_empty() {
        return Err(TransformError::Project {
            message: format!("{}: a test without a name", path.display()),
            hint: None,
        });
    }
    let mut args = spec.args.clone();
    if let Some(c) = column {
        args.insert("column_name".into(), Value::from(c));
    }
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| test_name(&spec.test, &tested, &args));
    let model = match spec.config.get("where").and_then(Value::as_str) {
        Some(w) => format!(
            "'(select * from ' ~ {} ~ ' where ' ~ {} ~ ') dbt_subquery'",
            tested.jinja(),
            literal(&Value::from(w))
        ),
        None => tested.jinja(),
    };
    let mut call = vec![format!("model={model}")];
    for (k, v) in &args {
        call.push(format!("{k}={}", argument(v)));
    }
    // `package.test`: the package's own macro; a bare name resolves as
    // any macro call does (root project, packages, dbt).
    let namespace = spec
        .test
        .rsplit_once('.')
        .map(|(ns, _)| format!("{ns}."))
        .unwrap_or_default();
    let template = format!(
        "{{{{ {namespace}test_{macro_name}({}) }}}}",
        call.join(", ")
    );
    let mut kwargs = spec.args.clone();
    kwargs.shift_remove("column_name");
    Ok(GenericTest {
        name,
        template,
        config: spec.config.clone(),
        info: TestInfo {
            generic: Some(spec.test.clone()),
            kwargs,
            column_name: column.map(str::to_string),
            attached: Some(match &tested {
                Tested::Node(n) => n.clone(),
                Tested::Source(s, t) => format!("{s}.{t}"),
            }),
        },
        path: path.to_path_buf(),
    })
}

/// A test's result settings, from its final config.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSettings {
    /// `error` or `warn`.
    pub severity_warn: bool,
    /// `fail_calc` (default `count(*)`).
    pub fail_calc: String,
    /// `warn_if` (default `!= 0`).
    pub warn_if: String,
    /// `error_if` (default `!= 0`).
    pub error_if: String,
    /// `limit`, when set.
    pub limit: Option<u64>,
    /// `store_failures`.
    pub store_failures: bool,
}

impl TestSettings {
    /// Read them from a test node's config.
    pub fn of(config: &IndexMap<String, Value>) -> TestSettings {
        let text = |k: &str, d: &str| {
            config
                .get(k)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| d.to_string())
        };
        TestSettings {
            severity_warn: text("severity", "error").eq_ignore_ascii_case("warn"),
            fail_calc: text("fail_calc", "count(*)"),
            warn_if: text("warn_if", "!= 0"),
            error_if: text("error_if", "!= 0"),
            limit: config.get("limit").and_then(Value::as_u64),
            store_failures: config
                .get("store_failures")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    /// dbt's test query: one row of `failures`, `should_warn`, `should_error`.
    pub fn wrap(&self, failing_rows_sql: &str) -> String {
        let limit = self
            .limit
            .map(|l| format!("\nlimit {l}"))
            .unwrap_or_default();
        format!(
            "select {calc} as failures, {calc} {warn} as should_warn, {calc} {error} as should_error\nfrom (\n{failing_rows_sql}{limit}\n) dbt_internal_test",
            calc = self.fail_calc,
            warn = self.warn_if,
            error = self.error_if,
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(v: Value) -> IndexMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn names_follow_dbt() {
        let t = Tested::Node("orders".into());
        assert_eq!(
            test_name("not_null", &t, &args(json!({"column_name": "order_id"}))),
            "not_null_orders_order_id"
        );
        assert_eq!(
            test_name(
                "accepted_values",
                &t,
                &args(json!({"column_name": "status", "values": ["placed", "return pending"]}))
            ),
            "accepted_values_orders_status__placed__return_pending"
        );
        assert_eq!(
            test_name(
                "relationships",
                &t,
                &args(
                    json!({"column_name": "customer_id", "to": "ref('customers')", "field": "id"})
                )
            ),
            "relationships_orders_customer_id__id__ref_customers_"
        );
        assert_eq!(
            test_name(
                "unique",
                &Tested::Source("raw".into(), "orders".into()),
                &args(json!({"column_name": "id"}))
            ),
            "source_unique_raw_orders_id"
        );
    }

    #[test]
    fn generic_uses_render_as_macro_calls() {
        let spec = TestSpec {
            test: "relationships".into(),
            name: None,
            args: args(json!({"to": "ref('customers')", "field": "id"})),
            config: args(json!({"where": "status = 'x'"})),
        };
        let g = generic(
            &spec,
            Tested::Node("orders".into()),
            Some("customer_id"),
            Path::new("models/schema.yml"),
        )
        .unwrap();
        assert_eq!(
            g.template,
            "{{ test_relationships(model='(select * from ' ~ ref('orders') ~ ' where ' ~ 'status = \\'x\\'' ~ ') dbt_subquery', to=ref('customers'), field='id', column_name='customer_id') }}"
        );
        assert_eq!(g.info.attached.as_deref(), Some("orders"));
    }

    #[test]
    fn the_wrapper_counts_failures() {
        let s = TestSettings::of(&args(
            json!({"severity": "warn", "error_if": ">10", "limit": 5}),
        ));
        assert!(s.severity_warn);
        assert_eq!(
            s.wrap("select 1"),
            "select count(*) as failures, count(*) != 0 as should_warn, count(*) >10 as should_error\nfrom (\nselect 1\nlimit 5\n) dbt_internal_test"
        );
        assert_eq!(short_hash("abc"), "900150983c");
    }
}
