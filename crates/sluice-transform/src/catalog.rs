//! `target/catalog.json` in dbt's catalog v1 schema: what the engine says
//! about every relation the project makes (models, seeds, snapshots) or
//! reads (sources) — columns with the engine's types, owner, comment and,
//! on the lake, row count and size from the Delta log.
//!
//! ```text
//!  manifest ─► wanted(): unique_id + relation ─► Engine::catalog ─► CatalogRead
//!                                      │                                │
//!                                      └──────────► catalog_json() ◄────┘
//!                                        nodes / sources / errors, and what is missing
//! ```
//!
//! A relation the engine does not have (not built yet) is left out, as dbt
//! leaves it out; [`Catalog::missing`] lists it for the command to say so.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::{DataType, IntervalUnit};
use serde_json::{Map, Value, json};

use crate::artifacts::DBT_VERSION;
use crate::jinja::Relation;
use crate::manifest::{Manifest, NodeKind};

/// One column as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    /// Its name.
    pub name: String,
    /// The engine's type name (`BIGINT` on the lake, `integer` on PostgreSQL).
    pub data_type: String,
    /// Position, from 1.
    pub index: u32,
    /// The column's comment, when the engine keeps one.
    pub comment: Option<String>,
}

/// Size facts of a table, when the engine knows them without a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// Rows.
    pub rows: u64,
    /// Bytes of the data files.
    pub bytes: u64,
}

/// What the engine says about one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTable {
    /// The relation asked about (as it was asked).
    pub relation: Relation,
    /// `BASE TABLE`, `VIEW` or `MATERIALIZED VIEW`.
    pub kind: String,
    /// The database it is in, when the engine has databases.
    pub database: Option<String>,
    /// Its owner (a PostgreSQL role).
    pub owner: Option<String>,
    /// The relation's comment.
    pub comment: Option<String>,
    /// Columns in order.
    pub columns: Vec<CatalogColumn>,
    /// Rows and bytes, when known.
    pub stats: Option<TableStats>,
}

/// The engine's answer for a set of relations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogRead {
    /// The relations that exist.
    pub tables: Vec<CatalogTable>,
    /// Relations that exist but could not be described, one message each.
    pub errors: Vec<String>,
}

/// A relation the catalog should describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The node's or source's `unique_id`.
    pub unique_id: String,
    /// Where it is.
    pub relation: Relation,
    /// Whether it is a source (else a model, seed or snapshot).
    pub source: bool,
}

/// The relations of the project: every model (not ephemeral), seed and
/// snapshot, and every source. With `selected` (node names), only those
/// nodes, and the sources a selected node reads.
pub fn wanted(manifest: &Manifest, selected: Option<&HashSet<String>>) -> Vec<Wanted> {
    let picked = |name: &str| selected.is_none_or(|s| s.contains(name));
    let mut out = Vec::new();
    let mut read: HashSet<&(String, String)> = HashSet::new();
    for n in manifest.nodes.values() {
        if !picked(&n.name) {
            continue;
        }
        read.extend(n.sources.iter());
        let kind_ok = matches!(
            n.kind,
            NodeKind::Model | NodeKind::Seed | NodeKind::Snapshot
        );
        if !kind_ok || n.materialized() == "ephemeral" || n.relation.schema.is_empty() {
            continue;
        }
        out.push(Wanted {
            unique_id: n.unique_id.clone(),
            relation: n.relation.clone(),
            source: false,
        });
    }
    for (key, s) in &manifest.sources {
        if selected.is_some() && !read.contains(key) {
            continue;
        }
        out.push(Wanted {
            unique_id: s.unique_id.clone(),
            relation: s.relation.clone(),
            source: true,
        });
    }
    out
}

/// `catalog.json` and what it left out.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The artifact (dbt's catalog v1).
    pub json: Value,
    /// Nodes in the catalog.
    pub nodes: usize,
    /// Sources in the catalog.
    pub sources: usize,
    /// What was wanted but does not exist (yet).
    pub missing: Vec<Wanted>,
}

fn stat(id: &str, label: &str, value: Value, include: bool, description: &str) -> (String, Value) {
    (
        id.to_string(),
        json!({"id": id, "label": label, "value": value, "include": include, "description": description}),
    )
}

fn table_json(unique_id: &str, t: &CatalogTable) -> Value {
    let columns: Map<String, Value> = t
        .columns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                json!({"type": c.data_type, "index": c.index, "name": c.name, "comment": c.comment}),
            )
        })
        .collect();
    let has = "Indicates whether there are statistics for this table";
    let stats: Map<String, Value> = match t.stats {
        Some(s) => [
            stat(
                "row_count",
                "Row Count",
                json!(s.rows),
                true,
                "Rows in the table, from the file statistics of its Delta log",
            ),
            stat(
                "bytes",
                "Approximate Size",
                json!(s.bytes),
                true,
                "Bytes of the table's data files, from its Delta log",
            ),
            stat("has_stats", "Has Stats?", json!(true), false, has),
        ]
        .into_iter()
        .collect(),
        None => [stat("has_stats", "Has Stats?", json!(false), false, has)]
            .into_iter()
            .collect(),
    };
    json!({
        "metadata": {
            "type": t.kind,
            "schema": t.relation.schema,
            "name": t.relation.identifier,
            "database": t.database.clone().or_else(|| t.relation.database.clone()),
            "comment": t.comment,
            "owner": t.owner,
        },
        "columns": columns,
        "stats": stats,
        "unique_id": unique_id,
    })
}

/// Build `catalog.json` from what the engine found for `wanted`.
pub fn catalog_json(wanted: &[Wanted], read: &CatalogRead, invocation_id: &str) -> Catalog {
    let found: HashMap<String, &CatalogTable> = read
        .tables
        .iter()
        .map(|t| (t.relation.to_string(), t))
        .collect();
    let (mut nodes, mut sources) = (Map::new(), Map::new());
    let mut missing = Vec::new();
    for w in wanted {
        let Some(t) = found.get(&w.relation.to_string()) else {
            missing.push(w.clone());
            continue;
        };
        let into = if w.source { &mut sources } else { &mut nodes };
        into.insert(w.unique_id.clone(), table_json(&w.unique_id, t));
    }
    let json = json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
            "dbt_version": DBT_VERSION,
            "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "invocation_id": invocation_id,
            "env": {},
        },
        "nodes": nodes,
        "sources": sources,
        "errors": if read.errors.is_empty() { Value::Null } else { json!(read.errors) },
    });
    Catalog {
        nodes: nodes_len(&json, "nodes"),
        sources: nodes_len(&json, "sources"),
        json,
        missing,
    }
}

fn nodes_len(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_object).map_or(0, Map::len)
}

/// The SQL name of an Arrow type, as DataFusion's SQL spells it
/// (`BIGINT`, `VARCHAR`, `DECIMAL(12,2)`, `TIMESTAMP WITH TIME ZONE`);
/// types SQL has no name for keep Arrow's.
pub fn sql_type_name(t: &DataType) -> String {
    let name = match t {
        DataType::Null => "NULL",
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "TINYINT UNSIGNED",
        DataType::UInt16 => "SMALLINT UNSIGNED",
        DataType::UInt32 => "INT UNSIGNED",
        DataType::UInt64 => "BIGINT UNSIGNED",
        DataType::Float16 => "HALF",
        DataType::Float32 => "REAL",
        DataType::Float64 => "DOUBLE",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BYTEA",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Time32(_) | DataType::Time64(_) => "TIME",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE",
        DataType::Interval(IntervalUnit::YearMonth)
        | DataType::Interval(IntervalUnit::DayTime)
        | DataType::Interval(IntervalUnit::MonthDayNano) => "INTERVAL",
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => return format!("DECIMAL({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            return format!("{}[]", sql_type_name(f.data_type()));
        }
        DataType::Dictionary(_, v) => return sql_type_name(v),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_type_name(f.data_type())))
                .collect();
            return format!("STRUCT({})", inner.join(", "));
        }
        other => return other.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, TimeUnit};

    use super::*;

    fn rel(schema: &str, name: &str) -> Relation {
        Relation {
            database: None,
            schema: schema.into(),
            identifier: name.into(),
        }
    }

    fn col(name: &str, t: &str, index: u32) -> CatalogColumn {
        CatalogColumn {
            name: name.into(),
            data_type: t.into(),
            index,
            comment: None,
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_catalog_has_dbt_s_v1_structure_field_by_field() {
        let wanted = vec![
            Wanted {
                unique_id: "model.shop.orders".into(),
                relation: rel("main", "orders"),
                source: false,
            },
            Wanted {
                unique_id: "model.shop.later".into(),
                relation: rel("main", "later"),
                source: false,
            },
            Wanted {
                unique_id: "source.shop.app.users".into(),
                relation: rel("app", "users"),
                source: true,
            },
        ];
        let read = CatalogRead {
            tables: vec![
                CatalogTable {
                    relation: rel("main", "orders"),
                    kind: "BASE TABLE".into(),
                    database: None,
                    owner: None,
                    comment: None,
                    columns: vec![col("id", "BIGINT", 1), col("total", "DOUBLE", 2)],
                    stats: Some(TableStats {
                        rows: 3,
                        bytes: 1200,
                    }),
                },
                CatalogTable {
                    relation: rel("app", "users"),
                    kind: "VIEW".into(),
                    database: Some("db".into()),
                    owner: Some("postgres".into()),
                    comment: Some("People".into()),
                    columns: vec![CatalogColumn {
                        comment: Some("The id".into()),
                        ..col("id", "integer", 1)
                    }],
                    stats: None,
                },
            ],
            errors: Vec::new(),
        };
        let c = catalog_json(&wanted, &read, "inv-1");
        let j = &c.json;
        assert_eq!(keys(j), ["metadata", "nodes", "sources", "errors"]);
        assert_eq!(
            keys(&j["metadata"]),
            [
                "dbt_schema_version",
                "dbt_version",
                "generated_at",
                "invocation_id",
                "env"
            ]
        );
        assert_eq!(
            j["metadata"]["dbt_schema_version"],
            "https://schemas.getdbt.com/dbt/catalog/v1.json"
        );
        assert_eq!(j["metadata"]["dbt_version"], DBT_VERSION);
        assert_eq!(j["metadata"]["invocation_id"], "inv-1");
        assert!(
            j["metadata"]["generated_at"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(j["metadata"]["env"], json!({}));
        assert_eq!(j["errors"], Value::Null);

        assert_eq!(keys(&j["nodes"]), ["model.shop.orders"]);
        let orders = &j["nodes"]["model.shop.orders"];
        assert_eq!(keys(orders), ["metadata", "columns", "stats", "unique_id"]);
        assert_eq!(
            orders["metadata"],
            json!({"type": "BASE TABLE", "schema": "main", "name": "orders", "database": null, "comment": null, "owner": null})
        );
        assert_eq!(keys(&orders["columns"]), ["id", "total"]);
        assert_eq!(
            orders["columns"]["total"],
            json!({"type": "DOUBLE", "index": 2, "name": "total", "comment": null})
        );
        assert_eq!(keys(&orders["stats"]), ["row_count", "bytes", "has_stats"]);
        for (id, s) in orders["stats"].as_object().unwrap() {
            assert_eq!(
                keys(s),
                ["id", "label", "value", "include", "description"],
                "{id}"
            );
            assert_eq!(s["id"], id.as_str());
        }
        assert_eq!(orders["stats"]["row_count"]["value"], 3);
        assert_eq!(orders["stats"]["row_count"]["include"], true);
        assert_eq!(orders["stats"]["bytes"]["value"], 1200);
        assert_eq!(orders["stats"]["has_stats"]["value"], true);
        assert_eq!(orders["stats"]["has_stats"]["include"], false);
        assert_eq!(orders["unique_id"], "model.shop.orders");

        let users = &j["sources"]["source.shop.app.users"];
        assert_eq!(
            users["metadata"],
            json!({"type": "VIEW", "schema": "app", "name": "users", "database": "db", "comment": "People", "owner": "postgres"})
        );
        assert_eq!(users["columns"]["id"]["comment"], "The id");
        assert_eq!(keys(&users["stats"]), ["has_stats"]);
        assert_eq!(users["stats"]["has_stats"]["value"], false);

        assert_eq!((c.nodes, c.sources), (1, 1));
        let missing: Vec<&str> = c.missing.iter().map(|w| w.unique_id.as_str()).collect();
        assert_eq!(missing, ["model.shop.later"]);
    }

    #[test]
    fn errors_are_listed_when_there_are_some() {
        let read = CatalogRead {
            tables: Vec::new(),
            errors: vec!["`main.v`: no such column".into()],
        };
        let c = catalog_json(&[], &read, "x");
        assert_eq!(c.json["errors"], json!(["`main.v`: no such column"]));
    }

    #[test]
    fn arrow_types_get_their_sql_names() {
        let cases = [
            (DataType::Int64, "BIGINT"),
            (DataType::Int32, "INT"),
            (DataType::Float64, "DOUBLE"),
            (DataType::Utf8View, "VARCHAR"),
            (DataType::Boolean, "BOOLEAN"),
            (DataType::Date32, "DATE"),
            (DataType::Decimal128(12, 2), "DECIMAL(12,2)"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "TIMESTAMP",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "TIMESTAMP WITH TIME ZONE",
            ),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                "BIGINT[]",
            ),
        ];
        for (t, name) in cases {
            assert_eq!(sql_type_name(&t), name, "{t}");
        }
    }
}
