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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use crate::config::{merge_config, resolve};
use crate::error::{Result, TransformError};
use crate::jinja::{Relation, Relations, Renderer, Target};
use crate::project::{DbtProject, FileKind, ProjectFile};
use crate::properties::{self, NodeProperties, PropertiesFile};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A SQL model.
    Model,
    /// A CSV seed.
    Seed,
}

/// One model or seed, compiled.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name (what `ref` takes).
    pub name: String,
    /// Model or seed.
    pub kind: NodeKind,
    /// Its file, relative to the project.
    pub path: std::path::PathBuf,
    /// Fully qualified name.
    pub fqn: Vec<String>,
    /// The final configuration (`materialized`, `schema`, `tags`, …).
    pub config: IndexMap<String, Value>,
    /// Where it lands.
    pub relation: Relation,
    /// The compiled SQL (models only).
    pub sql: Option<String>,
    /// Names of the nodes it refs.
    pub depends_on: Vec<String>,
    /// `(source, table)` pairs it reads.
    pub sources: Vec<(String, String)>,
    /// Its properties (description, columns, tests), when a file declares them.
    pub properties: Option<NodeProperties>,
}

impl Node {
    /// `materialized` (default `view` for models, `seed` for seeds).
    pub fn materialized(&self) -> &str {
        match self.kind {
            NodeKind::Seed => "seed",
            NodeKind::Model => self
                .config
                .get("materialized")
                .and_then(Value::as_str)
                .unwrap_or("view"),
        }
    }

    /// `enabled` (default true).
    pub fn enabled(&self) -> bool {
        self.config
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
}

/// The compiled project.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Enabled nodes by name.
    pub nodes: IndexMap<String, Node>,
    /// Node names in build order (every node after what it refs).
    pub order: Vec<String>,
    /// Every properties file, by path.
    pub properties: BTreeMap<std::path::PathBuf, PropertiesFile>,
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
    let mut out = IndexMap::new();
    for (k, v) in &project.vars {
        if k != &project.name {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(Value::Object(own)) = project.vars.get(&project.name) {
        for (k, v) in own {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn read(dir: &Path, f: &ProjectFile) -> Result<String> {
    let path = dir.join(&f.path);
    std::fs::read_to_string(&path).map_err(|source| TransformError::Io { path, source })
}

fn relation_of(name: &str, config: &IndexMap<String, Value>, target: &Target) -> Relation {
    Relation {
        database: config
            .get("database")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| target.database.clone()),
        schema: generate_schema_name(config.get("schema").and_then(Value::as_str), target),
        identifier: config
            .get("alias")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_string(),
    }
}

/// Compile the project for `target`.
pub fn compile(
    project: &DbtProject,
    target: &Target,
    var_overrides: &IndexMap<String, Value>,
) -> Result<Manifest> {
    let dir = &project.dir;
    // Properties files: node properties and sources.
    let mut props = BTreeMap::new();
    let mut node_props: HashMap<String, NodeProperties> = HashMap::new();
    let mut relations = Relations::default();
    for f in project.files_of(FileKind::Properties) {
        let file = properties::load(&dir.join(&f.path))?;
        for n in file.models.iter().chain(&file.seeds) {
            node_props.insert(n.name.clone(), n.clone());
        }
        for s in &file.sources {
            for t in &s.tables {
                relations.sources.insert(
                    (s.name.clone(), t.name.clone()),
                    Relation {
                        database: s.database.clone(),
                        schema: s.schema.clone(),
                        identifier: t.identifier.clone(),
                    },
                );
            }
        }
        props.insert(f.path.clone(), file);
    }
    // Configs from the project trees and properties files.
    let mut nodes: IndexMap<String, Node> = IndexMap::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    for (kind, tree, files) in [
        (NodeKind::Seed, &project.configs.seeds, FileKind::Seed),
        (NodeKind::Model, &project.configs.models, FileKind::Model),
    ] {
        for f in project.files_of(files) {
            let mut config = resolve(tree, &f.fqn);
            let properties = node_props.get(&f.name).cloned();
            if let Some(p) = &properties {
                for (k, v) in &p.config {
                    merge_config(&mut config, k, v.clone());
                }
            }
            if kind == NodeKind::Model {
                texts.insert(f.name.clone(), read(dir, f)?);
            }
            nodes.insert(
                f.name.clone(),
                Node {
                    name: f.name.clone(),
                    kind,
                    path: f.path.clone(),
                    fqn: f.fqn.clone(),
                    relation: relation_of(&f.name, &config, target),
                    config,
                    sql: None,
                    depends_on: Vec::new(),
                    sources: Vec::new(),
                    properties,
                },
            );
        }
    }
    let macros: Vec<(std::path::PathBuf, String)> = project
        .files_of(FileKind::Macro)
        .map(|f| read(dir, f).map(|t| (f.path.clone(), t)))
        .collect::<Result<_>>()?;
    let vars = project_vars(project, var_overrides);
    // Pass 1: what each model's own `config(...)` says (schema, alias, enabled).
    relations.nodes = nodes
        .iter()
        .map(|(k, n)| (k.clone(), n.relation.clone()))
        .collect();
    let first = Renderer::new(&macros, relations.clone(), vars.clone(), target)?;
    for node in nodes.values_mut().filter(|n| n.kind == NodeKind::Model) {
        let text = texts.get(&node.name).map(String::as_str).unwrap_or("");
        let compiled = first.render(&node.path, text, &node.relation, false)?;
        for (k, v) in compiled.config {
            merge_config(&mut node.config, &k, v);
        }
        node.relation = relation_of(&node.name, &node.config, target);
    }
    nodes.retain(|_, n| n.enabled());
    // Pass 2: the final SQL against the final relations.
    relations.nodes = nodes
        .iter()
        .map(|(k, n)| (k.clone(), n.relation.clone()))
        .collect();
    let renderer = Renderer::new(&macros, relations, vars, target)?;
    for node in nodes.values_mut().filter(|n| n.kind == NodeKind::Model) {
        let text = texts.get(&node.name).map(String::as_str).unwrap_or("");
        let compiled = renderer.render(&node.path, text, &node.relation, false)?;
        node.sql = Some(compiled.sql);
        node.depends_on = compiled.refs;
        node.sources = compiled.sources;
    }
    let order = build_order(&nodes)?;
    Ok(Manifest {
        nodes,
        order,
        properties: props,
    })
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
