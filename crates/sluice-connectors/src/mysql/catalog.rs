//! Discovery from `information_schema`: tables (views only when named
//! explicitly), columns in ordinal order, primary keys, row estimates.
//!
//! In MySQL a schema is a database: `include: [orders]` means `orders` of
//! the URL's database, `include: [other_db.*]` reaches other databases on
//! the same server. Without `include`, every base table of the URL's
//! database is read. A view is read only when an `include` entry without
//! wildcards names it (views can be slow or huge, and a wildcard should not
//! pick one up by surprise).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use sluice_core::connector::ConnectorError;

use super::connect::{error_text, ident};
use super::types::{Mapping, MyKind, MyTypeInfo, cast_for, kind_of};
use crate::db::settings::DbSettings;
use crate::db::{ColumnInfo, RemoteTable, TableInfo, select};

/// A column with its decoder: what a read needs beyond [`ColumnInfo`].
#[derive(Debug, Clone)]
pub struct MyColumn {
    /// What discovery reports.
    pub info: ColumnInfo,
    /// How values are decoded.
    pub kind: MyKind,
    /// The expression read (`` `col` `` or `` ST_AsText(`col`) ``), without alias.
    pub select: String,
}

/// A table ready to read.
#[derive(Debug, Clone)]
pub struct MyTable {
    /// Discovery's view.
    pub info: TableInfo,
    /// Columns with decoders.
    pub columns: Vec<MyColumn>,
}

const COLUMNS_SQL: &str = "
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, t.TABLE_ROWS,
       c.COLUMN_NAME, c.IS_NULLABLE, c.DATA_TYPE, c.COLUMN_TYPE,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
  AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW')
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION";

const KEYS_SQL: &str = "
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE CONSTRAINT_NAME = 'PRIMARY'
  AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION";

/// Column `i` of a catalog row as text (`None` for NULL).
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

struct Discovered {
    is_view: bool,
    estimate: Option<u64>,
    columns: Vec<(String, bool, MyTypeInfo)>,
}

/// The selected tables, with columns mapped to Arrow. `database` is the
/// URL's database: the schema of bare names.
pub async fn discover(
    conn: &mut Conn,
    source: &str,
    database: &str,
    include: Option<&[String]>,
    exclude: Option<&[String]>,
    settings: &DbSettings,
) -> Result<Vec<MyTable>, ConnectorError> {
    let q = |e: mysql_async::Error| {
        ConnectorError::external(
            format!(
                "Source `{source}`: reading the catalog failed: {}",
                error_text(&e)
            ),
            e,
        )
    };
    let rows: Vec<Row> = conn.query(COLUMNS_SQL).await.map_err(q)?;
    let mut tables: BTreeMap<RemoteTable, Discovered> = BTreeMap::new();
    for r in &rows {
        let table = RemoteTable {
            schema: text(r, 0).unwrap_or_default(),
            name: text(r, 1).unwrap_or_default(),
        };
        let entry = tables.entry(table).or_insert_with(|| Discovered {
            is_view: text(r, 2).as_deref() == Some("VIEW"),
            estimate: text(r, 3).and_then(|n| n.parse().ok()),
            columns: Vec::new(),
        });
        let info = MyTypeInfo {
            data_type: text(r, 6).unwrap_or_default(),
            column_type: text(r, 7).unwrap_or_default(),
            precision: text(r, 8).and_then(|n| n.parse().ok()),
            scale: text(r, 9).and_then(|n| n.parse().ok()),
        };
        let nullable = text(r, 5).as_deref() != Some("NO");
        entry
            .columns
            .push((text(r, 4).unwrap_or_default(), nullable, info));
    }
    let mut keys: BTreeMap<RemoteTable, Vec<String>> = BTreeMap::new();
    let key_rows: Vec<Row> = conn.query(KEYS_SQL).await.map_err(q)?;
    for r in &key_rows {
        let t = RemoteTable {
            schema: text(r, 0).unwrap_or_default(),
            name: text(r, 1).unwrap_or_default(),
        };
        keys.entry(t)
            .or_default()
            .push(text(r, 2).unwrap_or_default());
    }
    let default_include = [format!("{database}.*")];
    let selection =
        select::Selection::new(Some(include.unwrap_or(&default_include)), exclude, database);
    // Views: only those an `include` entry without wildcards names.
    let explicit: Vec<String> = include
        .unwrap_or_default()
        .iter()
        .filter(|p| !p.contains(['*', '?']))
        .cloned()
        .collect();
    let named = select::Selection::new(Some(&explicit), None, database);
    let all: Vec<RemoteTable> = tables
        .iter()
        .filter(|(t, d)| !d.is_view || (!explicit.is_empty() && named.matches(t)))
        .map(|(t, _)| t.clone())
        .collect();
    let selected = selection.apply(&all, source)?;
    let names = select::stream_names(&selected, database, source)?;
    settings.check_known(&names)?;
    let mut out = Vec::with_capacity(selected.len());
    for (table, stream) in selected.into_iter().zip(names) {
        let Some(found) = tables.remove(&table) else {
            continue;
        };
        let declared = settings.stream(&stream)?.columns;
        let mut columns = Vec::with_capacity(found.columns.len());
        for (name, nullable, info) in found.columns {
            columns.push(column(&table, &name, nullable, &info, &declared)?);
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
            rows_estimate: found.estimate,
        };
        out.push(MyTable { info, columns });
    }
    Ok(out)
}

fn column(
    table: &RemoteTable,
    name: &str,
    nullable: bool,
    info: &MyTypeInfo,
    declared: &[(String, arrow::datatypes::DataType)],
) -> Result<MyColumn, ConnectorError> {
    let quoted = ident(name);
    let db_type = info.column_type.clone();
    let (kind, select, as_text) = if let Some((_, dt)) = declared.iter().find(|(d, _)| d == name) {
        let (cast, kind) = cast_for(dt).ok_or_else(|| {
            ConnectorError::config(
                format!(
                    "Column `{name}` of `{}`: cannot read it as {}",
                    table.display(),
                    sluice_core::types::type_name(dt)
                ),
                Some("declare one of string, bool, int64, uint64, float64, decimal(p,s), date, timestamp, timestamptz, time, binary".to_string()),
            )
        })?;
        let as_text = (kind == MyKind::Text
            && !matches!(kind_of(info), Mapping::Native(MyKind::Text)))
        .then(|| "declared `string` in `columns:`".to_string());
        (kind, cast.replace("{}", &quoted), as_text)
    } else {
        match kind_of(info) {
            Mapping::Native(kind) => (kind, quoted, None),
            Mapping::AsText(expr, why) => (MyKind::Text, expr.replace("{}", &quoted), Some(why)),
        }
    };
    Ok(MyColumn {
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
