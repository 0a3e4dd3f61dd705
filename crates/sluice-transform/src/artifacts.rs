//! `target/manifest.json` and `target/run_results.json` in dbt's schemas
//! (manifest v12, run results v6), so tools that read dbt's artifacts
//! (lineage, docs sites, CI checks, `state:modified`) read Sluice's.

use std::collections::BTreeMap;
use std::path::Path;

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

fn columns(node: &Node) -> Value {
    let mut out = Map::new();
    if let Some(p) = &node.properties {
        for c in &p.columns {
            out.insert(
                c.name.clone(),
                json!({
                    "name": c.name,
                    "description": c.description,
                    "data_type": c.data_type,
                    "meta": {},
                    "tags": [],
                }),
            );
        }
    }
    Value::Object(out)
}

fn node_json(m: &Manifest, node: &Node) -> Value {
    let depends: Vec<String> = node
        .depends_on
        .iter()
        .filter_map(|d| m.nodes.get(d).map(|n| n.unique_id.clone()))
        .chain(
            node.sources
                .iter()
                .filter_map(|k| m.sources.get(k).map(|s| s.unique_id.clone())),
        )
        .collect();
    let mut config: Map<String, Value> = node.config.clone().into_iter().collect();
    config
        .entry("materialized")
        .or_insert_with(|| Value::from(node.materialized()));
    config.entry("enabled").or_insert(Value::Bool(true));
    config.entry("tags").or_insert_with(|| json!(node.tags()));
    let path = node.original_file_path().to_string_lossy().to_string();
    let in_resource = path.split_once('/').map_or(path.as_str(), |(_, r)| r);
    let mut j = json!({
        "unique_id": node.unique_id,
        "name": node.name,
        "resource_type": node.kind.resource_type(),
        "package_name": node.package_name,
        "path": in_resource,
        "original_file_path": path,
        "fqn": node.fqn,
        "database": node.relation.database,
        "schema": node.relation.schema,
        "alias": node.relation.identifier,
        "checksum": {"name": "sha256", "checksum": node.checksum},
        "config": config,
        "tags": node.tags(),
        "description": node.properties.as_ref().map(|p| p.description.clone()).unwrap_or_default(),
        "columns": columns(node),
        "meta": {},
        "language": "sql",
        "refs": node.depends_on.iter().map(|r| json!({"name": r, "package": null, "version": null})).collect::<Vec<_>>(),
        "sources": node.sources.iter().map(|(s, t)| json!([s, t])).collect::<Vec<_>>(),
        "depends_on": {"macros": [], "nodes": depends},
        "raw_code": node.raw,
        "compiled": node.sql.is_some(),
        "compiled_code": node.sql,
        "relation_name": match (node.kind, node.materialized()) {
            (NodeKind::Model, "ephemeral") => Value::Null,
            (NodeKind::Test | NodeKind::UnitTest, _) => Value::Null,
            _ => Value::from(node.relation.to_string()),
        },
    });
    if let (Some(t), Some(obj)) = (&node.test, j.as_object_mut()) {
        obj.insert("column_name".into(), json!(t.column_name));
        if let Some(g) = &t.generic {
            let (namespace, name) = match g.rsplit_once('.') {
                Some((ns, n)) => (Value::from(ns), n.to_string()),
                None => (Value::Null, g.clone()),
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
            obj.insert(
                "test_metadata".into(),
                json!({"name": name, "kwargs": kwargs, "namespace": namespace}),
            );
            let attached = t.attached.as_ref().and_then(|a| {
                m.nodes.get(a).map(|n| n.unique_id.clone()).or_else(|| {
                    let (s, tb) = a.split_once('.')?;
                    m.sources
                        .get(&(s.to_string(), tb.to_string()))
                        .map(|x| x.unique_id.clone())
                })
            });
            obj.insert("attached_node".into(), json!(attached));
        }
    }
    j
}

/// `macros`: each by `macro.<package>.<name>`.
fn macros_json(m: &Manifest) -> Value {
    let mut out = Map::new();
    for (package, name, path) in m.macros() {
        let id = format!("macro.{package}.{name}");
        out.insert(
            id.clone(),
            json!({"unique_id": id, "name": name, "package_name": package, "resource_type": "macro", "original_file_path": path}),
        );
    }
    Value::Object(out)
}

/// The manifest as dbt writes it.
pub fn manifest_json(m: &Manifest, invocation_id: &str) -> Value {
    let mut nodes = Map::new();
    let mut parent_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut child_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in m.sources.values() {
        parent_map.insert(s.unique_id.clone(), Vec::new());
        child_map.insert(s.unique_id.clone(), Vec::new());
    }
    for n in m.nodes.values() {
        parent_map.entry(n.unique_id.clone()).or_default();
        child_map.entry(n.unique_id.clone()).or_default();
    }
    let mut unit_tests = Map::new();
    for n in m.nodes.values() {
        let j = node_json(m, n);
        if n.kind == NodeKind::UnitTest {
            unit_tests.insert(n.unique_id.clone(), j);
            continue;
        }
        if let Some(Value::Array(deps)) = j.pointer("/depends_on/nodes") {
            for d in deps.iter().filter_map(Value::as_str) {
                parent_map
                    .entry(n.unique_id.clone())
                    .or_default()
                    .push(d.to_string());
                child_map
                    .entry(d.to_string())
                    .or_default()
                    .push(n.unique_id.clone());
            }
        }
        nodes.insert(n.unique_id.clone(), j);
    }
    let sources: Map<String, Value> = m
        .sources
        .values()
        .map(|s| {
            (
                s.unique_id.clone(),
                json!({
                    "unique_id": s.unique_id,
                    "name": s.name,
                    "source_name": s.source_name,
                    "resource_type": "source",
                    "package_name": s.package_name,
                    "original_file_path": s.path,
                    "fqn": [s.package_name.clone(), s.source_name.clone(), s.name.clone()],
                    "database": s.relation.database,
                    "schema": s.relation.schema,
                    "identifier": s.relation.identifier,
                    "relation_name": s.relation.to_string(),
                    "description": s.description,
                    "columns": {},
                    "config": {"enabled": true},
                }),
            )
        })
        .collect();
    json!({
        "metadata": metadata("manifest/v12.json", invocation_id, &m.target.kind),
        "nodes": nodes,
        "sources": sources,
        "macros": macros_json(m),
        "docs": {},
        "exposures": {},
        "metrics": {},
        "groups": {},
        "selectors": {},
        "disabled": {},
        "parent_map": parent_map,
        "child_map": child_map,
        "group_map": {},
        "saved_queries": {},
        "semantic_models": {},
        "unit_tests": unit_tests,
    })
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
pub fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
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
