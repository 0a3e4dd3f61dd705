//! The catalog of PostgreSQL relations: one query over `pg_catalog` for
//! every schema in play, as dbt-postgres reads it (types as
//! `format_type` spells them, `pg_get_userbyid` as the owner, comments from
//! `pg_description`; no size statistics).

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::Client;

use super::sql::db_error;
use crate::catalog::{CatalogColumn, CatalogRead, CatalogTable};
use crate::engine::EngineResult;
use crate::jinja::Relation;

/// Tables, views, materialized views, foreign and partitioned tables of
/// the schemas `$1` (lower-cased names), their columns in order; temporary
/// relations and dropped columns left out.
const CATALOG_SQL: &str = "\
SELECT n.nspname::text, c.relname::text,
       CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'BASE TABLE' END,
       obj_description(c.oid, 'pg_class'),
       pg_get_userbyid(c.relowner)::text,
       a.attname::text, a.attnum::int4,
       format_type(a.atttypid, a.atttypmod),
       col_description(c.oid, a.attnum)
FROM pg_catalog.pg_namespace n
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE lower(n.nspname) = ANY($1)
  AND NOT pg_is_other_temp_schema(n.oid)
  AND c.relpersistence IN ('p', 'u')
  AND c.relkind IN ('r', 'v', 'f', 'p', 'm')
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY n.nspname, c.relname, a.attnum";

fn key(schema: &str, name: &str) -> (String, String) {
    (schema.to_lowercase(), name.to_lowercase())
}

/// Describe those of `relations` that exist in `database` (the connected
/// one); names match without regard to case, as dbt matches them.
pub(super) async fn read(
    client: &Client,
    database: &str,
    relations: &[Relation],
) -> EngineResult<CatalogRead> {
    let here: Vec<&Relation> = relations
        .iter()
        .filter(|r| {
            r.database
                .as_deref()
                .is_none_or(|d| d.eq_ignore_ascii_case(database))
        })
        .collect();
    let schemas: Vec<String> = here
        .iter()
        .map(|r| r.schema.to_lowercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if schemas.is_empty() {
        return Ok(CatalogRead::default());
    }
    let rows = client
        .query(CATALOG_SQL, &[&schemas])
        .await
        .map_err(|e| db_error("reading the catalog", &e, None))?;
    let mut found: HashMap<(String, String), CatalogTable> = HashMap::new();
    for row in &rows {
        let get = |i: usize| -> EngineResult<Option<String>> {
            row.try_get(i)
                .map_err(|e| db_error("reading the catalog", &e, None))
        };
        let (Some(schema), Some(name), Some(kind), Some(column)) =
            (get(0)?, get(1)?, get(2)?, get(5)?)
        else {
            continue;
        };
        let index: i32 = row
            .try_get(6)
            .map_err(|e| db_error("reading the catalog", &e, None))?;
        let table = found
            .entry(key(&schema, &name))
            .or_insert_with(|| CatalogTable {
                relation: Relation {
                    database: Some(database.to_string()),
                    schema: schema.clone(),
                    identifier: name.clone(),
                },
                kind: kind.clone(),
                database: Some(database.to_string()),
                owner: None,
                comment: None,
                columns: Vec::new(),
                stats: None,
            });
        if table.columns.is_empty() {
            table.comment = get(3)?;
            table.owner = get(4)?;
        }
        table.columns.push(CatalogColumn {
            name: column,
            data_type: get(7)?.unwrap_or_default(),
            index: u32::try_from(index).unwrap_or_default(),
            comment: get(8)?,
        });
    }
    let tables = here
        .into_iter()
        .filter_map(|r| {
            found
                .get(&key(&r.schema, &r.identifier))
                .map(|t| CatalogTable {
                    relation: r.clone(),
                    ..t.clone()
                })
        })
        .collect();
    Ok(CatalogRead {
        tables,
        errors: Vec::new(),
    })
}
