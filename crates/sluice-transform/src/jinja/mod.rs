//! Rendering a model's Jinja with dbt's context (minijinja).
//!
//! The context a model sees: `ref` (one or two arguments), `source`,
//! `config(...)` (recorded; `config.get`), `var` (project `vars:` and
//! overrides, with a default; `var.has_var`), `env_var`, `is_incremental()`,
//! `this`, `model`, `target`, `execute` (false while configs are read, true
//! for the final SQL), `log`/`print`, `exceptions`, `return`, `doc`,
//! `adapter.dispatch`, `tojson`/`fromjson`/`fromyaml`, `local_md5`, `zip`,
//! `set`, `modules.datetime`, `run_started_at`, `invocation_id`,
//! `project_name`, `flags`, Python's string/dict methods, dbt's database
//! calls (`run_query`, `statement`, `load_result`, `store_result`: see
//! [`Database`]), and every macro of the project over dbt's own
//! ([`library`]). What a render used — refs, sources, configs, logs,
//! warnings — is recorded for the graph.

mod context;
mod datetime;
mod docs;
mod library;
mod mutable;
mod table;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Object, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use self::context::{Capture, Flags, Globals};
pub use self::docs::{Docs, parse_docs};
use self::library::Library;
pub use self::library::{DispatchConfig, dbt_blocks_to_macros};
use crate::error::{Result, TransformError};

/// A template with nothing in it: the state a macro is called from outside
/// a render.
const EMPTY: &str = "__sluice_empty__";

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
    /// What `log(...)` and `print(...)` said, in order.
    pub logs: Vec<String>,
    /// What `exceptions.warn(...)` said, in order.
    pub warnings: Vec<String>,
    /// The render stopped at a database call (`run_query`, `statement`)
    /// with no database to run it: the node must be rendered again where
    /// the engine is reachable ([`Renderer::render_with`]).
    pub needs_database: bool,
}

/// Where a render's database calls (`run_query`, `statement`) go: the
/// engine of the run, reached from the thread that renders (renders are
/// synchronous; see `crate::live` for the bridge to an async engine).
pub trait Database: Send + Sync {
    /// Run `sql`: its rows and what it did, or the engine's message.
    fn query(&self, sql: &str) -> std::result::Result<crate::engine::QueryResult, String>;
}

/// A serializable value as a template value.
pub(crate) fn serde_value<T: serde::Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
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

/// What a render sees of the project and the invocation beyond macros,
/// relations and vars.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The root project's name (`project_name`, the macros' package).
    pub project_name: String,
    /// `invocation_id`.
    pub invocation_id: String,
    /// `run_started_at`.
    pub run_started_at: chrono::DateTime<chrono::Utc>,
    /// `flags.FULL_REFRESH`.
    pub full_refresh: bool,
    /// The project's `dispatch:` config.
    pub dispatch: Vec<DispatchConfig>,
    /// Docs blocks, for `doc()`.
    pub docs: Docs,
    /// The macro files (`(path, text)`) of each installed package, by
    /// package name.
    pub package_macros: Vec<(String, Vec<(PathBuf, String)>)>,
    /// The vars the nodes of each installed package see (overrides
    /// applied), by package name; a package not here sees the root's.
    pub package_vars: HashMap<String, IndexMap<String, serde_json::Value>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            project_name: String::new(),
            invocation_id: uuid::Uuid::new_v4().to_string(),
            run_started_at: chrono::Utc::now(),
            full_refresh: false,
            dispatch: Vec::new(),
            docs: Docs::new(),
            package_macros: Vec::new(),
            package_vars: HashMap::new(),
        }
    }
}

/// A minijinja error as a located transform error (`path:line: message`).
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

/// The rows of `result` as Jinja prints them (for tests elsewhere in the
/// crate).
#[cfg(test)]
pub(crate) fn table_for_tests(result: &crate::engine::QueryResult) -> String {
    table::Table::from_batches(&result.schema, &result.batches)
        .map(|t| t.data().to_string())
        .unwrap_or_else(|e| e.to_string())
}

/// How one render runs: `execute` (false while configs are read, as in
/// dbt's parse) and where its database calls go.
#[derive(Clone, Default)]
pub struct Render {
    /// `execute`.
    pub execute: bool,
    /// The database `run_query` and `statement` use (with `execute` true).
    pub database: Option<Arc<dyn Database>>,
}

impl fmt::Debug for Render {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Render")
            .field("execute", &self.execute)
            .field("database", &self.database.is_some())
            .finish()
    }
}

/// Renders the models of one project.
pub struct Renderer {
    env: Environment<'static>,
    lib: Arc<Library>,
    relations: Arc<Relations>,
    vars: Arc<IndexMap<String, serde_json::Value>>,
    /// Vars of the installed packages' nodes, by package.
    package_vars: HashMap<String, Arc<IndexMap<String, serde_json::Value>>>,
    execute: bool,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("macros", &self.lib.macros.len())
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer with the project's macro files (`(path, text)`), where
    /// every ref and source points, the project's `vars` (overrides
    /// already applied) and the target; default [`Settings`].
    pub fn new(
        macro_files: &[(PathBuf, String)],
        relations: Relations,
        vars: IndexMap<String, serde_json::Value>,
        target: &Target,
    ) -> Result<Renderer> {
        Self::with_settings(macro_files, relations, vars, target, &Settings::default())
    }

    /// [`Renderer::new`] with the project's name, dispatch config, docs and
    /// the invocation's id, start and flags.
    pub fn with_settings(
        macro_files: &[(PathBuf, String)],
        relations: Relations,
        vars: IndexMap<String, serde_json::Value>,
        target: &Target,
        settings: &Settings,
    ) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // SQL is never escaped (minijinja would JSON-escape templates named
        // `*.yml`, as generic tests from properties files are).
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(context::py_formatter);
        // Errors carry their file and line; the debug dump is not needed
        // (and `return()` raises one per macro call).
        env.set_debug(false);
        // Python's str/dict/list methods: `.upper()`, `.items()`, `.split()`.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        let flags = Flags {
            FULL_REFRESH: settings.full_refresh,
            WHICH: "run".into(),
            ..Flags::default()
        };
        context::register(
            &mut env,
            &Globals {
                project_name: &settings.project_name,
                invocation_id: &settings.invocation_id,
                run_started_at: settings.run_started_at,
                flags: &flags,
                target: serde_value(target),
            },
        );
        docs::register(&mut env, Arc::new(settings.docs.clone()));
        let lib = Arc::new(Library::load(
            &mut env,
            &settings.project_name,
            macro_files,
            &settings.package_macros,
            &target.kind,
            &settings.dispatch,
        )?);
        lib.register(&mut env, &target.kind);
        env.add_template(EMPTY, "")
            .map_err(|e| jinja_error(Path::new(EMPTY), &e))?;
        Ok(Renderer {
            env,
            lib,
            relations: Arc::new(relations),
            vars: Arc::new(vars),
            package_vars: settings
                .package_vars
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                .collect(),
            execute: true,
        })
    }

    /// Point `ref` and `source` somewhere else.
    pub fn set_relations(&mut self, relations: Relations) {
        self.relations = Arc::new(relations);
    }

    /// What `execute` is: false while configs are read (dbt's parse),
    /// true for the final SQL (the default).
    pub fn set_execute(&mut self, execute: bool) {
        self.execute = execute;
    }

    fn capture(
        &self,
        this: Option<&Relation>,
        model: Option<Value>,
        incremental: bool,
    ) -> Arc<Capture> {
        // A package's node sees the package's vars.
        let vars = library::node_package(&self.lib, model.as_ref())
            .and_then(|p| self.package_vars.get(&p).cloned())
            .unwrap_or_else(|| self.vars.clone());
        Arc::new(Capture {
            relations: self.relations.clone(),
            vars,
            this: this.cloned(),
            model,
            is_incremental: incremental,
            execute: self.execute,
            ..Capture::default()
        })
    }

    /// A minijinja error as a transform error, at the macro's file and line
    /// when it happened inside a macro.
    fn error(&self, path: &Path, e: &Error) -> TransformError {
        let Some(def) = e.name().and_then(|n| self.lib.of_template(n)) else {
            return jinja_error(path, e);
        };
        let mut err = jinja_error(&def.path, e);
        if let TransformError::Template { line, message, .. } = &mut err {
            *line = line.map(|l| l + def.line_offset);
            message.push_str(&format!(
                " (in macro `{}`, rendering `{}`)",
                def.name,
                path.display()
            ));
        }
        err
    }

    /// Render `sql` (the text of `path`) as the node `this`.
    pub fn render(
        &self,
        path: &Path,
        sql: &str,
        this: &Relation,
        is_incremental: bool,
    ) -> Result<Compiled> {
        self.render_node(path, sql, this, is_incremental, None)
    }

    /// [`Renderer::render`], with `model` (the node: `name`, `config`, …).
    pub fn render_node(
        &self,
        path: &Path,
        sql: &str,
        this: &Relation,
        is_incremental: bool,
        model: Option<&serde_json::Value>,
    ) -> Result<Compiled> {
        self.render_with(
            path,
            sql,
            this,
            is_incremental,
            model,
            Render {
                execute: self.execute,
                database: None,
            },
        )
    }

    /// [`Renderer::render_node`] with `execute` and the database as
    /// `how` says. With `execute` true and no database, a database call
    /// stops the render: the result is empty but for `needs_database`
    /// (and what the render recorded before the call).
    pub fn render_with(
        &self,
        path: &Path,
        sql: &str,
        this: &Relation,
        is_incremental: bool,
        model: Option<&serde_json::Value>,
        how: Render,
    ) -> Result<Compiled> {
        let model = model.map(serde_value);
        // A package's node sees the package's vars.
        let vars = library::node_package(&self.lib, model.as_ref())
            .and_then(|p| self.package_vars.get(&p).cloned())
            .unwrap_or_else(|| self.vars.clone());
        let capture = Arc::new(Capture {
            relations: self.relations.clone(),
            vars,
            this: Some(this.clone()),
            model,
            is_incremental,
            execute: how.execute,
            database: how.database,
            ..Capture::default()
        });
        let name = path.display().to_string();
        let text = mutable::rewrite_sets(sql);
        let tmpl = self
            .env
            .template_from_named_str(&name, &text)
            .map_err(|e| jinja_error(path, &e))?;
        let rendered = tmpl.render(library::scope(&self.lib, capture.clone(), None));
        let mut used = capture.used.lock().map(|u| u.clone()).unwrap_or_default();
        match rendered {
            Ok(sql) => used.sql = sql,
            Err(_) if used.needs_database => used.sql = String::new(),
            Err(e) => return Err(self.error(path, &e)),
        }
        Ok(used)
    }

    /// Every macro as `(package, name, file)`, dbt's built-in ones
    /// included (their file is `(dbt built-in macros)`).
    pub fn macros(&self) -> Vec<(String, String, PathBuf)> {
        self.lib
            .macros
            .iter()
            .map(|m| (m.package.clone(), m.name.clone(), m.path.clone()))
            .collect()
    }

    /// Whether the project itself defines macro `name` (overriding dbt's).
    pub fn project_defines(&self, name: &str) -> bool {
        self.lib.project_defines(name)
    }

    /// Call macro `name` (the project's, else dbt's) with `args`, outside
    /// any node; `path` names what asked, for errors.
    pub fn call_macro(&self, path: &Path, name: &str, args: &[Value]) -> Result<Value> {
        let id = self
            .lib
            .global(name)
            .ok_or_else(|| TransformError::Template {
                path: path.to_path_buf(),
                line: None,
                message: format!("there is no macro `{name}`"),
            })?;
        let m = self.lib.macro_value(id);
        let tmpl = self
            .env
            .get_template(EMPTY)
            .map_err(|e| jinja_error(path, &e))?;
        let run = || -> Result<Value, Error> {
            let mut state =
                tmpl.render_captured(Value::from_dyn_object(self.capture(None, None, false)))?;
            state.with_state_mut(|s| m.call(s, args))
        };
        run().map_err(|e| self.error(path, &e))
    }

    /// A description from a properties file (`path`) with its Jinja
    /// (`{{ doc('orders') }}`, `var`, `env_var`) rendered.
    pub fn render_description(&self, path: &Path, text: &str) -> Result<String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        let name = path.display().to_string();
        let tmpl = self
            .env
            .template_from_named_str(&name, text)
            .map_err(|e| jinja_error(path, &e))?;
        tmpl.render(Value::from_dyn_object(self.capture(None, None, false)))
            .map_err(|e| self.error(path, &e))
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

    fn target(kind: &str) -> Target {
        Target {
            name: "dev".into(),
            kind: kind.into(),
            schema: "main".into(),
            database: None,
            threads: 4,
        }
    }

    fn settings() -> Settings {
        Settings {
            project_name: "shop".into(),
            invocation_id: "0f6c-inv".into(),
            run_started_at: chrono::DateTime::parse_from_rfc3339("2024-03-09T07:05:01Z")
                .unwrap()
                .to_utc(),
            full_refresh: true,
            dispatch: Vec::new(),
            docs: Docs::from([("orders".to_string(), "One row per order.".to_string())]),
            ..Settings::default()
        }
    }

    fn renderer_with(macros: &[(&str, &str)], kind: &str, settings: &Settings) -> Renderer {
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
        Renderer::with_settings(&files, relations, vars, &target(kind), settings).unwrap()
    }

    fn renderer(macros: &[(&str, &str)]) -> Renderer {
        renderer_with(macros, "sluice", &Settings::default())
    }

    /// Render `sql` as `models/m.sql`.
    fn render(r: &Renderer, sql: &str) -> Result<Compiled> {
        r.render(Path::new("models/m.sql"), sql, &rel("main", "m"), false)
    }

    fn sql(r: &Renderer, sql: &str) -> String {
        render(r, sql).unwrap().sql
    }

    fn error(r: &Renderer, sql: &str) -> String {
        render(r, sql).unwrap_err().to_string()
    }

    const CENTS: &str = "{% macro cents(col) %}{{ return(adapter.dispatch('cents', 'shop')(col)) }}{% endmacro %}\n{% macro default__cents(col) %}({{ col }} / 100){% endmacro %}\n{% macro postgres__cents(col) %}({{ col }}::numeric / 100){% endmacro %}";

    #[test]
    fn dispatch_follows_the_adapter_chain() {
        let s = settings();
        // sluice: datafusion__ → postgres__ → default__.
        let r = renderer_with(&[("macros/cents.sql", CENTS)], "sluice", &s);
        assert_eq!(
            sql(
                &r,
                "{{ cents('amount') }} {{ adapter.dispatch('cents')('x') }}"
            ),
            "(amount::numeric / 100) (x::numeric / 100)"
        );
        let with_df = format!(
            "{CENTS}\n{{% macro datafusion__cents(col) %}}cast({{{{ col }}}} as double) / 100{{% endmacro %}}"
        );
        let r = renderer_with(&[("macros/cents.sql", &with_df)], "sluice", &s);
        assert_eq!(
            sql(&r, "{{ cents('amount') }}"),
            "cast(amount as double) / 100"
        );
        // postgres: postgres__ → default__; duckdb: default__.
        let r = renderer_with(&[("macros/cents.sql", &with_df)], "postgres", &s);
        assert_eq!(sql(&r, "{{ cents('amount') }}"), "(amount::numeric / 100)");
        let r = renderer_with(&[("macros/cents.sql", &with_df)], "duckdb", &s);
        assert_eq!(sql(&r, "{{ cents('amount') }}"), "(amount / 100)");
        // The project's namespace and dbt's.
        assert_eq!(sql(&r, "{{ shop.default__cents('a') }}"), "(a / 100)");
        assert_eq!(
            sql(
                &r,
                "{{ adapter.dispatch('generate_schema_name', 'dbt')('x', none) }}|{{ dbt.generate_schema_name(none) }}"
            ),
            "main_x|main"
        );
        assert_eq!(
            sql(&r, "{{ adapter.type() }} {{ adapter.quote('a') }}"),
            "duckdb \"a\""
        );
        let e = error(&r, "select\n{{ adapter.dispatch('nope')() }}");
        assert_eq!(
            e,
            "models/m.sql:2: In dispatch: No macro named 'nope' found within namespace: 'None'\n    Searched for: 'duckdb__nope', 'default__nope'"
        );
        let r = renderer_with(&[], "sluice", &s);
        let e = error(&r, "{{ adapter.dispatch('nope', 'dbt')() }}");
        assert!(
            e.ends_with("Searched for: 'shop.datafusion__nope', 'shop.postgres__nope', 'shop.default__nope', 'dbt.datafusion__nope', 'dbt.postgres__nope', 'dbt.default__nope'"),
            "{e}"
        );
    }

    #[test]
    fn jaffle_shops_cents_to_dollars_renders_as_in_dbt_postgres() {
        let macros = "{# A basic example for a project-wide macro to cast a column uniformly #}\n\n\
            {% macro cents_to_dollars(column_name) -%}\n    {{ return(adapter.dispatch('cents_to_dollars')(column_name)) }}\n{%- endmacro %}\n\n\
            {% macro default__cents_to_dollars(column_name) -%}\n    ({{ column_name }} / 100)::numeric(16, 2)\n{%- endmacro %}\n\n\
            {% macro postgres__cents_to_dollars(column_name) -%}\n    ({{ column_name }}::numeric(16, 2) / 100)\n{%- endmacro %}\n\n\
            {% macro bigquery__cents_to_dollars(column_name) %}\n    round(cast(({{ column_name }} / 100) as numeric), 2)\n{% endmacro %}\n\n\
            {% macro with_default(x, t=dbt.generate_schema_name(none)) %}{{ x }}:{{ t }}{% endmacro %}";
        let r = renderer_with(
            &[("macros/cents_to_dollars.sql", macros)],
            "sluice",
            &settings(),
        );
        assert_eq!(
            sql(
                &r,
                "select\n    {{ cents_to_dollars('subtotal') }} as subtotal,\n    {{ cents_to_dollars(column_name='tax_paid') }} as tax_paid,\n    {{ with_default('a') }}"
            ),
            "select\n    (subtotal::numeric(16, 2) / 100) as subtotal,\n    (tax_paid::numeric(16, 2) / 100) as tax_paid,\n    a:main"
        );
    }

    #[test]
    fn the_projects_dispatch_config_sets_the_search_order() {
        let project_default =
            "{% macro default__generate_schema_name(custom, node) %}mine{% endmacro %}";
        let mut s = settings();
        // Without config, the project's macro comes first for `dbt`.
        let r = renderer_with(&[("macros/s.sql", project_default)], "sluice", &s);
        assert_eq!(sql(&r, "{{ generate_schema_name('x') }}"), "mine");
        s.dispatch = vec![DispatchConfig {
            macro_namespace: "dbt".into(),
            search_order: vec!["dbt".into()],
        }];
        let r = renderer_with(&[("macros/s.sql", project_default)], "sluice", &s);
        assert_eq!(sql(&r, "{{ dbt.generate_schema_name('x') }}"), "main_x");
    }

    #[test]
    fn return_gives_macros_values() {
        let r = renderer(&[(
            "macros/values.sql",
            "{% macro cols() %}{% do return(['a', 'b']) %}{% endmacro %}\n\
             {% macro pick(d) %}{{ return({'x': d, 'n': 2}) }}never{% endmacro %}\n\
             {% macro early(flag) %}{% if flag %}{% do return('yes') %}{% endif %}{% do return('no') %}{% endmacro %}\n\
             {% macro fact(n) %}{% if n <= 1 %}{{ return(1) }}{% endif %}{{ return(n * fact(n - 1)) }}{% endmacro %}\n\
             {% macro wrap() %}<{{ caller() }}>{% endmacro %}",
        )]);
        assert_eq!(
            sql(
                &r,
                "{% set cs = cols() %}{% for c in cs %}{{ c }}{% if not loop.last %}, {% endif %}{% endfor %} {{ pick(1).n }} {{ early(true) }} {{ early(false) }} {{ cols() | length }} {{ fact(5) }} {% call wrap() %}in{% endcall %}"
            ),
            "a, b 2 yes no 2 120 <in>"
        );
        assert_eq!(
            error(&r, "\n{{ return(1) }}"),
            "models/m.sql:2: return() was called outside a macro"
        );
        let r = renderer(&[(
            "macros/loop.sql",
            "{% macro forever(n) %}{{ forever(n + 1) }}{% endmacro %}",
        )]);
        let e = error(&r, "{{ forever(0) }}");
        assert!(e.contains("more than 48 deep (at `forever`)"), "{e}");
    }

    #[test]
    fn lists_and_dicts_change_in_place() {
        let r = renderer(&[(
            "macros/key.sql",
            "{% macro key(cols) %}{%- set fields = [] -%}{%- for c in cols -%}{%- do fields.append('coalesce(' ~ c ~ \", '')\") -%}{%- if not loop.last %}{%- do fields.append(\"'-'\") -%}{%- endif -%}{%- endfor -%}md5({{ fields | join(' || ') }}){% endmacro %}",
        )]);
        assert_eq!(
            sql(&r, "{{ key(['a', 'b']) }}"),
            "md5(coalesce(a, '') || '-' || coalesce(b, ''))"
        );
        assert_eq!(
            sql(
                &r,
                "{% set d = {'a': 1} %}{% do d.update({'b': 2}) %}{% for k in ['c'] %}{% do d.update(c=3) %}{% endfor %}{{ d }} {{ d.items() | list | length }} {% set l = [3] %}{% do l.extend([4, 5]) %}{{ l.pop() }} {{ l }} {{ l | length }} {{ l[-1] }} {{ tojson(l) }}"
            ),
            "{'a': 1, 'b': 2, 'c': 3} 3 5 [3, 4] 2 4 [3, 4]"
        );
    }

    #[test]
    fn logs_warnings_and_compiler_errors() {
        let r = renderer(&[(
            "macros/check.sql",
            "{% macro check(x) %}\n{% if x < 0 %}\n{{ exceptions.raise_compiler_error('x is negative: ' ~ x) }}\n{% endif %}{% endmacro %}",
        )]);
        let c = render(
            &r,
            "{{ log('hello', info=True) }}{% do print('p') %}{% do exceptions.warn('careful') %}x{{ check(1) }}",
        )
        .unwrap();
        assert_eq!(c.sql, "x\n");
        assert_eq!(c.logs, vec!["hello", "p"]);
        assert_eq!(c.warnings, vec!["careful"]);
        assert_eq!(
            error(
                &r,
                "select 1\n{{ exceptions.raise_compiler_error('bad input') }}"
            ),
            "models/m.sql:2: Compilation Error: bad input"
        );
        assert_eq!(
            error(&r, "select 1\n\n{{ check(-2) }}"),
            "macros/check.sql:3: Compilation Error: x is negative: -2 (in macro `check`, rendering `models/m.sql`)"
        );
    }

    #[test]
    fn docs_render_in_models_and_descriptions() {
        let r = renderer_with(&[], "sluice", &settings());
        assert_eq!(sql(&r, "-- {{ doc('orders') }}"), "-- One row per order.");
        let path = Path::new("models/schema.yml");
        assert_eq!(
            r.render_description(path, "Orders. {{ doc('orders') }}")
                .unwrap(),
            "Orders. One row per order."
        );
        assert_eq!(r.render_description(path, "plain").unwrap(), "plain");
        assert_eq!(
            r.render_description(path, "{{ doc('order') }}")
                .unwrap_err()
                .to_string(),
            "models/schema.yml:1: doc('order') names no docs block (did you mean `orders`?)"
        );
    }

    #[test]
    fn the_common_context() {
        let mut r = renderer_with(&[], "sluice", &settings());
        assert_eq!(
            sql(
                &r,
                "{{ execute }} {{ project_name }} {{ invocation_id }} {{ flags.FULL_REFRESH }}"
            ),
            "True shop 0f6c-inv True"
        );
        r.set_execute(false);
        assert_eq!(sql(&r, "{{ execute }}"), "False");
        assert_eq!(
            sql(
                &r,
                "{{ run_started_at }}|{{ run_started_at.strftime('%Y%m%d') }}|{{ run_started_at.isoformat() }}|{{ run_started_at.year }}"
            ),
            "2024-03-09 07:05:01+00:00|20240309|2024-03-09T07:05:01+00:00|2024"
        );
        assert_eq!(
            sql(
                &r,
                "{{ modules.datetime.date(2024, 1, 2).isoformat() }} {{ modules.datetime.datetime(2024, 1, 2, 3).strftime('%H') }} {{ modules.datetime.datetime.strptime('2024-05-06', '%Y-%m-%d') }}"
            ),
            "2024-01-02 03 2024-05-06 00:00:00"
        );
        assert_eq!(
            sql(
                &r,
                "{{ tojson({'b': [1, none], 'a': 'x'}) }} {{ fromjson('{\"k\": [1, 2]}').k[1] }} {{ fromjson('nope', 'd') }} {{ local_md5('abc') }}"
            ),
            "{\"b\": [1, null], \"a\": \"x\"} 2 d 900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            sql(
                &r,
                "{% for a, b in zip([1, 2], ['x', 'y']) %}{{ a }}{{ b }} {% endfor %}{{ set([1, 1, 2]) }}"
            ),
            "1x 2y [1, 2]"
        );
        assert_eq!(
            sql(
                &r,
                "{{ none }} {{ true }} {{ ['a', none] }} {{ {'k': 1} }} {{ 'Ab'.upper() }} {% for k, v in {'x': 1}.items() %}{{ k }}={{ v }}{% endfor %} {{ 'a,b'.split(',') | join('|') }}"
            ),
            "None True ['a', None] {'k': 1} AB x=1 a|b"
        );
        assert_eq!(
            sql(
                &r,
                "{{ var.has_var('start') }} {{ var.has_var('nope') }} {{ var('nope', none) }} {{ config.get('nope', 'd') }}{{ config(schema='s') }} {{ config.get('schema') }}"
            ),
            "True False None d s"
        );
        assert_eq!(
            error(&r, "{{ modules.re.match('a', 'b') }}"),
            "models/m.sql:1: `modules.re.match` is not supported by Sluice yet"
        );
        assert_eq!(
            error(&r, "{% for n in graph.nodes.values() %}{% endfor %}"),
            "models/m.sql:1: `graph.nodes.values` is not supported by Sluice yet"
        );
        assert_eq!(
            error(&r, "{{ api.Column.translate_type('x') }}"),
            "models/m.sql:1: `api.Column.translate_type` is not supported by Sluice yet"
        );
    }

    /// A database that answers every query with the same rows (and fails
    /// queries that say `boom`), recording what it ran.
    struct Fixed(std::sync::Mutex<Vec<String>>);

    impl Database for Fixed {
        fn query(&self, sql: &str) -> std::result::Result<crate::engine::QueryResult, String> {
            if let Ok(mut q) = self.0.lock() {
                q.push(sql.trim().to_string());
            }
            if sql.contains("boom") {
                return Err("table 'boom' not found".into());
            }
            Ok(table::tests::payments())
        }
    }

    #[test]
    fn database_calls_run_when_there_is_a_database_and_stop_the_render_when_not() {
        let mut r = renderer(&[(
            "macros/stats.sql",
            "{% macro stats() %}{% call statement('s', fetch_result=True) %}select {{ 40 + 2 }}{% endcall %}{% if execute %}{{ return(load_result('s')) }}{% endif %}{% endmacro %}",
        )]);
        // Compiling without the database: the render stops at the call and
        // says so (the node is rendered again when it runs).
        let c = render(&r, "select\n{% set rows = run_query('select 1') %}").unwrap();
        assert!(c.needs_database);
        assert!(!render(&r, "select 1").unwrap().needs_database);
        assert_eq!(
            error(&r, "{{ adapter.get_columns_in_relation(this) }}"),
            "models/m.sql:1: adapter.get_columns_in_relation needs a database at compile time; not supported yet"
        );
        // With a database.
        let fixed = Arc::new(Fixed(std::sync::Mutex::new(Vec::new())));
        let live = |r: &Renderer, sql: &str| {
            r.render_with(
                Path::new("models/m.sql"),
                sql,
                &rel("main", "m"),
                false,
                None,
                Render {
                    execute: true,
                    database: Some(fixed.clone()),
                },
            )
        };
        let c = live(
            &r,
            "{% set t = run_query('select * from ' ~ ref('stg_orders')) %}{{ t.column_names | join(',') }}|{{ t.columns[0].values() | join(',') }}|{{ t.columns['n'].values() | sum }}|{{ t | length }} {{ len(t) }}|{% for row in t %}{{ row['method'] }}:{{ row[1] }}:{{ row.amount }};{% endfor %}|{{ t.rows[1][3] }}|{{ t[0][4] }}|{{ t.columns['amount'].values() }}{% do t.print_table() %}",
        )
        .unwrap();
        assert!(!c.needs_database);
        assert_eq!(
            c.sql,
            "method,n,amount,day,at|card,cash|10|2 2|card:7:12.5;cash:3:None;|2024-02-29|2024-01-31 08:00:00|[12.5, None]"
        );
        assert_eq!(c.refs, vec!["stg_orders".to_string()]);
        assert_eq!(
            c.logs,
            vec![
                "| method | n   | amount | day        | at                         |\n\
                 | ------ | --- | ------ | ---------- | -------------------------- |\n\
                 | card   | 7   | 12.5   | 2024-01-31 | 2024-01-31 08:00:00        |\n\
                 | cash   | 3   |        | 2024-02-29 | 2024-02-29 23:59:59.500000 |"
                    .to_string()
            ]
        );
        // statement + load_result, in a macro and in the model.
        let c = live(
            &r,
            "{% set s = stats() %}{{ s['data'] }} {{ s['table'].columns['n'].values() }} {{ s['response'] }} {{ s['response'].rows_affected }}\n{% call statement('plain') %}create table x (id int){% endcall %}{{ load_result('plain')['data'] }} {{ load_result('nothing') is none }}",
        )
        .unwrap();
        assert_eq!(
            c.sql,
            "[['card', 7, 12.5, '2024-01-31', '2024-01-31 08:00:00'], ['cash', 3, None, '2024-02-29', '2024-02-29 23:59:59.500000']] [7, 3] SELECT 2 2\n[] True"
        );
        let ran = fixed.0.lock().unwrap().clone();
        assert_eq!(
            ran[1..],
            [
                "select 42".to_string(),
                "create table x (id int)".to_string()
            ]
        );
        // A failing query: the file and line of the call, the engine's
        // message and the query.
        let e = live(&r, "select\n{% set t = run_query('select * from boom') %}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "models/m.sql:2: run_query: the query failed: table 'boom' not found\n  query: select * from boom"
        );
        // dbt's parse: run_query is none, statement runs nothing (its body
        // is not even rendered), load_result is none.
        r.set_execute(false);
        assert_eq!(
            sql(
                &r,
                "{% set rows = run_query('select 1') %}{{ rows is none }} {% call statement('x') %}select {{ ref('nope') }}{% endcall %}{{ load_result('x') is none }} {% if execute %}{{ rows.columns[0].values() }}{% endif %}ok"
            ),
            "True True ok"
        );
        assert_eq!(fixed.0.lock().unwrap().len(), 4);
    }

    #[test]
    fn naming_macros_are_called_with_a_node() {
        let r = renderer_with(
            &[(
                "macros/naming.sql",
                "{% macro generate_schema_name(custom_schema_name, node) -%}\n{%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}\n{%- endmacro %}",
            )],
            "sluice",
            &settings(),
        );
        assert!(r.project_defines("generate_schema_name"));
        assert!(!r.project_defines("generate_alias_name"));
        let node = serde_value(json!({"name": "orders", "fqn": ["shop", "orders"]}));
        let call = |custom: Value| {
            r.call_macro(
                Path::new("models/orders.sql"),
                "generate_schema_name",
                &[custom, node.clone()],
            )
            .unwrap()
            .to_string()
        };
        assert_eq!(call(Value::from(" marts ")), "marts");
        assert_eq!(call(Value::from(())), "main");
        let alias = r
            .call_macro(
                Path::new("models/orders.sql"),
                "generate_alias_name",
                &[Value::from(()), node.clone()],
            )
            .unwrap();
        assert_eq!(alias.to_string(), "orders");
    }

    #[test]
    fn one_renderer_serves_many_nodes_with_and_without_macros() {
        // Speed is measured by bench/transform.sh (10,000 models), not here.
        let r = renderer_with(&[("macros/cents.sql", CENTS)], "sluice", &settings());
        for text in [
            "{{ config(materialized='table') }}select {{ cents('amount') }} as usd from {{ ref('stg_orders') }}",
            "select 1 from {{ ref('stg_orders') }}",
            "select {{ default__cents('a') }} from {{ ref('stg_orders') }}",
            "select {{ cents('a') }} from {{ ref('stg_orders') }}",
        ] {
            for _ in 0..3 {
                let c = render(&r, text).unwrap();
                assert!(c.sql.contains("\"stg_orders\""), "{}", c.sql);
                assert!(!c.sql.contains("{{"), "{}", c.sql);
            }
        }
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
