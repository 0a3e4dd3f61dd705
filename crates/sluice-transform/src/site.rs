//! `target/index.html`: the project's docs as one self-contained page.
//!
//! The page (`site.html`: inline CSS and script, no network) carries its
//! data as JSON in a `<script type="application/json">` block, so it opens
//! from `file://` as well as from `sluice transform docs serve`. The data
//! is a compact list made from `manifest.json` and `catalog.json`: one entry
//! per model, seed, snapshot, test and source, with its description,
//! columns (declared ones merged with the catalog's types), parents (as
//! indexes into the list; children are worked out in the page), compiled
//! SQL and, from the catalog, kind and size. The page lists the entries in a
//! virtual list and renders one entry's details when it is picked, so a
//! project of 10,000 models stays a small DOM.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// The page template; `/*SLUICE_DATA*/` is where the data goes.
const TEMPLATE: &str = include_str!("site.html");
const PLACEHOLDER: &str = "/*SLUICE_DATA*/";

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// Declared columns (manifest) merged with the catalog's: the catalog's
/// order and types, then declared columns the relation does not have.
/// Each entry is `[name, type or null, description]`.
fn columns(node: &Value, catalog: Option<&Value>) -> Vec<Value> {
    let declared = node.get("columns").and_then(Value::as_object);
    let described = |name: &str| -> String {
        declared
            .and_then(|d| {
                d.get(name).or_else(|| {
                    d.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                })
            })
            .map(|c| text(c, "description").to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    if let Some(cols) = catalog
        .and_then(|c| c.get("columns"))
        .and_then(Value::as_object)
    {
        let mut cols: Vec<&Value> = cols.values().collect();
        cols.sort_by_key(|c| c.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX));
        for c in cols {
            let name = text(c, "name");
            seen.push(name.to_lowercase());
            out.push(json!([name, text(c, "type"), described(name)]));
        }
    }
    if let Some(d) = declared {
        for (name, c) in d {
            if !seen.contains(&name.to_lowercase()) {
                let declared_type = c.get("data_type").cloned().unwrap_or(Value::Null);
                out.push(json!([name, declared_type, text(c, "description")]));
            }
        }
    }
    out
}

/// The page's data: project facts and one entry per node and source.
pub fn page_data(manifest: &Value, catalog: &Value) -> Value {
    let empty = Map::new();
    let nodes = obj(manifest, "nodes").unwrap_or(&empty);
    let sources = obj(manifest, "sources").unwrap_or(&empty);
    let entries: Vec<(&String, &Value)> = nodes
        .iter()
        .filter(|(_, n)| text(n, "resource_type") != "unit_test")
        .chain(sources.iter())
        .collect();
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    let parent_map = manifest.get("parent_map").and_then(Value::as_object);
    let cat_nodes = obj(catalog, "nodes").unwrap_or(&empty);
    let cat_sources = obj(catalog, "sources").unwrap_or(&empty);
    let list: Vec<Value> = entries
        .iter()
        .map(|(id, n)| {
            let kind = text(n, "resource_type");
            let cat = if kind == "source" {
                cat_sources.get(id.as_str())
            } else {
                cat_nodes.get(id.as_str())
            };
            let parents: Vec<usize> = parent_map
                .and_then(|p| p.get(id.as_str()))
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|p| index.get(p).copied())
                        .collect()
                })
                .unwrap_or_default();
            let name = if kind == "source" {
                format!("{}.{}", text(n, "source_name"), text(n, "name"))
            } else {
                text(n, "name").to_string()
            };
            let stat = |k: &str| {
                cat.and_then(|c| c.pointer(&format!("/stats/{k}/value")))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let test = n.get("test_metadata").map(|t| {
                let on = n
                    .get("attached_node")
                    .and_then(Value::as_str)
                    .and_then(|a| index.get(a));
                json!({"name": text(t, "name"), "column": n.get("column_name").cloned().unwrap_or(Value::Null), "on": on})
            });
            json!({
                "id": id,
                "name": name,
                "type": kind,
                "path": text(n, "original_file_path"),
                "relation": n.get("relation_name").cloned().unwrap_or(Value::Null),
                "materialized": n.pointer("/config/materialized").cloned().unwrap_or(Value::Null),
                "description": text(n, "description"),
                "tags": n.get("tags").cloned().unwrap_or(json!([])),
                "columns": columns(n, cat),
                "sql": n.get("compiled_code").cloned().unwrap_or(Value::Null),
                "raw": n.get("raw_code").cloned().unwrap_or(Value::Null),
                "parents": parents,
                "test": test,
                "catalog": cat.map(|c| json!({
                    "kind": c.pointer("/metadata/type").cloned().unwrap_or(Value::Null),
                    "owner": c.pointer("/metadata/owner").cloned().unwrap_or(Value::Null),
                    "comment": c.pointer("/metadata/comment").cloned().unwrap_or(Value::Null),
                    "rows": stat("row_count"),
                    "bytes": stat("bytes"),
                })),
            })
        })
        .collect();
    json!({
        "project": manifest.pointer("/metadata/project_name").cloned()
            .or_else(|| nodes.values().chain(sources.values()).next().and_then(|n| n.get("package_name").cloned()))
            .unwrap_or(Value::Null),
        "generated_at": catalog.pointer("/metadata/generated_at").cloned().unwrap_or(Value::Null),
        "adapter": manifest.pointer("/metadata/adapter_type").cloned().unwrap_or(Value::Null),
        "has_catalog": catalog.get("nodes").is_some(),
        "nodes": list,
    })
}

/// The page, with `manifest.json` and `catalog.json` (dbt's artifacts, as
/// written) made into its data. Text cannot end the data block early: every
/// `<` in it is written `\u003c`.
pub fn index_html(manifest: &Value, catalog: &Value) -> String {
    let data = page_data(manifest, catalog).to_string();
    let data = data.replace('<', "\\u003c");
    match TEMPLATE.split_once(PLACEHOLDER) {
        Some((head, tail)) => {
            let mut page = String::with_capacity(head.len() + data.len() + tail.len());
            page.push_str(head);
            page.push_str(&data);
            page.push_str(tail);
            page
        }
        // The template is ours and has the placeholder (a test checks it).
        None => TEMPLATE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Value {
        json!({
            "metadata": {"adapter_type": "sluice"},
            "nodes": {
                "model.shop.orders": {
                    "name": "orders", "resource_type": "model", "package_name": "shop",
                    "original_file_path": "models/orders.sql", "relation_name": "\"main\".\"orders\"",
                    "config": {"materialized": "table"}, "description": "One row per order.",
                    "tags": ["daily"],
                    "columns": {"id": {"name": "id", "description": "The order."}, "gone": {"name": "gone", "description": "Not built.", "data_type": "int"}},
                    "compiled_code": "select 1 as id, 2 as total -- </script><b>", "raw_code": "select 1",
                },
                "test.shop.not_null_orders_id.abc": {
                    "name": "not_null_orders_id", "resource_type": "test", "package_name": "shop",
                    "test_metadata": {"name": "not_null"}, "column_name": "id", "attached_node": "model.shop.orders",
                },
                "unit_test.shop.orders.t": {"name": "t", "resource_type": "unit_test"},
            },
            "sources": {
                "source.shop.app.users": {"name": "users", "source_name": "app", "resource_type": "source", "package_name": "shop"},
            },
            "parent_map": {
                "model.shop.orders": ["source.shop.app.users"],
                "test.shop.not_null_orders_id.abc": ["model.shop.orders"],
                "source.shop.app.users": [],
            },
        })
    }

    fn catalog() -> Value {
        json!({
            "metadata": {"generated_at": "2026-01-01T00:00:00Z"},
            "nodes": {"model.shop.orders": {
                "metadata": {"type": "BASE TABLE", "owner": null, "comment": null},
                "columns": {
                    "total": {"name": "total", "type": "DOUBLE", "index": 2},
                    "ID": {"name": "ID", "type": "BIGINT", "index": 1},
                },
                "stats": {"row_count": {"value": 3}, "bytes": {"value": 900}},
            }},
            "sources": {},
        })
    }

    #[test]
    fn the_data_merges_the_catalog_into_the_manifest_s_nodes() {
        let d = page_data(&manifest(), &catalog());
        assert_eq!(d["project"], "shop");
        assert_eq!(d["adapter"], "sluice");
        assert_eq!(d["generated_at"], "2026-01-01T00:00:00Z");
        let nodes = d["nodes"].as_array().unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["orders", "not_null_orders_id", "app.users"]);
        let orders = &nodes[0];
        // Catalog order and types first, declared descriptions matched
        // without regard to case, then declared columns not built.
        assert_eq!(
            orders["columns"],
            json!([
                ["ID", "BIGINT", "The order."],
                ["total", "DOUBLE", ""],
                ["gone", "int", "Not built."]
            ])
        );
        assert_eq!(orders["parents"], json!([2]));
        assert_eq!(orders["catalog"]["rows"], 3);
        assert_eq!(orders["catalog"]["bytes"], 900);
        assert_eq!(orders["catalog"]["kind"], "BASE TABLE");
        assert_eq!(nodes[1]["parents"], json!([0]));
        assert_eq!(
            nodes[1]["test"],
            json!({"name": "not_null", "column": "id", "on": 0})
        );
        assert_eq!(nodes[2]["catalog"], Value::Null);
        assert_eq!(nodes[2]["type"], "source");
    }

    #[test]
    fn the_page_embeds_the_data_so_that_no_text_can_close_its_block() {
        assert_eq!(TEMPLATE.matches(PLACEHOLDER).count(), 1);
        let page = index_html(&manifest(), &catalog());
        assert!(!page.contains(PLACEHOLDER));
        assert!(!page.contains("-- </script><b>"));
        assert!(page.contains("-- \\u003c/script>\\u003cb>"));
        let start = page
            .find("<script id=\"data\" type=\"application/json\">")
            .unwrap();
        let body = &page[start..];
        let json_text = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
        let back: Value = serde_json::from_str(json_text).unwrap();
        assert_eq!(back, page_data(&manifest(), &catalog()));
        // Nothing is fetched: the page is whole from file://.
        for remote in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!TEMPLATE.contains(remote), "{remote}");
        }
    }
}
