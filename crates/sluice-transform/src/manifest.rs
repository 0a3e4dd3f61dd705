//! A project compiled: every model and seed with its final config, its
//! relation, its compiled SQL and what it depends on, in build order.
//!
//! ```text
//!  dbt_project.yml trees ─┐
//!  properties `config:` ──┼─► config (later wins) ─► relation (schema, alias)
//!  `{{ config(...) }}` ───┘        ▲                         │
//!        pass 1: render every model with provisional relations (records config, refs)
//!        pass 2: render again with the final relations ─► SQL, depends_on ─► order (cycles refused)
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{merge_config, resolve};
use crate::error::{Result, TransformError};
use crate::jinja::{
    Database, DispatchConfig, Docs, Relation, Relations, Render, Renderer, Settings, Target,
};
use crate::project::{DbtProject, FileKind, ProjectFile};
use crate::properties::{self, NodeProperties, PropertiesFile};
use crate::testing::{self, TestInfo, Tested};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A SQL model.
    Model,
    /// A CSV seed.
    Seed,
    /// A data test (generic or singular).
    Test,
    /// A snapshot (`{% snapshot %}` block): a type-2 history of a query.
    Snapshot,
    /// A YAML unit test: a model run on given rows, in-process.
    UnitTest,
}

impl NodeKind {
    /// dbt's `resource_type`.
    pub fn resource_type(self) -> &'static str {
        match self {
            NodeKind::Model => "model",
            NodeKind::Seed => "seed",
            NodeKind::Test => "test",
            NodeKind::Snapshot => "snapshot",
            NodeKind::UnitTest => "unit_test",
        }
    }
}

/// One model, seed or test, compiled.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name (what `ref` takes).
    pub name: String,
    /// dbt's unique id (`model.shop.orders`, `test.shop.not_null_orders_id.1a2b3c4d5e`).
    pub unique_id: String,
    /// Model, seed or test.
    pub kind: NodeKind,
    /// Its file, relative to the project.
    pub path: PathBuf,
    /// Fully qualified name.
    pub fqn: Vec<String>,
    /// The final configuration (`materialized`, `schema`, `tags`, …).
    pub config: IndexMap<String, Value>,
    /// Where it lands (a test: where `store_failures` puts its rows).
    pub relation: Relation,
    /// The compiled SQL (models and tests; a test's returns failing rows).
    pub sql: Option<String>,
    /// The SQL as written (models and singular tests; the Jinja call for a
    /// generic test).
    pub raw: String,
    /// sha256 of the file (of the raw text for a generic test).
    pub checksum: String,
    /// Names of the nodes it refs.
    pub depends_on: Vec<String>,
    /// `(source, table)` pairs it reads.
    pub sources: Vec<(String, String)>,
    /// Its properties (description, columns, tests), when a file declares them.
    pub properties: Option<NodeProperties>,
    /// For tests: what it checks.
    pub test: Option<TestInfo>,
    /// For unit tests: the definition.
    pub unit: Option<crate::properties::UnitTestSpec>,
    /// The project it belongs to: the root project's name, or an installed
    /// package's (dbt's `package_name`).
    pub package_name: String,
    /// Where that package is installed, relative to the root project
    /// (`dbt_packages/mini_utils`); empty for the root project. `path`
    /// starts with it.
    pub package_dir: PathBuf,
    /// Its rendering runs database calls (`run_query`, `statement`,
    /// directly or through macros): `sql` is what rendering without the
    /// database gave (`execute` false, as dbt's parse), and the node is
    /// rendered again right before it runs, with the engine reachable.
    pub database_calls: bool,
}

impl Node {
    /// `materialized` (default `view` for models, `seed` for seeds, `test` for tests).
    pub fn materialized(&self) -> &str {
        match self.kind {
            NodeKind::Seed => "seed",
            NodeKind::Test => "test",
            NodeKind::Snapshot => "snapshot",
            NodeKind::UnitTest => "unit_test",
            NodeKind::Model => self
                .config
                .get("materialized")
                .and_then(Value::as_str)
                .unwrap_or("view"),
        }
    }

    /// The `model` Jinja sees while this node renders.
    pub fn model_json(&self) -> Value {
        node_json(
            &self.package_name,
            self.kind,
            &self.name,
            &self.path,
            &self.fqn,
            &self.config,
        )
    }

    /// Its file relative to its own project (dbt's `original_file_path`).
    pub fn original_file_path(&self) -> &Path {
        self.path
            .strip_prefix(&self.package_dir)
            .unwrap_or(&self.path)
    }

    /// `enabled` (default true).
    pub fn enabled(&self) -> bool {
        self.config
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// `tags`, as a list.
    pub fn tags(&self) -> Vec<String> {
        match self.config.get("tags") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A source table as declared.
#[derive(Debug, Clone)]
pub struct SourceNode {
    /// `source.<project>.<source>.<table>`.
    pub unique_id: String,
    /// The source's name.
    pub source_name: String,
    /// The table's name.
    pub name: String,
    /// Where it is.
    pub relation: Relation,
    /// The properties file.
    pub path: PathBuf,
    /// `description`.
    pub description: String,
    /// The Sluice stream (`<source>.<stream>`) that loads the relation, when
    /// known (set by the caller, which knows the Sluice project: lineage).
    pub loaded_by: Option<String>,
    /// The project that declares it: the root project's name, or an
    /// installed package's.
    pub package_name: String,
}

/// The compiled project.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The project's name.
    pub project: String,
    /// Enabled nodes by name.
    pub nodes: IndexMap<String, Node>,
    /// Node names in build order (every node after what it refs).
    pub order: Vec<String>,
    /// Declared source tables by `(source, table)`.
    pub sources: IndexMap<(String, String), SourceNode>,
    /// Every properties file, by path.
    pub properties: BTreeMap<PathBuf, PropertiesFile>,
    /// The target compiled for.
    pub target: Target,
    /// What `log()`/`print()` said while the final SQL was rendered, as
    /// `(node, message)`.
    pub logs: Vec<(String, String)>,
    /// What `exceptions.warn()` said, as `(node, message)`.
    pub warnings: Vec<(String, String)>,
    /// The invocation's id (`invocation_id` in templates).
    pub invocation_id: String,
    renderer: Arc<Renderer>,
}

/// dbt's default `generate_schema_name`: the target's schema, or
/// `<target schema>_<custom schema>` when the node sets `schema`.
pub fn generate_schema_name(custom: Option<&str>, target: &Target) -> String {
    match custom.map(str::trim).filter(|s| !s.is_empty()) {
        Some(c) => format!("{}_{c}", target.schema),
        None => target.schema.clone(),
    }
}

/// The vars a node of the root project sees: global `vars:`, those under
/// the project's name, then `overrides` (`--vars`).
pub fn project_vars(
    project: &DbtProject,
    overrides: &IndexMap<String, Value>,
) -> IndexMap<String, Value> {
    scoped_vars(
        project,
        None,
        std::slice::from_ref(&project.name),
        overrides,
    )
}

/// The vars a node sees, lowest precedence first: its package's own
/// `vars:` (global ones and those under its name; `package` is `None` for
/// the root project's nodes), the root project's global `vars:`, the root's
/// `vars:` under the node's project name, then `overrides`. Keys naming a
/// project (`projects`) are scopes, never vars.
pub fn scoped_vars(
    root: &DbtProject,
    package: Option<&DbtProject>,
    projects: &[String],
    overrides: &IndexMap<String, Value>,
) -> IndexMap<String, Value> {
    let own = package.map_or(root.name.as_str(), |p| p.name.as_str());
    let mut out = IndexMap::new();
    let mut layer = |vars: &IndexMap<String, Value>| {
        for (k, v) in vars {
            if k != own && !projects.contains(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        if let Some(Value::Object(scoped)) = vars.get(own) {
            for (k, v) in scoped {
                out.insert(k.clone(), v.clone());
            }
        }
    };
    if let Some(p) = package {
        layer(&p.vars);
    }
    layer(&root.vars);
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The root project or one installed package, as compiled.
struct Unit<'a> {
    project: &'a DbtProject,
    /// Where it is, relative to the root project (empty for the root).
    rel: PathBuf,
}

/// The root project, then its installed packages in name order.
fn units<'a>(root: &'a DbtProject, packages: &'a [DbtProject]) -> Vec<Unit<'a>> {
    std::iter::once(Unit {
        project: root,
        rel: PathBuf::new(),
    })
    .chain(packages.iter().map(|p| {
        Unit {
            project: p,
            rel: p
                .dir
                .strip_prefix(&root.dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.dir.clone()),
        }
    }))
    .collect()
}

impl Unit<'_> {
    fn name(&self) -> &str {
        &self.project.name
    }

    fn is_root(&self) -> bool {
        self.rel.as_os_str().is_empty()
    }

    /// A file's path relative to the root project.
    fn path(&self, f: &ProjectFile) -> PathBuf {
        self.rel.join(&f.path)
    }

    /// A node's config from the `dbt_project.yml` trees: the package's own,
    /// then the root project's (`models: <package>: …`) over it.
    fn config(&self, root: &DbtProject, kind: NodeKind, fqn: &[String]) -> IndexMap<String, Value> {
        fn tree(p: &DbtProject, kind: NodeKind) -> &Value {
            match kind {
                NodeKind::Model => &p.configs.models,
                NodeKind::Seed => &p.configs.seeds,
                NodeKind::Snapshot => &p.configs.snapshots,
                NodeKind::Test | NodeKind::UnitTest => &p.configs.tests,
            }
        }
        let mut config = resolve(tree(self.project, kind), fqn);
        if !self.is_root() {
            for (k, v) in resolve(tree(root, kind), fqn) {
                merge_config(&mut config, &k, v);
            }
        }
        config
    }
}

/// Refuse a second node called `name` (nodes are found by name; the root
/// project and its packages share one namespace in Sluice).
fn check_new_name(nodes: &IndexMap<String, Node>, name: &str, path: &Path) -> Result<()> {
    match nodes.get(name) {
        None => Ok(()),
        Some(other) => Err(TransformError::Project {
            message: format!(
                "two resources are named `{name}`: `{}` ({}) and `{}`",
                other.path.display(),
                other.package_name,
                path.display()
            ),
            hint: Some(
                "Sluice needs model, seed and test names to be unique across the project and its packages; rename one"
                    .into(),
            ),
        }),
    }
}

fn read(dir: &Path, f: &ProjectFile) -> Result<String> {
    let path = dir.join(&f.path);
    std::fs::read_to_string(&path).map_err(|source| TransformError::Io { path, source })
}

/// sha256 of a text, hex.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which of dbt's naming macros the project overrides.
#[derive(Debug, Clone, Copy, Default)]
struct Naming {
    schema: bool,
    alias: bool,
    database: bool,
}

impl Naming {
    fn of(renderer: &Renderer) -> Naming {
        Naming {
            schema: renderer.project_defines("generate_schema_name"),
            alias: renderer.project_defines("generate_alias_name"),
            database: renderer.project_defines("generate_database_name"),
        }
    }
}

/// What `model` (and a naming macro's `node`) is: the node as dbt's
/// manifest describes it.
fn node_json(
    project: &str,
    kind: NodeKind,
    name: &str,
    path: &Path,
    fqn: &[String],
    config: &IndexMap<String, Value>,
) -> Value {
    let tags = match config.get("tags") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    serde_json::json!({
        "name": name,
        "alias": name,
        "unique_id": format!("{}.{project}.{name}", kind.resource_type()),
        "resource_type": kind.resource_type(),
        "package_name": project,
        "path": path.display().to_string(),
        "original_file_path": path.display().to_string(),
        "fqn": fqn,
        "config": config,
        "tags": tags,
        "version": null,
    })
}

/// A naming macro's answer, trimmed (as dbt trims it).
fn call_naming(
    renderer: &Renderer,
    path: &Path,
    name: &str,
    custom: Option<&str>,
    node: &Value,
) -> Result<String> {
    let custom = custom.map_or(minijinja::Value::from(()), minijinja::Value::from);
    let v = renderer.call_macro(path, name, &[custom, crate::jinja::serde_value(node)])?;
    Ok(v.to_string().trim().to_string())
}

/// Where node `name` lands by dbt's default naming rules.
fn default_relation(name: &str, config: &IndexMap<String, Value>, target: &Target) -> Relation {
    let custom = |key: &str| config.get(key).and_then(Value::as_str);
    Relation {
        database: custom("database")
            .map(str::to_string)
            .or_else(|| target.database.clone()),
        schema: generate_schema_name(custom("schema"), target),
        identifier: custom("alias").unwrap_or(name).to_string(),
    }
}

/// Where node `name` lands: dbt's naming rules, or the project's
/// `generate_schema_name`/`generate_alias_name`/`generate_database_name`.
#[allow(clippy::too_many_arguments)]
fn relation_of(
    project: &str,
    kind: NodeKind,
    name: &str,
    path: &Path,
    fqn: &[String],
    config: &IndexMap<String, Value>,
    target: &Target,
    renderer: &Renderer,
    naming: Naming,
) -> Result<Relation> {
    let custom = |key: &str| config.get(key).and_then(Value::as_str);
    if !(naming.schema || naming.alias || naming.database) {
        return Ok(default_relation(name, config, target));
    }
    let node = node_json(project, kind, name, path, fqn, config);
    let schema = if naming.schema {
        call_naming(
            renderer,
            path,
            "generate_schema_name",
            custom("schema"),
            &node,
        )?
    } else {
        generate_schema_name(custom("schema"), target)
    };
    let identifier = if naming.alias {
        call_naming(
            renderer,
            path,
            "generate_alias_name",
            custom("alias"),
            &node,
        )?
    } else {
        custom("alias").unwrap_or(name).to_string()
    };
    let database = if naming.database {
        Some(call_naming(
            renderer,
            path,
            "generate_database_name",
            custom("database"),
            &node,
        )?)
        .filter(|d| !d.is_empty() && d != "none" && d != "None")
    } else {
        custom("database")
            .map(str::to_string)
            .or_else(|| target.database.clone())
    };
    Ok(Relation {
        database,
        schema,
        identifier,
    })
}

/// The `dispatch:` entries of `dbt_project.yml`.
fn dispatch_config(project: &DbtProject) -> Result<Vec<DispatchConfig>> {
    let Some(entries) = project.other.get("dispatch") else {
        return Ok(Vec::new());
    };
    let bad = || {
        TransformError::Project {
        message: format!(
            "{}: `dispatch:` must be a list of {{macro_namespace: …, search_order: […]}}",
            project.dir.join(crate::project::PROJECT_FILE).display()
        ),
        hint: Some("e.g. `dispatch: [{macro_namespace: dbt_utils, search_order: [my_project, dbt_utils]}]`".into()),
    }
    };
    let Value::Array(entries) = entries else {
        return Err(bad());
    };
    entries
        .iter()
        .map(|e| {
            let namespace = e
                .get("macro_namespace")
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            let order = e
                .get("search_order")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|p| p.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<Vec<_>>>()?;
            Ok(DispatchConfig {
                macro_namespace: namespace.to_string(),
                search_order: order,
            })
        })
        .collect()
}

/// What `ref` gives for an ephemeral model: the CTE's name.
fn cte_name(name: &str) -> String {
    format!("__dbt__cte__{name}")
}

/// Put `ctes` (`(name, sql)`) in front of `sql`: into its own `with` when it
/// starts with one, else as a new `with`.
pub fn inject_ctes(sql: &str, ctes: &[(String, String)]) -> String {
    if ctes.is_empty() {
        return sql.to_string();
    }
    let defs: Vec<String> = ctes
        .iter()
        .map(|(n, q)| format!("{n} as (\n{}\n)", q.trim()))
        .collect();
    let defs = defs.join(",\n");
    let start = skip_space_and_comments(sql);
    let rest = &sql[start..];
    let word_end = |s: &str| {
        s.find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(s.len())
    };
    let first = &rest[..word_end(rest)];
    if first.eq_ignore_ascii_case("with") {
        let mut at = start + first.len();
        let after = skip_space_and_comments(&sql[at..]);
        let next = &sql[at + after..];
        let second = &next[..word_end(next)];
        if second.eq_ignore_ascii_case("recursive") {
            at += after + second.len();
        }
        format!("{} {defs},{}", &sql[..at], &sql[at..])
    } else {
        format!("{}with {defs}\n{rest}", &sql[..start])
    }
}

fn skip_space_and_comments(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match sql[i + 2..].find("*/") {
                Some(e) => i += 2 + e + 2,
                None => return b.len(),
            }
        } else {
            return i;
        }
    }
}

/// Compile the project for `target`.
pub fn compile(
    project: &DbtProject,
    target: &Target,
    var_overrides: &IndexMap<String, Value>,
) -> Result<Manifest> {
    compile_with(project, target, var_overrides, Settings::default())
}

/// [`compile`] with the invocation's id, start time and flags from
/// `settings` (its project name, dispatch config and docs are the
/// project's).
pub fn compile_with(
    project: &DbtProject,
    target: &Target,
    var_overrides: &IndexMap<String, Value>,
    mut settings: Settings,
) -> Result<Manifest> {
    let pname = &project.name;
    let packages = project.load_packages()?;
    let units = units(project, &packages);
    let package_names: Vec<String> = units.iter().map(|u| u.name().to_string()).collect();
    let mut macros: Vec<(PathBuf, String)> = Vec::new();
    let mut docs = Docs::new();
    for unit in &units {
        let files: Vec<(PathBuf, String)> = unit
            .project
            .files_of(FileKind::Macro)
            .map(|f| read(&unit.project.dir, f).map(|t| (unit.path(f), t)))
            .collect::<Result<_>>()?;
        if unit.is_root() {
            macros = files;
        } else {
            settings
                .package_macros
                .push((unit.name().to_string(), files));
            settings.package_vars.insert(
                unit.name().to_string(),
                scoped_vars(project, Some(unit.project), &package_names, var_overrides),
            );
        }
        for f in unit.project.files_of(FileKind::Docs) {
            crate::jinja::parse_docs(&unit.path(f), &read(&unit.project.dir, f)?, &mut docs)?;
        }
    }
    settings.project_name = pname.clone();
    settings.dispatch = dispatch_config(project)?;
    settings.docs = docs;
    let vars = scoped_vars(project, None, &package_names, var_overrides);
    let macros_configure = macros
        .iter()
        .chain(settings.package_macros.iter().flat_map(|(_, f)| f))
        .any(|(_, t)| t.contains("config"));
    let mut renderer =
        Renderer::with_settings(&macros, Relations::default(), vars, target, &settings)?;
    let naming = Naming::of(&renderer);
    // Properties files: node properties and sources.
    let mut props = BTreeMap::new();
    // The package of each properties file (by its path from the root).
    let mut props_unit: HashMap<PathBuf, usize> = HashMap::new();
    let mut node_props: HashMap<String, NodeProperties> = HashMap::new();
    let mut relations = Relations::default();
    let mut sources: IndexMap<(String, String), SourceNode> = IndexMap::new();
    for (ui, unit) in units.iter().enumerate() {
        let upname = unit.name();
        for f in unit.project.files_of(FileKind::Properties) {
            let path = unit.path(f);
            let mut file = properties::load(&unit.project.dir.join(&f.path))?;
            render_descriptions(&renderer, &path, &mut file)?;
            for n in file.models.iter().chain(&file.seeds) {
                node_props.insert(n.name.clone(), n.clone());
            }
            for s in &file.sources {
                for t in &s.tables {
                    let relation = Relation {
                        database: s.database.clone(),
                        schema: s.schema.clone(),
                        identifier: t.identifier.clone(),
                    };
                    let key = (s.name.clone(), t.name.clone());
                    if let Some(other) = sources.get(&key) {
                        return Err(TransformError::Project {
                            message: format!(
                                "{}: source `{}.{}` is declared again (first in `{}`)",
                                path.display(),
                                s.name,
                                t.name,
                                other.path.display()
                            ),
                            hint: Some(
                                "Sluice needs source names to be unique across the project and its packages; rename one (or disable the package's with `sources: {<package>: {<source>: {+enabled: false}}}` once supported)"
                                    .into(),
                            ),
                        });
                    }
                    relations.sources.insert(key.clone(), relation.clone());
                    sources.insert(
                        key,
                        SourceNode {
                            unique_id: format!("source.{upname}.{}.{}", s.name, t.name),
                            source_name: s.name.clone(),
                            name: t.name.clone(),
                            relation,
                            path: path.clone(),
                            description: t.description.clone(),
                            package_name: upname.to_string(),
                            loaded_by: None,
                        },
                    );
                }
            }
            props_unit.insert(path.clone(), ui);
            props.insert(path, file);
        }
    }
    // Configs from the project trees and properties files.
    let mut nodes: IndexMap<String, Node> = IndexMap::new();
    for unit in &units {
        let upname = unit.name();
        for (kind, files) in [
            (NodeKind::Seed, FileKind::Seed),
            (NodeKind::Model, FileKind::Model),
            (NodeKind::Test, FileKind::Test),
        ] {
            for f in unit.project.files_of(files) {
                let path = unit.path(f);
                let mut config = unit.config(project, kind, &f.fqn);
                let properties = node_props.get(&f.name).cloned();
                if let Some(p) = &properties {
                    for (k, v) in &p.config {
                        merge_config(&mut config, k, v.clone());
                    }
                }
                let raw = if kind == NodeKind::Seed {
                    String::new()
                } else {
                    read(&unit.project.dir, f)?
                };
                let checksum = if kind == NodeKind::Seed {
                    std::fs::read(unit.project.dir.join(&f.path))
                        .map(|b| {
                            Sha256::digest(&b)
                                .iter()
                                .map(|x| format!("{x:02x}"))
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    sha256(&raw)
                };
                let relation = match kind {
                    NodeKind::Test => audit_relation(&f.name, target),
                    // A model's own `config()` may still move it (pass 1).
                    NodeKind::Model => relation_of(
                        upname,
                        kind,
                        &f.name,
                        &path,
                        &f.fqn,
                        &config,
                        target,
                        &renderer,
                        Naming::default(),
                    )?,
                    NodeKind::Seed | NodeKind::Snapshot | NodeKind::UnitTest => relation_of(
                        upname, kind, &f.name, &path, &f.fqn, &config, target, &renderer, naming,
                    )?,
                };
                check_new_name(&nodes, &f.name, &path)?;
                nodes.insert(
                    f.name.clone(),
                    Node {
                        name: f.name.clone(),
                        unique_id: format!("{}.{upname}.{}", kind.resource_type(), f.name),
                        kind,
                        path,
                        fqn: f.fqn.clone(),
                        relation,
                        config,
                        sql: None,
                        raw,
                        checksum,
                        depends_on: Vec::new(),
                        sources: Vec::new(),
                        properties,
                        test: (kind == NodeKind::Test).then(|| TestInfo {
                            generic: None,
                            kwargs: IndexMap::new(),
                            column_name: None,
                            attached: None,
                        }),
                        unit: None,
                        package_name: upname.to_string(),
                        package_dir: unit.rel.clone(),
                        database_calls: false,
                    },
                );
            }
        }
    }
    for unit in &units {
        let upname = unit.name();
        for f in unit.project.files_of(FileKind::Snapshot) {
            let path = unit.path(f);
            let text = read(&unit.project.dir, f)?;
            for (name, body) in snapshot_blocks(&text, &path)? {
                let mut fqn = f.fqn.clone();
                fqn.pop();
                fqn.push(name.clone());
                let mut config = unit.config(project, NodeKind::Snapshot, &fqn);
                if let Some(p) = node_props.get(&name) {
                    for (k, v) in &p.config {
                        merge_config(&mut config, k, v.clone());
                    }
                }
                if nodes.contains_key(&name) {
                    return Err(TransformError::Project {
                        message: format!(
                            "{}: snapshot `{name}` has the name of another node",
                            path.display()
                        ),
                        hint: Some("rename the snapshot".into()),
                    });
                }
                nodes.insert(
                    name.clone(),
                    Node {
                        unique_id: format!("snapshot.{upname}.{name}"),
                        name: name.clone(),
                        kind: NodeKind::Snapshot,
                        relation: snapshot_relation(
                            relation_of(
                                upname,
                                NodeKind::Snapshot,
                                &name,
                                &path,
                                &fqn,
                                &config,
                                target,
                                &renderer,
                                naming,
                            )?,
                            &config,
                        ),
                        path: path.clone(),
                        fqn,
                        config,
                        sql: None,
                        checksum: sha256(&body),
                        raw: body,
                        depends_on: Vec::new(),
                        sources: Vec::new(),
                        properties: node_props.get(&name).cloned(),
                        test: None,
                        unit: None,
                        package_name: upname.to_string(),
                        package_dir: unit.rel.clone(),
                        database_calls: false,
                    },
                );
            }
        }
    }
    // Pass 1: what each model's own `config(...)` says (schema, alias,
    // enabled); `execute` is false, as in dbt's parse.
    relations.nodes = nodes
        .iter()
        .map(|(k, n)| (k.clone(), n.relation.clone()))
        .collect();
    renderer.set_relations(relations.clone());
    renderer.set_execute(false);
    // A node that never says `config` (nor does any project macro) has
    // nothing for pass 1 to find: it is rendered once, in pass 2.
    for node in nodes.values_mut().filter(|n| n.kind != NodeKind::Seed) {
        if macros_configure || node.raw.contains("config") {
            let model = node.model_json();
            let compiled =
                renderer.render_node(&node.path, &node.raw, &node.relation, false, Some(&model))?;
            for (k, v) in compiled.config {
                merge_config(&mut node.config, &k, v);
            }
        }
        if matches!(node.kind, NodeKind::Model | NodeKind::Snapshot) {
            let base = relation_of(
                &node.package_name,
                node.kind,
                &node.name,
                &node.path,
                &node.fqn,
                &node.config,
                target,
                &renderer,
                naming,
            )?;
            node.relation = match node.kind {
                NodeKind::Snapshot => snapshot_relation(base, &node.config),
                _ => base,
            };
        }
    }
    nodes.retain(|_, n| n.enabled());
    // Generic tests from the properties files.
    for (path, file) in &props {
        let mut uses = Vec::new();
        for n in file.models.iter().chain(&file.seeds) {
            if !nodes.contains_key(&n.name) {
                continue;
            }
            for t in &n.tests {
                uses.push((t, Tested::Node(n.name.clone()), None));
            }
            for c in &n.columns {
                for t in &c.tests {
                    uses.push((t, Tested::Node(n.name.clone()), Some(c.name.as_str())));
                }
            }
        }
        for s in &file.sources {
            for tb in &s.tables {
                let tested = Tested::Source(s.name.clone(), tb.name.clone());
                for t in &tb.tests {
                    uses.push((t, tested.clone(), None));
                }
                for c in &tb.columns {
                    for t in &c.tests {
                        uses.push((t, tested.clone(), Some(c.name.as_str())));
                    }
                }
            }
        }
        let unit = &units[props_unit.get(path).copied().unwrap_or(0)];
        let upname = unit.name();
        for (spec, tested, column) in uses {
            let g = testing::generic(spec, tested, column, path)?;
            let mut fqn = vec![upname.to_string()];
            if let Some(parent) = path.strip_prefix(&unit.rel).unwrap_or(path).parent() {
                fqn.extend(
                    parent
                        .components()
                        .skip(1)
                        .map(|c| c.as_os_str().to_string_lossy().to_string()),
                );
            }
            fqn.push(g.name.clone());
            let mut config = unit.config(project, NodeKind::Test, &fqn);
            for (k, v) in &g.config {
                merge_config(&mut config, k, v.clone());
            }
            if !config
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                continue;
            }
            if nodes.contains_key(&g.name) {
                return Err(TransformError::Project {
                    message: format!(
                        "{}: two tests (or a test and a model) are named `{}`",
                        path.display(),
                        g.name
                    ),
                    hint: Some("give one of the tests a `name:`".into()),
                });
            }
            let hash = testing::short_hash(&format!("{}|{}", g.name, g.template));
            nodes.insert(
                g.name.clone(),
                Node {
                    unique_id: format!("test.{upname}.{}.{hash}", g.name),
                    name: g.name.clone(),
                    kind: NodeKind::Test,
                    path: g.path.clone(),
                    fqn,
                    relation: audit_relation(&g.name, target),
                    config,
                    sql: None,
                    checksum: sha256(&g.template),
                    raw: g.template,
                    depends_on: Vec::new(),
                    sources: Vec::new(),
                    properties: None,
                    test: Some(g.info),
                    unit: None,
                    package_name: upname.to_string(),
                    package_dir: unit.rel.clone(),
                    database_calls: false,
                },
            );
        }
    }
    // Pass 2: the final SQL against the final relations; ephemeral models
    // are CTEs.
    relations.nodes = nodes
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Test)
        .map(|(k, n)| {
            let r = if n.materialized() == "ephemeral" {
                Relation {
                    database: None,
                    schema: String::new(),
                    identifier: cte_name(k),
                }
            } else {
                n.relation.clone()
            };
            (k.clone(), r)
        })
        .collect();
    renderer.set_relations(relations);
    renderer.set_execute(true);
    // Nodes render independently: spread them over the cores (a thread
    // per chunk, in node order, so logs, warnings and the first error come
    // out as a single thread would give them).
    let mut work: Vec<&mut Node> = nodes
        .values_mut()
        .filter(|n| n.kind != NodeKind::Seed)
        .collect();
    let threads = if work.len() < 256 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let chunk = work.len().div_ceil(threads).max(1);
    let renderer_ref = &renderer;
    let rendered: Vec<Result<Rendered>> = if threads == 1 {
        vec![render_final(renderer_ref, &mut work)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks_mut(chunk)
                .map(|part| scope.spawn(move || render_final(renderer_ref, part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(TransformError::Project {
                            message: "a render thread panicked".into(),
                            hint: None,
                        })
                    })
                })
                .collect()
        })
    };
    let mut logs = Vec::new();
    let mut warnings = Vec::new();
    for part in rendered {
        let (l, w) = part?;
        logs.extend(l);
        warnings.extend(w);
    }
    // Unit tests: they run after the model's parents, before the model.
    for (path, file) in &props {
        for u in &file.unit_tests {
            if !u
                .config
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                continue;
            }
            let Some(model) = nodes.get(&u.model) else {
                return Err(TransformError::Project {
                    message: format!(
                        "{}: unit test `{}` tests `{}`, which is not an enabled model",
                        path.display(),
                        u.name,
                        u.model
                    ),
                    hint: None,
                });
            };
            let key = format!("{}::{}", u.model, u.name);
            let depends_on = model.depends_on.clone();
            let unit = &units[props_unit.get(path).copied().unwrap_or(0)];
            let upname = unit.name();
            let mut config = IndexMap::new();
            for (k, v) in &u.config {
                merge_config(&mut config, k, v.clone());
            }
            nodes.insert(
                key.clone(),
                Node {
                    unique_id: format!("unit_test.{upname}.{}.{}", u.model, u.name),
                    name: key,
                    kind: NodeKind::UnitTest,
                    path: path.clone(),
                    fqn: vec![upname.to_string(), u.model.clone(), u.name.clone()],
                    relation: model.relation.clone(),
                    config,
                    sql: None,
                    raw: String::new(),
                    checksum: sha256(&format!("{u:?}")),
                    depends_on,
                    sources: Vec::new(),
                    properties: None,
                    test: Some(TestInfo {
                        generic: None,
                        kwargs: IndexMap::new(),
                        column_name: None,
                        attached: Some(u.model.clone()),
                    }),
                    unit: Some(u.clone()),
                    package_name: upname.to_string(),
                    package_dir: unit.rel.clone(),
                    database_calls: false,
                },
            );
        }
    }
    let order = build_order(&nodes)?;
    let mut manifest = Manifest {
        project: pname.clone(),
        nodes,
        order,
        sources,
        properties: props,
        target: target.clone(),
        logs,
        warnings,
        invocation_id: settings.invocation_id,
        renderer: Arc::new(renderer),
    };
    let names = manifest.order.clone();
    for name in &names {
        let Some(sql) = manifest.nodes.get(name).and_then(|n| n.sql.clone()) else {
            continue;
        };
        let with_ctes = manifest.with_ephemerals(name, &sql);
        if let Some(n) = manifest.nodes.get_mut(name) {
            n.sql = Some(with_ctes);
        }
    }
    Ok(manifest)
}

/// What the final renders of some nodes said: `(node, message)` logs and
/// warnings.
type Rendered = (Vec<(String, String)>, Vec<(String, String)>);

/// Pass 2 for `nodes`: the final SQL, refs and sources of each.
fn render_final(renderer: &Renderer, nodes: &mut [&mut Node]) -> Result<Rendered> {
    let mut logs = Vec::new();
    let mut warnings = Vec::new();
    for node in nodes.iter_mut() {
        let model = node.model_json();
        let generic_error = |e: TransformError| match (&node.test, e) {
            (Some(t), TransformError::Template { path, message, .. }) if t.generic.is_some() => {
                TransformError::Template {
                    path,
                    line: None,
                    message: format!("test `{}`: {message}", node.name),
                }
            }
            (_, e) => e,
        };
        let mut compiled = renderer
            .render_node(&node.path, &node.raw, &node.relation, false, Some(&model))
            .map_err(generic_error)?;
        if compiled.needs_database {
            // Database calls run when the node runs; what it refs, its
            // configs and its SQL for now come from rendering as dbt's
            // parse does (`execute` false: run_query is none).
            compiled = renderer
                .render_with(
                    &node.path,
                    &node.raw,
                    &node.relation,
                    false,
                    Some(&model),
                    Render::default(),
                )
                .map_err(generic_error)?;
            node.database_calls = true;
        }
        node.sql = Some(compiled.sql);
        node.depends_on = compiled.refs;
        node.sources = compiled.sources;
        logs.extend(compiled.logs.into_iter().map(|m| (node.name.clone(), m)));
        warnings.extend(
            compiled
                .warnings
                .into_iter()
                .map(|m| (node.name.clone(), m)),
        );
    }
    Ok((logs, warnings))
}

/// A snapshot's relation: `target_schema` / `target_database` as written
/// (dbt's legacy configs) over `base` (`schema` through
/// `generate_schema_name`, the project's when it has one).
fn snapshot_relation(mut r: Relation, config: &IndexMap<String, Value>) -> Relation {
    if let Some(s) = config.get("target_schema").and_then(Value::as_str) {
        r.schema = s.to_string();
    }
    if let Some(d) = config.get("target_database").and_then(Value::as_str) {
        r.database = Some(d.to_string());
    }
    r
}

/// The `{% snapshot name %}…{% endsnapshot %}` blocks of a file: each
/// name and body, the body preceded by as many newlines as lines came
/// before it, so errors keep the file's line numbers.
pub fn snapshot_blocks(text: &str, path: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut at = 0;
    let tag = |from: usize| -> Option<(usize, usize, String)> {
        let mut i = from;
        while let Some(open) = text[i..].find("{%") {
            let start = i + open;
            let close = text[start..].find("%}")? + start + 2;
            let inner =
                text[start + 2..close - 2].trim_matches(|c: char| c == '-' || c.is_whitespace());
            if inner.starts_with("snapshot ") || inner == "endsnapshot" {
                return Some((start, close, inner.to_string()));
            }
            i = close;
        }
        None
    };
    while let Some((start, close, inner)) = tag(at) {
        let line = text[..start].matches('\n').count() + 1;
        let Some(name) = inner.strip_prefix("snapshot ").map(str::trim) else {
            return Err(TransformError::Template {
                path: path.to_path_buf(),
                line: Some(line),
                message: "`endsnapshot` without a `snapshot` block".into(),
            });
        };
        let Some((end_start, end_close, end)) = tag(close) else {
            return Err(TransformError::Template {
                path: path.to_path_buf(),
                line: Some(line),
                message: format!("snapshot `{name}` has no `{{% endsnapshot %}}`"),
            });
        };
        if end != "endsnapshot" {
            return Err(TransformError::Template {
                path: path.to_path_buf(),
                line: Some(line),
                message: format!("snapshot `{name}` is not closed before the next one"),
            });
        }
        let before = text[..close].matches('\n').count();
        out.push((
            name.to_string(),
            format!("{}{}", "\n".repeat(before), &text[close..end_start]),
        ));
        at = end_close;
    }
    Ok(out)
}

/// Render the descriptions of a properties file (`{{ doc('x') }}`).
fn render_descriptions(renderer: &Renderer, path: &Path, file: &mut PropertiesFile) -> Result<()> {
    let columns = |cols: &mut Vec<properties::Column>| -> Result<()> {
        for c in cols {
            c.description = renderer.render_description(path, &c.description)?;
        }
        Ok(())
    };
    for n in file
        .models
        .iter_mut()
        .chain(file.seeds.iter_mut())
        .chain(file.snapshots.iter_mut())
    {
        n.description = renderer.render_description(path, &n.description)?;
        columns(&mut n.columns)?;
    }
    for s in &mut file.sources {
        s.description = renderer.render_description(path, &s.description)?;
        for t in &mut s.tables {
            t.description = renderer.render_description(path, &t.description)?;
            columns(&mut t.columns)?;
        }
    }
    Ok(())
}

fn audit_relation(name: &str, target: &Target) -> Relation {
    Relation {
        database: target.database.clone(),
        schema: format!("{}_dbt_test__audit", target.schema),
        identifier: name.to_string(),
    }
}

impl Manifest {
    /// `sql` of node `name` with the ephemeral models it refs as CTEs (their
    /// own SQL already carries theirs).
    fn with_ephemerals(&self, name: &str, sql: &str) -> String {
        let Some(node) = self.nodes.get(name) else {
            return sql.to_string();
        };
        let ctes: Vec<(String, String)> = node
            .depends_on
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| d.materialized() == "ephemeral")
            .map(|d| (cte_name(&d.name), d.sql.clone().unwrap_or_default()))
            .collect();
        inject_ctes(sql, &ctes)
    }

    /// The SQL to run for model `name`, rendered again with
    /// `is_incremental()` true (an incremental model over an existing table).
    pub fn incremental_sql(&self, name: &str) -> Result<String> {
        let node = found(self.nodes.get(name), name)?;
        let model = node.model_json();
        let compiled =
            self.renderer
                .render_node(&node.path, &node.raw, &node.relation, true, Some(&model))?;
        Ok(self.with_ephemerals(name, &compiled.sql))
    }

    /// Every macro as `(package, name, file)`: the root project's, the
    /// installed packages' (files relative to the root project) and dbt's.
    pub fn macros(&self) -> Vec<(String, String, PathBuf)> {
        self.renderer.macros()
    }

    /// Whether node `name` must be rendered with the database reachable:
    /// it runs database calls, or an ephemeral model it refs does.
    pub fn needs_database(&self, name: &str) -> bool {
        let mut stack = vec![name];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            let Some(node) = self.nodes.get(n) else {
                continue;
            };
            if node.database_calls {
                return true;
            }
            for d in &node.depends_on {
                if self
                    .nodes
                    .get(d)
                    .is_some_and(|dn| dn.materialized() == "ephemeral")
                    && seen.insert(d.as_str())
                {
                    stack.push(d);
                }
            }
        }
        false
    }

    /// What rendering node `name` with the database needs, owned (so it can
    /// render on another thread): the renderer, the node and the ephemeral
    /// models it reaches.
    pub(crate) fn live(&self, name: &str) -> LiveNodes {
        let mut nodes = HashMap::new();
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            let Some(node) = self.nodes.get(&n) else {
                continue;
            };
            if nodes.contains_key(&n) {
                continue;
            }
            for d in &node.depends_on {
                if self
                    .nodes
                    .get(d)
                    .is_some_and(|dn| dn.materialized() == "ephemeral")
                {
                    stack.push(d.clone());
                }
            }
            nodes.insert(n, node.clone());
        }
        LiveNodes {
            renderer: self.renderer.clone(),
            nodes,
        }
    }

    /// Nodes that ref `name`, directly.
    pub fn children(&self) -> HashMap<&str, Vec<&str>> {
        let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, n) in &self.nodes {
            for d in &n.depends_on {
                out.entry(d.as_str()).or_default().push(name.as_str());
            }
        }
        out
    }

    /// Every node `name` depends on, transitively.
    pub fn ancestors(&self, name: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            if let Some(node) = self.nodes.get(&n) {
                for d in &node.depends_on {
                    if seen.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
        seen
    }
}

/// A node and the ephemeral models it reaches, with the renderer: what
/// rendering it with the database needs ([`Manifest::live`]).
pub(crate) struct LiveNodes {
    renderer: Arc<Renderer>,
    nodes: HashMap<String, Node>,
}

impl LiveNodes {
    fn needs_database(&self, name: &str) -> bool {
        let Some(node) = self.nodes.get(name) else {
            return false;
        };
        node.database_calls
            || node
                .depends_on
                .iter()
                .any(|d| d != name && self.nodes.contains_key(d) && self.needs_database(d))
    }

    /// The SQL of node `name` rendered with `database` (`is_incremental()`
    /// as `incremental` says), with the ephemeral models it refs as CTEs
    /// (rendered with the database too when they run database calls), and
    /// what the renders logged.
    pub fn sql(
        &self,
        name: &str,
        incremental: bool,
        database: &Arc<dyn Database>,
    ) -> Result<(String, Vec<String>)> {
        let node = found(self.nodes.get(name), name)?;
        let model = node.model_json();
        let compiled = self.renderer.render_with(
            &node.path,
            &node.raw,
            &node.relation,
            incremental,
            Some(&model),
            Render {
                execute: true,
                database: Some(database.clone()),
            },
        )?;
        let mut ctes = Vec::new();
        let mut logs = compiled.logs;
        for d in &compiled.refs {
            let Some(dep) = self.nodes.get(d).filter(|_| d != name) else {
                continue;
            };
            let sql = if self.needs_database(d) {
                let (sql, more) = self.sql(d, false, database)?;
                logs.extend(more);
                sql
            } else {
                dep.sql.clone().unwrap_or_default()
            };
            ctes.push((cte_name(d), sql));
        }
        Ok((inject_ctes(&compiled.sql, &ctes), logs))
    }
}

/// Every node after what it depends on; ties in name order. A cycle is an
/// error that shows it.
fn build_order(nodes: &IndexMap<String, Node>) -> Result<Vec<String>> {
    let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, n) in nodes {
        pending.insert(name, n.depends_on.len());
        for d in &n.depends_on {
            dependents.entry(d.as_str()).or_default().push(name);
        }
    }
    let mut ready: std::collections::BTreeSet<&str> = pending
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(next) = ready.pop_first() {
        order.push(next.to_string());
        pending.remove(next);
        for d in dependents.get(next).into_iter().flatten() {
            if let Some(c) = pending.get_mut(d) {
                *c -= 1;
                if *c == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    if let Some(start) = pending.keys().next() {
        return Err(TransformError::Project {
            message: format!("the models form a cycle: {}", find_cycle(nodes, start)),
            hint: Some("a model cannot depend on itself through ref; break the cycle".into()),
        });
    }
    Ok(order)
}

fn find_cycle(nodes: &IndexMap<String, Node>, start: &str) -> String {
    let mut path = vec![start.to_string()];
    let mut at = start.to_string();
    loop {
        let Some(next) = nodes.get(&at).and_then(|n| {
            n.depends_on
                .iter()
                .find(|d| nodes.get(*d).is_some_and(|x| !x.depends_on.is_empty()))
        }) else {
            return path.join(" → ");
        };
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut cycle = path[i..].to_vec();
            cycle.push(next.clone());
            return cycle.join(" → ");
        }
        path.push(next.clone());
        at = next.clone();
    }
}

/// The node looked up as `name`, or an error naming it.
fn found<'a>(node: Option<&'a Node>, name: &str) -> Result<&'a Node> {
    node.ok_or_else(|| TransformError::Project {
        message: format!("no node `{name}`"),
        hint: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn target() -> Target {
        Target {
            name: "dev".into(),
            kind: "sluice".into(),
            schema: "main".into(),
            database: None,
            threads: 4,
        }
    }

    #[test]
    fn configs_layer_relations_follow_schema_and_alias_and_order_follows_refs() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(
            dir,
            "dbt_project.yml",
            "name: shop\nvars:\n  cutoff: 10\n  shop: {cutoff: 20}\nmodels:\n  shop:\n    +materialized: view\n    marts: {+materialized: table, +schema: marts}\nseeds:\n  shop: {+schema: raw}\n",
        );
        write(dir, "seeds/raw_orders.csv", "id,amount\n1,5\n");
        write(
            dir,
            "models/staging/stg_orders.sql",
            "select * from {{ ref('raw_orders') }} where amount < {{ var('cutoff') }}",
        );
        write(
            dir,
            "models/marts/orders.sql",
            "{{ config(alias='fct_orders') }}select * from {{ ref('stg_orders') }} join {{ source('app', 'users') }} using (id)",
        );
        write(
            dir,
            "models/marts/disabled.sql",
            "{{ config(enabled=false) }}select * from {{ ref('orders') }}",
        );
        write(
            dir,
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: stg_orders\n    config: {materialized: ephemeral, tags: [staging]}\nsources:\n  - name: app\n    schema: app_raw\n    tables: [{name: users}]\n",
        );
        let project = DbtProject::load(dir).unwrap();
        let mut overrides = IndexMap::new();
        overrides.insert("unused".to_string(), json!(1));
        let m = compile(&project, &target(), &overrides).unwrap();
        assert!(!m.nodes.contains_key("disabled"));
        let stg = &m.nodes["stg_orders"];
        assert_eq!(
            stg.materialized(),
            "ephemeral",
            "properties file over dbt_project.yml"
        );
        assert_eq!(stg.config["tags"], json!(["staging"]));
        assert_eq!(
            stg.sql.as_deref(),
            Some("select * from \"main_raw\".\"raw_orders\" where amount < 20")
        );
        let orders = &m.nodes["orders"];
        assert_eq!(orders.materialized(), "table");
        assert_eq!(orders.relation.to_string(), "\"main_marts\".\"fct_orders\"");
        assert_eq!(orders.depends_on, vec!["stg_orders"]);
        assert_eq!(
            orders.sources,
            vec![("app".to_string(), "users".to_string())]
        );
        assert!(
            orders
                .sql
                .as_deref()
                .unwrap()
                .contains("\"app_raw\".\"users\"")
        );
        let pos = |n: &str| m.order.iter().position(|x| x == n).unwrap();
        assert!(pos("raw_orders") < pos("stg_orders") && pos("stg_orders") < pos("orders"));
    }

    #[test]
    fn project_naming_macros_docs_and_logs() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(
            dir,
            "dbt_project.yml",
            "name: shop\ndispatch:\n  - macro_namespace: dbt\n    search_order: [shop, dbt]\nmodels:\n  shop:\n    marts: {+schema: marts}\nseeds:\n  shop: {+schema: raw}\n",
        );
        write(
            dir,
            "macros/naming.sql",
            "{% macro generate_schema_name(custom_schema_name, node) -%}\n    {%- if custom_schema_name is none -%}{{ target.schema }}\n    {%- else -%}{{ custom_schema_name | trim }}{%- endif -%}\n{%- endmacro %}\n\n{% macro generate_alias_name(custom_alias_name=none, node=none) -%}\n    {%- if custom_alias_name is none -%}{{ node.name }}\n    {%- else -%}{{ node.resource_type }}_{{ custom_alias_name }}{%- endif -%}\n{%- endmacro %}",
        );
        write(dir, "seeds/raw_orders.csv", "id\n1\n");
        write(
            dir,
            "models/marts/orders.sql",
            "{{ config(alias='fct') }}{{ log('compiling ' ~ this) }}select * from {{ ref('raw_orders') }} -- {{ execute }} {{ model.fqn | join('.') }}",
        );
        write(dir, "models/stg.sql", "select 1");
        write(
            dir,
            "models/docs.md",
            "{% docs orders %}\nOne row per order.\n{% enddocs %}",
        );
        write(
            dir,
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: orders\n    description: \"{{ doc('orders') }}\"\n    columns:\n      - name: id\n        description: \"Id. {{ doc('orders') }}\"\n",
        );
        let project = DbtProject::load(dir).unwrap();
        let m = compile(&project, &target(), &IndexMap::new()).unwrap();
        assert_eq!(
            m.nodes["orders"].relation.to_string(),
            "\"marts\".\"model_fct\""
        );
        assert_eq!(
            m.nodes["raw_orders"].relation.to_string(),
            "\"raw\".\"raw_orders\""
        );
        assert_eq!(m.nodes["stg"].relation.to_string(), "\"main\".\"stg\"");
        assert_eq!(
            m.nodes["orders"].sql.as_deref(),
            Some("select * from \"raw\".\"raw_orders\" -- True shop.marts.orders")
        );
        assert_eq!(
            m.logs,
            vec![(
                "orders".to_string(),
                "compiling \"marts\".\"model_fct\"".to_string()
            )]
        );
        let props = m.nodes["orders"].properties.as_ref().unwrap();
        assert_eq!(props.description, "One row per order.");
        assert_eq!(props.columns[0].description, "Id. One row per order.");

        write(
            dir,
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: orders\n    description: \"{{ doc('order') }}\"\n",
        );
        let project = DbtProject::load(dir).unwrap();
        let e = compile(&project, &target(), &IndexMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "models/schema.yml:1: doc('order') names no docs block (did you mean `orders`?)"
        );
    }

    #[test]
    fn package_nodes_see_their_macros_vars_and_configs_and_dispatch_searches_the_root_first() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(
            dir,
            "dbt_project.yml",
            "name: shop\nvars:\n  x: root-global\n  pkg_b: {y: root-for-b}\nmodels:\n  pkg_b: {+materialized: table}\n",
        );
        write(
            dir,
            "macros/m.sql",
            "{% macro shadow() %}root{% endmacro %}{% macro default__disp() %}root-default{% endmacro %}",
        );
        write(
            dir,
            "models/top.sql",
            "{{ m() }} {{ shadow() }} {{ pkg_b.m() }} {{ pkg_a.only_a() }} {{ only_b() }} {{ pkg_a.disp() }} {{ var('y', 'unset') }} {{ ref('pkg_b', 'b_model') }}",
        );
        let a = "dbt_packages/pkg_a";
        write(dir, &format!("{a}/dbt_project.yml"), "name: pkg_a\n");
        write(
            dir,
            &format!("{a}/macros/a.sql"),
            "{% macro m() %}a{% endmacro %}{% macro only_a() %}{{ helper() }}{% endmacro %}{% macro helper() %}a-helper{% endmacro %}{% macro disp() %}{{ adapter.dispatch('disp', 'pkg_a')() }}{% endmacro %}{% macro postgres__disp() %}a-postgres{% endmacro %}",
        );
        let b = "dbt_packages/pkg_b";
        write(
            dir,
            &format!("{b}/dbt_project.yml"),
            "name: pkg_b\nvars:\n  x: b-own\n  y: b-y\nmodels:\n  pkg_b: {+materialized: view, +tags: [b]}\n",
        );
        write(
            dir,
            &format!("{b}/macros/b.sql"),
            "{% macro m() %}b{% endmacro %}{% macro helper() %}b-helper{% endmacro %}{% macro only_b() %}b-only{% endmacro %}",
        );
        write(
            dir,
            &format!("{b}/models/b_model.sql"),
            "{{ m() }} {{ shadow() }} {{ var('x') }} {{ var('y') }} {{ model.package_name }}",
        );
        let project = DbtProject::load(dir).unwrap();
        let m = compile(&project, &target(), &IndexMap::new()).unwrap();
        // Root node: bare `m` is the first package's in name order; a
        // package macro's bare call finds its sibling before other
        // packages; dispatch searches the root before the namespace.
        assert_eq!(
            m.nodes["top"].sql.as_deref(),
            Some("a root b a-helper b-only root-default unset \"main\".\"b_model\"")
        );
        let bm = &m.nodes["b_model"];
        assert_eq!(
            bm.sql.as_deref(),
            Some("b root root-global root-for-b pkg_b")
        );
        assert_eq!(bm.unique_id, "model.pkg_b.b_model");
        assert_eq!(
            bm.materialized(),
            "table",
            "the root's config over the package's"
        );
        assert_eq!(bm.tags(), vec!["b"]);
        assert_eq!(bm.path, Path::new("dbt_packages/pkg_b/models/b_model.sql"));
        assert_eq!(bm.original_file_path(), Path::new("models/b_model.sql"));
        assert_eq!(m.nodes["top"].depends_on, vec!["b_model"]);

        // One namespace for node names.
        write(dir, "models/b_model.sql", "select 1");
        let project = DbtProject::load(dir).unwrap();
        let e = compile(&project, &target(), &IndexMap::new()).unwrap_err();
        assert!(
            e.to_string().contains("two resources are named `b_model`"),
            "{e}"
        );
    }

    #[test]
    fn a_cycle_is_refused_and_shown() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(dir, "dbt_project.yml", "name: p\n");
        write(dir, "models/a.sql", "select * from {{ ref('b') }}");
        write(dir, "models/b.sql", "select * from {{ ref('c') }}");
        write(dir, "models/c.sql", "select * from {{ ref('a') }}");
        let project = DbtProject::load(dir).unwrap();
        let e = compile(&project, &target(), &IndexMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle"), "{e}");
        assert!(e.contains("a → b → c → a"), "{e}");
    }

    #[test]
    fn schema_names_follow_dbts_default() {
        let t = target();
        assert_eq!(generate_schema_name(None, &t), "main");
        assert_eq!(generate_schema_name(Some("marts"), &t), "main_marts");
        assert_eq!(generate_schema_name(Some(" "), &t), "main");
    }
}
