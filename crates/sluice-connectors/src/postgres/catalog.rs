//! Discovery: the tables a user may read, their columns, types and keys.

use std::collections::BTreeMap;

use sluice_core::connector::ConnectorError;
use tokio_postgres::Client;

use super::connect::error_text;
use super::types::{PgKind, PgTypeInfo, cast_for, kind_of};
use crate::db::settings::DbSettings;
use crate::db::{ColumnInfo, RemoteTable, TableInfo, select};

/// A column with its decoder: what a read needs beyond [`ColumnInfo`].
#[derive(Debug, Clone)]
pub struct PgColumn {
    /// What discovery reports.
    pub info: ColumnInfo,
    /// How the binary value is decoded.
    pub kind: PgKind,
    /// The select expression (`"col"` or `"col"::text`).
    pub select: String,
}

/// A table ready to read.
#[derive(Debug, Clone)]
pub struct PgTable {
    /// Discovery's view.
    pub info: TableInfo,
    /// Columns with decoders.
    pub columns: Vec<PgColumn>,
}

const COLUMNS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, c.reltuples::float8,
       a.attname::text, a.attnotnull, format_type(a.atttypid, a.atttypmod),
       bt.typname::text, bt.typtype::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       et.typname::text, et.typtype::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname, a.attnum";

const KEYS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary
ORDER BY n.nspname, c.relname, k.ord";

/// Quote an identifier: `"Order ID"`.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A catalog row: name, nullable, `format_type`, type facts.
type RawColumn = (String, bool, String, PgTypeInfo);

/// The selected tables of the database, with columns mapped to Arrow.
pub async fn discover(
    client: &Client,
    source: &str,
    selection: &select::Selection,
    settings: &DbSettings,
) -> Result<Vec<PgTable>, ConnectorError> {
    let q = |e: tokio_postgres::Error| {
        ConnectorError::external(
            format!(
                "Source `{source}`: reading the catalog failed: {}",
                error_text(&e)
            ),
            e,
        )
    };
    let rows = client.query(COLUMNS_SQL, &[]).await.map_err(q)?;
    let mut tables: BTreeMap<RemoteTable, (Option<u64>, Vec<RawColumn>)> = BTreeMap::new();
    let bad_row =
        |e: tokio_postgres::Error| ConnectorError::Internal(format!("Reading the catalog: {e}"));
    for r in &rows {
        let table = RemoteTable {
            schema: r.try_get(0).map_err(bad_row)?,
            name: r.try_get(1).map_err(bad_row)?,
        };
        let estimate: f64 = r.try_get(2).map_err(bad_row)?;
        let element: Option<String> = r.try_get(9).map_err(bad_row)?;
        let element_typtype: Option<String> = r.try_get(10).map_err(bad_row)?;
        let info = PgTypeInfo {
            name: r.try_get(6).map_err(bad_row)?,
            typtype: r.try_get(7).map_err(bad_row)?,
            element: element.map(|e| (e, element_typtype.unwrap_or_default())),
            typmod: r.try_get(8).map_err(bad_row)?,
        };
        let entry = tables
            .entry(table)
            .or_insert_with(|| ((estimate >= 0.0).then_some(estimate as u64), Vec::new()));
        let nullable = !r.try_get::<_, bool>(4).map_err(bad_row)?;
        entry.1.push((
            r.try_get(3).map_err(bad_row)?,
            nullable,
            r.try_get(5).map_err(bad_row)?,
            info,
        ));
    }
    let mut keys: BTreeMap<RemoteTable, Vec<String>> = BTreeMap::new();
    for r in client.query(KEYS_SQL, &[]).await.map_err(q)? {
        let t = RemoteTable {
            schema: r.try_get(0).map_err(bad_row)?,
            name: r.try_get(1).map_err(bad_row)?,
        };
        keys.entry(t)
            .or_default()
            .push(r.try_get(2).map_err(bad_row)?);
    }
    let all: Vec<RemoteTable> = tables.keys().cloned().collect();
    let selected = selection.apply(&all, source)?;
    let names = select::stream_names(&selected, "public", source)?;
    settings.check_known(&names)?;
    let mut out = Vec::with_capacity(selected.len());
    for (table, stream) in selected.into_iter().zip(names) {
        let (estimate, cols) = tables.remove(&table).unwrap_or_default();
        let declared = settings.stream(&stream)?.columns;
        let mut columns = Vec::with_capacity(cols.len());
        for (name, nullable, db_type, info) in cols {
            columns.push(column(&table, &name, nullable, db_type, &info, &declared)?);
        }
        for (d, _) in &declared {
            if !columns.iter().any(|c| &c.info.name == d) {
                let names: Vec<&str> = columns.iter().map(|c| c.info.name.as_str()).collect();
                let hint = sluice_core::config::suggest::did_you_mean(d, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("the table's columns: {}", names.join(", ")));
                return Err(ConnectorError::config(
                    format!(
                        "Stream `{source}.{stream}`: `columns:` declares `{d}`, which `{}` does not have",
                        table.display()
                    ),
                    Some(hint),
                ));
            }
        }
        let info = TableInfo {
            primary_key: keys.remove(&table).unwrap_or_default(),
            table,
            stream,
            columns: columns.iter().map(|c| c.info.clone()).collect(),
            rows_estimate: estimate,
        };
        out.push(PgTable { info, columns });
    }
    Ok(out)
}

fn column(
    table: &RemoteTable,
    name: &str,
    nullable: bool,
    db_type: String,
    info: &PgTypeInfo,
    declared: &[(String, arrow::datatypes::DataType)],
) -> Result<PgColumn, ConnectorError> {
    let quoted = ident(name);
    if let Some((_, dt)) = declared.iter().find(|(d, _)| d == name) {
        let (cast, kind) = match dt {
            arrow::datatypes::DataType::Decimal128(p, s) => (
                format!("numeric({p},{s})"),
                PgKind::Numeric {
                    precision: *p,
                    scale: *s,
                },
            ),
            other => {
                let (cast, kind) = cast_for(other).ok_or_else(|| {
                    ConnectorError::config(
                        format!(
                            "Column `{name}` of `{}`: cannot read it as {}",
                            table.display(),
                            sluice_core::types::type_name(other)
                        ),
                        Some("declare one of string, bool, int16/32/64, float32/64, decimal(p,s), date, timestamp, timestamptz, time, binary".to_string()),
                    )
                })?;
                (cast.to_string(), kind)
            }
        };
        let as_text = (kind == PgKind::Text && !matches!(kind_of(info), Ok(PgKind::Text)))
            .then(|| "declared `string` in `columns:`".to_string());
        return Ok(PgColumn {
            info: ColumnInfo {
                name: name.to_string(),
                db_type,
                data_type: kind.data_type(),
                nullable,
                as_text,
            },
            select: format!("{quoted}::{cast}"),
            kind,
        });
    }
    let (kind, select, as_text) = match kind_of(info) {
        Ok(kind) => (kind, quoted, None),
        Err(why) => (PgKind::Text, format!("{quoted}::text"), Some(why)),
    };
    Ok(PgColumn {
        info: ColumnInfo {
            name: name.to_string(),
            db_type,
            data_type: kind.data_type(),
            nullable,
            as_text,
        },
        kind,
        select,
    })
}
