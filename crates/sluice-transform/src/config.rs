//! A node's configuration from the hierarchical trees of `dbt_project.yml`.
//!
//! ```yaml
//! models:
//!   +materialized: view          # every model of every package
//!   shop:                        # the package (project) `shop`
//!     staging:                   # models under models/staging/
//!       +materialized: view
//!       +tags: [staging]
//!     marts:
//!       materialized: table      # `+` is optional for known config names
//!       orders:                  # the model `orders` itself
//!         +unique_key: order_id
//! ```
//!
//! The levels follow the node's fully qualified name (package, folders,
//! name); a deeper level wins, except `tags` (added up), `meta` (merged key
//! by key) and hooks (concatenated), as in dbt. A key is a config when it
//! starts with `+`, or when it is a known config name whose value is not a
//! mapping (or a known mapping-valued config such as `meta`); any other key
//! is a folder or node name.

use indexmap::IndexMap;
use serde_json::Value;

/// Config names dbt knows without `+` (adapter-agnostic ones, plus seed,
/// snapshot and test configs).
pub const KNOWN: &[&str] = &[
    "materialized",
    "enabled",
    "tags",
    "meta",
    "schema",
    "database",
    "alias",
    "pre_hook",
    "post_hook",
    "pre-hook",
    "post-hook",
    "persist_docs",
    "docs",
    "full_refresh",
    "grants",
    "contract",
    "access",
    "group",
    "unique_key",
    "incremental_strategy",
    "on_schema_change",
    "incremental_predicates",
    "sql_header",
    "quoting",
    "column_types",
    "quote_columns",
    "delimiter",
    "severity",
    "warn_if",
    "error_if",
    "fail_calc",
    "limit",
    "where",
    "store_failures",
    "store_failures_as",
    "strategy",
    "updated_at",
    "check_cols",
    "target_schema",
    "target_database",
    "invalidate_hard_deletes",
    "hard_deletes",
    "on_error",
];

/// Known configs whose value is a mapping (so a mapping under these names
/// is a config, not a folder).
const MAP_VALUED: &[&str] = &[
    "meta",
    "docs",
    "persist_docs",
    "grants",
    "contract",
    "quoting",
    "column_types",
];

/// dbt spells hooks both ways; Sluice keys them with `_`.
fn normalize(key: &str) -> &str {
    match key {
        "pre-hook" => "pre_hook",
        "post-hook" => "post_hook",
        other => other,
    }
}

/// Whether `key` (without `+`) with `value` is a config at this level.
fn is_config(key: &str, value: &Value) -> bool {
    KNOWN.contains(&key) && (!value.is_object() || MAP_VALUED.contains(&key))
}

/// The configs set directly at one level of a tree, and its child levels.
fn split(level: &Value) -> (Vec<(String, Value)>, IndexMap<String, &Value>) {
    let mut configs = Vec::new();
    let mut children = IndexMap::new();
    let Some(map) = level.as_object() else {
        return (configs, children);
    };
    for (key, value) in map {
        if let Some(name) = key.strip_prefix('+') {
            configs.push((normalize(name).to_string(), value.clone()));
        } else if is_config(key, value) {
            configs.push((normalize(key).to_string(), value.clone()));
        } else {
            children.insert(key.clone(), value);
        }
    }
    (configs, children)
}

/// Apply `value` for `key` over `into` with dbt's merge rules.
pub fn merge_config(into: &mut IndexMap<String, Value>, key: &str, value: Value) {
    let key = normalize(key);
    match key {
        "tags" => {
            let mut tags: Vec<Value> = match into.get(key) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::String(s)) => vec![Value::String(s.clone())],
                _ => Vec::new(),
            };
            let new = match value {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            for t in new {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            into.insert(key.to_string(), Value::Array(tags));
        }
        "meta" => {
            let mut meta = match into.get(key) {
                Some(Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            };
            if let Value::Object(new) = value {
                meta.extend(new);
            }
            into.insert(key.to_string(), Value::Object(meta));
        }
        "pre_hook" | "post_hook" => {
            let mut hooks = match into.get(key) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other.clone()],
            };
            match value {
                Value::Array(a) => hooks.extend(a),
                Value::Null => {}
                other => hooks.push(other),
            }
            into.insert(key.to_string(), Value::Array(hooks));
        }
        _ => {
            into.insert(key.to_string(), value);
        }
    }
}

/// The configuration a node gets from `tree` (one of `models:`, `seeds:`,
/// …) given its fully qualified name (`[package, folder…, name]`).
pub fn resolve(tree: &Value, fqn: &[String]) -> IndexMap<String, Value> {
    let mut out = IndexMap::new();
    let mut level = tree;
    let (configs, mut children) = split(level);
    for (k, v) in configs {
        merge_config(&mut out, &k, v);
    }
    for part in fqn {
        let Some(next) = children.get(part.as_str()) else {
            break;
        };
        level = next;
        let (configs, next_children) = split(level);
        for (k, v) in configs {
            merge_config(&mut out, &k, v);
        }
        children = next_children;
    }
    out
}

/// Keys of `tree` that name no package, folder or node of the project and
/// are not configs: likely typos (dbt warns "unused config paths").
pub fn unused_paths(tree: &Value, fqns: &[Vec<String>]) -> Vec<String> {
    let mut out = Vec::new();
    walk_unused(tree, &mut Vec::new(), fqns, &mut out);
    out
}

fn walk_unused(level: &Value, path: &mut Vec<String>, fqns: &[Vec<String>], out: &mut Vec<String>) {
    let (_, children) = split(level);
    for (key, child) in children {
        path.push(key.clone());
        let used = fqns
            .iter()
            .any(|f| f.len() >= path.len() && f[..path.len()] == path[..]);
        if used {
            walk_unused(child, path, fqns, out);
        } else {
            out.push(path.join("."));
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fqn(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deeper_levels_win_and_plus_is_optional_for_known_names() {
        let tree = json!({
            "+materialized": "view",
            "shop": {
                "+tags": ["shop"],
                "staging": {"+materialized": "view", "+tags": "staging", "meta": {"owner": "a"}},
                "marts": {
                    "materialized": "table",
                    "meta": {"owner": "b", "tier": 1},
                    "orders": {"+unique_key": "order_id", "+meta": {"tier": 2}, "post-hook": "select 1"}
                }
            }
        });
        let c = resolve(&tree, &fqn(&["shop", "staging", "stg_orders"]));
        assert_eq!(c["materialized"], "view");
        assert_eq!(c["tags"], json!(["shop", "staging"]));
        assert_eq!(c["meta"], json!({"owner": "a"}));
        let c = resolve(&tree, &fqn(&["shop", "marts", "orders"]));
        assert_eq!(c["materialized"], "table");
        assert_eq!(c["unique_key"], "order_id");
        assert_eq!(c["meta"], json!({"owner": "b", "tier": 2}));
        assert_eq!(c["post_hook"], json!(["select 1"]));
        assert_eq!(c["tags"], json!(["shop"]));
        // Another package gets only the root configs.
        let c = resolve(&tree, &fqn(&["other", "x"]));
        assert_eq!(c.len(), 1);
        assert_eq!(c["materialized"], "view");
    }

    #[test]
    fn a_folder_named_like_a_config_is_a_folder_when_it_holds_a_mapping() {
        let tree = json!({"shop": {"schema": {"+materialized": "table"}, "+schema": "analytics"}});
        let c = resolve(&tree, &fqn(&["shop", "schema", "m"]));
        assert_eq!(c["materialized"], "table");
        assert_eq!(c["schema"], "analytics");
    }

    #[test]
    fn unused_config_paths_are_found() {
        let tree =
            json!({"shop": {"staging": {"+materialized": "view"}, "stagng": {"+tags": ["x"]}}});
        let fqns = vec![fqn(&["shop", "staging", "a"])];
        assert_eq!(unused_paths(&tree, &fqns), vec!["shop.stagng"]);
    }
}
