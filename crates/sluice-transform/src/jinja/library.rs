//! The macros a render can call, found as dbt finds them.
//!
//! Every top-level `{% macro %}` of a file becomes its own template, so that
//! a call is a fresh evaluation with the calling node's context, as in dbt:
//!
//! ```text
//!  macros/*.sql ─► blocks ─► one template per macro ─┐
//!  built-in dbt macros ──────────────────────────────┼─► Library (package → name → macro)
//!                                                    │
//!  `cents(x)`, `shop.cents(x)`, `dbt.x()`,           │
//!  `adapter.dispatch('cents')(x)` ─► MacroRef ─► invoke: new state, call,
//!                                                catch `return(value)`
//! ```
//!
//! A macro calls another through the environment's globals (never through
//! the closure of its own file), so every call goes through [`invoke`], which
//! turns `{{ return(x) }}` into the call's value.
//!
//! Installed packages (`dbt_packages/`) add their macros. A bare name
//! resolves as in dbt, with one addition for calls between a package's own
//! macros:
//!
//! ```text
//!  1. the package of the node being rendered (when it is a package's node)
//!  2. the root project
//!  3. the package of the macro being evaluated (its siblings)
//!  4. every other package, in name order
//!  5. dbt's built-in macros
//! ```
//!
//! `dbt.<name>` reaches the built-in ones and `<package>.<name>` (the root
//! project's name too) a package's own.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use super::context::{Capture, capture};
use crate::error::{Result, TransformError};

/// The package of dbt's own macros.
pub(crate) const GLOBAL_PACKAGE: &str = "dbt";

/// What a macro is called inside its own template (never a name a project
/// can reach, so a recursive call goes through the globals too).
const MACRO_LOCAL: &str = "__sluice_macro__";

/// dbt's macros that Sluice ships: the generic tests and the naming macros.
const BUILTIN_MACROS: &str = include_str!("global_project.sql");

/// Where dbt's own macros appear in errors.
const BUILTIN_PATH: &str = "(dbt built-in macros)";

/// One macro.
#[derive(Debug)]
pub(crate) struct MacroDef {
    /// Its name.
    pub name: String,
    /// Its package (`dbt`, or the project's name).
    pub package: String,
    /// Its file.
    pub path: PathBuf,
    /// Lines before the macro in its file (its template starts at the macro).
    pub line_offset: usize,
    /// Its template's name in the environment.
    pub template: String,
}

/// A `dispatch:` entry of `dbt_project.yml`: where to look for the
/// implementations of a namespace's macros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// `macro_namespace` (`dbt_utils`).
    pub macro_namespace: String,
    /// `search_order` (`[my_project, dbt_utils]`).
    pub search_order: Vec<String>,
}

/// Every macro, by package and name.
#[derive(Debug, Default)]
pub(crate) struct Library {
    pub macros: Vec<MacroDef>,
    packages: HashMap<String, HashMap<String, usize>>,
    /// The installed packages' names, in name order (neither the root
    /// project nor `dbt`).
    installed: Vec<String>,
    /// Template name → macro.
    templates: HashMap<String, usize>,
    /// The root project's name.
    pub root: String,
    /// Adapter prefixes, in search order (`datafusion`, `postgres`, `default`).
    pub prefixes: Vec<String>,
    /// The project's `dispatch:` search orders by namespace.
    search_orders: HashMap<String, Vec<String>>,
}

/// A tag (`{% word rest %}`) of a template's text.
struct Tag<'a> {
    /// Byte offset of `{%`.
    start: usize,
    /// Byte offset after `%}`.
    end: usize,
    /// The first word (`macro`, `endmacro`, `set`).
    word: &'a str,
    /// Byte offset of what follows the word.
    after_word: usize,
}

/// The block tags of `text`, skipping comments and `{% raw %}` sections.
fn tags(text: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = text[pos..].find('{') {
        let start = pos + i;
        let rest = &text[start..];
        if rest.starts_with("{#") {
            pos = rest.find("#}").map_or(text.len(), |e| start + e + 2);
            continue;
        }
        if !rest.starts_with("{%") {
            pos = start + 1;
            continue;
        }
        let Some(close) = rest.find("%}") else {
            break;
        };
        let end = start + close + 2;
        let inner_start = start + 2;
        let inner = &text[inner_start..start + close];
        let trimmed = inner.trim_start_matches(['-', '+']).trim_start();
        let word_start = inner_start + (inner.len() - trimmed.len());
        let word_len = trimmed
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(trimmed.len());
        let word = &text[word_start..word_start + word_len];
        if word == "raw" {
            // Skip to the end of `{% endraw %}`.
            let mut p = end;
            loop {
                let Some(j) = text[p..].find("{%") else {
                    return out;
                };
                let t = &text[p + j + 2..];
                let t = t.trim_start_matches(['-', '+']).trim_start();
                let Some(c) = text[p + j..].find("%}") else {
                    return out;
                };
                if t.starts_with("endraw") {
                    pos = p + j + c + 2;
                    break;
                }
                p = p + j + c + 2;
            }
            continue;
        }
        out.push(Tag {
            start,
            end,
            word,
            after_word: word_start + word_len,
        });
        pos = end;
    }
    out
}

/// A top-level `{% macro %}` … `{% endmacro %}` of a file.
struct Block {
    name: String,
    /// Byte range of the whole block.
    start: usize,
    end: usize,
    /// Byte range of the name in the opening tag.
    name_start: usize,
    name_end: usize,
}

/// The top-level macros of `text` (already through [`dbt_blocks_to_macros`]).
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut open: Option<(usize, String, usize, usize)> = None;
    for tag in tags(text) {
        match tag.word {
            "macro" => {
                if depth == 0 {
                    let rest = &text[tag.after_word..tag.end];
                    let trimmed = rest.trim_start();
                    let name_start = tag.after_word + (rest.len() - trimmed.len());
                    let name: String = trimmed
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    open = Some((tag.start, name.clone(), name_start, name_start + name.len()));
                }
                depth += 1;
            }
            "endmacro" => {
                depth = depth.saturating_sub(1);
                if depth == 0
                    && let Some((start, name, name_start, name_end)) = open.take()
                    && !name.is_empty()
                {
                    out.push(Block {
                        name,
                        start,
                        end: tag.end,
                        name_start,
                        name_end,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Turn dbt-only block tags minijinja does not know into plain macros:
/// `{% test name(args) %}…{% endtest %}` → `{% macro test_name(args) %}…{% endmacro %}`,
/// `{% materialization name, adapter='x' %}` → `{% macro materialization_name_x() %}`.
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
        let word = trimmed.trim_end().trim_end_matches('-').trim_end();
        let trail = if body.trim_end().ends_with('-') {
            "-"
        } else {
            ""
        };
        let replaced = if let Some(after) = trimmed.strip_prefix("test ") {
            Some(format!("{{%{lead} macro test_{}%}}", after.trim_start()))
        } else if let Some(after) = trimmed.strip_prefix("materialization ") {
            let spec = after.trim_end().trim_end_matches('-');
            let mut parts = spec.split(',').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let adapter = parts
                .find_map(|p| {
                    let p = p.strip_prefix("adapter")?.trim_start().strip_prefix('=')?;
                    Some(p.trim().trim_matches(['\'', '"']).to_string())
                })
                .unwrap_or_else(|| "default".into());
            Some(format!(
                "{{%{lead} macro materialization_{name}_{adapter}() {trail}%}}"
            ))
        } else if word == "endtest" || word == "endmaterialization" {
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
    out
}

/// The adapter prefixes `adapter.dispatch` tries for a target type, in
/// order: the adapter, its parents, `default`.
pub(crate) fn adapter_prefixes(kind: &str) -> Vec<String> {
    let chain: &[&str] = match kind {
        // The lake runs on DataFusion, whose SQL is closest to PostgreSQL's.
        "sluice" | "datafusion" => &["datafusion", "postgres"],
        "redshift" => &["redshift", "postgres"],
        other => return vec![other.to_string(), "default".into()],
    };
    chain
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once("default".to_string()))
        .collect()
}

impl Library {
    /// Read the macro files of `root` and of the installed `packages`
    /// (`(name, files)`), with dbt's built-in macros under them, into
    /// templates of `env`.
    pub fn load(
        env: &mut Environment<'static>,
        root: &str,
        files: &[(PathBuf, String)],
        packages: &[(String, Vec<(PathBuf, String)>)],
        target_kind: &str,
        dispatch: &[DispatchConfig],
    ) -> Result<Library> {
        let mut lib = Library {
            root: root.to_string(),
            prefixes: adapter_prefixes(target_kind),
            search_orders: dispatch
                .iter()
                .map(|d| (d.macro_namespace.clone(), d.search_order.clone()))
                .collect(),
            ..Library::default()
        };
        lib.add_file(env, GLOBAL_PACKAGE, Path::new(BUILTIN_PATH), BUILTIN_MACROS)?;
        for (path, text) in files {
            lib.add_file(env, root, path, text)?;
        }
        for (package, files) in packages {
            for (path, text) in files {
                lib.add_file(env, package, path, text)?;
            }
            lib.packages.entry(package.clone()).or_default();
            if package != root && package != GLOBAL_PACKAGE {
                lib.installed.push(package.clone());
            }
        }
        lib.installed.sort();
        lib.installed.dedup();
        Ok(lib)
    }

    fn add_file(
        &mut self,
        env: &mut Environment<'static>,
        package: &str,
        path: &Path,
        text: &str,
    ) -> Result<()> {
        let text = super::mutable::rewrite_sets(&dbt_blocks_to_macros(text)).into_owned();
        // The whole file must parse (so that errors name its lines) even
        // though only its macros are kept, as in dbt.
        let probe = Environment::new();
        probe
            .template_from_named_str(&path.display().to_string(), &text)
            .map_err(|e| super::jinja_error(path, &e))?;
        let mut line = 1;
        let mut counted = 0;
        for b in blocks(&text) {
            line += text[counted..b.start].matches('\n').count();
            counted = b.start;
            let names = self.packages.entry(package.to_string()).or_default();
            if names.contains_key(&b.name) {
                return Err(TransformError::Project {
                    message: format!(
                        "macro `{}` of `{package}` is defined twice (again in `{}`)",
                        b.name,
                        path.display()
                    ),
                    hint: Some("rename one of them".into()),
                });
            }
            let id = self.macros.len();
            names.insert(b.name.clone(), id);
            let template = format!("{}::{}", path.display(), b.name);
            let body = format!(
                "{}{MACRO_LOCAL}{}",
                &text[b.start..b.name_start],
                &text[b.name_end..b.end]
            );
            env.add_template_owned(template.clone(), body)
                .map_err(|e| super::jinja_error(path, &e))?;
            self.templates.insert(template.clone(), id);
            self.macros.push(MacroDef {
                name: b.name,
                package: package.to_string(),
                path: path.to_path_buf(),
                line_offset: line - 1,
                template,
            });
        }
        Ok(())
    }

    /// Make the macros callable: every name as a global (the root
    /// project's over the packages' over dbt's; between packages the first
    /// in name order), `dbt`, the project's and each package's name as
    /// namespaces, `adapter`.
    pub fn register(self: &Arc<Self>, env: &mut Environment<'static>, target_kind: &str) {
        // Later additions replace earlier ones: lowest precedence first.
        let order = std::iter::once(GLOBAL_PACKAGE)
            .chain(self.installed.iter().rev().map(String::as_str))
            .chain(std::iter::once(self.root.as_str()));
        for package in order {
            if let Some(names) = self.packages.get(package) {
                for (name, id) in names {
                    env.add_global(name.clone(), self.macro_value(*id));
                }
            }
        }
        let namespaces = std::iter::once(GLOBAL_PACKAGE)
            .chain(std::iter::once(self.root.as_str()).filter(|r| !r.is_empty()))
            .chain(self.installed.iter().map(String::as_str));
        for package in namespaces {
            if package == GLOBAL_PACKAGE && self.root == GLOBAL_PACKAGE {
                continue;
            }
            env.add_global(
                package.to_string(),
                Value::from_object(Namespace {
                    lib: self.clone(),
                    package: package.to_string(),
                }),
            );
        }
        env.add_global(
            "adapter",
            Value::from_object(Adapter {
                lib: self.clone(),
                kind: target_kind.to_string(),
            }),
        );
    }

    pub fn macro_value(self: &Arc<Self>, id: usize) -> Value {
        Value::from_object(MacroRef {
            lib: self.clone(),
            id,
        })
    }

    /// The macro a bare name reaches outside any package: the root
    /// project's, else the first package's (in name order), else dbt's.
    pub fn global(&self, name: &str) -> Option<usize> {
        self.in_package(&self.root, name)
            .or_else(|| self.installed.iter().find_map(|p| self.in_package(p, name)))
            .or_else(|| self.in_package(GLOBAL_PACKAGE, name))
    }

    /// Whether `package` is an installed package (not the root project,
    /// not `dbt`).
    pub fn is_installed(&self, package: &str) -> bool {
        self.installed.iter().any(|p| p == package)
    }

    /// The macro a bare name reaches while rendering a node of
    /// `node_package` inside a macro of `macro_package`, before the
    /// environment's globals (other packages, dbt): the node's package,
    /// the root project, the evaluating macro's package. `None` when the
    /// globals decide.
    pub fn scoped(
        &self,
        node_package: Option<&str>,
        macro_package: Option<&str>,
        name: &str,
    ) -> Option<usize> {
        node_package
            .and_then(|p| self.in_package(p, name))
            .or_else(|| self.in_package(&self.root, name))
            .or_else(|| macro_package.and_then(|p| self.in_package(p, name)))
    }

    /// The macro `package.name`.
    pub fn in_package(&self, package: &str, name: &str) -> Option<usize> {
        self.packages.get(package)?.get(name).copied()
    }

    /// Whether the root project defines `name` itself.
    pub fn project_defines(&self, name: &str) -> bool {
        self.in_package(&self.root, name).is_some()
    }

    /// The macro of a template, when the template is one.
    pub fn of_template(&self, template: &str) -> Option<&MacroDef> {
        self.templates.get(template).map(|id| &self.macros[*id])
    }

    /// dbt's `adapter.dispatch(name, namespace)`: for each package of the
    /// search order, each adapter prefix; the first macro found.
    pub fn dispatch(&self, name: &str, namespace: Option<&str>) -> Result<usize, String> {
        if let Some((ns, n)) = name.split_once('.') {
            return Err(format!(
                "In adapter.dispatch, got a macro name of \"{name}\", but \".\" is not a valid macro name component. Did you mean `adapter.dispatch(\"{n}\", macro_namespace=\"{ns}\")`?"
            ));
        }
        let packages: Vec<Option<&str>> = match namespace {
            None => vec![None],
            Some(ns) => match self.search_orders.get(ns) {
                Some(order) if !order.is_empty() => {
                    order.iter().map(|p| Some(p.as_str())).collect()
                }
                _ if ns == GLOBAL_PACKAGE || ns == self.root || self.packages.contains_key(ns) => {
                    let mut v = vec![Some(self.root.as_str())];
                    if ns != self.root {
                        v.push(Some(ns));
                    }
                    v
                }
                _ => vec![None],
            },
        };
        let mut attempts = Vec::new();
        for package in packages {
            for prefix in &self.prefixes {
                let search = format!("{prefix}__{name}");
                let found = match package {
                    None => self.global(&search),
                    Some(p) => self.in_package(p, &search),
                };
                attempts.push(match package {
                    None => format!("'{search}'"),
                    Some(p) => format!("'{p}.{search}'"),
                });
                if let Some(id) = found {
                    return Ok(id);
                }
            }
        }
        Err(format!(
            "In dispatch: No macro named '{name}' found within namespace: '{}'\n    Searched for: {}",
            namespace.unwrap_or("None"),
            attempts.join(", ")
        ))
    }
}

/// What `{{ return(x) }}` raises: the error a macro call turns into `x`.
#[derive(Debug)]
struct MacroReturn(Value);

impl fmt::Display for MacroReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("return() was called outside a macro")
    }
}

impl std::error::Error for MacroReturn {}

/// `return(value)`: end the macro; its call evaluates to `value`.
pub(crate) fn return_fn(value: Option<Value>) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        "return() was called outside a macro",
    )
    .with_source(MacroReturn(value.unwrap_or(Value::from(())))))
}

fn returned(e: &Error) -> Option<Value> {
    std::error::Error::source(e)?
        .downcast_ref::<MacroReturn>()
        .map(|r| r.0.clone())
}

/// How deep macros may call macros (each call is a nested evaluation).
const MAX_DEPTH: usize = 48;

/// A `{% call m() %}body{% endcall %}` passes `body` as `caller`, a macro
/// of the calling evaluation: render it there (it takes no arguments), and
/// hand the macro a `caller()` that returns the text.
fn prerender_caller(state: &mut State<'_, '_>, args: &[Value]) -> Result<Vec<Value>, Error> {
    let Some(last) = args.last() else {
        return Ok(Vec::new());
    };
    let Some(kwargs) = last
        .is_kwargs()
        .then(|| Kwargs::try_from(last.clone()).ok())
        .flatten()
        .filter(|k| k.has("caller"))
    else {
        return Ok(args.to_vec());
    };
    let caller: Value = kwargs.peek("caller")?;
    let takes_args = caller
        .get_attr("arguments")
        .ok()
        .and_then(|a| a.len())
        .unwrap_or(0);
    if takes_args > 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "a {% call(args) %} block passing arguments to a project macro is not supported yet",
        ));
    }
    let text = caller.call(state, &[])?;
    let caller = Value::from_function(move || text.clone());
    let kwargs: Kwargs = kwargs
        .args()
        .map(|k| {
            let v = if k == "caller" {
                caller.clone()
            } else {
                kwargs.peek::<Value>(k).unwrap_or_default()
            };
            (k.to_string(), v)
        })
        .collect();
    let mut out = args[..args.len() - 1].to_vec();
    out.push(Value::from(kwargs));
    Ok(out)
}

/// What a template evaluates in: the render's capture, with the names of
/// package macros resolved as the module doc says. Only used when a
/// package is involved (the node's or the macro's); otherwise the capture
/// is the context as it is.
#[derive(Debug)]
pub(crate) struct Scope {
    pub cap: Arc<Capture>,
    pub lib: Arc<Library>,
    /// The rendered node's package, when it is an installed package.
    pub node_package: Option<String>,
    /// The evaluating macro's package, when it is an installed package.
    pub macro_package: Option<String>,
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(v) = Object::get_value(&self.cap, key) {
            return Some(v);
        }
        let id = self.lib.scoped(
            self.node_package.as_deref(),
            self.macro_package.as_deref(),
            key.as_str()?,
        )?;
        Some(self.lib.macro_value(id))
    }
}

/// The installed package a node (its `model` value) belongs to.
pub(crate) fn node_package(lib: &Library, model: Option<&Value>) -> Option<String> {
    let package = model?.get_attr("package_name").ok()?;
    let package = package.as_str()?;
    lib.is_installed(package).then(|| package.to_string())
}

/// The context a template of `macro_package` (or of the node itself, with
/// `None`) evaluates in.
pub(crate) fn scope(lib: &Arc<Library>, cap: Arc<Capture>, macro_package: Option<&str>) -> Value {
    if lib.installed.is_empty() {
        return Value::from_dyn_object(cap);
    }
    let node_package = node_package(lib, cap.model.as_ref());
    let macro_package = macro_package
        .filter(|p| lib.is_installed(p))
        .map(str::to_string);
    if node_package.is_none() && macro_package.is_none() {
        return Value::from_dyn_object(cap);
    }
    Value::from_object(Scope {
        cap,
        lib: lib.clone(),
        node_package,
        macro_package,
    })
}

/// Call macro `def` with `args`, in the calling node's context.
fn invoke(
    state: &mut State<'_, '_>,
    lib: &Arc<Library>,
    def: &MacroDef,
    args: &[Value],
) -> Result<Value, Error> {
    let cap = capture(state)?;
    let _depth = cap.enter(MAX_DEPTH).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("macros call each other more than {MAX_DEPTH} deep (at `{}`): does a macro call itself forever?", def.name),
        )
    })?;
    let args = prerender_caller(state, args)?;
    let env = state.env();
    let tmpl = env.get_template(&def.template)?;
    let mut evaluated = tmpl.render_captured(scope(lib, cap.clone(), Some(&def.package)))?;
    let result = evaluated.with_state_mut(|s| match s.lookup(MACRO_LOCAL) {
        Some(m) => m.call(s, &args),
        None => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("macro `{}` went missing", def.name),
        )),
    });
    match result {
        Ok(v) => Ok(v),
        Err(e) => returned(&e).ok_or(e),
    }
}

/// A macro as a value: calling it calls the macro.
#[derive(Debug)]
pub(crate) struct MacroRef {
    lib: Arc<Library>,
    id: usize,
}

impl Object for MacroRef {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        invoke(state, &self.lib, &self.lib.macros[self.id], args)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let def = &self.lib.macros[self.id];
        match key.as_str()? {
            "name" => Some(Value::from(def.name.clone())),
            "package_name" => Some(Value::from(def.package.clone())),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<macro {}>", self.lib.macros[self.id].name)
    }
}

/// A package's macros: `dbt.current_timestamp()`, `shop.cents('x')`.
#[derive(Debug)]
struct Namespace {
    lib: Arc<Library>,
    package: String,
}

impl Object for Namespace {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let id = self.lib.in_package(&self.package, key.as_str()?)?;
        Some(self.lib.macro_value(id))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match self.lib.in_package(&self.package, method) {
            Some(id) => invoke(state, &self.lib, &self.lib.macros[id], args),
            None => Err(Error::new(
                ErrorKind::UnknownFunction,
                format!(
                    "there is no macro `{}.{method}`{}",
                    self.package,
                    if self.package == GLOBAL_PACKAGE {
                        " (Sluice ships only some of dbt's macros)"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<namespace {}>", self.package)
    }
}

/// Methods of `adapter` that need a live database while compiling.
const NEEDS_DATABASE: &[&str] = &[
    "get_relation",
    "get_columns_in_relation",
    "list_relations_without_caching",
    "list_schemas",
    "check_schema_exists",
    "get_missing_columns",
    "expand_target_column_types",
    "drop_relation",
    "rename_relation",
    "truncate_relation",
    "create_schema",
    "drop_schema",
    "execute",
    "get_relations_by_pattern",
    "get_catalog",
];

/// `adapter`: `dispatch`, `quote`, `type`.
#[derive(Debug)]
struct Adapter {
    lib: Arc<Library>,
    kind: String,
}

impl Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "dispatch" => {
                let (name, namespace, kwargs): (String, Option<Value>, Kwargs) =
                    minijinja::value::from_args(args)?;
                if kwargs.has("packages") {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "adapter.dispatch(packages=…) was removed in dbt 0.20: use macro_namespace and the project's `dispatch:` config",
                    ));
                }
                let namespace = match namespace {
                    Some(v) => Some(v),
                    None => kwargs.get::<Option<Value>>("macro_namespace")?,
                };
                kwargs.assert_all_used()?;
                let namespace = namespace.filter(|v| !v.is_none() && !v.is_undefined());
                let namespace = match &namespace {
                    Some(v) => Some(v.as_str().ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            "adapter.dispatch: macro_namespace must be a string",
                        )
                    })?),
                    None => None,
                };
                let id = self
                    .lib
                    .dispatch(&name, namespace)
                    .map_err(|m| Error::new(ErrorKind::UnknownFunction, m))?;
                Ok(self.lib.macro_value(id))
            }
            "quote" => {
                let (s,): (String,) = minijinja::value::from_args(args)?;
                Ok(Value::from(format!("\"{}\"", s.replace('"', "\"\""))))
            }
            "type" => Ok(Value::from(self.kind.clone())),
            m if NEEDS_DATABASE.contains(&m) => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("adapter.{m} needs a database at compile time; not supported yet"),
            )),
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("adapter has no method `{m}` in Sluice"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<adapter {}>", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_top_level_macros_only() {
        let text = "{# {% macro no() %} #}\n{% macro a(x) %}{% macro inner() %}{% endmacro %}{% raw %}{% macro raw() %}{% endraw %}{% endmacro %}\n{%- macro b() -%}b{%- endmacro -%}";
        let names: Vec<String> = blocks(text).into_iter().map(|b| b.name).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn materializations_become_macros() {
        assert_eq!(
            dbt_blocks_to_macros(
                "{% materialization view, adapter='postgres' %}x{% endmaterialization %}{%- materialization table, default -%}{%- endmaterialization -%}"
            ),
            "{% macro materialization_view_postgres() %}x{% endmacro %}{%- macro materialization_table_default() -%}{%- endmacro -%}"
        );
    }

    #[test]
    fn bare_names_resolve_root_then_packages_in_name_order_then_dbt() {
        let mut env = Environment::new();
        let file = |path: &str, text: &str| vec![(PathBuf::from(path), text.to_string())];
        let lib = Library::load(
            &mut env,
            "shop",
            &file("macros/m.sql", "{% macro shared() %}root{% endmacro %}"),
            &[
                (
                    "zeta".to_string(),
                    file(
                        "dbt_packages/zeta/macros/m.sql",
                        "{% macro shared() %}z{% endmacro %}{% macro only() %}z{% endmacro %}{% macro generate_alias_name() %}z{% endmacro %}",
                    ),
                ),
                (
                    "alpha".to_string(),
                    file(
                        "dbt_packages/alpha/macros/m.sql",
                        "{% macro only() %}a{% endmacro %}{% macro helper() %}a{% endmacro %}",
                    ),
                ),
            ],
            "postgres",
            &[],
        )
        .unwrap();
        let package = |id: Option<usize>| id.map(|i| lib.macros[i].package.clone());
        assert_eq!(package(lib.global("shared")).as_deref(), Some("shop"));
        assert_eq!(package(lib.global("only")).as_deref(), Some("alpha"));
        assert_eq!(
            package(lib.global("generate_alias_name")).as_deref(),
            Some("zeta")
        );
        assert_eq!(package(lib.global("test_not_null")).as_deref(), Some("dbt"));
        // In a node of `zeta`: zeta's own first; in a macro of `alpha`
        // called from a root node: the root, then alpha's siblings.
        assert_eq!(
            package(lib.scoped(Some("zeta"), None, "shared")).as_deref(),
            Some("zeta")
        );
        assert_eq!(
            package(lib.scoped(None, Some("alpha"), "shared")).as_deref(),
            Some("shop")
        );
        assert_eq!(
            package(lib.scoped(None, Some("alpha"), "helper")).as_deref(),
            Some("alpha")
        );
        assert_eq!(package(lib.scoped(None, None, "helper")), None);
    }

    #[test]
    fn prefixes_follow_the_adapter_chain() {
        assert_eq!(
            adapter_prefixes("sluice"),
            vec!["datafusion", "postgres", "default"]
        );
        assert_eq!(adapter_prefixes("postgres"), vec!["postgres", "default"]);
        assert_eq!(adapter_prefixes("duckdb"), vec!["duckdb", "default"]);
    }
}
