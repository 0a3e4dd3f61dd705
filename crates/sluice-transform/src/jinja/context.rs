//! The names a render sees besides macros: `ref`, `source`, `config`,
//! `var`, `env_var`, `is_incremental`, `this`, `model`, `execute`, `log`,
//! `print`, `exceptions`, `return`, `tojson`/`fromjson`/`fromyaml`,
//! `local_md5`, `zip`, `set`, `modules.datetime`, `run_started_at`,
//! `invocation_id`, `project_name`, `flags`, `builtins`, and dbt's
//! database calls (`run_query`, `statement`, `load_result`,
//! `store_result`): nothing while configs are read (`execute` false), the
//! engine's answer when a node is rendered to run.
//!
//! What one render records (refs, sources, configs, logs, warnings) goes
//! into its [`Capture`], which is also the render's root context: nested
//! macro evaluations find it there.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use md5::{Digest, Md5};
use minijinja::value::{Kwargs, Object, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::table::Table;
use super::{Compiled, Database, Relation, Relations, did_you_mean, serde_value};
use super::{datetime, mutable};

/// The name under which a render's [`Capture`] is found.
pub(crate) const CAPTURE: &str = "__sluice_capture__";

/// The per-render state functions record into; also the render's root
/// context (`this`, `model`, `execute`).
#[derive(Default)]
pub(crate) struct Capture {
    pub relations: Arc<Relations>,
    pub vars: Arc<IndexMap<String, serde_json::Value>>,
    pub this: Option<Relation>,
    pub model: Option<Value>,
    pub is_incremental: bool,
    pub execute: bool,
    pub used: Mutex<Compiled>,
    pub depth: AtomicUsize,
    /// Where database calls go (none: a call stops the render, marked
    /// `needs_database`).
    pub database: Option<Arc<dyn Database>>,
    /// `statement(name, …)` / `store_result(name, …)` results by name.
    pub results: Mutex<HashMap<String, Value>>,
}

/// Leaves one level of macro nesting when dropped.
pub(crate) struct Depth<'a>(&'a AtomicUsize);

impl Drop for Depth<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("this", &self.this)
            .field("execute", &self.execute)
            .field("database", &self.database.is_some())
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Enter one more level of macro calls; `None` past `max`.
    pub fn enter(&self, max: usize) -> Option<Depth<'_>> {
        let guard = Depth(&self.depth);
        (self.depth.fetch_add(1, Ordering::Relaxed) < max).then_some(guard)
    }

    fn record(&self, f: impl FnOnce(&mut Compiled)) {
        if let Ok(mut used) = self.used.lock() {
            f(&mut used);
        }
    }
}

impl Object for Capture {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            CAPTURE => Some(Value::from_dyn_object(self.clone())),
            "this" => self.this.clone().map(Value::from_object),
            "model" => self.model.clone(),
            "execute" => Some(Value::from(self.execute)),
            _ => None,
        }
    }
}

/// The render's [`Capture`].
pub(crate) fn capture(state: &State) -> Result<Arc<Capture>, Error> {
    state
        .lookup(CAPTURE)
        .and_then(|v| v.downcast_object::<Capture>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not inside a model render"))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn ref_fn(state: &State, args: Rest<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let name = match args.as_slice() {
        [name] | [_, name] => name.clone(),
        _ => {
            return Err(invalid(
                "ref takes a model name, or a package and a model name",
            ));
        }
    };
    // `v=`/`version=` name a model version; Sluice has no versions yet.
    let _ = (
        kwargs.get::<Option<Value>>("v")?,
        kwargs.get::<Option<Value>>("version")?,
    );
    kwargs.assert_all_used()?;
    let cap = capture(state)?;
    let relation = cap.relations.nodes.get(&name).cloned().ok_or_else(|| {
        invalid(format!(
            "ref('{name}') names no model, seed or snapshot{}",
            did_you_mean(&name, cap.relations.nodes.keys())
        ))
    })?;
    cap.record(|used| {
        if !used.refs.contains(&name) {
            used.refs.push(name);
        }
    });
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
        invalid(format!(
            "source('{source}', '{table}') is not declared in a properties file{}",
            did_you_mean(&format!("{source}.{table}"), known.iter())
        ))
    })?;
    cap.record(|used| {
        if !used.sources.contains(&key) {
            used.sources.push(key);
        }
    });
    Ok(Value::from_object(relation))
}

fn to_json(value: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| invalid(e.to_string()))
}

/// `config`: `config(materialized='table')` records; `config.get('key',
/// default)` reads what the node's configuration says.
#[derive(Debug)]
struct ConfigFn;

impl ConfigFn {
    fn lookup(state: &State, key: &str) -> Result<Option<Value>, Error> {
        let cap = capture(state)?;
        if let Ok(used) = cap.used.lock()
            && let Some(v) = used.config.get(key)
        {
            return Ok(Some(serde_value(v)));
        }
        Ok(cap
            .model
            .as_ref()
            .and_then(|m| m.get_attr("config").ok())
            .and_then(|c| c.get_attr(key).ok())
            .filter(|v| !v.is_undefined()))
    }
}

impl Object for ConfigFn {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs): (Option<Value>, Kwargs) = minijinja::value::from_args(args)?;
        let mut pairs: Vec<(String, Value)> = Vec::new();
        if let Some(map) = positional {
            if map.kind() != ValueKind::Map {
                return Err(invalid("config() takes keyword arguments or one dict"));
            }
            for key in map.try_iter()? {
                let v = map.get_item(&key)?;
                pairs.push((key.to_string(), v));
            }
        }
        for key in kwargs.args() {
            pairs.push((key.to_string(), kwargs.get(key)?));
        }
        let cap = capture(state)?;
        let mut used = cap.used.lock().map_err(|_| invalid("config lock"))?;
        for (key, value) in pairs {
            // dbt accepts `pre_hook` for `pre-hook`.
            let key = match key.as_str() {
                "pre_hook" => "pre-hook".to_string(),
                "post_hook" => "post-hook".to_string(),
                _ => key,
            };
            crate::config::merge_config(&mut used.config, &key, to_json(&value)?);
        }
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "get" => {
                let (key, default, kwargs): (String, Option<Value>, Kwargs) =
                    minijinja::value::from_args(args)?;
                let default = match default {
                    Some(d) => Some(d),
                    None => kwargs.get::<Option<Value>>("default")?,
                };
                let _ = kwargs.get::<Option<Value>>("validator")?;
                kwargs.assert_all_used()?;
                Ok(Self::lookup(state, &key)?
                    .or(default)
                    .unwrap_or(Value::from(())))
            }
            "require" => {
                let (key,): (String,) = minijinja::value::from_args(args)?;
                Self::lookup(state, &key)?.ok_or_else(|| {
                    invalid(format!(
                        "the node's config has no `{key}`, which config.require needs"
                    ))
                })
            }
            "set" => {
                let (key, value): (String, Value) = minijinja::value::from_args(args)?;
                let cap = capture(state)?;
                let mut used = cap.used.lock().map_err(|_| invalid("config lock"))?;
                crate::config::merge_config(&mut used.config, &key, to_json(&value)?);
                Ok(Value::from(""))
            }
            "persist_relation_docs" | "persist_column_docs" => Ok(Value::from(false)),
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("config has no method `{m}`"),
            )),
        }
    }
}

/// `var('name', default)`, and `var.has_var('name')`.
#[derive(Debug)]
struct VarFn;

impl Object for VarFn {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (name, default): (String, Option<Value>) = minijinja::value::from_args(args)?;
        let cap = capture(state)?;
        match cap.vars.get(&name) {
            Some(v) => Ok(serde_value(v)),
            None => {
                // `var('x', none)` is a default of none, not a missing one.
                if args.len() > 1 {
                    return Ok(default.unwrap_or(Value::from(())));
                }
                Err(invalid(format!(
                    "var('{name}') is not set: add it under `vars:` in dbt_project.yml, pass --vars '{{{name}: …}}', or give a default: var('{name}', …)"
                )))
            }
        }
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "has_var" => {
                let (name,): (String,) = minijinja::value::from_args(args)?;
                Ok(Value::from(capture(state)?.vars.contains_key(&name)))
            }
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("var has no method `{m}`"),
            )),
        }
    }
}

fn env_var_fn(name: String, default: Option<String>) -> Result<String, Error> {
    match std::env::var(&name) {
        Ok(v) => Ok(v),
        Err(_) => default
            .ok_or_else(|| invalid(format!("env_var('{name}') is not set and has no default"))),
    }
}

fn is_incremental_fn(state: &State) -> Result<bool, Error> {
    Ok(capture(state)?.is_incremental)
}

fn log_fn(state: &State, msg: Value, kwargs: Kwargs) -> Result<String, Error> {
    let _ = kwargs.get::<Option<bool>>("info")?;
    kwargs.assert_all_used()?;
    capture(state)?.record(|u| u.logs.push(msg.to_string()));
    Ok(String::new())
}

fn print_fn(state: &State, msg: Value) -> Result<String, Error> {
    capture(state)?.record(|u| u.logs.push(msg.to_string()));
    Ok(String::new())
}

/// `exceptions.raise_compiler_error(msg)`, `exceptions.warn(msg)`, …
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let msg = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "raise_compiler_error" => Err(invalid(format!("Compilation Error: {msg}"))),
            "raise_not_implemented" => Err(invalid(format!("Not implemented: {msg}"))),
            "raise_fail_fast_error" => Err(invalid(format!("Fail fast: {msg}"))),
            "warn" => {
                capture(state)?.record(|u| u.warnings.push(msg));
                Ok(Value::from(""))
            }
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("exceptions has no method `{m}` in Sluice"),
            )),
        }
    }
}

/// What a database call's error says when no database is reachable: the
/// render stops; the node is rendered again where the engine is.
const NO_DATABASE: &str = "this node runs database calls (run_query/statement); it is rendered again when the engine is reachable";

/// Run `sql` for `what` (`run_query`, `statement`) on the render's
/// database; the engine's message, with the query, on failure.
fn run_sql(cap: &Capture, sql: &str, what: &str) -> Result<crate::engine::QueryResult, Error> {
    let Some(db) = &cap.database else {
        cap.record(|u| u.needs_database = true);
        return Err(invalid(NO_DATABASE));
    };
    db.query(sql).map_err(|message| {
        let shown: String = sql.trim().chars().take(300).collect();
        let more = if sql.trim().chars().count() > 300 {
            " …"
        } else {
            ""
        };
        invalid(format!(
            "{what}: the query failed: {message}\n  query: {shown}{more}"
        ))
    })
}

fn table_of(result: &crate::engine::QueryResult) -> Result<Table, Error> {
    Table::from_batches(&result.schema, &result.batches)
        .map_err(|e| invalid(format!("reading the query's rows: {e}")))
}

/// dbt's `AdapterResponse`: `_message`, `code`, `rows_affected`; renders as
/// its message (`SELECT 3`).
#[derive(Debug)]
struct Response {
    message: String,
    code: String,
    rows_affected: Option<u64>,
}

impl Object for Response {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "_message" | "message" => Some(Value::from(self.message.clone())),
            "code" => Some(Value::from(self.code.clone())),
            "rows_affected" => Some(self.rows_affected.map_or(Value::from(-1), Value::from)),
            "query_id" => Some(Value::from(())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["_message", "code", "rows_affected"])
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What `load_result(name)` returns: `response`, `data` (rows as lists),
/// `table`.
fn result_value(response: Value, table: &Table) -> Value {
    let mut map: IndexMap<Value, Value> = IndexMap::new();
    map.insert(Value::from("response"), response);
    map.insert(Value::from("data"), table.data());
    map.insert(Value::from("table"), Value::from_object(table.clone()));
    Value::from_object(map)
}

/// `run_query(sql)`: the rows as a table; `none` while configs are read.
fn run_query_fn(state: &State, sql: Value) -> Result<Value, Error> {
    let cap = capture(state)?;
    if !cap.execute {
        return Ok(Value::from(()));
    }
    let result = run_sql(&cap, &sql.to_string(), "run_query")?;
    Ok(Value::from_object(table_of(&result)?))
}

/// `{% call statement(name, fetch_result=False, auto_begin=True) %}sql{%
/// endcall %}`: runs the body; with a name, the result is kept for
/// `load_result(name)`. Does nothing while configs are read.
#[derive(Debug)]
struct StatementFn;

impl Object for StatementFn {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (args, kwargs): (Rest<Value>, Kwargs) = minijinja::value::from_args(args)?;
        statement_fn(state, args, kwargs)
    }
}

fn statement_fn(state: &mut State, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let arg = |i: usize, key: &str| -> Result<Option<Value>, Error> {
        match args.get(i) {
            Some(v) => Ok(Some(v.clone())),
            None => kwargs.get::<Option<Value>>(key),
        }
    };
    let name = arg(0, "name")?.filter(|v| !v.is_none());
    let fetch = arg(1, "fetch_result")?.is_some_and(|v| v.is_true());
    let _ = arg(2, "auto_begin")?;
    let language = arg(3, "language")?;
    let caller: Option<Value> = kwargs.get("caller")?;
    kwargs.assert_all_used()?;
    if let Some(l) = language.as_ref().and_then(Value::as_str)
        && l != "sql"
    {
        return Err(invalid(format!(
            "statement(language='{l}'): only SQL statements run in Sluice"
        )));
    }
    let cap = capture(state)?;
    if !cap.execute {
        return Ok(Value::from(""));
    }
    let Some(caller) = caller else {
        return Err(invalid(
            "statement() runs the SQL of its call block: write {% call statement('name', fetch_result=True) %}select …{% endcall %}",
        ));
    };
    let sql = caller.call(state, &[])?.to_string();
    let result = run_sql(&cap, &sql, "statement")?;
    if let Some(name) = name {
        let table = if fetch {
            table_of(&result)?
        } else {
            Table::default()
        };
        let response = Value::from_object(Response {
            message: result.message(),
            code: result.code.clone(),
            rows_affected: result.rows_affected,
        });
        if let Ok(mut results) = cap.results.lock() {
            results.insert(name.to_string(), result_value(response, &table));
        }
    }
    Ok(Value::from(""))
}

/// `load_result(name)`: what `statement(name, …)` or `store_result(name,
/// …)` kept, or `none`.
fn load_result_fn(state: &State, name: String) -> Result<Value, Error> {
    let cap = capture(state)?;
    let results = cap.results.lock().map_err(|_| invalid("results lock"))?;
    Ok(results.get(&name).cloned().unwrap_or(Value::from(())))
}

fn keep_result(
    state: &State,
    name: String,
    response: Value,
    table: Option<Value>,
) -> Result<(), Error> {
    let table = match table.filter(|t| !t.is_none()) {
        None => Table::default(),
        Some(t) => t
            .downcast_object_ref::<Table>()
            .cloned()
            .ok_or_else(|| invalid("agate_table must be a table from run_query or load_result"))?,
    };
    let cap = capture(state)?;
    let mut results = cap.results.lock().map_err(|_| invalid("results lock"))?;
    results.insert(name, result_value(response, &table));
    Ok(())
}

/// `store_result(name, response, agate_table=None)`.
fn store_result_fn(
    state: &State,
    name: String,
    response: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let response = match response {
        Some(r) => r,
        None => kwargs
            .get::<Option<Value>>("response")?
            .unwrap_or(Value::from(())),
    };
    let table = kwargs.get::<Option<Value>>("agate_table")?;
    kwargs.assert_all_used()?;
    keep_result(state, name, response, table)?;
    Ok(String::new())
}

/// `store_raw_result(name, message=None, code=None, rows_affected=None,
/// agate_table=None)`.
fn store_raw_result_fn(state: &State, name: String, kwargs: Kwargs) -> Result<String, Error> {
    let text = |k: &str| -> Result<String, Error> {
        Ok(kwargs
            .get::<Option<Value>>(k)?
            .filter(|v| !v.is_none())
            .map(|v| v.to_string())
            .unwrap_or_default())
    };
    let message = text("message")?;
    let code = text("code")?;
    let rows_affected = kwargs
        .get::<Option<Value>>("rows_affected")?
        .and_then(|v| u64::try_from(v).ok());
    let table = kwargs.get::<Option<Value>>("agate_table")?;
    kwargs.assert_all_used()?;
    let response = Value::from_object(Response {
        message,
        code,
        rows_affected,
    });
    keep_result(state, name, response, table)?;
    Ok(String::new())
}

/// Python's `len`.
fn len_fn(v: Value) -> Result<usize, Error> {
    v.len()
        .ok_or_else(|| invalid(format!("len() of a value without a length: {v}")))
}

/// Python's `json.dumps`: `", "` and `": "` separators, non-ASCII escaped.
fn py_json(v: &serde_json::Value, sort_keys: bool, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&n.to_string()),
        J::String(s) => py_json_str(s, out),
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_json(item, sort_keys, out);
            }
            out.push(']');
        }
        J::Object(map) => {
            let mut entries: Vec<(&String, &J)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_json_str(k, out);
                out.push_str(": ");
                py_json(item, sort_keys, out);
            }
            out.push('}');
        }
    }
}

fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn tojson_fn(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(&to_json(&value)?, sort_keys, &mut out);
    Ok(out)
}

fn fromjson_fn(text: String, default: Option<Value>) -> Value {
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => serde_value(&v),
        Err(_) => default.unwrap_or(Value::from(())),
    }
}

fn fromyaml_fn(text: String, default: Option<Value>) -> Value {
    match serde_saphyr::from_str::<serde_json::Value>(&text) {
        Ok(v) => serde_value(&v),
        Err(_) => default.unwrap_or(Value::from(())),
    }
}

fn local_md5_fn(text: String) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Python's `zip`: tuples (as lists) up to the shortest input.
fn zip_fn(args: Rest<Value>) -> Result<Value, Error> {
    let lists: Vec<Vec<Value>> = args
        .iter()
        .map(|a| a.try_iter().map(Iterator::collect))
        .collect::<Result<_, _>>()?;
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from(
        (0..n)
            .map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    ))
}

/// Python's `set`, as a list without duplicates (first occurrence kept).
fn set_fn(value: Value, default: Option<Value>) -> Value {
    match value.try_iter() {
        Ok(items) => {
            let mut out: Vec<Value> = Vec::new();
            for v in items {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Value::from(out)
        }
        Err(_) => default.unwrap_or(Value::from(())),
    }
}

fn set_strict_fn(value: Value) -> Result<Value, Error> {
    value.try_iter()?;
    Ok(set_fn(value, None))
}

/// Python's `repr` of a string: single quotes unless only double quotes
/// avoid escaping.
fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// A plain list or dict (not an object that renders itself).
fn plain_items(v: &Value) -> Option<Vec<Value>> {
    if let Some(l) = v.downcast_object_ref::<mutable::List>() {
        return Some(l.snapshot());
    }
    v.downcast_object_ref::<Vec<Value>>().cloned()
}

fn plain_map(v: &Value) -> Option<Vec<(Value, Value)>> {
    if let Some(d) = v.downcast_object_ref::<mutable::Dict>() {
        return Some(d.snapshot());
    }
    v.downcast_object_ref::<IndexMap<Value, Value>>()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Python's `repr` of a value inside a list or dict.
fn py_repr(v: &Value, out: &mut String) {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String => py_repr_str(v.as_str().unwrap_or_default(), out),
        _ => py_display(v, out),
    }
}

/// Python's `str` of a value: what `{{ value }}` prints in dbt.
fn py_display(v: &Value, out: &mut String) {
    match v.kind() {
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        _ => {
            if let Some(items) = plain_items(v) {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(item, out);
                }
                out.push(']');
            } else if let Some(entries) = plain_map(v) {
                out.push('{');
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    py_repr(k, out);
                    out.push_str(": ");
                    py_repr(item, out);
                }
                out.push('}');
            } else {
                out.push_str(&v.to_string());
            }
        }
    }
}

/// The formatter of `{{ … }}`: values print as Python prints them (`None`,
/// `True`, `['a', 'b']`), as dbt's SQL would show.
pub(crate) fn py_formatter(
    out: &mut minijinja::Output,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => {
            let mut s = String::new();
            py_display(value, &mut s);
            out.write_str(&s).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// What `flags` holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[allow(non_snake_case)]
pub(crate) struct Flags {
    pub FULL_REFRESH: bool,
    pub STORE_FAILURES: bool,
    pub WARN_ERROR: bool,
    pub FAIL_FAST: bool,
    pub DEBUG: bool,
    pub EMPTY: bool,
    pub WHICH: String,
}

/// A name dbt has and Sluice does not: calling it (or a method of it, or
/// of one of its attributes: `graph.nodes.values()`) is a clear error.
#[derive(Debug)]
pub(crate) struct Unsupported(pub std::borrow::Cow<'static, str>);

impl Unsupported {
    /// The value for `name`.
    pub fn value(name: &'static str) -> Value {
        Value::from_object(Unsupported(name.into()))
    }

    fn error(&self) -> Error {
        invalid(format!("`{}` is not supported by Sluice yet", self.0))
    }
}

impl Object for Unsupported {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Unsupported(
            format!("{}.{}", self.0, key.as_str()?).into(),
        )))
    }

    fn call(self: &Arc<Self>, _: &mut State<'_, '_>, _: &[Value]) -> Result<Value, Error> {
        Err(self.error())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        _: &[Value],
    ) -> Result<Value, Error> {
        Err(invalid(format!(
            "`{}.{method}` is not supported by Sluice yet",
            self.0
        )))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}: not supported by Sluice yet>", self.0)
    }
}

/// `modules`: `modules.datetime`; the others are refused clearly.
#[derive(Debug)]
struct Modules;

impl Object for Modules {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "datetime" => datetime::module(),
            "pytz" => Unsupported::value("modules.pytz"),
            "re" => Unsupported::value("modules.re"),
            "itertools" => Unsupported::value("modules.itertools"),
            _ => return None,
        })
    }
}

/// Project-wide values of the context.
pub(crate) struct Globals<'a> {
    pub project_name: &'a str,
    pub invocation_id: &'a str,
    pub run_started_at: chrono::DateTime<chrono::Utc>,
    pub flags: &'a Flags,
    pub target: Value,
}

/// Add the functions and values above to `env`.
pub(crate) fn register(env: &mut Environment<'static>, g: &Globals<'_>) {
    let ref_v = Value::from_function(ref_fn);
    let source_v = Value::from_function(source_fn);
    let config_v = Value::from_object(ConfigFn);
    let mut builtins = IndexMap::new();
    builtins.insert("ref", ref_v.clone());
    builtins.insert("source", source_v.clone());
    builtins.insert("config", config_v.clone());
    env.add_global("ref", ref_v);
    env.add_global("source", source_v);
    env.add_global("config", config_v);
    env.add_global("builtins", Value::from_iter(builtins));
    env.add_global("var", Value::from_object(VarFn));
    env.add_function("env_var", env_var_fn);
    env.add_function("is_incremental", is_incremental_fn);
    env.add_function("return", super::library::return_fn);
    env.add_function("log", log_fn);
    env.add_function("print", print_fn);
    env.add_global("exceptions", Value::from_object(Exceptions));
    env.add_function("tojson", tojson_fn);
    env.add_function("fromjson", fromjson_fn);
    env.add_function("fromyaml", fromyaml_fn);
    env.add_function("local_md5", local_md5_fn);
    env.add_function("zip", zip_fn);
    env.add_function("zip_strict", zip_fn);
    env.add_function("set", set_fn);
    env.add_function("set_strict", set_strict_fn);
    env.add_function(mutable::WRAP, mutable::wrap);
    env.add_function("run_query", run_query_fn);
    env.add_global("statement", Value::from_object(StatementFn));
    env.add_function("load_result", load_result_fn);
    env.add_function("store_result", store_result_fn);
    env.add_function("store_raw_result", store_raw_result_fn);
    env.add_function("len", len_fn);
    env.add_global("modules", Value::from_object(Modules));
    env.add_global("api", Unsupported::value("api"));
    env.add_global("graph", Unsupported::value("graph"));
    env.add_global("run_started_at", datetime::from_utc(g.run_started_at));
    env.add_global("invocation_id", g.invocation_id.to_string());
    env.add_global("project_name", g.project_name.to_string());
    env.add_global("dbt_version", "1.10.0");
    env.add_global("flags", serde_value(g.flags));
    env.add_global("target", g.target.clone());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_is_pythons() {
        let mut out = String::new();
        py_json(
            &json!({"b": [1, 2.5, null], "a": "é\"x\n", "c": {"t": true}}),
            false,
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"b": [1, 2.5, null], "a": "\u00e9\"x\n", "c": {"t": true}}"#
        );
        let mut out = String::new();
        py_json(&json!({"b": 1, "a": "😀"}), true, &mut out);
        assert_eq!(out, r#"{"a": "\ud83d\ude00", "b": 1}"#);
    }

    #[test]
    fn values_print_as_python_prints_them() {
        let mut out = String::new();
        py_display(
            &serde_value(json!({"a": [1, "it's", null, true], "b": "x"})),
            &mut out,
        );
        assert_eq!(out, r#"{'a': [1, "it's", None, True], 'b': 'x'}"#);
    }

    #[test]
    fn md5_zip_and_set() {
        assert_eq!(
            local_md5_fn("abc".into()),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        let z = zip_fn(Rest(vec![
            Value::from(vec![1, 2, 3]),
            Value::from(vec!["a", "b"]),
        ]))
        .unwrap();
        assert_eq!(z.to_string(), "[[1, 'a'], [2, 'b']]");
        assert_eq!(
            set_fn(Value::from(vec![1, 2, 1, 3]), None).to_string(),
            "[1, 2, 3]"
        );
    }
}
