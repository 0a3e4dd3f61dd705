//! `target/manifest.json` and `target/run_results.json` in dbt's schemas
//! (manifest v12, run results v6), so tools that read dbt's artifacts
//! (lineage, docs sites, CI checks, `state:modified`) read Sluice's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::manifest::{Manifest, Node, NodeKind};
use crate::runner::RunResults;

/// The dbt version whose artifact schemas these follow.
pub const DBT_VERSION: &str = "1.11.0";

fn metadata(schema: &str, invocation_id: &str, adapter: &str) -> Value {
    json!({
        "dbt_schema_version": format!("https://schemas.getdbt.com/dbt/{schema}"),
        "dbt_version": DBT_VERSION,
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "invocation_id": invocation_id,
        "env": {},
        "adapter_type": adapter,
        "generator": format!("sluice {}", env!("CARGO_PKG_VERSION")),
    })
}

/// `{}` in JSON.
#[derive(Serialize)]
struct Empty {}

/// A column of a node's properties.
#[derive(Serialize)]
struct ColumnOut<'a> {
    name: &'a str,
    description: &'a str,
    data_type: Option<&'a str>,
    meta: Empty,
    tags: [&'a str; 0],
}

/// The node's properties' columns, by name.
struct Columns<'a>(&'a Node);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let columns = self
            .0
            .properties
            .as_ref()
            .map(|p| p.columns.as_slice())
            .unwrap_or_default();
        let mut map = s.serialize_map(Some(columns.len()))?;
        for c in columns {
            map.serialize_entry(
                &c.name,
                &ColumnOut {
                    name: &c.name,
                    description: &c.description,
                    data_type: c.data_type.as_deref(),
                    meta: Empty {},
                    tags: [],
                },
            )?;
        }
        map.end()
    }
}

/// A node's config as written, with dbt's defaults for `materialized`,
/// `enabled` and `tags` where it has none.
struct ConfigOut<'a>(&'a Node);

impl Serialize for ConfigOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let node = self.0;
        let config = &node.config;
        let mut map = s.serialize_map(None)?;
        for (k, v) in config {
            map.serialize_entry(k, v)?;
        }
        if !config.contains_key("materialized") {
            map.serialize_entry("materialized", node.materialized())?;
        }
        if !config.contains_key("enabled") {
            map.serialize_entry("enabled", &true)?;
        }
        if !config.contains_key("tags") {
            map.serialize_entry("tags", &node.tags())?;
        }
        map.end()
    }
}

/// Serialize the items of an iterator as a sequence, without collecting.
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
struct Checksum<'a> {
    name: &'static str,
    checksum: &'a str,
}

#[derive(Serialize)]
struct RefOut<'a> {
    name: &'a str,
    package: Option<&'a str>,
    version: Option<&'a str>,
}

#[derive(Serialize)]
struct DependsOn<'a> {
    macros: [&'a str; 0],
    nodes: &'a [&'a str],
}

#[derive(Serialize)]
struct TestMetadata<'a> {
    name: &'a str,
    kwargs: Map<String, Value>,
    namespace: Option<&'a str>,
}

/// One node of `nodes` (or `unit_tests`).
#[derive(Serialize)]
struct NodeOut<'a> {
    unique_id: &'a str,
    name: &'a str,
    resource_type: &'static str,
    package_name: &'a str,
    path: &'a str,
    original_file_path: &'a str,
    fqn: &'a [String],
    database: Option<&'a str>,
    schema: &'a str,
    alias: &'a str,
    checksum: Checksum<'a>,
    config: ConfigOut<'a>,
    tags: Vec<String>,
    description: &'a str,
    columns: Columns<'a>,
    meta: Empty,
    language: &'static str,
    refs: Vec<RefOut<'a>>,
    sources: Vec<[&'a str; 2]>,
    depends_on: DependsOn<'a>,
    raw_code: &'a str,
    compiled: bool,
    compiled_code: Option<&'a str>,
    relation_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column_name: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_metadata: Option<TestMetadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attached_node: Option<Option<&'a str>>,
}

/// The unique ids a node depends on: its refs, then its sources.
fn depends<'a>(m: &'a Manifest, node: &'a Node) -> Vec<&'a str> {
    node.depends_on
        .iter()
        .filter_map(|d| m.nodes.get(d).map(|n| n.unique_id.as_str()))
        .chain(
            node.sources
                .iter()
                .filter_map(|k| m.sources.get(k).map(|s| s.unique_id.as_str())),
        )
        .collect()
}

fn node_out<'a>(
    m: &'a Manifest,
    node: &'a Node,
    path: &'a str,
    deps: &'a [&'a str],
) -> NodeOut<'a> {
    let in_resource = path.split_once('/').map_or(path, |(_, r)| r);
    let mut out = NodeOut {
        unique_id: &node.unique_id,
        name: &node.name,
        resource_type: node.kind.resource_type(),
        package_name: &node.package_name,
        path: in_resource,
        original_file_path: path,
        fqn: &node.fqn,
        database: node.relation.database.as_deref(),
        schema: &node.relation.schema,
        alias: &node.relation.identifier,
        checksum: Checksum {
            name: "sha256",
            checksum: &node.checksum,
        },
        config: ConfigOut(node),
        tags: node.tags(),
        description: node
            .properties
            .as_ref()
            .map(|p| p.description.as_str())
            .unwrap_or_default(),
        columns: Columns(node),
        meta: Empty {},
        language: "sql",
        refs: node
            .depends_on
            .iter()
            .map(|r| RefOut {
                name: r,
                package: None,
                version: None,
            })
            .collect(),
        sources: node
            .sources
            .iter()
            .map(|(s, t)| [s.as_str(), t.as_str()])
            .collect(),
        depends_on: DependsOn {
            macros: [],
            nodes: deps,
        },
        raw_code: &node.raw,
        compiled: node.sql.is_some(),
        compiled_code: node.sql.as_deref(),
        relation_name: match (node.kind, node.materialized()) {
            (NodeKind::Model, "ephemeral") => None,
            (NodeKind::Test | NodeKind::UnitTest, _) => None,
            _ => Some(node.relation.to_string()),
        },
        column_name: None,
        test_metadata: None,
        attached_node: None,
    };
    if let Some(t) = &node.test {
        out.column_name = Some(t.column_name.as_deref());
        if let Some(g) = &t.generic {
            let (namespace, name) = match g.rsplit_once('.') {
                Some((ns, n)) => (Some(ns), n),
                None => (None, g.as_str()),
            };
            let mut kwargs: Map<String, Value> = t.kwargs.clone().into_iter().collect();
            if let Some(c) = &t.column_name {
                kwargs.insert("column_name".into(), Value::from(c.as_str()));
            }
            kwargs.insert(
                "model".into(),
                Value::from(format!(
                    "{{{{ get_where_subquery({}) }}}}",
                    match &t.attached {
                        Some(a) if m.nodes.contains_key(a) => format!("ref('{a}')"),
                        Some(a) => {
                            let (s, tb) = a.split_once('.').unwrap_or((a, ""));
                            format!("source('{s}', '{tb}')")
                        }
                        None => String::new(),
                    }
                )),
            );
            out.test_metadata = Some(TestMetadata {
                name,
                kwargs,
                namespace,
            });
            let attached = t.attached.as_ref().and_then(|a| {
                m.nodes.get(a).map(|n| n.unique_id.as_str()).or_else(|| {
                    let (s, tb) = a.split_once('.')?;
                    m.sources
                        .get(&(s.to_string(), tb.to_string()))
                        .map(|x| x.unique_id.as_str())
                })
            });
            out.attached_node = Some(attached);
        }
    }
    out
}

/// One macro of `macros`.
#[derive(Serialize)]
struct MacroOut<'a> {
    unique_id: String,
    name: &'a str,
    package_name: &'a str,
    resource_type: &'static str,
    original_file_path: &'a Path,
}

/// One source of `sources`.
#[derive(Serialize)]
struct SourceOut<'a> {
    unique_id: &'a str,
    name: &'a str,
    source_name: &'a str,
    resource_type: &'static str,
    package_name: &'a str,
    original_file_path: &'a Path,
    fqn: [&'a str; 3],
    database: Option<&'a str>,
    schema: &'a str,
    identifier: &'a str,
    relation_name: String,
    description: &'a str,
    columns: Empty,
    config: SourceConfig,
    /// Lineage: `sluice` when a Sluice stream loads the table.
    loader: &'static str,
    meta: SourceMeta<'a>,
}

#[derive(Serialize)]
struct SourceConfig {
    enabled: bool,
}

/// `{"sluice": {"stream": …}}`, or `{}`.
struct SourceMeta<'a>(Option<&'a str>);

impl Serialize for SourceMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stream<'a> {
            stream: &'a str,
        }
        let mut map = s.serialize_map(None)?;
        if let Some(stream) = self.0 {
            map.serialize_entry("sluice", &Stream { stream })?;
        }
        map.end()
    }
}

/// The manifest as dbt writes it (v12), serialized straight from the
/// compiled project: nothing is copied into an intermediate JSON tree
/// (a 10,000-model manifest is tens of MB).
pub struct ManifestArtifact<'a> {
    m: &'a Manifest,
    invocation_id: &'a str,
    /// Each node's `depends_on.nodes` (unique ids), by node name.
    deps: HashMap<&'a str, Vec<&'a str>>,
    /// Each node's path as text, by node name.
    paths: HashMap<&'a str, String>,
}

impl<'a> ManifestArtifact<'a> {
    /// The manifest of `m` for the invocation `invocation_id`.
    pub fn new(m: &'a Manifest, invocation_id: &'a str) -> Self {
        let deps = m
            .nodes
            .iter()
            .map(|(k, n)| (k.as_str(), depends(m, n)))
            .collect();
        let paths = m
            .nodes
            .iter()
            .map(|(k, n)| {
                (
                    k.as_str(),
                    n.original_file_path().to_string_lossy().into_owned(),
                )
            })
            .collect();
        ManifestArtifact {
            m,
            invocation_id,
            deps,
            paths,
        }
    }

    fn node(&self, key: &'a str, node: &'a Node) -> NodeOut<'_> {
        let deps = self.deps.get(key).map(Vec::as_slice).unwrap_or_default();
        let path = self.paths.get(key).map(String::as_str).unwrap_or_default();
        node_out(self.m, node, path, deps)
    }
}

/// The nodes of a manifest of one kind or of every other kind.
struct NodesOut<'s, 'a> {
    artifact: &'s ManifestArtifact<'a>,
    unit_tests: bool,
}

impl Serialize for NodesOut<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, n) in &self.artifact.m.nodes {
            if (n.kind == NodeKind::UnitTest) == self.unit_tests {
                map.serialize_entry(&n.unique_id, &self.artifact.node(k, n))?;
            }
        }
        map.end()
    }
}

impl Serialize for ManifestArtifact<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.m;
        let mut parent_map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut child_map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for src in m.sources.values() {
            parent_map.insert(&src.unique_id, Vec::new());
            child_map.insert(&src.unique_id, Vec::new());
        }
        for n in m.nodes.values() {
            parent_map.entry(&n.unique_id).or_default();
            child_map.entry(&n.unique_id).or_default();
        }
        for (k, n) in &m.nodes {
            if n.kind == NodeKind::UnitTest {
                continue;
            }
            for d in self.deps.get(k.as_str()).into_iter().flatten() {
                parent_map.entry(&n.unique_id).or_default().push(d);
                child_map.entry(d).or_default().push(&n.unique_id);
            }
        }
        let sources = Seq(|| {
            m.sources.values().map(|src| {
                (
                    &src.unique_id,
                    SourceOut {
                        unique_id: &src.unique_id,
                        name: &src.name,
                        source_name: &src.source_name,
                        resource_type: "source",
                        package_name: &src.package_name,
                        original_file_path: &src.path,
                        fqn: [&src.package_name, &src.source_name, &src.name],
                        database: src.relation.database.as_deref(),
                        schema: &src.relation.schema,
                        identifier: &src.relation.identifier,
                        relation_name: src.relation.to_string(),
                        description: &src.description,
                        columns: Empty {},
                        config: SourceConfig { enabled: true },
                        loader: if src.loaded_by.is_some() {
                            "sluice"
                        } else {
                            ""
                        },
                        meta: SourceMeta(src.loaded_by.as_deref()),
                    },
                )
            })
        });
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(
            "metadata",
            &metadata("manifest/v12.json", self.invocation_id, &m.target.kind),
        )?;
        map.serialize_entry(
            "nodes",
            &NodesOut {
                artifact: self,
                unit_tests: false,
            },
        )?;
        map.serialize_entry("sources", &PairMap(sources))?;
        let macros = m.macros();
        let macros = Seq(|| {
            macros.iter().map(|(package, name, path)| {
                let id = format!("macro.{package}.{name}");
                (
                    id.clone(),
                    MacroOut {
                        unique_id: id,
                        name,
                        package_name: package,
                        resource_type: "macro",
                        original_file_path: path,
                    },
                )
            })
        });
        map.serialize_entry("macros", &PairMap(macros))?;
        for key in [
            "docs",
            "exposures",
            "metrics",
            "groups",
            "selectors",
            "disabled",
        ] {
            map.serialize_entry(key, &Empty {})?;
        }
        map.serialize_entry("parent_map", &parent_map)?;
        map.serialize_entry("child_map", &child_map)?;
        for key in ["group_map", "saved_queries", "semantic_models"] {
            map.serialize_entry(key, &Empty {})?;
        }
        map.serialize_entry(
            "unit_tests",
            &NodesOut {
                artifact: self,
                unit_tests: true,
            },
        )?;
        map.end()
    }
}

/// Serialize `(key, value)` pairs from a [`Seq`] as a map.
struct PairMap<F>(Seq<F>);

impl<F, I, K, V> Serialize for PairMap<F>
where
    F: Fn() -> I,
    I: Iterator<Item = (K, V)>,
    K: Serialize,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(((self.0).0)())
    }
}

/// The manifest as dbt writes it, as a JSON value (tests, small
/// projects; [`ManifestArtifact`] writes it without the tree).
pub fn manifest_json(m: &Manifest, invocation_id: &str) -> Value {
    serde_json::to_value(ManifestArtifact::new(m, invocation_id)).unwrap_or(Value::Null)
}

/// The run results as dbt writes them.
pub fn run_results_json(r: &RunResults, invocation_id: &str, adapter: &str, args: Value) -> Value {
    let ts =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let results: Vec<Value> = r
        .results
        .iter()
        .map(|x| {
            json!({
                "status": x.status.as_str(),
                "timing": [
                    {"name": "compile", "started_at": ts(&x.started_at), "completed_at": ts(&x.started_at)},
                    {"name": "execute", "started_at": ts(&x.started_at), "completed_at": ts(&x.completed_at)},
                ],
                "thread_id": "Thread-1",
                "execution_time": x.execution_time,
                "adapter_response": match x.rows {
                    Some(rows) => json!({"_message": x.message, "rows_affected": rows}),
                    None => json!({}),
                },
                "message": x.message,
                "failures": x.failures,
                "unique_id": x.unique_id,
                "compiled": x.compiled_sql.is_some(),
                "compiled_code": x.compiled_sql,
                "relation_name": x.relation,
                "batch_results": null,
            })
        })
        .collect();
    json!({
        "metadata": metadata("run-results/v6.json", invocation_id, adapter),
        "results": results,
        "elapsed_time": r.elapsed,
        "args": args,
    })
}

/// Write `value` to `path` (folders made), through a temporary file.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("json.tmp");
    // Compact, as dbt writes them, streamed (a 10,000-model manifest is
    // tens of MB).
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    serde_json::to_writer(&mut out, value).map_err(std::io::Error::other)?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    std::fs::rename(&tmp, path)
}
