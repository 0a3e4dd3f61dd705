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
    /// How a bookmark is compared in SQL, or why the column cannot be a cursor.
    pub cursor: Result<CursorCmp, String>,
}

/// How a cursor column is compared with its bookmark in SQL so that the
/// database orders values exactly as Arrow does (the bookmark is Arrow's
/// maximum; a different order in SQL would skip or repeat rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorCmp {
    /// `expr >= 'bookmark'::type`.
    Typed(&'static str),
    /// `expr COLLATE "C" >= 'bookmark'`: code-point order, as Arrow compares
    /// strings, whatever the column's collation.
    Bytes,
}

impl CursorCmp {
    /// `expr >= bookmark`, as SQL (`mark` is already a quoted literal).
    pub fn ge(&self, expr: &str, mark: &str) -> String {
        match self {
            CursorCmp::Typed(t) => format!("{expr} >= {mark}::{t}"),
            // `::text` first: `citext` ignores a collation and compares without case.
            CursorCmp::Bytes => format!("{expr}::text COLLATE \"C\" >= {mark}"),
        }
    }
}

/// The comparison for a column read as `kind` from the base type `type_name`
/// (`typtype` `e` for enums); `text_of_other` when a non-text type is read as text.
fn cursor_cmp(
    kind: &PgKind,
    type_name: &str,
    typtype: &str,
    text_of_other: bool,
) -> Result<CursorCmp, String> {
    Ok(match kind {
        PgKind::Int2 => CursorCmp::Typed("int2"),
        PgKind::Int4 => CursorCmp::Typed("int4"),
        PgKind::Int8 => CursorCmp::Typed("int8"),
        PgKind::Oid => CursorCmp::Typed("oid"),
        PgKind::Float4 => CursorCmp::Typed("float4"),
        PgKind::Float8 => CursorCmp::Typed("float8"),
        PgKind::Numeric { .. } => CursorCmp::Typed("numeric"),
        PgKind::Date => CursorCmp::Typed("date"),
        PgKind::Time => CursorCmp::Typed("time"),
        PgKind::Timestamp => CursorCmp::Typed("timestamp"),
        PgKind::Timestamptz => CursorCmp::Typed("timestamptz"),
        PgKind::Uuid => CursorCmp::Typed("uuid"),
        PgKind::Text if text_of_other => {
            return Err(format!(
                "`{type_name}` is read as text here, and text order is not the order of `{type_name}` values"
            ));
        }
        PgKind::Text if typtype == "e" => {
            return Err("enum values are ordered by their declaration, not as text".to_string());
        }
        PgKind::Text
            if matches!(
                type_name,
                "text" | "varchar" | "bpchar" | "name" | "citext" | "char"
            ) =>
        {
            CursorCmp::Bytes
        }
        PgKind::Text | PgKind::Jsonb => {
            return Err(format!("`{type_name}` values have no useful order"));
        }
        PgKind::Bool | PgKind::Bytea | PgKind::Interval | PgKind::Array(_) => {
            return Err(format!(
                "a `{type_name}` cursor cannot be compared with a bookmark"
            ));
        }
    })
}

/// A table ready to read.
#[derive(Debug, Clone)]
pub struct PgTable {
    /// Discovery's view.
    pub info: TableInfo,
    /// Columns with decoders.
    pub columns: Vec<PgColumn>,
}

/// A catalog row: name, nullable, declared type, type facts.
type RawColumn = (String, bool, String, PgTypeInfo);

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
        let text_of_other = kind == PgKind::Text && !matches!(kind_of(info), Ok(PgKind::Text));
        let as_text = text_of_other.then(|| "declared `string` in `columns:`".to_string());
        return Ok(PgColumn {
            cursor: cursor_cmp(&kind, &info.name, &info.typtype, text_of_other),
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
        cursor: cursor_cmp(&kind, &info.name, &info.typtype, as_text.is_some()),
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
